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
//! the record that ends it ([`super::JobPlan::for_ended`]), so an ended session
//! never lacks its jobs, and a dedupe key makes a repeated end queue nothing
//! twice.

use actix::{Handler, Message, SyncContext};
use serde::Serialize;
use uuid::Uuid;

use super::{now_ms, Store, StoreError};

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
