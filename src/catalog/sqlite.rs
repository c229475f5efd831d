//! The session catalog in SQLite (rusqlite, bundled), with migrations.
//!
//! One [`SqliteCatalog`] per store thread (see `flacstream_actors::store`),
//! all on one database file in WAL mode. Another backend (Postgres, an
//! object store) would be a second implementation of
//! [`flacstream_actors::store::Catalog`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flacstream_actors::store::{
    Catalog, CatalogFactory, Leases, NewJob, SessionRecord, SessionStatus, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension, Row};
use rusqlite_migration::{Migrations, M};
use uuid::Uuid;

mod analyses;
mod jobs;
mod phrases;
mod unavailable;

use unavailable::Unavailable;

/// The catalog's file name inside the data directory.
pub const DATABASE_FILE: &str = "flacstream.sqlite3";

/// How long a store thread waits for another's write lock, in milliseconds.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Schema versions, oldest first. Append; never edit a released one.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE sessions (
            id TEXT PRIMARY KEY NOT NULL,
            user_id TEXT,
            status TEXT NOT NULL,
            encoding TEXT NOT NULL,
            sample_rate INTEGER,
            channels INTEGER,
            bits_per_sample INTEGER,
            level INTEGER NOT NULL,
            block_size INTEGER,
            record INTEGER NOT NULL,
            chunk_count INTEGER NOT NULL,
            samples INTEGER NOT NULL,
            bytes_in INTEGER NOT NULL,
            bytes_out INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            closed_at_ms INTEGER,
            file TEXT,
            error TEXT
        );
        CREATE INDEX sessions_by_user ON sessions (user_id, created_at_ms DESC);
        CREATE INDEX sessions_by_status ON sessions (status);",
        ),
        // Ownership (authentication): the API key that created the session.
        // NULL for sessions made with authentication off.
        M::up(
            "ALTER TABLE sessions ADD COLUMN owner_key TEXT;
            CREATE INDEX sessions_by_owner ON sessions (owner_key, created_at_ms DESC);",
        ),
        // Named recordings (the user/phrase API): which session is a
        // user's phrase now.
        M::up(
            "CREATE TABLE phrases (
            owner_key TEXT NOT NULL,
            user_id TEXT NOT NULL,
            phrase_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            PRIMARY KEY (owner_key, user_id, phrase_id)
        );",
        ),
        // Chunk metadata and session analyses (chunk_analysis in the actors
        // crate), as JSON documents.
        M::up(
            "CREATE TABLE chunks (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            metadata TEXT NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE analyses (
            session_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            analysis TEXT NOT NULL
        );",
        ),
        // The background-job queue (`flacstream_actors::store::Jobs`) and
        // its attempt log.
        M::up(
            "CREATE TABLE jobs (
            id TEXT PRIMARY KEY NOT NULL,
            dedupe TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            session_id TEXT,
            payload TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            run_after_ms INTEGER NOT NULL,
            claimed_by TEXT,
            claimed_until_ms INTEGER,
            last_error TEXT,
            result TEXT,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL
        );
        CREATE INDEX jobs_due ON jobs (state, run_after_ms);
        CREATE INDEX jobs_by_session ON jobs (session_id, created_at_ms);
        CREATE TABLE job_attempts (
            job_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            worker TEXT NOT NULL,
            started_at_ms INTEGER NOT NULL,
            finished_at_ms INTEGER,
            outcome TEXT,
            detail TEXT,
            PRIMARY KEY (job_id, attempt)
        ) WITHOUT ROWID;",
        ),
    ])
}

/// A catalog connection; see the module docs.
pub struct SqliteCatalog {
    conn: Connection,
}

fn db_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Catalog(e.to_string())
}

impl SqliteCatalog {
    /// Opens (creating and migrating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path).map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_error)?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(db_error)?;
        migrations().to_latest(&mut conn).map_err(db_error)?;
        Ok(Self { conn })
    }

    /// A factory for store threads: each opens its own connection. Migrates
    /// once up front so a bad database fails at start, not on first use.
    pub fn factory(data_dir: &Path) -> Result<CatalogFactory, StoreError> {
        let path: PathBuf = data_dir.join(DATABASE_FILE);
        Self::open(&path)?;
        Ok(Arc::new(move || -> Box<dyn Catalog> {
            match Self::open(&path) {
                Ok(catalog) => Box::new(catalog),
                Err(e) => Box::new(Unavailable(e)),
            }
        }))
    }
}

