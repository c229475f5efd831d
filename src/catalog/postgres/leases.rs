//! Session leases in PostgreSQL: one row per live session, its owner and
//! expiry by the database's clock (docs/scaling.md).

use flacstream_actors::store::{now_ms, LeaseClaim, Leases, SessionRecord, StoreError};
use uuid::Uuid;

use super::{db_error, from_row, PostgresCatalog, COLUMNS};

impl Leases for PostgresCatalog {
    fn claim(&mut self, id: Uuid, owner: &str, ttl_ms: u64) -> Result<LeaseClaim, StoreError> {
        let ttl = ttl_ms as f64;
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let claimed = client
                .query_opt(
                    "INSERT INTO leases (session_id, owner, expires_at, handover) \
                     VALUES ($1, $2, now() + make_interval(secs => $3::float8 / 1000.0), false) \
                     ON CONFLICT (session_id) DO UPDATE SET owner = excluded.owner, \
                     expires_at = excluded.expires_at, handover = false \
                     WHERE leases.owner = excluded.owner OR leases.expires_at < now() \
                     RETURNING owner",
                    &[&id, &owner, &ttl],
                )
                .await
                .map_err(db_error)?;
            if claimed.is_some() {
                return Ok(LeaseClaim::Claimed);
            }
            let held = client
                .query_opt(
                    "SELECT owner, (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::BIGINT \
                     FROM leases WHERE session_id = $1",
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            Ok(match held {
                Some(row) => LeaseClaim::HeldBy {
                    owner: row.get(0),
                    expires_in_ms: row.get(1),
                },
                // Released between the two statements: free now.
                None => LeaseClaim::HeldBy {
                    owner: String::new(),
                    expires_in_ms: 0,
                },
            })
        })
    }

    fn renew(&mut self, owner: &str, ttl_ms: u64) -> Result<Vec<Uuid>, StoreError> {
        let ttl = ttl_ms as f64;
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    "UPDATE leases SET expires_at = now() + make_interval(secs => $2::float8 / 1000.0) \
                     WHERE owner = $1 RETURNING session_id, handover",
                    &[&owner, &ttl],
                )
                .await
                .map_err(db_error)?;
            Ok(rows
                .iter()
                .filter(|r| r.get::<_, bool>(1))
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn release(&mut self, id: Uuid, owner: &str) -> Result<(), StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            client
                .execute(
                    "DELETE FROM leases WHERE session_id = $1 AND owner = $2",
                    &[&id, &owner],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn holder(&mut self, id: Uuid) -> Result<Option<String>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let row = client
                .query_opt(
                    "SELECT owner FROM leases WHERE session_id = $1 AND expires_at > now()",
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn request_handover(&mut self, id: Uuid) -> Result<(), StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            client
                .execute(
                    "UPDATE leases SET handover = true WHERE session_id = $1",
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn claim_orphans(
        &mut self,
        owner: &str,
        ttl_ms: u64,
        grace_ms: u64,
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let (ttl, grace) = (ttl_ms as f64, grace_ms as f64);
        let cutoff_ms = now_ms() - grace_ms as i64;
        let sql = format!(
            "WITH orphans AS ( \
                SELECT s.id FROM sessions s LEFT JOIN leases l ON l.session_id = s.id \
                WHERE s.status = 'live' AND ( \
                    (l.session_id IS NULL AND s.updated_at_ms < $3) \
                    OR l.expires_at < now() - make_interval(secs => $4::float8 / 1000.0)) \
                ORDER BY s.updated_at_ms LIMIT $5 \
                FOR UPDATE OF s SKIP LOCKED), \
             claimed AS ( \
                INSERT INTO leases (session_id, owner, expires_at, handover) \
                SELECT id, $1, now() + make_interval(secs => $2::float8 / 1000.0), false FROM orphans \
                ON CONFLICT (session_id) DO UPDATE SET owner = excluded.owner, \
                expires_at = excluded.expires_at, handover = false \
                WHERE leases.expires_at < now() \
                RETURNING session_id) \
             SELECT {COLUMNS} FROM sessions WHERE id IN (SELECT session_id FROM claimed)"
        );
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    sql.as_str(),
                    &[&owner, &ttl, &cutoff_ms, &grace, &i64::from(limit)],
                )
                .await
                .map_err(db_error)?;
            rows.iter().map(from_row).collect()
        })
    }
}
