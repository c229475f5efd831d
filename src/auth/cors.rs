//! CORS for the `--allowed-origins` pages: a page on a listed origin may
//! `fetch` the HTTP API (`/convert`, the sessions API, tokens) with an
//! `Authorization` header.
//!
//! actix-cors answers the preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) before routing, and adds the response
//! headers to the actual request. Per the Fetch standard's rules for
//! requests with credentials, the answer names the page's exact origin
//! (never `*`), lists its methods and headers by name, says
//! `Access-Control-Allow-Credentials: true` and `Vary: Origin`. An origin
//! that is not listed never gets `Access-Control-Allow-Origin` (actix-cors
//! still adds its other headers, which mean nothing without it): its
//! preflight is refused by actix-cors (400, plain text), and a request
//! itself meets the `Origin` check ([`super::origin`]): 403
//! `origin_not_allowed`, whose JSON a page's script cannot read, but its
//! console shows.

use actix_cors::Cors;
use actix_web::http::{header, Method};

use super::origin::AllowedOrigins;

/// How long a browser may cache a preflight's answer, in seconds: ten
/// minutes, so a page does not preflight every upload, and a changed
/// allow-list reaches pages soon after a restart.
pub const PREFLIGHT_MAX_AGE_SECONDS: usize = 600;

/// The request headers a page may send beyond the CORS-safelisted ones.
const ALLOWED_HEADERS: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::HeaderName::from_static("x-request-id"),
];

/// The response headers a page's script may read beyond the safelisted
/// ones: where a new session or phrase is, when to retry, the request id,
/// what a conversion's source was, a download's file name.
const EXPOSED_HEADERS: [&str; 6] = [
    "location",
    "retry-after",
    "x-request-id",
    "flacstream-source-codec",
    "flacstream-lossless",
    "content-disposition",
];

/// The CORS middleware for `origins`.
pub fn middleware(origins: &AllowedOrigins) -> Cors {
    let origins = origins.clone();
    Cors::default()
        .allowed_origin_fn(move |origin, _head| origins.listed(origin))
        .allowed_methods([Method::GET, Method::POST, Method::DELETE])
        .allowed_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .supports_credentials()
        .max_age(PREFLIGHT_MAX_AGE_SECONDS)
        // A request from an origin not listed goes on to the handlers,
        // whose Origin check answers it in the service's own JSON.
        .block_on_origin_mismatch(false)
}
