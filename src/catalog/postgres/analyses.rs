//! Chunk metadata and session analyses in PostgreSQL: JSON documents keyed
//! by session (and chunk number).

use flacstream_actors::store::{Analyses, StoreError};
use uuid::Uuid;

use super::{db_error, PostgresCatalog};

impl Analyses for PostgresCatalog {
    fn save_chunks(&mut self, id: Uuid, chunks: &[(u64, String)]) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            // One statement for the batch: arrays of numbers and documents.
            let seqs: Vec<i64> = chunks.iter().map(|(s, _)| *s as i64).collect();
            let docs: Vec<&str> = chunks.iter().map(|(_, j)| j.as_str()).collect();
            client
                .execute(
                    "INSERT INTO chunks (session_id, seq, metadata) \
                     SELECT $1, s, m FROM unnest($2::BIGINT[], $3::TEXT[]) AS t(s, m) \
                     ON CONFLICT (session_id, seq) DO NOTHING",
                    &[&id, &seqs, &docs],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn chunk(&mut self, id: Uuid, seq: u64) -> Result<Option<String>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let row = client
                .query_opt(
                    "SELECT metadata FROM chunks WHERE session_id = $1 AND seq = $2",
                    &[&id, &(seq as i64)],
                )
                .await
                .map_err(db_error)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn chunks(&mut self, id: Uuid, after: u64, limit: u32) -> Result<Vec<String>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    "SELECT metadata FROM chunks WHERE session_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                    &[&id, &(after as i64), &i64::from(limit)],
                )
                .await
                .map_err(db_error)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn save_analysis(&mut self, id: Uuid, version: i64, json: &str) -> Result<(), StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            client
                .execute(
                    "INSERT INTO analyses (session_id, version, analysis) SELECT $1, $2, $3 \
                     WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1) ON CONFLICT (session_id) DO UPDATE SET version = excluded.version, \
                     analysis = excluded.analysis WHERE excluded.version >= analyses.version",
                    &[&id, &version, &json],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn analysis(&mut self, id: Uuid) -> Result<Option<String>, StoreError> {
        let shared = &self.shared;
        shared.run(async {
            let client = shared.pool.get().await.map_err(db_error)?;
            let row = client
                .query_opt(
                    "SELECT analysis FROM analyses WHERE session_id = $1",
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            Ok(row.map(|r| r.get(0)))
        })
    }
}
