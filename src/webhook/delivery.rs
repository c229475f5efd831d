//! One webhook attempt: a POST of the event's exact bytes with its
//! signature, to checked addresses only, within a timeout, following no
//! redirect and no proxy (either could lead past the address checks).
//! Delivered means a 2xx answer. Anything else is worth another attempt
//! (a receiver that is down, overloaded, or briefly misconfigured), except
//! a URL that can never be used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::signature::{
    sign, ATTEMPT_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER,
};
use super::target::{CheckedResolver, TargetError, Targets};

/// Why an attempt did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver may not be reached or its URL is unusable.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The receiver answered, but not 2xx.
    #[error("the receiver answered {0}")]
    Status(u16),
    /// No answer: connection refused, reset, timed out.
    #[error("the receiver could not be reached: {0}")]
    Transport(String),
}

impl DeliveryError {
    /// Whether another attempt cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Target(TargetError::Url(_) | TargetError::RefusedLiteral(_))
        )
    }
}

/// What a delivered attempt got.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    /// The receiver's status.
    pub status: u16,
    /// How long it took.
    pub elapsed: Duration,
}

/// Delivers events; one per service, shared by its job runners.
pub struct Deliverer {
    client: reqwest::Client,
    targets: Arc<Targets>,
    secret: Arc<[u8]>,
}

/// One event to send.
pub struct Event<'a> {
    /// The receiver.
    pub url: &'a str,
    /// The event id.
    pub id: &'a str,
    /// The event type.
    pub kind: &'a str,
    /// The exact body.
    pub body: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
}

impl Deliverer {
    /// A deliverer with `secret`, within `timeout` per attempt.
    pub fn new(
        targets: Targets,
        secret: Arc<[u8]>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let targets = Arc::new(targets);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver(Arc::clone(&targets))))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("flacstream-webhook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            targets,
            secret,
        })
    }

    /// Makes one attempt.
    pub async fn deliver(&self, event: &Event<'_>) -> Result<Delivered, DeliveryError> {
        let url = self.targets.check_url(event.url)?;
        let started = Instant::now();
        let timestamp = flacstream_actors::store::now_ms() / 1000;
        let response = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header(
                SIGNATURE_HEADER,
                sign(&self.secret, timestamp, event.body.as_bytes()),
            )
            .header(EVENT_ID_HEADER, event.id)
            .header(EVENT_TYPE_HEADER, event.kind)
            .header(ATTEMPT_HEADER, event.attempt.to_string())
            .body(event.body.to_string())
            .send()
            .await
            .map_err(|e| match target_error(&e) {
                Some(t) => DeliveryError::Target(t),
                // Without the URL: the error is shown to the session's
                // principals (the attempt log), and a receiver's URL can
                // carry its own secret.
                None => DeliveryError::Transport(describe(&e.without_url())),
            })?;
        let status = response.status().as_u16();
        // The body is not read: dropping the response closes the connection.
        drop(response);
        if !(200..300).contains(&status) {
            return Err(DeliveryError::Status(status));
        }
        Ok(Delivered {
            status,
            elapsed: started.elapsed(),
        })
    }
}

/// The address check's refusal inside a client error, if that is what it is.
fn target_error(e: &reqwest::Error) -> Option<TargetError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<TargetError>() {
            return Some(t.clone());
        }
        source = s.source();
    }
    None
}

/// A client error with its causes (reqwest's own text is only the outermost).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
