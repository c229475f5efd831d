//! The session catalog in PostgreSQL (scaled mode), shared by every
//! replica: sessions, and the lease rows that say which replica owns each
//! live one.
//!
//! The driver is async (tokio-postgres, pooled by deadpool-postgres) on a
//! small runtime of its own; the store actor's threads block on it, as they
//! block on SQLite, so the catalog keeps one interface. Every call is
//! bounded by the storage timeout.
//!
//! Migrations are the same story as SQLite's: an append-only list, applied
//! in order at start under an advisory lock, so replicas starting together
//! migrate once.
//!
//! Leases: a row per owned session (`owner`, `expires_at`, `handover`),
//! with the database's clock as the only clock. A claim succeeds when the
//! row is missing, expired, or already the caller's; a replica renews all
//! its rows in one statement; orphans (live sessions whose lease expired
//! long enough ago) are claimed with `FOR UPDATE SKIP LOCKED`, so two
//! sweeping replicas never take the same one.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use flacstream_actors::store::{
    Catalog, CatalogFactory, NewJob, SessionRecord, SessionStatus, StoreError,
};
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

mod analyses;
mod jobs;
mod leases;
mod phrases;

/// Schema versions, oldest first. Append; never edit a released one.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE sessions (
        id UUID PRIMARY KEY,
        user_id TEXT,
        owner_key TEXT,
        status TEXT NOT NULL,
        encoding TEXT NOT NULL,
        sample_rate BIGINT,
        channels BIGINT,
        bits_per_sample BIGINT,
        level BIGINT NOT NULL,
        block_size BIGINT,
        record BOOLEAN NOT NULL,
        chunk_count BIGINT NOT NULL,
        samples BIGINT NOT NULL,
        bytes_in BIGINT NOT NULL,
        bytes_out BIGINT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        closed_at_ms BIGINT,
        file TEXT,
        error TEXT
    );
    CREATE INDEX sessions_by_user ON sessions (user_id, created_at_ms DESC);
    CREATE INDEX sessions_by_owner ON sessions (owner_key, created_at_ms DESC);
    CREATE INDEX sessions_live ON sessions (updated_at_ms) WHERE status = 'live';
    CREATE TABLE leases (
        session_id UUID PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        handover BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX leases_by_owner ON leases (owner);",
    // Named recordings (the user/phrase API): which session is a user's
    // phrase now.
    "CREATE TABLE phrases (
        owner_key TEXT NOT NULL,
        user_id TEXT NOT NULL,
        phrase_id TEXT NOT NULL,
        session_id UUID NOT NULL,
        PRIMARY KEY (owner_key, user_id, phrase_id)
    );",
    // Chunk metadata and session analyses, as JSON documents.
    "CREATE TABLE chunks (
        session_id UUID NOT NULL,
        seq BIGINT NOT NULL,
        metadata TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    CREATE TABLE analyses (
        session_id UUID PRIMARY KEY,
        version BIGINT NOT NULL,
        analysis TEXT NOT NULL
    );",
    // The background-job queue and its attempt log.
    "CREATE TABLE jobs (
        id UUID PRIMARY KEY,
        dedupe TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        session_id UUID,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        max_attempts BIGINT NOT NULL,
        run_after_ms BIGINT NOT NULL,
        claimed_by TEXT,
        claimed_until_ms BIGINT,
        last_error TEXT,
        result TEXT,
        created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL
    );
    CREATE INDEX jobs_due ON jobs (state, run_after_ms);
    CREATE INDEX jobs_by_session ON jobs (session_id, created_at_ms);
    CREATE TABLE job_attempts (
        job_id UUID NOT NULL,
        attempt BIGINT NOT NULL,
        worker TEXT NOT NULL,
        started_at_ms BIGINT NOT NULL,
        finished_at_ms BIGINT,
        outcome TEXT,
        detail TEXT,
        PRIMARY KEY (job_id, attempt)
    );",
];