const COLUMNS: &str = "id, user_id, status, encoding, sample_rate, channels, bits_per_sample, \
     level, block_size, record, chunk_count, samples, bytes_in, bytes_out, created_at_ms, \
     updated_at_ms, closed_at_ms, file, error, owner_key";

fn from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    let id: String = row.get(0)?;
    let status: String = row.get(2)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
    };
    Ok(SessionRecord {
        id: Uuid::parse_str(&id).map_err(|_| bad("bad session id"))?,
        user_id: row.get(1)?,
        status: SessionStatus::parse(&status).ok_or_else(|| bad("bad status"))?,
        encoding: row.get(3)?,
        sample_rate: row.get(4)?,
        channels: row.get(5)?,
        bits_per_sample: row.get(6)?,
        level: row.get(7)?,
        block_size: row.get(8)?,
        record: row.get(9)?,
        chunk_count: row.get::<_, i64>(10)? as u64,
        samples: row.get::<_, i64>(11)? as u64,
        bytes_in: row.get::<_, i64>(12)? as u64,
        bytes_out: row.get::<_, i64>(13)? as u64,
        created_at_ms: row.get(14)?,
        updated_at_ms: row.get(15)?,
        closed_at_ms: row.get(16)?,
        file: row.get(17)?,
        error: row.get(18)?,
        owner_key: row.get(19)?,
    })
}

/// One node: no other replica, so every claim holds (the defaults).
impl Leases for SqliteCatalog {}

/// Inserts or updates a record on `conn` (a connection or a transaction);
/// whether it changed anything (a finished record is never changed).
fn save_on(conn: &Connection, r: &SessionRecord) -> Result<bool, StoreError> {
    // A finished session never goes back to live, whatever order the
    // store threads apply saves in.
    let sql = format!(
            "INSERT INTO sessions ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
             ?20) \
             ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status, \
             encoding = excluded.encoding, sample_rate = excluded.sample_rate, \
             channels = excluded.channels, bits_per_sample = excluded.bits_per_sample, \
             level = excluded.level, block_size = excluded.block_size, record = excluded.record, \
             chunk_count = excluded.chunk_count, samples = excluded.samples, \
             bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out, \
             updated_at_ms = excluded.updated_at_ms, closed_at_ms = excluded.closed_at_ms, \
             file = excluded.file, error = excluded.error \
             WHERE sessions.status = 'live'"
        );
    conn.execute(
        &sql,
        params![
            r.id.to_string(),
            r.user_id,
            r.status.as_str(),
            r.encoding,
            r.sample_rate,
            r.channels,
            r.bits_per_sample,
            r.level,
            r.block_size,
            r.record,
            r.chunk_count as i64,
            r.samples as i64,
            r.bytes_in as i64,
            r.bytes_out as i64,
            r.created_at_ms,
            r.updated_at_ms,
            r.closed_at_ms,
            r.file,
            r.error,
            r.owner_key,
        ],
    )
    .map(|n| n > 0)
    .map_err(db_error)
}

impl Catalog for SqliteCatalog {
    fn save(&mut self, r: &SessionRecord) -> Result<(), StoreError> {
        save_on(&self.conn, r).map(|_| ())
    }

    fn save_ended(&mut self, r: &SessionRecord, jobs: &[NewJob]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
        // Only the save that ends the session queues its jobs (a later one
        // changes nothing: the row is no longer live).
        if save_on(&tx, r)? {
            jobs::insert(&tx, jobs)?;
        }
        tx.commit().map_err(db_error)
    }

    fn load(&mut self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1");
        self.conn
            .query_row(&sql, [id.to_string()], from_row)
            .optional()
            .map_err(db_error)
    }

