//! The service's errors and the one place that maps every error code to an
//! HTTP status and a WebSocket close code.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actix_ws::CloseCode;
use flacstream_actors::registry::{AdmitError, SessionId};
use flacstream_actors::session::EndReason;
use flacstream_actors::store::StoreError;
use flacstream_actors::{ErrorKind, StreamError};
use serde::Serialize;

/// Close code for a producer replaced by a newer connection to its session
/// (application range 4000–4999).
pub const SUPERSEDED_CLOSE_CODE: u16 = 4001;

/// The close code that follows a `done` message.
pub fn done_close_code(reason: EndReason) -> CloseCode {
    match reason {
        EndReason::Complete | EndReason::Closed | EndReason::ResumeWindowExpired => {
            CloseCode::Normal
        }
        EndReason::GoingAway => CloseCode::Away,
        EndReason::MaxDuration => CloseCode::Policy,
    }
}

/// Everything a client can be told went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A stream failed after the upgrade.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A query parameter is missing, malformed or out of range.
    #[error("{0}")]
    BadParameter(String),
    /// A parameter asks for something valid that the service cannot do.
    #[error("{0}")]
    UnsupportedParameter(String),
    /// The request to a WebSocket endpoint is not a WebSocket upgrade.
    #[error("this endpoint takes WebSocket connections only")]
    NotWebSocket,
    /// The session cap is reached.
    #[error("{0}; try again later")]
    ServerBusy(AdmitError),
    /// The server is draining before shutdown.
    #[error("{0}")]
    Draining(AdmitError),
    /// No session has this id.
    #[error("no session has this id")]
    SessionNotFound,
    /// The session is finalized and takes no more connections or audio.
    #[error("the session is closed")]
    SessionClosed,
    /// The session is live; close it first.
    #[error("the session is live; close it first")]
    SessionLive,
    /// A new session asked for an id that a live or stored session has.
    #[error("a session with id {0} already exists; choose another id")]
    SessionExists(SessionId),
    /// The session has its maximum of connections.
    #[error("the session already has its maximum of {0} connections")]
    TooManyConnections(usize),
    /// The session was not recorded.
    #[error("this session was not recorded (record=false)")]
    NoRecording,
    /// No recording is stored under this user and phrase.
    #[error("no phrase is stored under this user and phrase id")]
    PhraseNotFound,
    /// No chunk has this id (or its metadata is not stored yet: it is saved
    /// with the session's progress, within 5 s).
    #[error("no chunk has this id (chunk metadata is stored within 5 s of its ack)")]
    ChunkNotFound,
    /// The session has no analysis (yet, or it was not measured).
    #[error("this session has no analysis yet")]
    NoAnalysis,
    /// The phrase exists but not in the format asked for.
    #[error("{0}")]
    FormatUnavailable(String),
    /// The session has no kept original (it was not uploaded, or
    /// `--keep-originals` was off).
    #[error("this session has no original: it was not uploaded, or originals are not kept")]
    NoOriginal,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// An upload is over the configured size.
    #[error("the upload is larger than the limit of {0} bytes")]
    UploadTooLarge(u64),
    /// The request's media type is not one the endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A decoded upload holds more audio than the longest session.
    #[error("the audio is longer than the limit of {0} seconds")]
    AudioTooLong(u64),
    /// A multipart upload has no field of this name (`file`, or
    /// `audio_file` on the phrase API).
    #[error("the multipart form has no field named {0}")]
    MissingFile(&'static str),
    /// The request body could not be read.
    #[error("reading the upload failed: {0}")]
    Upload(String),
    /// An internal actor did not answer.
    #[error("the service is not able to take this request: {0}")]
    Unavailable(String),
    /// An administrative endpoint was called from off the host.
    #[error("this endpoint answers only to connections from loopback")]
    NotLoopback,
    /// Authentication is on and the request has no valid credential: none,
    /// an unknown key, or a token that is invalid or expired. The message
    /// never includes the credential.
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is valid but does not reach what was asked for.
    #[error("{0}")]
    Forbidden(String),
    /// A browser page from an origin that is not allowed.
    #[error("requests from this page's origin are not allowed (see --allowed-origins)")]
    OriginNotAllowed,
    /// A token was asked for while authentication is off.
    #[error("authentication is off: no token is needed")]
    AuthDisabled,
    /// The client's address has its maximum of long-lived connections open
    /// (`--max-connections-per-ip`).
    #[error("this client address already has its maximum of {0} connections open")]
    TooManyClientConnections(usize),
    /// The key (API key, or client address) started its allowance of new
    /// sessions for the minute (`--new-sessions-per-minute`).
    #[error(
        "too many new sessions: at most {per_minute} a minute; \
         try again in {retry_after_seconds} s"
    )]
    RateLimited {
        /// The allowance.
        per_minute: u32,
        /// When the next session will be let in, in whole seconds (at least 1).
        retry_after_seconds: u64,
    },
    /// An upload arrived slower than `--min-upload-bytes-per-second`.
    #[error("the upload arrived slower than {0} bytes per second")]
    UploadTooSlow(u64),
    /// Scaled mode: another replica owns the live session and did not hand
    /// it over in time (it may be busy or partitioned); its lease runs out
    /// within the retry time.
    #[error("another replica holds this session; try again in {retry_after_seconds} s")]
    OwnedElsewhere {
        /// When the lease will have run out, in whole seconds (at least 1).
        retry_after_seconds: u64,
    },
    /// Object storage failed.
    #[error("object storage failed: {0}")]
    ObjectStorage(String),
    /// No endpoint has this path.
    #[error("no endpoint has the path {0} (the API is described at /openapi.json)")]
    RouteNotFound(String),
    /// The path exists, but not for this method.
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The method asked for.
        method: String,
        /// The methods the path takes, comma-separated (the `Allow` header).
        allow: String,
    },
}

