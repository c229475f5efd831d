//! Which jobs a session gets when it ends ([`JobPlan`], set at start from
//! the settings), and the webhook event it queues: its bytes are fixed
//! here, so every attempt sends the same ones.

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use super::jobs::{JobKind, NewJob};
use super::{SessionRecord, SessionStatus};

/// Which jobs an ended session gets; set at start from the settings.
#[derive(Debug, Clone, Default)]
pub struct JobPlan {
    /// Queue the final analysis.
    pub analysis: bool,
    /// Recompress recordings made below this level.
    pub recompress_level: Option<u8>,
    /// The webhook receiver for sessions of no key with its own.
    pub webhook_url: Option<String>,
    /// Receivers per API key id.
    pub key_webhooks: HashMap<String, String>,
    /// Attempts per job before it fails.
    pub max_attempts: u32,
}

/// A webhook job's input: where, and exactly what (the same bytes on every
/// attempt, so a receiver can check the signature and deduplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WebhookPayload {
    /// The receiver.
    pub url: String,
    /// The event's JSON.
    pub body: String,
}

/// An event as sent to a webhook receiver.
#[derive(Debug, Serialize)]
struct Event<'a> {
    /// Unique per event; the same on every attempt.
    id: Uuid,
    /// `session.ready` or `session.failed`.
    #[serde(rename = "type")]
    kind: &'a str,
    created_at_ms: i64,
    session: EventSession<'a>,
}

/// The session an event is about.
#[derive(Debug, Serialize)]
struct EventSession<'a> {
    session_id: Uuid,
    user_id: Option<&'a str>,
    status: &'static str,
    error: Option<&'a str>,
    encoding: &'a str,
    sample_rate: Option<u32>,
    channels: Option<u16>,
    bits_per_sample: Option<u16>,
    samples: u64,
    duration_ms: Option<u64>,
    bytes_out: u64,
    recorded: bool,
    closed_at_ms: Option<i64>,
    /// Relative to the service: the session, its FLAC, its analysis.
    links: EventLinks,
}

#[derive(Debug, Serialize)]
struct EventLinks {
    session: String,
    audio: String,
    analysis: String,
}

impl JobPlan {
    /// The jobs a session that just ended gets.
    pub fn for_ended(&self, r: &SessionRecord) -> Vec<NewJob> {
        if r.status == SessionStatus::Live {
            return Vec::new();
        }
        let id = r.id;
        let attempts = self.max_attempts.max(1);
        let mut jobs = Vec::new();
        let recorded = r.record && r.file.is_some();
        if self.analysis && recorded && r.samples > 0 {
            let key = format!("analysis:{id}");
            jobs.push(NewJob::now(
                JobKind::Analysis,
                key,
                Some(id),
                "{}".into(),
                attempts,
            ));
        }
        if let Some(level) = self.recompress_level.filter(|&l| recorded && r.level < l) {
            let key = format!("recompress:{id}");
            let payload = serde_json::json!({ "level": level }).to_string();
            jobs.push(NewJob::now(
                JobKind::Recompress,
                key,
                Some(id),
                payload,
                attempts,
            ));
        }
        let url = r
            .owner_key
            .as_ref()
            .and_then(|k| self.key_webhooks.get(k))
            .or(self.webhook_url.as_ref());
        if let Some(url) = url {
            let kind = match r.status {
                SessionStatus::Failed => "session.failed",
                _ => "session.ready",
            };
            let mut job = NewJob::now(
                JobKind::Webhook,
                format!("webhook:{id}:{kind}"),
                Some(id),
                String::new(),
                attempts,
            );
            let event = Event {
                id: job.id,
                kind,
                created_at_ms: job.run_after_ms,
                session: EventSession {
                    session_id: id,
                    user_id: r.user_id.as_deref(),
                    status: r.status.as_str(),
                    error: r.error.as_deref(),
                    encoding: &r.encoding,
                    sample_rate: r.sample_rate,
                    channels: r.channels,
                    bits_per_sample: r.bits_per_sample,
                    samples: r.samples,
                    duration_ms: r
                        .sample_rate
                        .filter(|&rate| rate > 0)
                        .map(|rate| r.samples * 1000 / u64::from(rate)),
                    bytes_out: r.bytes_out,
                    recorded,
                    closed_at_ms: r.closed_at_ms,
                    links: EventLinks {
                        session: format!("/api/audio/sessions/{id}"),
                        audio: format!("/api/audio/sessions/{id}/audio"),
                        analysis: format!("/api/audio/sessions/{id}/analysis"),
                    },
                },
            };
            let payload = WebhookPayload {
                url: url.clone(),
                body: serde_json::to_string(&event)
                    .expect("plain structs of strings and numbers serialize"),
            };
            job.payload = serde_json::to_string(&payload)
                .expect("plain structs of strings and numbers serialize");
            jobs.push(job);
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(status: SessionStatus, key: Option<&str>) -> SessionRecord {
        SessionRecord {
            id: Uuid::new_v4(),
            user_id: Some("ann".into()),
            owner_key: key.map(str::to_string),
            status,
            encoding: "s16le".into(),
            sample_rate: Some(16_000),
            channels: Some(1),
            bits_per_sample: Some(16),
            level: 5,
            block_size: Some(4096),
            record: true,
            chunk_count: 3,
            samples: 32_000,
            bytes_in: 64_000,
            bytes_out: 30_000,
            created_at_ms: 1,
            updated_at_ms: 2,
            closed_at_ms: Some(2),
            file: Some("x.flac".into()),
            error: None,
        }
    }

    #[test]
    fn an_ended_session_gets_the_planned_jobs_and_a_live_one_none() {
        let plan = JobPlan {
            analysis: true,
            recompress_level: Some(8),
            webhook_url: Some("http://all/".into()),
            key_webhooks: [("k1".to_string(), "http://k1/".to_string())].into(),
            max_attempts: 3,
        };
        assert!(plan.for_ended(&ended(SessionStatus::Live, None)).is_empty());
        let r = ended(SessionStatus::Closed, Some("k1"));
        let jobs = plan.for_ended(&r);
        let kinds: Vec<_> = jobs.iter().map(|j| j.kind).collect();
        assert_eq!(
            kinds,
            [JobKind::Analysis, JobKind::Recompress, JobKind::Webhook]
        );
        let hook: WebhookPayload = serde_json::from_str(&jobs[2].payload).unwrap();
        assert_eq!(hook.url, "http://k1/");
        let body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
        assert_eq!(body["id"], jobs[2].id.to_string());
        assert_eq!(body["type"], "session.ready");
        assert_eq!(body["session"]["duration_ms"], 2000);
        let failed = plan.for_ended(&ended(SessionStatus::Failed, Some("other")));
        let hook: WebhookPayload = serde_json::from_str(&failed.last().unwrap().payload).unwrap();
        assert_eq!(hook.url, "http://all/");
        assert!(hook.body.contains("session.failed"));
        // Already at the level: nothing to recompress.
        let mut at8 = ended(SessionStatus::Closed, None);
        at8.level = 8;
        assert!(plan
            .for_ended(&at8)
            .iter()
            .all(|j| j.kind != JobKind::Recompress));
    }
}
