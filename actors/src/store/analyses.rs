//! Chunk metadata and session analyses in the catalog (see
//! `crate::chunk_analysis`), as JSON documents keyed by session (and chunk
//! number): the numbers are produced and read whole, never queried inside.

use actix::{Handler, Message, SyncContext};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::chunk_analysis::{AnalysisSource, ChunkMetadata, SessionAnalysis};

/// Where chunk metadata and analyses are kept. Methods block.
pub trait Analyses {
    /// Stores chunks' metadata: (chunk number, JSON); a number stored
    /// again keeps its first document.
    fn save_chunks(&mut self, id: Uuid, chunks: &[(u64, String)]) -> Result<(), StoreError>;
    /// One chunk's JSON.
    fn chunk(&mut self, id: Uuid, seq: u64) -> Result<Option<String>, StoreError>;
    /// A session's chunks' JSON in order, from chunk number `after + 1`,
    /// at most `limit`.
    fn chunks(&mut self, id: Uuid, after: u64, limit: u32) -> Result<Vec<String>, StoreError>;
    /// Stores the session's analysis unless a newer one (`version`) is,
    /// or the session is gone (deleted while a job measured it).
    fn save_analysis(&mut self, id: Uuid, version: i64, json: &str) -> Result<(), StoreError>;
    /// The session's analysis JSON.
    fn analysis(&mut self, id: Uuid) -> Result<Option<String>, StoreError>;
}

/// The order of a session's analyses: every save has more samples, or is
/// the final one (stores' threads may run saves out of order); one measured
/// from the stored recording after the session ended beats them all (the
/// live one may have counted samples the recording lost in a crash).
fn version(a: &SessionAnalysis) -> i64 {
    if a.source == AnalysisSource::Recording {
        return i64::MAX;
    }
    (a.samples as i64).saturating_mul(2) + i64::from(a.complete)
}

/// Store chunk metadata.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SaveChunks {
    /// The session.
    pub id: Uuid,
    /// The chunks, in order.
    pub chunks: Vec<ChunkMetadata>,
}

impl Handler<SaveChunks> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: SaveChunks, _ctx: &mut SyncContext<Self>) -> Self::Result {
        let rows: Vec<(u64, String)> = msg
            .chunks
            .iter()
            .map(|c| (c.seq, serde_json::to_string(c).unwrap_or_default()))
            .collect();
        let saved = self.catalog.save_chunks(msg.id, &rows);
        if let Err(e) = &saved {
            log::warn!("Session {}: chunk metadata not stored ({e}).", msg.id);
        }
        saved
    }
}

/// Store a session's analysis.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SaveAnalysis {
    /// The session.
    pub id: Uuid,
    /// Its analysis now.
    pub analysis: SessionAnalysis,
}

impl Handler<SaveAnalysis> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: SaveAnalysis, _ctx: &mut SyncContext<Self>) -> Self::Result {
        let json = serde_json::to_string(&msg.analysis).unwrap_or_default();
        self.catalog
            .save_analysis(msg.id, version(&msg.analysis), &json)
    }
}

/// One chunk's metadata JSON.
#[derive(Message)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct LoadChunk {
    /// The session.
    pub id: Uuid,
    /// The chunk number.
    pub seq: u64,
}

impl Handler<LoadChunk> for Store {
    type Result = Result<Option<String>, StoreError>;

    fn handle(&mut self, msg: LoadChunk, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.chunk(msg.id, msg.seq)
    }
}

/// A page of a session's chunks' JSON.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, StoreError>")]
pub struct ListChunks {
    /// The session.
    pub id: Uuid,
    /// Chunks after this number.
    pub after: u64,
    /// At most this many.
    pub limit: u32,
}

impl Handler<ListChunks> for Store {
    type Result = Result<Vec<String>, StoreError>;

    fn handle(&mut self, msg: ListChunks, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.chunks(msg.id, msg.after, msg.limit)
    }
}

/// A session's analysis JSON.
#[derive(Message)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct LoadAnalysis {
    /// The session.
    pub id: Uuid,
}

impl Handler<LoadAnalysis> for Store {
    type Result = Result<Option<String>, StoreError>;

    fn handle(&mut self, msg: LoadAnalysis, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.analysis(msg.id)
    }
}
