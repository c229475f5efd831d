//! Durable storage for recorded sessions, off the I/O threads.
//!
//! [`Store`] is a sync actor (a `SyncArbiter` pool) that does every blocking
//! storage operation: session metadata through a [`Catalog`] (SQLite on one
//! node, PostgreSQL when scaled: two implementations of the same trait) and
//! the recording files' appends, syncs and finalization. Each thread has its
//! own catalog connection. Lease rows (scaled mode) are in `leases`, named
//! recordings (the user/phrase API) in `phrases`.

use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext};
use flacstream_codec::flac::STREAMINFO_BYTES;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::recording::{recover, RecordingFile};

mod analyses;
mod job_plan;
mod jobs;
mod leases;
mod phrases;

pub use analyses::{Analyses, ListChunks, LoadAnalysis, LoadChunk, SaveAnalysis, SaveChunks};

pub use job_plan::{JobPlan, WebhookPayload};
pub use jobs::{
    known_kinds_sql, ClaimJobs, Enqueue, FinishJob, Job, JobAttempt, JobCounts, JobKind,
    JobOutcome, JobState, Jobs, NewJob, RenewJob, SessionJobs, ABANDONED_EXTRA_ATTEMPTS,
};
pub use leases::{
    ClaimLease, ClaimOrphans, LeaseClaim, LeaseHolder, Leases, ReleaseLease, RenewLeases,
    RequestHandover,
};
pub use phrases::{BindPhrase, FindPhrase, ListPhrases, PhraseName, Phrases, UnbindPhrase};

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Open, with or without connections (within the resume window).
    Live,
    /// Finalized: the FLAC file is complete.
    Closed,
    /// Ended by an error; what was recorded is finalized and kept.
    Failed,
}

impl SessionStatus {
    /// The stored and reported name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Closed => "closed",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Self::Live),
            "closed" => Some(Self::Closed),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Everything stored about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: Uuid,
    /// The user the session is for: the client's `user_id`, or the user of
    /// the token that created it.
    pub user_id: Option<String>,
    /// The id of the API key that owns the session (set when it was created
    /// with authentication on); only its principals reach it then.
    pub owner_key: Option<String>,
    /// Life-cycle state.
    pub status: SessionStatus,
    /// Input encoding as requested: `s16le`, `s24le`, `u8` or `wav`.
    pub encoding: String,
    /// Samples per second, once known (a `wav` session learns it from the header).
    pub sample_rate: Option<u32>,
    /// Channels, once known.
    pub channels: Option<u16>,
    /// Bits per sample in the FLAC, once known.
    pub bits_per_sample: Option<u16>,
    /// Compression level.
    pub level: u8,
    /// Samples per block, once known.
    pub block_size: Option<u32>,
    /// Whether the session is recorded to a file.
    pub record: bool,
    /// Binary messages received.
    pub chunk_count: u64,
    /// Samples per channel accepted.
    pub samples: u64,
    /// Input bytes received.
    pub bytes_in: u64,
    /// FLAC bytes produced.
    pub bytes_out: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// When the session was finalized.
    pub closed_at_ms: Option<i64>,
    /// The recording's path relative to the data directory.
    pub file: Option<String>,
    /// Why a failed session failed (its error code).
    pub error: Option<String>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The catalog backend failed.
    #[error("session catalog failed: {0}")]
    Catalog(String),
    /// A recording file operation failed.
    #[error("recording file failed: {0}")]
    File(String),
    /// The store actor is gone.
    #[error("the store is not running")]
    Unavailable,
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        Self::File(e.to_string())
    }
}

