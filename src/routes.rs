//! The route table: the one place that names the endpoints ([`crate::api`])
//! and the paths and methods they answer.

use actix_web::web;

use crate::api::{
    admin, analysis, audio_socket, chunks, convert, health, jobs, metrics, originals, page,
    phrases, sessions, stream, tokens,
};

/// Adds every route of the service to an app (`App::configure`). The app
/// must carry as app data the shared state ([`crate::state::AppState`]),
/// the authentication settings ([`crate::auth::Auth`]), the drain flag
/// ([`crate::drain::Draining`], for `/readyz`) and the Prometheus handle
/// (for `/metrics`).
pub fn configure(app: &mut web::ServiceConfig) {
    app.route("/", web::get().to(page::index))
        .route("/app.js", web::get().to(page::app_js))
        .route(
            "/recorder-worklet.js",
            web::get().to(page::recorder_worklet_js),
        )
        .route("/style.css", web::get().to(page::style_css))
        .route("/stream", web::get().to(stream::stream))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::scrape))
        .route("/admin/drain", web::post().to(admin::drain))
        .route("/admin/drain", web::get().to(admin::drain_status))
        .route("/convert", web::post().to(convert::convert))
        .route("/upload", web::post().to(convert::upload))
        .route("/api/tokens", web::post().to(tokens::issue))
        .route("/api/ws/audio", web::get().to(audio_socket::open))
        .route("/api/ws/audio/{id}", web::get().to(audio_socket::join))
        .route("/api/audio/sessions", web::get().to(sessions::list))
        .route("/api/audio/sessions/{id}", web::get().to(sessions::get))
        .route(
            "/api/audio/sessions/{id}",
            web::delete().to(sessions::delete),
        )
        .route(
            "/api/audio/sessions/{id}/close",
            web::post().to(sessions::close),
        )
        .route(
            "/api/audio/sessions/{id}/audio",
            web::get().to(sessions::audio),
        )
        .route(
            "/api/audio/sessions/{id}/original",
            web::get().to(originals::original),
        )
        .route(
            "/api/audio/sessions/{id}/chunks",
            web::get().to(chunks::list),
        )
        .route(
            "/api/audio/sessions/{id}/analysis",
            web::get().to(analysis::get),
        )
        .route(
            "/api/audio/sessions/{id}/jobs",
            web::get().to(jobs::of_session),
        )
        .route("/api/jobs", web::get().to(jobs::by_query))
        .route("/api/chunks/{chunk_id}", web::get().to(chunks::get))
        .route(
            "/api/users/{user_id}/sessions",
            web::get().to(sessions::list_by_user),
        )
        .route(
            "/audio/user/{user_id}/phrases",
            web::get().to(phrases::list),
        )
        .route(
            "/audio/user/{user_id}/phrase/{phrase_id}",
            web::post().to(phrases::upload),
        )
        .route(
            "/audio/user/{user_id}/phrase/{phrase_id}",
            web::get().to(phrases::get),
        )
        .route(
            "/audio/user/{user_id}/phrase/{phrase_id}",
            web::delete().to(phrases::delete),
        )
        .route(
            "/audio/user/{user_id}/phrase/{phrase_id}/flac",
            web::get().to(phrases::flac),
        )
        .route(
            "/audio/user/{user_id}/phrase/{phrase_id}/original",
            web::get().to(phrases::original),
        )
        .route(
            "/audio/user/{user_id}/phrase/{phrase_id}/m4a",
            web::get().to(phrases::m4a),
        );
}
