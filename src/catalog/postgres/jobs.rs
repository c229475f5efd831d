//! The job queue in PostgreSQL (see `flacstream_actors::store::jobs`),
//! shared by every replica: a claim takes due rows with
//! `FOR UPDATE SKIP LOCKED`, so replicas claiming at once never take one
//! row twice and never wait for each other.

use deadpool_postgres::GenericClient;
use flacstream_actors::store::{
    known_kinds_sql, now_ms, Job, JobAttempt, JobKind, JobOutcome, JobState, Jobs, NewJob,
    StoreError, ABANDONED_EXTRA_ATTEMPTS,
};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{db_error, PostgresCatalog};

/// Now on the database's clock, in milliseconds since the Unix epoch.
const DB_NOW_MS_EXPR: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
const DB_NOW_MS: &str = "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

const JOB_COLUMNS: &str = "id, kind, session_id, state, attempts, max_attempts, run_after_ms, \
     last_error, result, created_at_ms, updated_at_ms, payload";

fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    let kind: String = row.try_get(1).map_err(db_error)?;
    let state: String = row.try_get(3).map_err(db_error)?;
    let count = |i: usize| -> Result<u32, StoreError> {
        let v: i64 = row.try_get(i).map_err(db_error)?;
        Ok(v.clamp(0, i64::from(u32::MAX)) as u32)
    };
    Ok(Job {
        id: row.try_get(0).map_err(db_error)?,
        kind: JobKind::parse(&kind).ok_or_else(|| StoreError::Catalog("bad job kind".into()))?,
        session_id: row.try_get(2).map_err(db_error)?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Catalog("bad job state".into()))?,
        attempts: count(4)?,
        max_attempts: count(5)?,
        run_after_ms: row.try_get(6).map_err(db_error)?,
        last_error: row.try_get(7).map_err(db_error)?,
        result: row.try_get(8).map_err(db_error)?,
        created_at_ms: row.try_get(9).map_err(db_error)?,
        updated_at_ms: row.try_get(10).map_err(db_error)?,
        payload: row.try_get(11).map_err(db_error)?,
    })
}

/// Queues `jobs` through `client` (a connection or a transaction); answers
/// how many were new.
pub(super) async fn insert(
    client: &impl GenericClient,
    jobs: &[NewJob],
) -> Result<u64, StoreError> {
    let now = now_ms();
    let mut added = 0;
    for job in jobs {
        added += client
            .execute(
                "INSERT INTO jobs (id, dedupe, kind, session_id, payload, state, attempts, \
                 max_attempts, run_after_ms, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $8) \
                 ON CONFLICT (dedupe) DO NOTHING",
                &[
                    &job.id,
                    &job.dedupe,
                    &job.kind.as_str(),
                    &job.session_id,
                    &job.payload,
                    &i64::from(job.max_attempts),
                    &job.run_after_ms,
                    &now,
                ],
            )
            .await
            .map_err(db_error)?;
    }
    Ok(added)
}