/// Key of the advisory lock migrations run under (any constant shared by
/// every replica).
const MIGRATION_LOCK: i64 = 0x666c_6163_7374_7265;

/// Database connections per store thread, plus the few the lease renewal
/// and sweep use.
const EXTRA_CONNECTIONS: usize = 2;

const COLUMNS: &str = "id, user_id, status, encoding, sample_rate, channels, bits_per_sample, \
     level, block_size, record, chunk_count, samples, bytes_in, bytes_out, created_at_ms, \
     updated_at_ms, closed_at_ms, file, error, owner_key";

/// The pool and the runtime its connections live on, shared by the store
/// threads.
struct Shared {
    /// Taken on drop: a runtime must not be dropped inside another.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    timeout: Duration,
}

impl Shared {
    /// Runs one database call on the pool, bounded by the timeout.
    fn run<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(StoreError::Catalog(
                "the database client has shut down".into(),
            ));
        };
        runtime.block_on(async {
            tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| StoreError::Catalog("the database did not answer in time".into()))?
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The error with its causes: tokio-postgres's own text is only "db error",
/// and the server's message is its source.
fn db_error(e: impl std::error::Error) -> StoreError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    StoreError::Catalog(text)
}

/// A catalog handle for one store thread; see the module docs.
pub struct PostgresCatalog {
    shared: Arc<Shared>,
}

impl PostgresCatalog {
    /// Connects, migrates, and returns a factory for `threads` store
    /// threads. Fails at start on a bad URL or an unreachable database.
    pub fn factory(
        url: &str,
        threads: usize,
        timeout: Duration,
    ) -> Result<CatalogFactory, StoreError> {
        let config: tokio_postgres::Config = url.parse().map_err(db_error)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flacstream-pg")
            .enable_all()
            .build()
            .map_err(db_error)?;
        let pool = {
            let _guard = runtime.enter();
            Pool::builder(manager)
                .max_size(threads + EXTRA_CONNECTIONS)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(timeout))
                .create_timeout(Some(timeout))
                .recycle_timeout(Some(timeout))
                .build()
                .map_err(db_error)?
        };
        let shared = Arc::new(Shared {
            runtime: Some(runtime),
            pool,
            timeout,
        });
        // The caller may be on an async runtime, where blocking on another
        // is not allowed: migrate from a thread of its own.
        std::thread::scope(|s| s.spawn(|| migrate(&shared)).join())
            .map_err(|_| StoreError::Catalog("the migration thread panicked".into()))??;
        Ok(Arc::new(move || -> Box<dyn Catalog> {
            Box::new(PostgresCatalog {
                shared: Arc::clone(&shared),
            })
        }))
    }
}

fn migrate(shared: &Shared) -> Result<(), StoreError> {
    shared.run(async {
        let mut client = shared.pool.get().await.map_err(db_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS flacstream_migrations (version BIGINT PRIMARY KEY)",
        )
        .await
        .map_err(db_error)?;
        let applied: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM flacstream_migrations",
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version > applied {
                tx.batch_execute(sql).await.map_err(db_error)?;
                tx.execute(
                    "INSERT INTO flacstream_migrations (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(db_error)?;
            }
        }
        tx.commit().await.map_err(db_error)
    })
}

