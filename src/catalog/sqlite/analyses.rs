//! Chunk metadata and analyses in SQLite (see `flacstream_actors::store::Analyses`).

use flacstream_actors::store::{Analyses, StoreError};
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use super::{db_error, SqliteCatalog};

impl Analyses for SqliteCatalog {
    fn save_chunks(&mut self, id: Uuid, chunks: &[(u64, String)]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(db_error)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO chunks (session_id, seq, metadata) VALUES (?1, ?2, ?3)",
                )
                .map_err(db_error)?;
            for (seq, json) in chunks {
                insert
                    .execute(params![id.to_string(), *seq as i64, json])
                    .map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }

    fn chunk(&mut self, id: Uuid, seq: u64) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT metadata FROM chunks WHERE session_id = ?1 AND seq = ?2",
                params![id.to_string(), seq as i64],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_error)
    }

    fn chunks(&mut self, id: Uuid, after: u64, limit: u32) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT metadata FROM chunks WHERE session_id = ?1 AND seq > ?2 \
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![id.to_string(), after as i64, limit], |row| {
                row.get(0)
            })
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }

    fn save_analysis(&mut self, id: Uuid, version: i64, json: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO analyses (session_id, version, analysis) SELECT ?1, ?2, ?3 \
                 WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?1) ON CONFLICT (session_id) DO UPDATE SET version = excluded.version, \
                 analysis = excluded.analysis WHERE excluded.version >= analyses.version",
                params![id.to_string(), version, json],
            )
            .map(|_| ())
            .map_err(db_error)
    }

    fn analysis(&mut self, id: Uuid) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT analysis FROM analyses WHERE session_id = ?1",
                [id.to_string()],
                |row| row.get(0),
            )
            .optional()
            .map_err(db_error)
    }
}
