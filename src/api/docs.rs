//! `GET /docs/`: interactive API docs (Swagger UI) over `/openapi.json`.
//!
//! Swagger UI's files are embedded in the binary (utoipa-swagger-ui's
//! `vendored` feature), so the docs work with no network beyond this
//! server: no CDN, no fonts from elsewhere.

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use utoipa_swagger_ui::Config;

use crate::error::ApiError;

/// Where the UI finds the document.
const DOCUMENT_URL: &str = "/openapi.json";

/// The UI's configuration: the document's URL; "Try it out" on, and a
/// credential entered under "Authorize" kept only for the page's lifetime.
fn config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        Arc::new(
            Config::from(DOCUMENT_URL)
                .try_it_out_enabled(true)
                .persist_authorization(false),
        )
    }))
}

/// `GET /docs`: to `/docs/`, where the UI's relative links resolve.
#[utoipa::path(
    operation_id = "docsRedirect",
    summary = "Redirect to the interactive docs",
    tag = "documentation",
    security(()),
    responses((status = 308, description = "Redirect to /docs/", headers(("Location" = String))))
)]
#[get("/docs")]
pub async fn docs_root() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// `GET /docs/{file}`: the interactive docs (`/docs/` is the page).
#[utoipa::path(
    operation_id = "docs",
    summary = "The interactive docs (Swagger UI) and their files",
    tag = "documentation",
    security(()),
    params(("file" = String, Path, description = "A file of the UI; empty for its page", example = "index.html")),
    responses(
        (status = 200, description = "The page or one of its files", content_type = "text/html"),
        (status = 404, description = "No such file", body = crate::error::ErrorBody),
    )
)]
#[get("/docs/{file:.*}")]
pub async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(&file, config()) {
        Ok(Some(found)) => {
            let mut response = HttpResponse::Ok();
            response.content_type(found.content_type);
            if found.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            Ok(response.body(found.bytes.into_owned()))
        }
        Ok(None) => Err(ApiError::RouteNotFound(format!("/docs/{file}"))),
        Err(e) => Err(ApiError::Unavailable(format!(
            "the docs' configuration: {e}"
        ))),
    }
}
