//! The route table: the one place that lists the endpoints ([`crate::api`]).
//!
//! Each endpoint is a handler annotated twice: actix's method macro
//! (`#[get("/path")]`) gives its path and method, and `#[utoipa::path]` its
//! OpenAPI description. Registered here with `service(...)` through
//! utoipa-actix-web, the one call both routes the path and adds it to the
//! OpenAPI document ([`document`]), so the two cannot disagree;
//! `tests/it/api_contract.rs` checks the served document against the server.

use actix_web::App;
use utoipa::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;

use crate::api::{
    admin, analysis, asyncapi, audio_socket, chunks, convert, docs, health, jobs, metrics, openapi,
    originals, page, phrases, sessions, stream, tokens,
};

/// Adds every route of the service to an app (`UtoipaApp::configure`). The
/// app must carry as app data the shared state ([`crate::state::AppState`]),
/// the authentication settings ([`crate::auth::Auth`]), the drain flag
/// ([`crate::drain::Draining`], for `/readyz`), the Prometheus handle (for
/// `/metrics`) and the OpenAPI document ([`openapi::ApiDocument`]).
pub fn configure(app: &mut ServiceConfig) {
    app.service(page::index)
        .service(page::app_js)
        .service(page::recorder_worklet_js)
        .service(page::style_css)
        .service(openapi::document_json)
        .service(asyncapi::document_yaml)
        .service(docs::docs_root)
        .service(docs::docs_file)
        .service(stream::stream)
        .service(health::healthz)
        .service(health::readyz)
        .service(metrics::scrape)
        .service(admin::drain)
        .service(admin::drain_status)
        .service(convert::convert)
        .service(convert::upload)
        .service(tokens::issue)
        .service(audio_socket::open)
        .service(audio_socket::join)
        .service(sessions::list)
        .service(sessions::get)
        .service(sessions::delete)
        .service(sessions::close)
        .service(sessions::audio)
        .service(originals::original)
        .service(chunks::list)
        .service(analysis::get)
        .service(jobs::of_session)
        .service(jobs::by_query)
        .service(chunks::get)
        .service(sessions::list_by_user)
        .service(phrases::list)
        .service(phrases::upload)
        .service(phrases::get)
        .service(phrases::delete)
        .service(phrases::flac)
        .service(phrases::original)
        .service(phrases::m4a);
}

/// The OpenAPI document of every route [`configure`] adds: the paths and
/// schemas the handlers' annotations give, under [`openapi::ApiDoc`]'s
/// title, tags and security schemes. Built once at start.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    document
}
