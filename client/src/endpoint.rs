//! The server as the client reaches it: `ws://` or `wss://` (the
//! connection from [`crate::transport`], TLS configured by [`crate::tls`]),
//! the credential in the handshake, a bounded handshake, and which refusals
//! are worth another attempt.
//!
//! Worth retrying: a connection that could not be made or broke during the
//! handshake, and HTTP 408, 429, 502, 503 and 504 (with the server's
//! `Retry-After`). Not: 401 and 403 (the credential will not get better),
//! every other 4xx (the request is wrong), and TLS failures (a certificate
//! that does not verify will not start verifying).

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, RETRY_AFTER};
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::credential::Credential;
use crate::error::ClientError;
use crate::retry::{parse_retry_after, Backoff, RetryPolicy};
use crate::transport::{Transport, TransportError};

/// Longest time for one attempt's TCP connect, TLS handshake and upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest message or frame the client takes from the server: the FLAC
/// frames the service sends are far smaller (a 16384-sample block of 8
/// channels at 24 bits is under 400 KiB even stored verbatim).
pub const MAX_INCOMING_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// An open WebSocket, plain or TLS.
pub type Ws = WebSocketStream<Transport>;

/// How one attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt, after `retry_after` if the server said so.
    Transient {
        /// What happened.
        error: ClientError,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Permanent(ClientError),
}

/// TLS, credential and retry bounds, shared by every connection of a run.
#[derive(Debug, Clone)]
pub struct Endpoint {
    tls: Arc<ClientConfig>,
    credential: Option<Credential>,
    retry: RetryPolicy,
}

impl Endpoint {
    /// An endpoint with these settings.
    pub fn new(tls: Arc<ClientConfig>, credential: Option<Credential>, retry: RetryPolicy) -> Self {
        Self {
            tls,
            credential,
            retry,
        }
    }

    /// The TLS configuration (also for HTTPS).
    pub fn tls(&self) -> &Arc<ClientConfig> {
        &self.tls
    }