/// Session metadata storage. Methods block; they run on [`Store`] threads.
pub trait Catalog: Leases + Phrases + Analyses + Jobs + Send {
    /// Inserts or replaces a record.
    fn save(&mut self, record: &SessionRecord) -> Result<(), StoreError>;
    /// Saves a record that ends its session and queues its jobs, in one
    /// transaction (so an ended session never lacks its jobs).
    fn save_ended(&mut self, record: &SessionRecord, jobs: &[NewJob]) -> Result<(), StoreError>;
    /// Loads one record.
    fn load(&mut self, id: Uuid) -> Result<Option<SessionRecord>, StoreError>;
    /// Lists records, newest first, optionally only one owner key's and/or
    /// one user's.
    fn list(
        &mut self,
        owner_key: Option<&str>,
        user_id: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Deletes a record; whether it existed.
    fn remove(&mut self, id: Uuid) -> Result<bool, StoreError>;
    /// Records still `live` (to recover after a restart).
    fn unfinished(&mut self) -> Result<Vec<SessionRecord>, StoreError>;
    /// Records that an ended session's recording was re-encoded at `level`
    /// into `bytes_out` bytes; whether the session exists.
    fn recompressed(&mut self, id: Uuid, level: u8, bytes_out: u64) -> Result<bool, StoreError>;
    /// Ended sessions closed before `before_ms`, oldest first, at most
    /// `limit`: of owner key `owner` if given, and of no key in `except`
    /// (retention: keys with an age of their own are swept separately).
    fn expired(
        &mut self,
        before_ms: i64,
        owner: Option<&str>,
        except: &[String],
        limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Saves a finished record only if `owner` still holds the session's
    /// lease (and it is still live), then drops the lease, in one
    /// transaction; answers whether it did. A replica that lost the session
    /// to another one (a takeover while it was finishing) must neither close
    /// it nor delete its segments. One node (the default): always saves.
    /// The ended session's jobs are queued in the same transaction.
    fn finish_final(
        &mut self,
        record: &SessionRecord,
        _owner: &str,
        jobs: &[NewJob],
    ) -> Result<bool, StoreError> {
        self.save_ended(record, jobs)?;
        Ok(true)
    }
}

/// Makes one catalog connection per store thread.
pub type CatalogFactory = Arc<dyn Fn() -> Box<dyn Catalog> + Send + Sync>;

/// A recording shared between a session and the store threads. Only one
/// write per session is in flight at a time, so the lock is uncontended.
pub type SharedRecording = Arc<Mutex<RecordingFile>>;

/// The store actor; see the module docs.
pub struct Store {
    catalog: Box<dyn Catalog>,
    /// The jobs an ended session gets.
    plan: Arc<JobPlan>,
}

impl Actor for Store {
    type Context = SyncContext<Self>;
}

impl Store {
    /// Starts `threads` store threads, each with a catalog from `factory`;
    /// ended sessions get the jobs of `plan`.
    pub fn start(threads: usize, factory: CatalogFactory, plan: JobPlan) -> Addr<Self> {
        let plan = Arc::new(plan);
        SyncArbiter::start(threads.max(1), move || Store {
            catalog: factory(),
            plan: Arc::clone(&plan),
        })
    }

    /// Saves a record; one that ends its session with its jobs.
    fn save_record(&mut self, record: &SessionRecord) -> Result<(), StoreError> {
        if record.status == SessionStatus::Live {
            return self.catalog.save(record);
        }
        let jobs = self.plan.for_ended(record);
        self.catalog.save_ended(record, &jobs)
    }
}

/// Insert or replace a session's metadata.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Save {
    /// The record to store.
    pub record: SessionRecord,
}

/// Writes the record.
impl Handler<Save> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: Save, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.save_record(&msg.record)
    }
}

/// Save a finished record if this replica still owns the session; see
/// [`Catalog::finish_final`].
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct SaveFinal {
    /// The finished record.
    pub record: SessionRecord,
    /// This replica.
    pub owner: String,
}

/// Saves if still the owner.
impl Handler<SaveFinal> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: SaveFinal, _ctx: &mut SyncContext<Self>) -> Self::Result {
        let jobs = self.plan.for_ended(&msg.record);
        self.catalog.finish_final(&msg.record, &msg.owner, &jobs)
    }
}

/// Load one session's metadata.
#[derive(Message)]
#[rtype(result = "Result<Option<SessionRecord>, StoreError>")]
pub struct Load {
    /// The session.
    pub id: Uuid,
}

/// Reads the record.
impl Handler<Load> for Store {
    type Result = Result<Option<SessionRecord>, StoreError>;

    fn handle(&mut self, msg: Load, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.load(msg.id)
    }
}

/// List sessions, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<SessionRecord>, StoreError>")]
pub struct List {
    /// Only the sessions this API key owns.
    pub owner_key: Option<String>,
    /// Only this user's sessions.
    pub user_id: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Records to skip.
    pub offset: u64,
}

/// Reads a page of records.
impl Handler<List> for Store {
    type Result = Result<Vec<SessionRecord>, StoreError>;

    fn handle(&mut self, msg: List, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .list(
                msg.owner_key.as_deref(),
                msg.user_id.as_deref(),
                msg.limit,
                msg.offset,
            )
            .map(|mut page| {
                page.truncate(msg.limit as usize);
                page
            })
    }
}

/// Delete a session's metadata and its recording file.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct Remove {
    /// The session.
    pub id: Uuid,
    /// The recording file, if any, to delete too.
    pub file: Option<std::path::PathBuf>,
}

/// Deletes the file, then the record.
impl Handler<Remove> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: Remove, _ctx: &mut SyncContext<Self>) -> Self::Result {
        if let Some(path) = msg.file {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.catalog.remove(msg.id)
    }
}