    fn list(
        &mut self,
        owner_key: Option<&str>,
        user_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE (?1 IS NULL OR owner_key = ?1) \
             AND (?2 IS NULL OR user_id = ?2) \
             ORDER BY created_at_ms DESC, id LIMIT ?3 OFFSET ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_error)?;
        let rows = stmt
            .query_map(params![owner_key, user_id, limit, offset as i64], from_row)
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    fn remove(&mut self, id: Uuid) -> Result<bool, StoreError> {
        // A phrase that names the session goes with it (a name left behind
        // would list a recording that is gone).
        let tx = self.conn.transaction().map_err(db_error)?;
        tx.execute(
            "DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE session_id = ?1)",
            [id.to_string()],
        )
        .map_err(db_error)?;
        for table in ["phrases", "chunks", "analyses", "jobs"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE session_id = ?1"),
                [id.to_string()],
            )
            .map_err(db_error)?;
        }
        let n = tx
            .execute("DELETE FROM sessions WHERE id = ?1", [id.to_string()])
            .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(n > 0)
    }

    fn unfinished(&mut self) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE status = 'live'");
        let mut stmt = self.conn.prepare(&sql).map_err(db_error)?;
        let rows = stmt.query_map([], from_row).map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    fn recompressed(&mut self, id: Uuid, level: u8, bytes_out: u64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE sessions SET level = ?2, bytes_out = ?3 WHERE id = ?1 AND status <> 'live'",
                params![id.to_string(), level, bytes_out as i64],
            )
            .map_err(db_error)?;
        Ok(n > 0)
    }

    fn expired(
        &mut self,
        before_ms: i64,
        owner: Option<&str>,
        except: &[String],
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE status <> 'live' AND closed_at_ms < ?1 \
             AND (?2 IS NULL OR owner_key = ?2) \
             AND (owner_key IS NULL OR owner_key NOT IN (SELECT value FROM json_each(?3))) \
             ORDER BY closed_at_ms LIMIT ?4"
        );
        let except = serde_json::to_string(except).map_err(db_error)?;
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db_error)?;
        let rows = stmt
            .query_map(params![before_ms, owner, except, limit], from_row)
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: Uuid, user: &str, created: i64) -> SessionRecord {
        SessionRecord {
            id,
            user_id: Some(user.into()),
            owner_key: Some("k1".into()),
            status: SessionStatus::Live,
            encoding: "s16le".into(),
            sample_rate: Some(16_000),
            channels: Some(1),
            bits_per_sample: Some(16),
            level: 5,
            block_size: Some(1024),
            record: true,
            chunk_count: 3,
            samples: 4800,
            bytes_in: 9600,
            bytes_out: 5000,
            created_at_ms: created,
            updated_at_ms: created,
            closed_at_ms: None,
            file: Some(format!("recordings/{id}.flac")),
            error: None,
        }
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn saves_loads_lists_and_never_reopens_a_closed_session() {
        let dir = std::env::temp_dir().join(format!("flacstream-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("t.sqlite3"));
        let mut db = SqliteCatalog::open(&dir.join("t.sqlite3")).unwrap();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        db.save(&record(a, "ann", 1)).unwrap();
        db.save(&record(b, "bob", 2)).unwrap();
        db.save(&record(c, "ann", 3)).unwrap();
        assert_eq!(db.load(a).unwrap(), Some(record(a, "ann", 1)));
        let anns: Vec<Uuid> = db
            .list(None, Some("ann"), 10, 0)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(anns, vec![c, a]);
        assert_eq!(db.list(None, None, 2, 1).unwrap().len(), 2);
        assert_eq!(db.list(Some("k1"), None, 10, 0).unwrap().len(), 3);
        assert!(db.list(Some("k2"), None, 10, 0).unwrap().is_empty());
        assert!(db.list(Some("k2"), Some("ann"), 10, 0).unwrap().is_empty());

        let mut closed = record(a, "ann", 1);
        closed.status = SessionStatus::Closed;
        closed.samples = 9000;
        db.save(&closed).unwrap();
        db.save(&record(a, "ann", 1)).unwrap(); // a late "live" progress save
        assert_eq!(db.load(a).unwrap().unwrap().status, SessionStatus::Closed);
        assert_eq!(db.load(a).unwrap().unwrap().samples, 9000);
        assert_eq!(db.unfinished().unwrap().len(), 2);

        assert!(db.remove(b).unwrap());
        assert!(!db.remove(b).unwrap());
        assert_eq!(db.load(b).unwrap(), None);
    }
}
