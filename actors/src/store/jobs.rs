//! The background-job queue in the catalog: work that runs after a session
//! ends (its final analysis, an archive recompression, a webhook delivery)
//! and periodic work (retention).
//!
//! A job is a row. Any replica's worker claims due rows for a lease
//! (`claimed_until_ms`; PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two
//! replicas never claim one row; SQLite: one process, its write lock), runs
//! them and records the outcome: done, retry at a later time (backoff), or
//! failed after its last attempt. A worker killed between the claim and the
//! outcome leaves the row claimed until its lease lapses; then any worker
//! claims it again. So a job runs at least once, and every kind is written
//! to be idempotent: done once in effect.
//!
//! Every attempt is logged (`job_attempts`): when, by which worker, what
//! came of it. An attempt with no outcome was abandoned (its worker died).
//!
//! Jobs for an ended session are queued in the same catalog transaction as
//! the record that ends it ([`JobPlan::for_ended`]), so an ended session
//! never lacks its jobs, and a dedupe key makes a repeated end queue nothing
//! twice.

use std::collections::HashMap;

use actix::{Handler, Message, SyncContext};
use serde::Serialize;
use uuid::Uuid;

use super::{now_ms, SessionRecord, SessionStatus, Store, StoreError};

/// Attempts abandoned by their worker (killed, or its claim lapsed) that a
/// job at its last attempt still gets before it is failed: a restart or a
/// deploy must not fail the jobs it cut off, and a job that brings its
/// worker down every time must not run forever.
pub const ABANDONED_EXTRA_ATTEMPTS: u32 = 2;

/// The job kinds' stored names, as an SQL list: a claim takes only kinds
/// this build runs (a newer replica's kind waits for a replica that knows
/// it, instead of failing every claim here).
pub fn known_kinds_sql() -> String {
    JobKind::ALL
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// The analysis over the whole stored recording.
    Analysis,
    /// Re-encodes the stored FLAC at a higher level, replacing it atomically.
    Recompress,
    /// Delivers an event to a webhook receiver.
    Webhook,
    /// Deletes recordings past their retention age.
    Retention,
}

impl JobKind {
    /// Every kind (for counts that start at zero).
    pub const ALL: [Self; 4] = [
        Self::Analysis,
        Self::Recompress,
        Self::Webhook,
        Self::Retention,
    ];