fn from_row(row: &Row) -> Result<SessionRecord, StoreError> {
    let status: String = row.try_get(2).map_err(db_error)?;
    let small = |i: usize| -> Result<Option<i64>, StoreError> { row.try_get(i).map_err(db_error) };
    let big = |i: usize| -> Result<i64, StoreError> { row.try_get(i).map_err(db_error) };
    Ok(SessionRecord {
        id: row.try_get(0).map_err(db_error)?,
        user_id: row.try_get(1).map_err(db_error)?,
        status: SessionStatus::parse(&status)
            .ok_or_else(|| StoreError::Catalog(format!("bad status {status}")))?,
        encoding: row.try_get(3).map_err(db_error)?,
        sample_rate: small(4)?.map(|v| v as u32),
        channels: small(5)?.map(|v| v as u16),
        bits_per_sample: small(6)?.map(|v| v as u16),
        level: big(7)? as u8,
        block_size: small(8)?.map(|v| v as u32),
        record: row.try_get(9).map_err(db_error)?,
        chunk_count: big(10)? as u64,
        samples: big(11)? as u64,
        bytes_in: big(12)? as u64,
        bytes_out: big(13)? as u64,
        created_at_ms: big(14)?,
        updated_at_ms: big(15)?,
        closed_at_ms: small(16)?,
        file: row.try_get(17).map_err(db_error)?,
        error: row.try_get(18).map_err(db_error)?,
        owner_key: row.try_get(19).map_err(db_error)?,
    })
}

impl PostgresCatalog {
    /// Saves a record and queues `jobs`, in one transaction.
    fn save_with(&mut self, r: &SessionRecord, jobs: &[NewJob]) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO sessions ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
             ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status, \
             encoding = excluded.encoding, sample_rate = excluded.sample_rate, \
             channels = excluded.channels, bits_per_sample = excluded.bits_per_sample, \
             level = excluded.level, block_size = excluded.block_size, record = excluded.record, \
             chunk_count = excluded.chunk_count, samples = excluded.samples, \
             bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, \
             updated_at_ms = excluded.updated_at_ms, closed_at_ms = excluded.closed_at_ms, \
             file = excluded.file, error = excluded.error \
             WHERE sessions.status = 'live'"
        );
        let finished = r.status != SessionStatus::Live;
        let shared = &self.shared;
        shared.run(async {
            let mut client = shared.pool.get().await.map_err(db_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            let changed = tx
                .execute(
                    sql.as_str(),
                    &[
                        &r.id,
                        &r.user_id,
                        &r.status.as_str(),
                        &r.encoding,
                        &r.sample_rate.map(i64::from),
                        &r.channels.map(i64::from),
                        &r.bits_per_sample.map(i64::from),
                        &i64::from(r.level),
                        &r.block_size.map(i64::from),
                        &r.record,
                        &(r.chunk_count as i64),
                        &(r.samples as i64),
                        &(r.bytes_in as i64),
                        &(r.bytes_out as i64),
                        &r.created_at_ms,
                        &r.updated_at_ms,
                        &r.closed_at_ms,
                        &r.file,
                        &r.error,
                        &r.owner_key,
                    ],
                )
                .await
                .map_err(db_error)?;
            if finished {
                // A finished session has no owner.
                tx.execute("DELETE FROM leases WHERE session_id = $1", &[&r.id])
                    .await
                    .map_err(db_error)?;
            }
            // Only the save that ends the session queues its jobs (a
            // later one changes nothing: the row is no longer live).
            if changed == 1 {
                jobs::insert(&tx, jobs).await?;
            }
            tx.commit().await.map_err(db_error)
        })
    }
}

impl Catalog for PostgresCatalog {
    fn save(&mut self, r: &SessionRecord) -> Result<(), StoreError> {
        self.save_with(r, &[])
    }

    fn save_ended(&mut self, r: &SessionRecord, jobs: &[NewJob]) -> Result<(), StoreError> {
        self.save_with(r, jobs)
    }

