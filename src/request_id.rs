//! The request id: every HTTP request has one, taken from its
//! `X-Request-Id` header when that is a sane token, else made here. It is
//! returned in the response's `X-Request-Id`, is a request extension
//! handlers can take ([`RequestId`] is an extractor), names the request in
//! the access log ([`crate::access_log`]), and is added as `"request_id"`
//! to JSON error bodies and WebSocket `error` messages, so a client's bug
//! report points at the server's log line.
//!
//! The error bodies get it here, in the middleware, rather than where
//! [`crate::error::ApiError`] renders them: an error response can come from
//! a handler, an extractor, another middleware or the default service, and
//! only here are they all seen, with the request at hand. It costs a
//! re-read of the body, done only for error statuses with a small JSON body
//! of the `{"type":"error",…}` shape.

use std::fmt;
use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

/// The header the id comes in and goes out in.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client, in characters (inclusive):
/// enough for any tracing scheme's id (a UUID is 36, a W3C trace id 32),
/// short enough that a log line stays a line.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// Largest error body the id is added to, in bytes (inclusive). The
/// service's own error bodies are a code and a sentence; anything larger is
/// not one of them and is passed on untouched.
pub const MAX_ERROR_BODY_BYTES: u64 = 16 * 1024;

/// One request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The client's id if it is 1 to [`MAX_REQUEST_ID_CHARS`] visible ASCII
    /// characters (no spaces, quotes or backslashes, so it is safe in a log
    /// line and in JSON as is), else a new random one.
    pub fn accept(header: Option<&HeaderValue>) -> Self {
        header
            .and_then(|h| h.to_str().ok())
            .filter(|s| is_sane(s))
            .map_or_else(Self::new, |s| Self(s.into()))
    }

    /// A new random id (UUID v4, hyphenated).
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string().into())
    }

    /// The id of `req`, if it went through [`middleware`].
    pub fn of(req: &HttpRequest) -> Option<Self> {
        req.extensions().get::<Self>().cloned()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A handler takes the request's id as an argument; a request that did not
/// pass the middleware (none in this service) gets a new one.
impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req).unwrap_or_default()))
    }
}

fn is_sane(s: &str) -> bool {
    (1..=MAX_REQUEST_ID_CHARS).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\'))
}

/// The middleware: sets the request's id, returns it in the response and
/// adds it to an error body.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = RequestId::accept(req.headers().get(HEADER));
    req.extensions_mut().insert(id.clone());
    // Not cloned before the call: routing needs the request unshared. The
    // app's handlers render their errors into responses; only a middleware
    // inside this one could return an error, and it goes on without the id.
    let response = next.call(req).await?.map_into_boxed_body();
    let mut response = with_id_in_error_body(response, &id).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    Ok(response)
}

async fn with_id_in_error_body(
    response: ServiceResponse<BoxBody>,
    id: &RequestId,
) -> ServiceResponse<BoxBody> {
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let small = matches!(response.response().body().size(), BodySize::Sized(n) if n <= MAX_ERROR_BODY_BYTES);
    if !(response.status().as_u16() >= 400 && json && small) {
        return response;
    }
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    // A sized body of at most MAX_ERROR_BODY_BYTES is in memory already.
    let body = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => match add_request_id(&bytes, id.as_str()) {
            Some(with_id) => BoxBody::new(with_id),
            None => BoxBody::new(bytes),
        },
        Err(_) => BoxBody::new(()),
    };
    ServiceResponse::new(request, head.set_body(body))
}

/// `body` with `"request_id"` as its last key, if it is a JSON error object
/// (`"type":"error"`) without one; the other keys keep their order.
pub fn add_request_id(body: &[u8], id: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    if object.get("type")?.as_str()? != "error" || object.contains_key("request_id") {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?.trim_end();
    let open = text.strip_suffix('}')?;
    let id = serde_json::to_string(id).ok()?;
    Some(format!("{open},\"request_id\":{id}}}").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept_else_one_is_made() {
        let kept = RequestId::accept(Some(&HeaderValue::from_static("abc-123_X.y:z")));
        assert_eq!(kept.as_str(), "abc-123_X.y:z");
        let long = "a".repeat(MAX_REQUEST_ID_CHARS);
        assert_eq!(
            RequestId::accept(Some(&HeaderValue::from_str(&long).unwrap())).as_str(),
            long
        );
        for bad in [
            "",
            "has space",
            "quo\"te",
            "back\\slash",
            &"a".repeat(MAX_REQUEST_ID_CHARS + 1),
        ] {
            let made = RequestId::accept(Some(&HeaderValue::from_str(bad).unwrap()));
            assert_ne!(made.as_str(), bad);
            assert_eq!(made.as_str().len(), 36, "a UUID");
        }
        let non_ascii = HeaderValue::from_bytes("é".as_bytes()).unwrap();
        assert_eq!(RequestId::accept(Some(&non_ascii)).as_str().len(), 36);
        assert_ne!(RequestId::accept(None), RequestId::accept(None));
    }

    #[test]
    fn the_id_goes_last_into_error_objects_only() {
        let body = br#"{"type":"error","code":"session_not_found","message":"no"}"#;
        assert_eq!(
            String::from_utf8(add_request_id(body, "abc").unwrap()).unwrap(),
            r#"{"type":"error","code":"session_not_found","message":"no","request_id":"abc"}"#
        );
        assert!(add_request_id(br#"{"type":"done"}"#, "abc").is_none());
        assert!(add_request_id(br#"[1]"#, "abc").is_none());
        assert!(add_request_id(b"not json", "abc").is_none());
        assert!(
            add_request_id(br#"{"type":"error","request_id":"x"}"#, "abc").is_none(),
            "an id already there is kept"
        );
    }
}