impl Jobs for PostgresCatalog {
    fn enqueue(&mut self, jobs: &[NewJob]) -> Result<u64, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let mut client = shared.pool.get().await.map_err(db_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            let added = insert(&tx, jobs).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(added)
        })
    }

    fn claim_jobs(
        &mut self,
        worker: &str,
        _now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let mut client = shared.pool.get().await.map_err(db_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            // The database's clock, the one every replica's claims compare.
            let now: i64 = tx.query_one(DB_NOW_MS, &[]).await.map_err(db_error)?.get(0);
            // Lapsed claims at their last attempt: failed, not claimed again.
            tx.execute(
                "UPDATE jobs SET state = 'failed', claimed_by = NULL, claimed_until_ms = NULL, \
                 last_error = 'abandoned: its worker stopped during the last attempt', \
                 updated_at_ms = $1 WHERE id IN (SELECT id FROM jobs WHERE state = 'running' \
                 AND claimed_until_ms < $1 AND attempts >= max_attempts + $2 \
                 FOR UPDATE SKIP LOCKED)",
                &[&now, &i64::from(ABANDONED_EXTRA_ATTEMPTS)],
            )
            .await
            .map_err(db_error)?;
            let sql = format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, claimed_by = $3, \
                 claimed_until_ms = $4, updated_at_ms = $1 \
                 WHERE id IN (SELECT id FROM jobs WHERE ((state = 'queued' AND run_after_ms <= $1) \
                 OR (state = 'running' AND claimed_until_ms < $1)) AND kind IN ({}) \
                 ORDER BY run_after_ms LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING {JOB_COLUMNS}",
                known_kinds_sql()
            );
            let rows = tx
                .query(
                    sql.as_str(),
                    &[&now, &i64::from(limit), &worker, &(now + lease_ms)],
                )
                .await
                .map_err(db_error)?;
            let jobs: Vec<Job> = rows.iter().map(job_from_row).collect::<Result<_, _>>()?;
            for job in &jobs {
                tx.execute(
                    "INSERT INTO job_attempts (job_id, attempt, worker, started_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, attempt) DO UPDATE \
                     SET worker = excluded.worker, started_at_ms = excluded.started_at_ms",
                    &[&job.id, &i64::from(job.attempts), &worker, &now],
                )
                .await
                .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(jobs)
        })
    }

    fn renew_job(
        &mut self,
        id: Uuid,
        worker: &str,
        attempt: u32,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let n = client
                .execute(
                    &format!(
                        "UPDATE jobs SET claimed_until_ms = ({DB_NOW_MS_EXPR}) + $4 \
                         WHERE id = $1 AND claimed_by = $2 AND attempts = $3 AND state = 'running'"
                    ),
                    &[&id, &worker, &i64::from(attempt), &(until_ms - now_ms())],
                )
                .await
                .map_err(db_error)?;
            Ok(n > 0)
        })
    }

    fn finish_job(
        &mut self,
        id: Uuid,
        worker: &str,
        attempt: u32,
        outcome: &JobOutcome,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let (state_sql, run_after) = match outcome {
            JobOutcome::Done(_) => ("'done'", None),
            JobOutcome::Failed(_) => ("'failed'", None),
            // Past the last attempt a retry is a failure.
            JobOutcome::Retry { at_ms, .. } => (
                "CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END",
                Some(*at_ms),
            ),
        };
        let (error, result) = match outcome {
            JobOutcome::Done(r) => (None, Some(r.as_str())),
            other => (Some(other.detail()), None),
        };
        let sql = format!(
            "UPDATE jobs SET state = {state_sql}, claimed_by = NULL, claimed_until_ms = NULL, \
             run_after_ms = COALESCE($4, run_after_ms), last_error = COALESCE($5, last_error), \
             result = $6, updated_at_ms = $7 \
             WHERE id = $1 AND claimed_by = $2 AND attempts = $3 AND state = 'running'"
        );
        let shared = &self.shared;
        shared.run(async {
            let mut client = shared.pool.get().await.map_err(db_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            let n = tx
                .execute(
                    sql.as_str(),
                    &[
                        &id,
                        &worker,
                        &i64::from(attempt),
                        &run_after,
                        &error,
                        &result,
                        &now,
                    ],
                )
                .await
                .map_err(db_error)?;
            tx.execute(
                "UPDATE job_attempts SET finished_at_ms = $3, outcome = $4, detail = $5 \
                 WHERE job_id = $1 AND attempt = $2 AND worker = $6 AND outcome IS NULL",
                &[
                    &id,
                    &i64::from(attempt),
                    &now,
                    &outcome.as_str(),
                    &outcome.detail(),
                    &worker,
                ],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(n > 0)
        })
    }

    fn session_jobs(&mut self, session: Uuid) -> Result<Vec<(Job, Vec<JobAttempt>)>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE session_id = $1 ORDER BY created_at_ms, id"
        );
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(sql.as_str(), &[&session])
                .await
                .map_err(db_error)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let job = job_from_row(row)?;
                let attempts = client
                    .query(
                        "SELECT attempt, worker, started_at_ms, finished_at_ms, outcome, detail \
                         FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
                        &[&job.id],
                    )
                    .await
                    .map_err(db_error)?
                    .iter()
                    .map(|r| {
                        let attempt: i64 = r.try_get(0).map_err(db_error)?;
                        Ok(JobAttempt {
                            attempt: attempt.clamp(0, i64::from(u32::MAX)) as u32,
                            worker: r.try_get(1).map_err(db_error)?,
                            started_at_ms: r.try_get(2).map_err(db_error)?,
                            finished_at_ms: r.try_get(3).map_err(db_error)?,
                            outcome: r.try_get(4).map_err(db_error)?,
                            detail: r.try_get(5).map_err(db_error)?,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?;
                out.push((job, attempts));
            }
            Ok(out)
        })
    }

    fn job_counts(&mut self) -> Result<Vec<(JobKind, JobState, u64)>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    "SELECT kind, state, COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'failed') GROUP BY kind, state",
                    &[],
                )
                .await
                .map_err(db_error)?;
            let mut out = Vec::new();
            for row in &rows {
                let kind: String = row.try_get(0).map_err(db_error)?;
                let state: String = row.try_get(1).map_err(db_error)?;
                let n: i64 = row.try_get(2).map_err(db_error)?;
                if let (Some(kind), Some(state)) = (JobKind::parse(&kind), JobState::parse(&state))
                {
                    out.push((kind, state, n.max(0) as u64));
                }
            }
            Ok(out)
        })
    }
}
