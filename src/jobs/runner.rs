//! The job runner: one actor per replica. Every `--job-poll-ms` (and as soon
//! as a job ends) it claims due jobs up to its free places
//! (`--job-workers`), runs each on the actor's arbiter (their blocking parts
//! go to blocking threads), renews each claim at a third of the lease while
//! it runs, and records the outcome. A replica that dies mid-job leaves the
//! claim to lapse; another replica (or this one restarted) runs it again.
//!
//! It also queues the periodic retention job (one per interval across all
//! replicas: its dedupe key is the interval's number) and sets the
//! `flacstream_jobs` gauges from the catalog's counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{Actor, ActorFutureExt, AsyncContext, Context};
use flacstream_actors::metrics::{
    JOBS, JOB_ATTEMPTS, JOB_SECONDS, LABEL_KIND, LABEL_OUTCOME, LABEL_STATE,
};
use flacstream_actors::store::{
    now_ms, ClaimJobs, Enqueue, FinishJob, Job, JobCounts, JobKind, JobOutcome, JobState, NewJob,
    RenewJob,
};
use futures_util::future::{select, Either};

use super::backoff::delay;
use super::context::{JobContext, JobError};
use super::{final_analysis, recompression, retention, webhook_job};

/// How often the job gauges are refreshed from the catalog, in seconds.
const GAUGE_INTERVAL_SECONDS: u64 = 15;

/// The runner; see the module docs.
pub struct JobRunner {
    cx: Arc<JobContext>,
    /// This replica's worker name (in claims and the attempt log).
    worker: String,
    running: usize,
    claiming: bool,
}

impl JobRunner {
    /// A runner named `worker`.
    pub fn new(cx: Arc<JobContext>, worker: String) -> Self {
        Self {
            cx,
            worker,
            running: 0,
            claiming: false,
        }
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        let free = self.cx.settings.workers.saturating_sub(self.running);
        // A draining replica claims nothing more: what it took would be
        // cut off by its exit and wait out its lease.
        if self.claiming || free == 0 || (self.cx.stopping)() {
            return;
        }
        self.claiming = true;
        let claim = self.cx.store.send(ClaimJobs {
            worker: self.worker.clone(),
            lease_ms: self.cx.settings.lease.as_millis() as i64,
            limit: free as u32,
        });
        ctx.spawn(wrap_future::<_, Self>(claim).map(|claimed, act, ctx| {
            act.claiming = false;
            let jobs = match claimed {
                Ok(Ok(jobs)) => jobs,
                Ok(Err(e)) => return log::warn!("Claiming jobs failed: {e}."),
                Err(e) => return log::warn!("Claiming jobs failed: {e}."),
            };
            for job in jobs {
                act.running += 1;
                let run = attempt(Arc::clone(&act.cx), act.worker.clone(), job);
                ctx.spawn(wrap_future::<_, Self>(run).map(|(), act, ctx| {
                    act.running -= 1;
                    act.poll(ctx);
                }));
            }
        }));
    }

    fn gauge(&mut self, ctx: &mut Context<Self>) {
        let counts = self.cx.store.send(JobCounts);
        ctx.spawn(wrap_future::<_, Self>(counts).map(|counts, _, _| {
            let Ok(Ok(counts)) = counts else {
                return;
            };
            for kind in JobKind::ALL {
                let watched = [JobState::Queued, JobState::Running, JobState::Failed];
                for state in watched {
                    let n = counts
                        .iter()
                        .find(|(k, s, _)| *k == kind && *s == state)
                        .map_or(0, |c| c.2);
                    metrics::gauge!(JOBS, LABEL_KIND => kind.as_str(), LABEL_STATE => state.as_str())
                        .set(n as f64);
                }
            }
        }));
    }

