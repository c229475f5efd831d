//! `GET /asyncapi.yaml`: the AsyncAPI 3.0 document of the WebSocket
//! protocols (`/stream`, `/api/ws/audio`, `/api/ws/audio/{id}`), as
//! `docs/asyncapi.yaml` in the repository, compiled into the binary.
//! `tests/api/` validates it and checks every message a live server sends
//! against it.

use actix_web::http::header;
use actix_web::{get, HttpResponse};

/// The document (`docs/asyncapi.yaml`).
pub const ASYNCAPI_YAML: &str = include_str!("../../docs/asyncapi.yaml");

/// The AsyncAPI 3.0 document of the WebSocket protocols.
#[utoipa::path(
    operation_id = "asyncapi",
    summary = "The AsyncAPI 3.0 document of the WebSocket protocols",
    tag = "documentation",
    security(()),
    responses((status = 200, description = "The AsyncAPI 3.0 document (YAML)", content_type = "application/yaml"))
)]
#[get("/asyncapi.yaml")]
pub async fn document_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(ASYNCAPI_YAML)
}
