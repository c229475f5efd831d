//! The browser page: convert a WAV file over `/stream`, or record the
//! microphone into a recorded session over `/api/ws/audio`.
//!
//! The assets in `web/` are compiled into the binary, so the page needs no
//! files at run time and no build step. They are not fingerprinted, so every
//! answer says `Cache-Control: no-cache` (revalidate before reuse): a new
//! binary is seen on the next load.
//!
//! | path | asset |
//! | --- | --- |
//! | `/` | `web/index.html` |
//! | `/app.js` | `web/app.js` |
//! | `/recorder-worklet.js` | `web/recorder-worklet.js` (the AudioWorklet) |
//! | `/style.css` | `web/style.css` |

use actix_web::http::header;
use actix_web::{get, HttpResponse};

/// The page (`web/index.html`).
pub const INDEX_HTML: &str = include_str!("../../web/index.html");
/// The page's script (`web/app.js`).
pub const APP_JS: &str = include_str!("../../web/app.js");
/// The recorder's AudioWorklet processor (`web/recorder-worklet.js`).
pub const RECORDER_WORKLET_JS: &str = include_str!("../../web/recorder-worklet.js");
/// The page's style sheet (`web/style.css`).
pub const STYLE_CSS: &str = include_str!("../../web/style.css");

/// The `Cache-Control` value of every asset.
pub const CACHE_CONTROL: &str = "no-cache";

/// A 200 answer with an embedded asset.
fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

/// `GET /`: the page.
#[utoipa::path(
    operation_id = "page",
    summary = "The browser page",
    tag = "documentation",
    security(()),
    responses((status = 200, description = "The browser page", content_type = "text/html"))
)]
#[get("/")]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /app.js`: the page's script.
#[utoipa::path(
    operation_id = "pageScript",
    summary = "The page's script",
    tag = "documentation",
    security(()),
    responses((status = 200, description = "The page's script", content_type = "text/javascript"))
)]
#[get("/app.js")]
pub async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /recorder-worklet.js`: the AudioWorklet that turns the microphone's
/// samples into 16-bit PCM.
#[utoipa::path(
    operation_id = "pageRecorderWorklet",
    summary = "The page's microphone AudioWorklet",
    tag = "documentation",
    security(()),
    responses((status = 200, description = "The page's AudioWorklet", content_type = "text/javascript"))
)]
#[get("/recorder-worklet.js")]
pub async fn recorder_worklet_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", RECORDER_WORKLET_JS)
}

/// `GET /style.css`: the page's style sheet.
#[utoipa::path(
    operation_id = "pageStyle",
    summary = "The page's style sheet",
    tag = "documentation",
    security(()),
    responses((status = 200, description = "The page's style sheet", content_type = "text/css"))
)]
#[get("/style.css")]
pub async fn style_css() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as web_test, App};

    async fn check(path: &str, content_type: &str, body: &str) {
        let app = web_test::init_service(
            App::new()
                .service(index)
                .service(app_js)
                .service(recorder_worklet_js)
                .service(style_css),
        )
        .await;
        let response =
            web_test::call_service(&app, web_test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), content_type);
        assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), CACHE_CONTROL);
        let bytes = web_test::read_body(response).await;
        assert_eq!(bytes, body.as_bytes());
    }

    #[actix_web::test]
    async fn serves_every_asset_with_its_type() {
        check("/", "text/html; charset=utf-8", INDEX_HTML).await;
        check("/app.js", "text/javascript; charset=utf-8", APP_JS).await;
        check(
            "/recorder-worklet.js",
            "text/javascript; charset=utf-8",
            RECORDER_WORKLET_JS,
        )
        .await;
        check("/style.css", "text/css; charset=utf-8", STYLE_CSS).await;
    }

    #[test]
    fn the_page_links_its_assets_relatively() {
        for asset in ["app.js", "style.css"] {
            assert!(INDEX_HTML.contains(&format!("\"{asset}\"")), "{asset}");
        }
        assert!(APP_JS.contains("recorder-worklet.js"));
        assert!(RECORDER_WORKLET_JS.contains("registerProcessor('flacstream-recorder'"));
    }
}