    fn queue_retention(&mut self, ctx: &mut Context<Self>) {
        let every = self.cx.settings.retention.check.as_millis().max(1) as i64;
        let slot = now_ms() / every;
        let job = NewJob::now(
            JobKind::Retention,
            format!("retention:{every}:{slot}"),
            None,
            "{}".into(),
            self.cx.settings.max_attempts,
        );
        let queued = self.cx.store.send(Enqueue { jobs: vec![job] });
        ctx.spawn(wrap_future::<_, Self>(queued).map(|queued, _, _| {
            if let Ok(Err(e)) = queued {
                log::warn!("Queueing the retention job failed: {e}.");
            }
        }));
    }
}

impl Actor for JobRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.cx.settings.poll, |act, ctx| act.poll(ctx));
        ctx.run_interval(Duration::from_secs(GAUGE_INTERVAL_SECONDS), |act, ctx| {
            act.gauge(ctx)
        });
        self.gauge(ctx);
        if self.cx.settings.retention.enabled() {
            self.queue_retention(ctx);
            ctx.run_interval(self.cx.settings.retention.check, |act, ctx| {
                act.queue_retention(ctx)
            });
        }
        self.poll(ctx);
    }
}

/// Runs one attempt of `job` and records its outcome.
async fn attempt(cx: Arc<JobContext>, worker: String, job: Job) {
    let kind = job.kind.as_str();
    let started = Instant::now();
    let lease = cx.settings.lease;
    let renew = {
        let (store, worker, id, attempt) = (cx.store.clone(), worker.clone(), job.id, job.attempts);
        async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let renewed = store
                    .send(RenewJob {
                        id,
                        worker: worker.clone(),
                        attempt,
                        lease_ms: lease.as_millis() as i64,
                    })
                    .await;
                match renewed {
                    Ok(Ok(true)) => {}
                    // Another worker holds it now: this attempt must stop.
                    Ok(Ok(false)) => return,
                    other => log::warn!("Job {id}: its claim could not be renewed ({other:?})."),
                }
            }
        }
    };
    let work = run(&cx, &job);
    let result = match select(Box::pin(work), Box::pin(renew)).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            log::warn!(
                "Job {} ({kind}): its claim was taken over; attempt {} stopped.",
                job.id,
                job.attempts
            );
            return;
        }
    };
    let outcome = match result {
        Ok(done) => JobOutcome::Done(done),
        Err(JobError::Permanent(e)) => JobOutcome::Failed(e),
        Err(JobError::Retry(e)) => {
            let wait = delay(job.attempts, cx.settings.backoff, cx.settings.backoff_max);
            JobOutcome::Retry {
                error: e,
                at_ms: now_ms() + wait.as_millis() as i64,
            }
        }
    };
    metrics::histogram!(JOB_SECONDS, LABEL_KIND => kind).record(started.elapsed().as_secs_f64());
    metrics::counter!(JOB_ATTEMPTS, LABEL_KIND => kind, LABEL_OUTCOME => outcome.as_str())
        .increment(1);
    match &outcome {
        JobOutcome::Done(d) => log::info!("Job {} ({kind}) done: {d}.", job.id),
        other => log::warn!(
            "Job {} ({kind}) attempt {} of {}: {} ({}).",
            job.id,
            job.attempts,
            job.max_attempts,
            other.as_str(),
            other.detail()
        ),
    }
    let finished = cx
        .store
        .send(FinishJob {
            id: job.id,
            worker,
            attempt: job.attempts,
            outcome,
        })
        .await;
    match finished {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => log::warn!(
            "Job {}: its claim lapsed before it finished; another attempt will run.",
            job.id
        ),
        other => log::error!("Job {}: its outcome was not recorded ({other:?}).", job.id),
    }
}

async fn run(cx: &JobContext, job: &Job) -> Result<String, JobError> {
    match job.kind {
        JobKind::Analysis => final_analysis::run(cx, job).await,
        JobKind::Recompress => recompression::run(cx, job).await,
        JobKind::Webhook => webhook_job::run(cx, job).await,
        JobKind::Retention => retention::run(cx, job).await,
    }
}