    /// The credential sent, if any.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// A fresh retry state under this endpoint's bounds.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.retry)
    }

    /// Opens a WebSocket to `url`, retrying what is worth it within
    /// `backoff`'s bounds; `notice` hears of each wait before it starts.
    pub async fn open(
        &self,
        url: &str,
        backoff: &mut Backoff,
        notice: impl Fn(&ClientError, Duration),
    ) -> Result<Ws, ClientError> {
        retrying(backoff, notice, || self.open_once(url)).await
    }

    /// One attempt at opening a WebSocket to `url`.
    pub async fn open_once(&self, url: &str) -> Result<Ws, Failure> {
        let usage =
            |why: String| Failure::Permanent(ClientError::Usage(format!("--url {url}: {why}")));
        let mut request = url
            .into_client_request()
            .map_err(|e| usage(e.to_string()))?;
        if let Some(credential) = &self.credential {
            request
                .headers_mut()
                .insert(AUTHORIZATION, credential.header_value());
        }
        let uri = request.uri().clone();
        let tls = match uri.scheme_str() {
            Some("wss") => Some(&self.tls),
            Some("ws") => None,
            _ => return Err(usage("only ws:// and wss:// URLs are supported".into())),
        };
        let host = uri.host().ok_or_else(|| usage("no host".into()))?;
        let port = uri
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INCOMING_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_INCOMING_MESSAGE_BYTES));
        let attempt = async {
            let stream = Transport::connect(host, port, tls)
                .await
                .map_err(|e| match e {
                    TransportError::Connect(e) => Failure::Transient {
                        error: connect(url, tungstenite::Error::Io(e)),
                        retry_after: None,
                    },
                    TransportError::Tls(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        Failure::Permanent(connect(url, tungstenite::Error::Io(e)))
                    }
                    TransportError::Tls(e) => Failure::Transient {
                        error: connect(url, tungstenite::Error::Io(e)),
                        retry_after: None,
                    },
                    TransportError::BadName(host) => {
                        usage(format!("{host} is not a valid TLS name"))
                    }
                })?;
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(|e| self.classify(url, e))
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
            Ok(Ok((ws, _response))) => Ok(ws),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(Failure::Transient {
                error: ClientError::Connect {
                    url: url.to_string(),
                    source: Box::new(tungstenite::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {} s", HANDSHAKE_TIMEOUT.as_secs()),
                    ))),
                },
                retry_after: None,
            }),
        }
    }

    fn classify(&self, url: &str, error: tungstenite::Error) -> Failure {
        match error {
            tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().unwrap_or_default();
                self.refusal(status, response.headers(), body)
            }
            tungstenite::Error::Url(e) => {
                Failure::Permanent(ClientError::Usage(format!("--url {url}: {e}")))
            }
            tungstenite::Error::Io(_)
            | tungstenite::Error::Protocol(_)
            | tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed => Failure::Transient {
                error: connect(url, error),
                retry_after: None,
            },
            other => Failure::Permanent(connect(url, other)),
        }
    }

    /// An HTTP error answer (before an upgrade, or to a plain request).
    pub fn refusal(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Failure {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => (e.code, e.message),
            Err(_) => (
                "http_error".to_string(),
                String::from_utf8_lossy(body).chars().take(200).collect(),
            ),
        };
        if status == 401 || status == 403 {
            return Failure::Permanent(ClientError::Unauthorized {
                status,
                code,
                message,
                hint: self.auth_hint(status),
            });
        }
        let error = ClientError::Refused {
            status,
            code,
            message,
        };
        if matches!(status, 408 | 429 | 502 | 503 | 504) {
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            Failure::Transient { error, retry_after }
        } else {
            Failure::Permanent(error)
        }
    }

    fn auth_hint(&self, status: u16) -> String {
        match (&self.credential, status) {
            (None, _) => "no credential was sent: give --api-key (or FLACSTREAM_API_KEY) \
                          or --token (or FLACSTREAM_TOKEN)"
                .into(),
            (Some(c), 401) => format!(
                "the {} given was not accepted (unknown, revoked, or an expired token)",
                c.kind()
            ),
            (Some(c), _) => format!("the {} given does not reach this", c.kind()),
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `backoff` says stop.
pub async fn retrying<T, Fut>(
    backoff: &mut Backoff,
    notice: impl Fn(&ClientError, Duration),
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, ClientError>
where
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure::Permanent(error)) => return Err(error),
            Err(Failure::Transient { error, retry_after }) => {
                match backoff.next_wait(retry_after) {
                    Some(wait) => {
                        notice(&error, wait);
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(give_up(error, backoff)),
                }
            }
        }
    }
}

/// The last failure, saying that the retries are used up.
pub fn give_up(error: ClientError, backoff: &Backoff) -> ClientError {
    if backoff.failures() <= 1 && backoff.waited().is_zero() {
        return error;
    }
    ClientError::GaveUp {
        attempts: backoff.failures(),
        waited_seconds: backoff.waited().as_secs_f64(),
        source: Box::new(error),
    }
}

fn connect(url: &str, error: tungstenite::Error) -> ClientError {
    ClientError::Connect {
        url: url.to_string(),
        source: Box::new(error),
    }
}

/// The service's JSON error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(credential: Option<Credential>) -> Endpoint {
        Endpoint::new(
            crate::tls::client_config(None).unwrap(),
            credential,
            RetryPolicy::default(),
        )
    }

    #[test]
    fn refusals_are_sorted() {
        let e = endpoint(None);
        let body = br#"{"type":"error","code":"server_busy","message":"full"}"#;
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        match e.refusal(503, &headers, body) {
            Failure::Transient { error, retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
                assert!(error.to_string().contains("server_busy"));
            }
            other => panic!("{other:?}"),
        }
        let body = br#"{"type":"error","code":"unauthorized","message":"no"}"#;
        match e.refusal(401, &HeaderMap::new(), body) {
            Failure::Permanent(ClientError::Unauthorized { hint, .. }) => {
                assert!(hint.contains("no credential was sent"), "{hint}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            e.refusal(400, &HeaderMap::new(), b"plain text"),
            Failure::Permanent(ClientError::Refused { status: 400, .. })
        ));
        let keyed = endpoint(Some(Credential::ApiKey("fsk_x".into())));
        match keyed.refusal(401, &HeaderMap::new(), b"") {
            Failure::Permanent(e) => {
                let text = e.to_string();
                assert!(text.contains("API key given"), "{text}");
                assert!(!text.contains("fsk_x"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
}