/// An ended session's recording was re-encoded; see [`Catalog::recompressed`].
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct Recompressed {
    /// The session.
    pub id: Uuid,
    /// Its new level.
    pub level: u8,
    /// Its new size.
    pub bytes_out: u64,
}

/// Records it.
impl Handler<Recompressed> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: Recompressed, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.recompressed(msg.id, msg.level, msg.bytes_out)
    }
}

/// Ended sessions past an age; see [`Catalog::expired`].
#[derive(Message)]
#[rtype(result = "Result<Vec<SessionRecord>, StoreError>")]
pub struct Expired {
    /// Closed before this, milliseconds since the Unix epoch.
    pub before_ms: i64,
    /// Only this owner key's.
    pub owner: Option<String>,
    /// None of these keys'.
    pub except: Vec<String>,
    /// At most this many.
    pub limit: u32,
}

/// Lists them.
impl Handler<Expired> for Store {
    type Result = Result<Vec<SessionRecord>, StoreError>;

    fn handle(&mut self, msg: Expired, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .expired(msg.before_ms, msg.owner.as_deref(), &msg.except, msg.limit)
    }
}

/// Sessions left `live` by a previous run.
#[derive(Message)]
#[rtype(result = "Result<Vec<SessionRecord>, StoreError>")]
pub struct Unfinished;

/// Reads the unfinished records.
impl Handler<Unfinished> for Store {
    type Result = Result<Vec<SessionRecord>, StoreError>;

    fn handle(&mut self, _msg: Unfinished, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.unfinished()
    }
}

/// Create a recording file holding the stream header.
#[derive(Message)]
#[rtype(result = "Result<SharedRecording, StoreError>")]
pub struct CreateRecording {
    /// Absolute path of the new file.
    pub path: std::path::PathBuf,
    /// `fLaC` and the provisional STREAMINFO.
    pub header: Vec<u8>,
}

/// Creates and syncs the file.
impl Handler<CreateRecording> for Store {
    type Result = Result<SharedRecording, StoreError>;

    fn handle(&mut self, msg: CreateRecording, _ctx: &mut SyncContext<Self>) -> Self::Result {
        let file = RecordingFile::create(&msg.path, &msg.header)?;
        Ok(Arc::new(Mutex::new(file)))
    }
}

/// Append frames to a recording and sync them.
#[derive(Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct AppendFrames {
    /// The recording.
    pub file: SharedRecording,
    /// Whole frames, in order.
    pub bytes: bytes::Bytes,
}

/// Appends and syncs; answers the file's new length.
impl Handler<AppendFrames> for Store {
    type Result = Result<u64, StoreError>;

    fn handle(&mut self, msg: AppendFrames, _ctx: &mut SyncContext<Self>) -> Self::Result {
        Ok(msg.file.lock().append(&msg.bytes)?)
    }
}

/// Write the final STREAMINFO into a recording.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FinalizeRecording {
    /// The recording.
    pub file: SharedRecording,
    /// The final STREAMINFO body.
    pub streaminfo: [u8; STREAMINFO_BYTES],
}

/// Patches and syncs.
impl Handler<FinalizeRecording> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: FinalizeRecording, _ctx: &mut SyncContext<Self>) -> Self::Result {
        Ok(msg.file.lock().finalize(&msg.streaminfo)?)
    }
}

/// Settle a session that will not continue (it failed, or a crash left it
/// open): repair and finalize its recording from its own frames, then save
/// the record with the repaired totals. A repair that fails marks the record
/// `failed` with `recovery_failed`.
#[derive(Message)]
#[rtype(result = "Result<SessionRecord, StoreError>")]
pub struct Settle {
    /// The record to save (its `samples` are replaced by the repaired total).
    pub record: SessionRecord,
    /// The recording file, if the session was recorded.
    pub path: Option<std::path::PathBuf>,
    /// The open recording, if a session still holds it: it is sealed first,
    /// so an append queued behind this cannot land after the repair.
    pub file: Option<SharedRecording>,
}

/// Repairs, finalizes and saves.
impl Handler<Settle> for Store {
    type Result = Result<SessionRecord, StoreError>;

    fn handle(&mut self, msg: Settle, _ctx: &mut SyncContext<Self>) -> Self::Result {
        let mut record = msg.record;
        if let Some(path) = msg.path {
            let mut guard = msg.file.as_ref().map(|f| f.lock());
            if let Some(file) = guard.as_mut() {
                file.seal();
            }
            match recover(&path, true) {
                Ok(recovered) => record.samples = recovered.info.total_samples,
                Err(e) => {
                    log::error!(
                        "Session {}: repairing its recording failed: {e}.",
                        record.id
                    );
                    record.status = SessionStatus::Failed;
                    record.error = Some("recovery_failed".into());
                }
            }
        }
        self.save_record(&record)?;
        Ok(record)
    }
}
