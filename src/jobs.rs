//! Background jobs: work that runs after a session ends, from the durable
//! queue in the catalog (`flacstream_actors::store::jobs`), on any replica.
//!
//! - [`runner`]: the actor that claims due jobs, runs up to
//!   `--job-workers` at once, renews their claims while they run, and
//!   records each outcome (with [`backoff`] before a retry). It also
//!   queues the periodic retention job and keeps the job gauges.
//! - [`context`]: what a job may use, and how a job says it failed.
//! - The kinds: [`final_analysis`] (the analysis over the whole stored
//!   recording), [`recompression`] (the stored FLAC at a higher level,
//!   replaced atomically), [`webhook_job`] (one delivery attempt, through
//!   `crate::webhook`) and [`retention`] (recordings past their age,
//!   deleted and logged).
//!
//! A job runs at least once; each kind is idempotent, so done once in
//! effect. `GET /api/jobs?session_id=` shows a session's jobs and every
//! attempt (the webhook delivery log).

pub mod backoff;
pub mod context;
pub mod final_analysis;
pub mod recompression;
pub mod retention;
pub mod runner;
pub mod webhook_job;