impl From<flacstream_actors::object_recordings::ObjectError> for ApiError {
    fn from(e: flacstream_actors::object_recordings::ObjectError) -> Self {
        Self::ObjectStorage(e.to_string())
    }
}

/// An actor that did not answer (it stopped, or its mailbox is closed): the
/// request cannot be served now, 503 `unavailable`.
impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::Full(_) => Self::ServerBusy(e),
            AdmitError::Draining => Self::Draining(e),
            AdmitError::Taken(id) => Self::SessionExists(id),
        }
    }
}

/// The JSON body of every error, on HTTP and WebSocket alike.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "error", "code": "session_not_found", "message": "no session has this id"}))]
pub struct ErrorBody {
    /// Always `"error"`.
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^error$")]
    pub kind: &'static str,
    /// Stable machine-readable code (docs/protocol.md §5 lists them).
    #[schema(value_type = String)]
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
    /// The request's id (`X-Request-Id`): [`crate::request_id`] adds it to
    /// every HTTP error answer, so [`ApiError::body`] leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every code [`ApiError::code`] can give (those of the stream, WAV and
/// media errors within it included), each once: the `code` label values
/// `/metrics` lists at 0 from the start. docs/protocol.md explains each.
pub const ERROR_CODES: &[&str] = &[
    // The HTTP surface's own.
    "bad_parameter",
    "unsupported_format",
    "not_websocket",
    "server_busy",
    "draining",
    "session_not_found",
    "session_closed",
    "session_live",
    "session_exists",
    "too_many_connections",
    "no_recording",
    "phrase_not_found",
    "chunk_not_found",
    "no_analysis",
    "format_unavailable",
    "no_original",
    "storage",
    "upload_too_large",
    "audio_too_long",
    "unsupported_media_type",
    "missing_file",
    "bad_upload",
    "unavailable",
    "not_loopback",
    "unauthorized",
    "forbidden",
    "origin_not_allowed",
    "auth_disabled",
    "too_many_connections_from_client",
    "rate_limited",
    "upload_too_slow",
    "session_owned_elsewhere",
    "not_found",
    "method_not_allowed",
    // A stream's (flacstream_actors::StreamError).
    "internal",
    "idle_timeout",
    "slow_reader",
    "message_too_large",
    "bad_message",
    "stream_too_long",
    "shutting_down",
    "superseded",
    "session_moved",
    "input_too_fast",
    // The WAV header's (flacstream_codec::wav).
    "not_wav",
    "bad_fmt_size",
    "duplicate_fmt",
    "data_before_fmt",
    "zero_channels",
    "zero_sample_rate",
    "zero_bits_per_sample",
    "bad_block_align",
    "bad_extensible",
    "bad_chunk_id",
    "truncated_header",
    "unsupported_container",
    "unsupported_bit_depth",
    "too_many_channels",
    "unsupported_sample_rate",
    "header_too_large",
    // Other containers' (flacstream_codec::media).
    "unrecognized_format",
    "no_audio_track",
    "unsupported_codec",
    "float_pcm",
    "corrupt_audio",
    "truncated_audio",
    "media_limit",
    "format_changed",
    "needs_seeking",
    "format_mismatch",
];

impl ApiError {
    /// Stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Stream(e) => e.code(),
            Self::BadParameter(_) => "bad_parameter",
            Self::UnsupportedParameter(_) => "unsupported_format",
            Self::NotWebSocket => "not_websocket",
            Self::ServerBusy(_) => "server_busy",
            Self::Draining(_) => "draining",
            Self::SessionNotFound => "session_not_found",
            Self::SessionClosed => "session_closed",
            Self::SessionLive => "session_live",
            Self::SessionExists(_) => "session_exists",
            Self::TooManyConnections(_) => "too_many_connections",
            Self::NoRecording => "no_recording",
            Self::PhraseNotFound => "phrase_not_found",
            Self::ChunkNotFound => "chunk_not_found",
            Self::NoAnalysis => "no_analysis",
            Self::FormatUnavailable(_) => "format_unavailable",
            Self::NoOriginal => "no_original",
            Self::Storage(_) => "storage",
            Self::UploadTooLarge(_) => "upload_too_large",
            Self::AudioTooLong(_) => "audio_too_long",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::MissingFile(_) => "missing_file",
            Self::Upload(_) => "bad_upload",
            Self::Unavailable(_) => "unavailable",
            Self::NotLoopback => "not_loopback",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::AuthDisabled => "auth_disabled",
            Self::TooManyClientConnections(_) => "too_many_connections_from_client",
            Self::RateLimited { .. } => "rate_limited",
            Self::UploadTooSlow(_) => "upload_too_slow",
            Self::OwnedElsewhere { .. } => "session_owned_elsewhere",
            Self::ObjectStorage(_) => "storage",
            Self::RouteNotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            kind: "error",
            code: self.code(),
            message: self.to_string(),
            request_id: None,
        }
    }

    /// The body as JSON text.
    pub fn json(&self) -> String {
        self.json_for(None)
    }

    /// The body as JSON text with the request's id, for WebSocket `error`
    /// messages (HTTP answers get theirs from [`crate::request_id`]).
    pub fn json_for(&self, request_id: Option<&str>) -> String {
        let body = ErrorBody {
            request_id: request_id.map(str::to_string),
            ..self.body()
        };
        // A struct of strings always serialises.
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The WebSocket close code for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::Stream(e) => match e.kind() {
                ErrorKind::Malformed => CloseCode::Invalid,
                ErrorKind::Unsupported => CloseCode::Unsupported,
                ErrorKind::Policy => CloseCode::Policy,
                ErrorKind::TooLarge => CloseCode::Size,
                ErrorKind::Internal => CloseCode::Error,
                ErrorKind::GoingAway => CloseCode::Away,
                ErrorKind::Superseded => CloseCode::Other(SUPERSEDED_CLOSE_CODE),
            },
            Self::UnsupportedParameter(_) => CloseCode::Unsupported,
            Self::BadParameter(_)
            | Self::NotWebSocket
            | Self::SessionNotFound
            | Self::SessionClosed
            | Self::SessionLive
            | Self::SessionExists(_)
            | Self::TooManyConnections(_)
            | Self::NoRecording
            | Self::PhraseNotFound
            | Self::ChunkNotFound
            | Self::NoAnalysis
            | Self::FormatUnavailable(_)
            | Self::NoOriginal
            | Self::NotLoopback
            | Self::Unauthorized(_)
            | Self::Forbidden(_)
            | Self::OriginNotAllowed
            | Self::AuthDisabled
            | Self::TooManyClientConnections(_)
            | Self::UploadTooSlow(_) => CloseCode::Policy,
            // Like `server_busy`: answered before any upgrade, so no
            // WebSocket sees it; "try again later" if one ever did.
            Self::RateLimited { .. } => CloseCode::Again,
            Self::RouteNotFound(_) | Self::MethodNotAllowed { .. } => CloseCode::Policy,
            Self::Storage(_) => CloseCode::Error,
            Self::UploadTooLarge(_) | Self::AudioTooLong(_) => CloseCode::Size,
            Self::UnsupportedMediaType(_) => CloseCode::Unsupported,
            Self::MissingFile(_) | Self::Upload(_) => CloseCode::Policy,
            // The session cap is checked only before an upgrade, so a full
            // server always answers HTTP 503 and no WebSocket is closed
            // with 1013; the code is what one would get.
            Self::ServerBusy(_) => CloseCode::Again,
            Self::Draining(_) => CloseCode::Away,
            Self::Unavailable(_) | Self::ObjectStorage(_) => CloseCode::Error,
            Self::OwnedElsewhere { .. } => CloseCode::Again,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Stream(e) => match e.kind() {
                ErrorKind::Malformed => StatusCode::BAD_REQUEST,
                ErrorKind::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorKind::Policy => StatusCode::BAD_REQUEST,
                ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::GoingAway => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Superseded => StatusCode::CONFLICT,
            },
            Self::BadParameter(_) | Self::NotWebSocket => StatusCode::BAD_REQUEST,
            Self::UnsupportedParameter(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::SessionNotFound
            | Self::NoRecording
            | Self::NoOriginal
            | Self::PhraseNotFound
            | Self::ChunkNotFound
            | Self::NoAnalysis => StatusCode::NOT_FOUND,
            Self::FormatUnavailable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::SessionClosed | Self::SessionLive | Self::SessionExists(_) => {
                StatusCode::CONFLICT
            }
            Self::TooManyConnections(_)
            | Self::TooManyClientConnections(_)
            | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UploadTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotLoopback | Self::Forbidden(_) | Self::OriginNotAllowed => {
                StatusCode::FORBIDDEN
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::AuthDisabled => StatusCode::NOT_FOUND,
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UploadTooLarge(_) | Self::AudioTooLong(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MissingFile(_) | Self::Upload(_) => StatusCode::BAD_REQUEST,
            Self::ServerBusy(_)
            | Self::Draining(_)
            | Self::Unavailable(_)
            | Self::OwnedElsewhere { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::ObjectStorage(_) => StatusCode::BAD_GATEWAY,
            Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Every refused request passes here, so it is counted here.
    fn error_response(&self) -> HttpResponse {
        flacstream_actors::metrics::rejected(self.code());
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized(_) = self {
            // RFC 6750: a 401 names the scheme it wants.
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Self::RateLimited {
            retry_after_seconds,
            ..
        }
        | Self::OwnedElsewhere {
            retry_after_seconds,
        } = self
        {
            response.insert_header((
                actix_web::http::header::RETRY_AFTER,
                retry_after_seconds.to_string(),
            ));
        }
        if let Self::MethodNotAllowed { allow, .. } = self {
            response.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
        }
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flacstream_codec::wav::WavError;

    #[test]
    fn each_kind_maps_to_its_close_code_and_status() {
        let cases = [
            (StreamError::Wav(WavError::NotRiff), 1007, 400),
            (StreamError::Wav(WavError::TooManyChannels(9)), 1003, 415),
            (StreamError::Wav(WavError::HeaderTooLarge(1)), 1009, 413),
            (StreamError::IdleTimeout(30), 1008, 400),
            (StreamError::MessageTooLarge(1), 1009, 413),
            (StreamError::EncoderPanicked, 1011, 500),
            (StreamError::ShuttingDown, 1001, 503),
        ];
        for (e, close, status) in cases {
            let e = ApiError::from(e);
            assert_eq!(u16::from(e.close_code()), close, "{e}");
            assert_eq!(e.status_code().as_u16(), status, "{e}");
        }
        let busy = ApiError::from(AdmitError::Full(3));
        assert_eq!(busy.status_code().as_u16(), 503);
        assert_eq!(busy.code(), "server_busy");
        assert!(busy.json().contains("\"type\":\"error\""));
        let taken = ApiError::from(AdmitError::Taken(SessionId::new_v4()));
        assert_eq!(taken.status_code().as_u16(), 409);
        assert_eq!(taken.code(), "session_exists");
        let remote = ApiError::NotLoopback;
        assert_eq!(remote.status_code().as_u16(), 403);
        assert_eq!(remote.code(), "not_loopback");
        for (e, code, status) in [
            (ApiError::Unauthorized("x".into()), "unauthorized", 401),
            (ApiError::Forbidden("x".into()), "forbidden", 403),
            (ApiError::OriginNotAllowed, "origin_not_allowed", 403),
            (ApiError::AuthDisabled, "auth_disabled", 404),
        ] {
            assert_eq!((e.code(), e.status_code().as_u16()), (code, status));
            assert_eq!(u16::from(e.close_code()), 1008);
        }
        let refused = ApiError::Unauthorized("x".into()).error_response();
        assert_eq!(refused.headers().get("www-authenticate").unwrap(), "Bearer");
    }

    #[test]
    fn abuse_limits_map_to_their_codes_and_rate_limited_says_when() {
        let too_fast = ApiError::from(StreamError::InputTooFast {
            max_rate_percent: 150,
            burst_seconds: 60,
        });
        assert_eq!(too_fast.code(), "input_too_fast");
        assert_eq!(u16::from(too_fast.close_code()), 1008);
        assert!(too_fast.to_string().contains("1.5 times"), "{too_fast}");
        for (e, code, status) in [
            (
                ApiError::TooManyClientConnections(64),
                "too_many_connections_from_client",
                429,
            ),
            (ApiError::UploadTooSlow(8192), "upload_too_slow", 408),
        ] {
            assert_eq!((e.code(), e.status_code().as_u16()), (code, status));
        }
        let limited = ApiError::RateLimited {
            per_minute: 120,
            retry_after_seconds: 7,
        };
        assert_eq!(
            (limited.code(), limited.status_code().as_u16()),
            ("rate_limited", 429)
        );
        let response = limited.error_response();
        assert_eq!(response.headers().get("retry-after").unwrap(), "7");
    }

    /// An actor that does not answer is one mapping, wherever it happens.
    #[test]
    fn an_unanswered_actor_is_unavailable_503() {
        for e in [actix::MailboxError::Closed, actix::MailboxError::Timeout] {
            let api = ApiError::from(e);
            assert_eq!(api.code(), "unavailable");
            assert_eq!(api.status_code(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(api.to_string().contains(&e.to_string()), "{api}");
        }
    }

    #[test]
    fn every_error_code_is_listed_once_and_documented() {
        let protocol = include_str!("../docs/protocol.md");
        let mut seen = std::collections::HashSet::new();
        for code in ERROR_CODES {
            assert!(seen.insert(code), "{code} is listed twice");
            assert!(
                protocol.contains(&format!("`{code}`")),
                "{code} is not in docs/protocol.md"
            );
        }
        for e in [
            ApiError::SessionNotFound,
            ApiError::NotWebSocket,
            ApiError::AuthDisabled,
            ApiError::from(StreamError::BadMessage(String::new())),
            ApiError::from(StreamError::Superseded),
        ] {
            assert!(ERROR_CODES.contains(&e.code()), "{}", e.code());
        }
    }
}
