//! The job queue in SQLite (see `flacstream_actors::store::jobs`). One
//! process uses the file, so a claim is a read and an update under the
//! database's write lock (an immediate transaction): no two store threads
//! claim one row.

use flacstream_actors::store::{
    known_kinds_sql, now_ms, Job, JobAttempt, JobKind, JobOutcome, JobState, Jobs, NewJob,
    StoreError, ABANDONED_EXTRA_ATTEMPTS,
};
use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use super::{db_error, SqliteCatalog};

const JOB_COLUMNS: &str = "id, kind, session_id, state, attempts, max_attempts, run_after_ms, \
     last_error, result, created_at_ms, updated_at_ms, payload";

fn bad(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let id: String = row.get(0)?;
    let kind: String = row.get(1)?;
    let session: Option<String> = row.get(2)?;
    let state: String = row.get(3)?;
    Ok(Job {
        id: Uuid::parse_str(&id).map_err(|_| bad("bad job id"))?,
        kind: JobKind::parse(&kind).ok_or_else(|| bad("bad job kind"))?,
        session_id: session
            .map(|s| Uuid::parse_str(&s).map_err(|_| bad("bad session id")))
            .transpose()?,
        state: JobState::parse(&state).ok_or_else(|| bad("bad job state"))?,
        attempts: row.get(4)?,
        max_attempts: row.get(5)?,
        run_after_ms: row.get(6)?,
        last_error: row.get(7)?,
        result: row.get(8)?,
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
        payload: row.get(11)?,
    })
}

/// Queues `jobs` on `conn` (a connection or a transaction); answers how
/// many were new.
pub(super) fn insert(conn: &Connection, jobs: &[NewJob]) -> Result<u64, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO jobs (id, dedupe, kind, session_id, payload, state, attempts, \
             max_attempts, run_after_ms, created_at_ms, updated_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?8, ?8) \
             ON CONFLICT (dedupe) DO NOTHING",
        )
        .map_err(db_error)?;
    let mut added = 0;
    let now = now_ms();
    for job in jobs {
        added += stmt
            .execute(params![
                job.id.to_string(),
                job.dedupe,
                job.kind.as_str(),
                job.session_id.map(|s| s.to_string()),
                job.payload,
                job.max_attempts,
                job.run_after_ms,
                now,
            ])
            .map_err(db_error)? as u64;
    }
    Ok(added)
}

impl Jobs for SqliteCatalog {
    fn enqueue(&mut self, jobs: &[NewJob]) -> Result<u64, StoreError> {
        let tx = self.conn.transaction().map_err(db_error)?;
        let added = insert(&tx, jobs)?;
        tx.commit().map_err(db_error)?;
        Ok(added)
    }

    fn claim_jobs(
        &mut self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
        // Lapsed claims at their last attempt: failed, not claimed again.
        tx.execute(
            "UPDATE jobs SET state = 'failed', claimed_by = NULL, claimed_until_ms = NULL, \
             last_error = 'abandoned: its worker stopped during the last attempt', \
             updated_at_ms = ?1 \
             WHERE state = 'running' AND claimed_until_ms < ?1 AND attempts >= max_attempts + ?2",
            params![now, ABANDONED_EXTRA_ATTEMPTS],
        )
        .map_err(db_error)?;
        let due: Vec<Job> = {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE ((state = 'queued' AND run_after_ms <= ?1) \
                 OR (state = 'running' AND claimed_until_ms < ?1)) AND kind IN ({}) \
                 ORDER BY run_after_ms LIMIT ?2",
                known_kinds_sql()
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(db_error)?;
            let rows = stmt
                .query_map(params![now, limit], job_from_row)
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)?
        };
        let mut claimed = Vec::with_capacity(due.len());
        for mut job in due {
            job.attempts += 1;
            job.state = JobState::Running;
            job.updated_at_ms = now;
            tx.execute(
                "UPDATE jobs SET state = 'running', attempts = ?2, claimed_by = ?3, \
                 claimed_until_ms = ?4, updated_at_ms = ?5 WHERE id = ?1",
                params![
                    job.id.to_string(),
                    job.attempts,
                    worker,
                    now + lease_ms,
                    now
                ],
            )
            .map_err(db_error)?;
            tx.execute(
                "INSERT OR REPLACE INTO job_attempts (job_id, attempt, worker, started_at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![job.id.to_string(), job.attempts, worker, now],
            )
            .map_err(db_error)?;
            claimed.push(job);
        }
        tx.commit().map_err(db_error)?;
        Ok(claimed)
    }

    fn renew_job(
        &mut self,
        id: Uuid,
        worker: &str,
        attempt: u32,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET claimed_until_ms = ?4 WHERE id = ?1 AND claimed_by = ?2 \
                 AND attempts = ?3 AND state = 'running'",
                params![id.to_string(), worker, attempt, until_ms],
            )
            .map_err(db_error)?;
        Ok(n > 0)
    }

    fn finish_job(
        &mut self,
        id: Uuid,
        worker: &str,
        attempt: u32,
        outcome: &JobOutcome,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
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
        let n = tx
            .execute(
                &format!(
                    "UPDATE jobs SET state = {state_sql}, claimed_by = NULL, \
                     claimed_until_ms = NULL, run_after_ms = COALESCE(?4, run_after_ms), \
                     last_error = COALESCE(?5, last_error), result = ?6, updated_at_ms = ?7 \
                     WHERE id = ?1 AND claimed_by = ?2 AND attempts = ?3 AND state = 'running'"
                ),
                params![
                    id.to_string(),
                    worker,
                    attempt,
                    run_after,
                    error,
                    result,
                    now
                ],
            )
            .map_err(db_error)?;
        tx.execute(
            "UPDATE job_attempts SET finished_at_ms = ?3, outcome = ?4, detail = ?5 \
             WHERE job_id = ?1 AND attempt = ?2 AND worker = ?6 AND outcome IS NULL",
            params![
                id.to_string(),
                attempt,
                now,
                outcome.as_str(),
                outcome.detail(),
                worker
            ],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(n > 0)
    }

    fn session_jobs(&mut self, session: Uuid) -> Result<Vec<(Job, Vec<JobAttempt>)>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE session_id = ?1 ORDER BY created_at_ms, id"
        );
        let jobs: Vec<Job> = {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(db_error)?;
            let rows = stmt
                .query_map([session.to_string()], job_from_row)
                .map_err(db_error)?;
            rows.collect::<Result<_, _>>().map_err(db_error)?
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT attempt, worker, started_at_ms, finished_at_ms, outcome, detail \
                 FROM job_attempts WHERE job_id = ?1 ORDER BY attempt",
            )
            .map_err(db_error)?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let rows = stmt
                .query_map([job.id.to_string()], |row| {
                    Ok(JobAttempt {
                        attempt: row.get(0)?,
                        worker: row.get(1)?,
                        started_at_ms: row.get(2)?,
                        finished_at_ms: row.get(3)?,
                        outcome: row.get(4)?,
                        detail: row.get(5)?,
                    })
                })
                .map_err(db_error)?;
            let attempts = rows.collect::<Result<_, _>>().map_err(db_error)?;
            out.push((job, attempts));
        }
        Ok(out)
    }

    fn job_counts(&mut self) -> Result<Vec<(JobKind, JobState, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, state, COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'failed') GROUP BY kind, state")
            .map_err(db_error)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(db_error)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, state, n) = row.map_err(db_error)?;
            if let (Some(kind), Some(state)) = (JobKind::parse(&kind), JobState::parse(&state)) {
                out.push((kind, state, n.max(0) as u64));
            }
        }
        Ok(out)
    }
}
