//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API.
//!
//! [`ApiDoc`] holds what is not on a handler: the title, the tags, the
//! security schemes and the shared error schema. The paths come from the
//! handlers' own `#[utoipa::path]` annotations as [`crate::routes`]
//! registers them; the WebSocket protocols behind the `GET` upgrades are
//! described by the AsyncAPI document (`docs/asyncapi.yaml`).

use actix_web::{get, web, HttpResponse};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

/// The security scheme names the handlers' `security(...)` lists use.
pub const BEARER: &str = "bearer";
/// A token in the query (`?access_token=`), for browsers' WebSockets and
/// downloads.
pub const QUERY_TOKEN: &str = "access_token";

/// The document's fixed part; see the module docs.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "flacstream",
        description = "Audio in over WebSocket and HTTP, FLAC out: live, lossless where the source is. \
The WebSocket protocols (`/stream`, `/api/ws/audio`) are in the AsyncAPI document (`/asyncapi.yaml`); \
docs/protocol.md is the full reference. With authentication on (`--auth`), every endpoint but the page, \
the docs, health and metrics needs an API key or a token (`Authorization: Bearer …`). Errors are \
`{\"type\":\"error\",\"code\":…,\"message\":…}` with a stable `code`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "streaming", description = "Live conversion over WebSocket (the upgrades; messages in the AsyncAPI document)"),
        (name = "conversion", description = "Any audio in over HTTP, FLAC out"),
        (name = "sessions", description = "Recorded sessions: look up, list, download, close, delete"),
        (name = "analysis", description = "Chunk metadata and a session's loudness, silences and clipping"),
        (name = "jobs", description = "Background jobs and webhook deliveries"),
        (name = "phrases", description = "A user's named recordings"),
        (name = "tokens", description = "Short-lived tokens for browsers"),
        (name = "operations", description = "Health, readiness, metrics and drain"),
        (name = "documentation", description = "This document, the interactive docs and the browser page"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways of presenting a credential.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // Every operation takes a credential when authentication is on (and
        // none when it is off: the empty requirement); the open ones (the
        // page, the docs, health, metrics, drain) say `security(())`.
        openapi.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(QUERY_TOKEN, Vec::<String>::new()),
        ]);
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`--api-keys`) or a token from POST /api/tokens. Authorize one scheme only: two credentials are refused",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            QUERY_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "A token from POST /api/tokens (never an API key), for clients that cannot set headers. Authorize one scheme only: two credentials are refused",
            ))),
        );
    }
}

/// The document as served: serialized once at start.
pub struct ApiDocument {
    json: String,
}

impl ApiDocument {
    /// Serializes `document` for serving.
    pub fn new(document: &utoipa::openapi::OpenApi) -> Self {
        Self {
            // unwrap: serde_json cannot fail on utoipa's document (string
            // keys, no non-finite floats); a failure is a bug found at start.
            json: document
                .to_pretty_json()
                .expect("the OpenAPI document serializes"),
        }
    }
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    operation_id = "openapi",
    summary = "This OpenAPI 3.1 document",
    tag = "documentation",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn document_json(document: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.json.clone())
}

/// The token a client may put in the query instead of a header, as the
/// endpoints whose query has no other parameter document it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "documentation only: auth::Access reads the token")]
pub struct TokenQuery {
    /// A token from POST /api/tokens (never an API key), for clients that
    /// cannot set headers.
    pub access_token: Option<String>,
}

/// Audio bytes as a request body: any format the service reads, recognised
/// from the content (never from a name or a Content-Type).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(
    dead_code,
    reason = "documentation only: the handlers read the raw body"
)]
pub struct AudioBytes(Vec<u8>);

/// A multipart upload of audio to the phrase API.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "documentation only: the handler reads the multipart body"
)]
pub struct PhraseAudioForm {
    /// The audio.
    #[schema(value_type = String, format = Binary)]
    pub audio_file: Vec<u8>,
}

/// A multipart upload of audio to /convert or /upload.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "documentation only: the handlers read the multipart body"
)]
pub struct AudioForm {
    /// The audio.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The answers every WebSocket upgrade documents: the upgrade, and the
/// refusals any of them can meet before it (access, limits, the cap).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "documentation only: the handlers answer")]
pub enum UpgradeResponses {
    /// The upgrade.
    #[response(
        status = 101,
        description = "Switching Protocols: the WebSocket; its messages are in the AsyncAPI document (/asyncapi.yaml)"
    )]
    Upgraded,
    /// A request that is not an upgrade, or a bad parameter.
    #[response(
        status = 400,
        description = "`not_websocket` (not an upgrade) or `bad_parameter`"
    )]
    BadRequest(ErrorBody),
    /// No valid credential.
    #[response(status = 401, description = "`unauthorized`")]
    Unauthorized(ErrorBody),
    /// A credential that does not reach this, or a page's origin.
    #[response(status = 403, description = "`forbidden` or `origin_not_allowed`")]
    Forbidden(ErrorBody),
    /// A per-client limit.
    #[response(
        status = 429,
        description = "`too_many_connections_from_client` or `rate_limited` (with Retry-After)"
    )]
    TooMany(ErrorBody),
    /// The session cap, or a drain.
    #[response(status = 503, description = "`server_busy` or `draining`")]
    Unavailable(ErrorBody),
}

/// The refusals an upload (`/convert`, `/upload`) can meet: its parameters,
/// its audio, its size and speed, the client's limits, the cap.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "documentation only: the handlers answer")]
pub enum UploadRefusals {
    /// Bad parameters or bad audio.
    #[response(
        status = 400,
        description = "`bad_parameter`, `missing_file`, `bad_upload`, or bad audio (`corrupt_audio`, `truncated_audio`, …)"
    )]
    BadRequest(ErrorBody),
    /// Too slow.
    #[response(status = 408, description = "`upload_too_slow`")]
    TooSlow(ErrorBody),
    /// Too large or too long.
    #[response(
        status = 413,
        description = "`upload_too_large`, `audio_too_long` or `media_limit`"
    )]
    TooLarge(ErrorBody),
    /// A format the service does not read.
    #[response(
        status = 415,
        description = "`unrecognized_format`, `unsupported_codec`, `float_pcm`, `no_audio_track`…"
    )]
    Unsupported(ErrorBody),
    /// A per-client limit.
    #[response(
        status = 429,
        description = "`too_many_connections_from_client` or `rate_limited` (with Retry-After)"
    )]
    TooMany(ErrorBody),
    /// The session cap, or a drain.
    #[response(status = 503, description = "`server_busy` or `draining`")]
    Unavailable(ErrorBody),
}