    fn load(&mut self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1");
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let row = client
                .query_opt(sql.as_str(), &[&id])
                .await
                .map_err(db_error)?;
            row.as_ref().map(from_row).transpose()
        })
    }

    fn list(
        &mut self,
        owner_key: Option<&str>,
        user_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE ($1::TEXT IS NULL OR owner_key = $1) \
             AND ($2::TEXT IS NULL OR user_id = $2) \
             ORDER BY created_at_ms DESC, id LIMIT $3 OFFSET $4"
        );
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    sql.as_str(),
                    &[&owner_key, &user_id, &i64::from(limit), &(offset as i64)],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(from_row).collect()
        })
    }

    fn remove(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let mut client = shared.pool.get().await.map_err(db_error)?;
            // One transaction: a claim or a failure in between leaves no
            // half-deleted session.
            let tx = client.transaction().await.map_err(db_error)?;
            tx.execute("DELETE FROM leases WHERE session_id = $1", &[&id])
                .await
                .map_err(db_error)?;
            // A phrase that names the session goes with it, and so do its
            // measures and jobs.
            tx.execute(
                "DELETE FROM job_attempts WHERE job_id IN \
                 (SELECT id FROM jobs WHERE session_id = $1)",
                &[&id],
            )
            .await
            .map_err(db_error)?;
            for table in ["phrases", "chunks", "analyses", "jobs"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE session_id = $1"),
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            }
            let n = tx
                .execute("DELETE FROM sessions WHERE id = $1", &[&id])
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(n > 0)
        })
    }

    fn finish_final(
        &mut self,
        r: &SessionRecord,
        owner: &str,
        jobs: &[NewJob],
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE sessions SET status = $2, chunk_count = $3, samples = $4, \
             bytes_in = $5, bytes_out = $6, updated_at_ms = $7, closed_at_ms = $8, file = $9, \
             error = $10, sample_rate = $11, channels = $12, bits_per_sample = $13, \
             block_size = $14, encoding = $15 \
             WHERE id = $1 AND status = 'live'";
        let shared = &self.shared;
        shared.run(async {
            let mut client = shared.pool.get().await.map_err(db_error)?;
            let tx = client.transaction().await.map_err(db_error)?;
            // The lease row is locked until the commit: no claim can slip
            // between the check and the update.
            let held = tx
                .query_opt(
                    "SELECT 1 FROM leases WHERE session_id = $1 AND owner = $2 FOR UPDATE",
                    &[&r.id, &owner],
                )
                .await
                .map_err(db_error)?;
            if held.is_none() {
                return Ok(false);
            }
            let n = tx
                .execute(
                    sql,
                    &[
                        &r.id,
                        &r.status.as_str(),
                        &(r.chunk_count as i64),
                        &(r.samples as i64),
                        &(r.bytes_in as i64),
                        &(r.bytes_out as i64),
                        &r.updated_at_ms,
                        &r.closed_at_ms,
                        &r.file,
                        &r.error,
                        &r.sample_rate.map(i64::from),
                        &r.channels.map(i64::from),
                        &r.bits_per_sample.map(i64::from),
                        &r.block_size.map(i64::from),
                        &r.encoding,
                    ],
                )
                .await
                .map_err(db_error)?;
            tx.execute("DELETE FROM leases WHERE session_id = $1", &[&r.id])
                .await
                .map_err(db_error)?;
            if n == 1 {
                jobs::insert(&tx, jobs).await?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(n == 1)
        })
    }

    fn unfinished(&mut self) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE status = 'live'");
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client.query(sql.as_str(), &[]).await.map_err(db_error)?;
            rows.iter().map(from_row).collect()
        })
    }

    fn recompressed(&mut self, id: Uuid, level: u8, bytes_out: u64) -> Result<bool, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let n = client
                .execute(
                    "UPDATE sessions SET level = $2, bytes_out = $3 \
                     WHERE id = $1 AND status <> 'live'",
                    &[&id, &i64::from(level), &(bytes_out as i64)],
                )
                .await
                .map_err(db_error)?;
            Ok(n > 0)
        })
    }

    fn expired(
        &mut self,
        before_ms: i64,
        owner: Option<&str>,
        except: &[String],
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE status <> 'live' AND closed_at_ms < $1 \
             AND ($2::TEXT IS NULL OR owner_key = $2) \
             AND (owner_key IS NULL OR NOT (owner_key = ANY($3::TEXT[]))) \
             ORDER BY closed_at_ms LIMIT $4"
        );
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    sql.as_str(),
                    &[&before_ms, &owner, &except, &i64::from(limit)],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(from_row).collect()
        })
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