    /// The stored and reported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analysis => "analysis",
            Self::Recompress => "recompress",
            Self::Webhook => "webhook",
            Self::Retention => "retention",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_after_ms`.
    Queued,
    /// Claimed by a worker until `claimed_until_ms`.
    Running,
    /// Finished.
    Done,
    /// Gave up after its last attempt.
    Failed,
}

impl JobState {
    /// Every state.
    pub const ALL: [Self; 4] = [Self::Queued, Self::Running, Self::Done, Self::Failed];

    /// The stored and reported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Its id (also a webhook's event id).
    pub id: Uuid,
    /// Unique among all jobs: queueing a key again queues nothing.
    pub dedupe: String,
    /// What it does.
    pub kind: JobKind,
    /// The session it is about, if any.
    pub session_id: Option<Uuid>,
    /// Its input, JSON.
    pub payload: String,
    /// Attempts before it fails.
    pub max_attempts: u32,
    /// Not before this time, milliseconds since the Unix epoch.
    pub run_after_ms: i64,
}

impl NewJob {
    /// A job due now.
    pub fn now(
        kind: JobKind,
        dedupe: String,
        session_id: Option<Uuid>,
        payload: String,
        max_attempts: u32,
    ) -> Self {
        Self {
            id: Uuid::new_v4(),
            dedupe,
            kind,
            session_id,
            payload,
            max_attempts,
            run_after_ms: now_ms(),
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Its id.
    pub id: Uuid,
    /// What it does.
    pub kind: JobKind,
    /// The session it is about.
    pub session_id: Option<Uuid>,
    /// Where it is.
    pub state: JobState,
    /// Attempts begun so far.
    pub attempts: u32,
    /// Attempts before it fails.
    pub max_attempts: u32,
    /// When it is due (next).
    pub run_after_ms: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// What it did, once done.
    pub result: Option<String>,
    /// Queued at.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
    /// Its input, JSON (not shown: a webhook's holds its target).
    #[serde(skip)]
    pub payload: String,
}

/// One attempt at a job, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// The worker (replica) that ran it.
    pub worker: String,
    /// Begun at.
    pub started_at_ms: i64,
    /// Ended at; `None` while running, or if its worker died.
    pub finished_at_ms: Option<i64>,
    /// `done`, `retry` or `failed`; `None` as above.
    pub outcome: Option<String>,
    /// The result or the error.
    pub detail: Option<String>,
}

/// What came of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// It did its work; what it did.
    Done(String),
    /// It failed for now; run again at `at_ms` (or fail, past the last attempt).
    Retry {
        /// Why.
        error: String,
        /// When to try again.
        at_ms: i64,
    },
    /// It can never succeed (bad input, the session is gone).
    Failed(String),
}

impl JobOutcome {
    /// The logged name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Done(_) => "done",
            Self::Retry { .. } => "retry",
            Self::Failed(_) => "failed",
        }
    }

    /// The logged detail.
    pub fn detail(&self) -> &str {
        match self {
            Self::Done(d) | Self::Failed(d) | Self::Retry { error: d, .. } => d,
        }
    }
}

/// The queue in the catalog. Methods block.
pub trait Jobs {
    /// Queues jobs; a dedupe key already present is skipped. Answers how
    /// many were queued.
    fn enqueue(&mut self, jobs: &[NewJob]) -> Result<u64, StoreError>;
    /// Claims up to `limit` due jobs of the kinds this build knows for
    /// `worker` until `now + lease_ms`: queued ones whose time has come and
    /// running ones whose claim lapsed (their worker died). A lapsed one
    /// already [`ABANDONED_EXTRA_ATTEMPTS`] past its last attempt is marked
    /// failed instead. Each claim begins an attempt. PostgreSQL takes `now`
    /// from the database's clock (replicas' clocks may differ).
    fn claim_jobs(
        &mut self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError>;
    /// Extends `worker`'s claim on a job it runs; whether it still held it.
    fn renew_job(
        &mut self,
        id: Uuid,
        worker: &str,
        attempt: u32,
        until_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Records an attempt's outcome if `worker` still holds the claim (its
    /// lease may have lapsed and another taken it); whether it did.
    fn finish_job(
        &mut self,
        id: Uuid,
        worker: &str,
        attempt: u32,
        outcome: &JobOutcome,
    ) -> Result<bool, StoreError>;
    /// A session's jobs, oldest first, each with its attempts.
    fn session_jobs(&mut self, session: Uuid) -> Result<Vec<(Job, Vec<JobAttempt>)>, StoreError>;
    /// Jobs per kind and state, of the states worth watching (queued,
    /// running, failed: through the state index, where counting every
    /// `done` row would scan the whole history).
    fn job_counts(&mut self) -> Result<Vec<(JobKind, JobState, u64)>, StoreError>;
}

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

/// Queue jobs (a dedupe key already present is skipped).
#[derive(Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct Enqueue {
    /// The jobs.
    pub jobs: Vec<NewJob>,
}

impl Handler<Enqueue> for Store {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, msg: Enqueue, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.enqueue(&msg.jobs)
    }
}

/// Claim due jobs; see [`Jobs::claim_jobs`].
#[derive(Message)]
#[rtype(result = "Result<Vec<Job>, StoreError>")]
pub struct ClaimJobs {
    /// This worker.
    pub worker: String,
    /// How long the claim holds, in milliseconds.
    pub lease_ms: i64,
    /// At most this many.
    pub limit: u32,
}

impl Handler<ClaimJobs> for Store {
    type Result = Result<Vec<Job>, StoreError>;

    fn handle(&mut self, msg: ClaimJobs, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .claim_jobs(&msg.worker, now_ms(), msg.lease_ms, msg.limit)
    }
}

/// Extend a claim; see [`Jobs::renew_job`].
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct RenewJob {
    /// The job.
    pub id: Uuid,
    /// This worker.
    pub worker: String,
    /// The attempt running.
    pub attempt: u32,
    /// How long from now, in milliseconds.
    pub lease_ms: i64,
}

impl Handler<RenewJob> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: RenewJob, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .renew_job(msg.id, &msg.worker, msg.attempt, now_ms() + msg.lease_ms)
    }
}

/// Record an attempt's outcome; see [`Jobs::finish_job`].
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct FinishJob {
    /// The job.
    pub id: Uuid,
    /// This worker.
    pub worker: String,
    /// The attempt that ran.
    pub attempt: u32,
    /// What came of it.
    pub outcome: JobOutcome,
}

impl Handler<FinishJob> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: FinishJob, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .finish_job(msg.id, &msg.worker, msg.attempt, &msg.outcome)
    }
}

/// A session's jobs with their attempts.
#[derive(Message)]
#[rtype(result = "Result<Vec<(Job, Vec<JobAttempt>)>, StoreError>")]
pub struct SessionJobs {
    /// The session.
    pub id: Uuid,
}

impl Handler<SessionJobs> for Store {
    type Result = Result<Vec<(Job, Vec<JobAttempt>)>, StoreError>;

    fn handle(&mut self, msg: SessionJobs, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.session_jobs(msg.id)
    }
}

/// Jobs per kind and state.
#[derive(Message)]
#[rtype(result = "Result<Vec<(JobKind, JobState, u64)>, StoreError>")]
pub struct JobCounts;

impl Handler<JobCounts> for Store {
    type Result = Result<Vec<(JobKind, JobState, u64)>, StoreError>;

    fn handle(&mut self, _msg: JobCounts, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.job_counts()
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
