//! One webhook delivery attempt as a job: the event's bytes were fixed when
//! it was queued (`WebhookPayload`), so every attempt sends the same body
//! and event id, signed afresh. A failed attempt is retried with backoff;
//! the attempt log (`GET /api/jobs`) is the delivery log.

use flacstream_actors::store::{Job, WebhookPayload};

use super::context::{JobContext, JobError};
use crate::webhook::delivery::Event;

/// Runs the job.
pub async fn run(cx: &JobContext, job: &Job) -> Result<String, JobError> {
    let Some(deliverer) = cx.deliverer.as_ref() else {
        return Err(JobError::Permanent(
            "no webhook receiver is configured any more".into(),
        ));
    };
    let payload: WebhookPayload = serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Permanent(format!("the event is unreadable: {e}")))?;
    let body: serde_json::Value = serde_json::from_str(&payload.body).unwrap_or_default();
    let event = Event {
        url: &payload.url,
        id: &job.id.to_string(),
        kind: body["type"].as_str().unwrap_or("session.ready"),
        body: &payload.body,
        attempt: job.attempts,
    };
    match deliverer.deliver(&event).await {
        Ok(done) => Ok(format!(
            "delivered: {} in {} ms",
            done.status,
            done.elapsed.as_millis()
        )),
        Err(e) if e.is_permanent() => Err(JobError::Permanent(e.to_string())),
        Err(e) => Err(JobError::Retry(e.to_string())),
    }
}
