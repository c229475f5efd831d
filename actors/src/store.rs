//! Durable storage for recorded sessions, off the I/O threads.
//!
//! [`Store`] is a sync actor (a `SyncArbiter` pool) that does every blocking
//! storage operation: session metadata through a [`Catalog`] (SQLite in the
//! service; a Postgres or object-store backend would be a second
//! implementation of the same trait) and the recording files' appends,
//! syncs and finalization. Each thread has its own catalog connection.

use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext};
use flacstream_codec::flac::STREAMINFO_BYTES;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::recording::{recover, RecordingFile};

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

/// A phrase's name: whose (the API key that owns it, `""` with
/// authentication off, so tenants that share user ids never meet), which
/// user's, and which phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseName {
    /// The owning API key, or `""`.
    pub owner: String,
    /// The user label.
    pub user: String,
    /// The phrase label.
    pub phrase: String,
}

/// Named recordings: a (user, phrase) pair names one session, so a client
/// can store, fetch and replace "user U's phrase P" (the Phonon API) without
/// keeping session ids. Methods block.
pub trait Phrases {
    /// Names session `id` as `name`; answers the session it named before,
    /// if any (the caller deletes that one).
    fn bind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<Option<Uuid>, StoreError>;
    /// The session `name` names.
    fn phrase(&mut self, name: &PhraseName) -> Result<Option<Uuid>, StoreError>;
    /// A user's phrases (`owner`'s) and their sessions, by phrase name.
    fn phrases(
        &mut self,
        owner: &str,
        user: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<(String, Uuid)>, StoreError>;
    /// Forgets the name if it still names session `id`; whether it did.
    fn unbind_phrase(&mut self, name: &PhraseName, id: Uuid) -> Result<bool, StoreError>;
}

/// Session metadata storage. Methods block; they run on [`Store`] threads.
pub trait Catalog: Leases + Phrases + Send {
    /// Inserts or replaces a record.
    fn save(&mut self, record: &SessionRecord) -> Result<(), StoreError>;
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
    /// Saves a finished record only if `owner` still holds the session's
    /// lease (and it is still live), then drops the lease, in one
    /// transaction; answers whether it did. A replica that lost the session
    /// to another one (a takeover while it was finishing) must neither close
    /// it nor delete its segments. One node (the default): always saves.
    fn finish_final(&mut self, record: &SessionRecord, _owner: &str) -> Result<bool, StoreError> {
        self.save(record)?;
        Ok(true)
    }
}

/// The answer to a lease claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The caller holds the lease now.
    Claimed,
    /// Another replica holds it for this much longer.
    HeldBy {
        /// The holder's replica id.
        owner: String,
        /// Milliseconds until it expires unless renewed.
        expires_in_ms: i64,
    },
}

/// Session ownership between replicas (scaled mode): a lease row per live
/// session. A single-node catalog has no other replica, so by default every
/// claim succeeds and there is nothing to renew. Methods block.
pub trait Leases {
    /// Takes session `id`'s lease for `owner` for `ttl_ms`, if nobody holds
    /// it, it has expired, or `owner` holds it already.
    fn claim(&mut self, _id: Uuid, _owner: &str, _ttl_ms: u64) -> Result<LeaseClaim, StoreError> {
        Ok(LeaseClaim::Claimed)
    }
    /// Renews every lease `owner` holds; answers the sessions another
    /// replica has asked it to hand over.
    fn renew(&mut self, _owner: &str, _ttl_ms: u64) -> Result<Vec<Uuid>, StoreError> {
        Ok(Vec::new())
    }
    /// Gives a lease up (if `owner` holds it).
    fn release(&mut self, _id: Uuid, _owner: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Who holds session `id`'s lease now, if anyone (and it has not expired).
    fn holder(&mut self, _id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Asks the holder of session `id`'s lease to hand it over.
    fn request_handover(&mut self, _id: Uuid) -> Result<(), StoreError> {
        Ok(())
    }
    /// Claims up to `limit` live sessions nobody holds: their lease expired
    /// at least `grace_ms` ago, or they have none and were last saved that
    /// long ago. Answers their records.
    fn claim_orphans(
        &mut self,
        _owner: &str,
        _ttl_ms: u64,
        _grace_ms: u64,
        _limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(Vec::new())
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
}

impl Actor for Store {
    type Context = SyncContext<Self>;
}

impl Store {
    /// Starts `threads` store threads, each with a catalog from `factory`.
    pub fn start(threads: usize, factory: CatalogFactory) -> Addr<Self> {
        SyncArbiter::start(threads.max(1), move || Store { catalog: factory() })
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
        self.catalog.save(&msg.record)
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
        self.catalog.finish_final(&msg.record, &msg.owner)
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

/// Name a session as a user's phrase; answers the session named before.
#[derive(Message)]
#[rtype(result = "Result<Option<Uuid>, StoreError>")]
pub struct BindPhrase {
    /// The phrase.
    pub name: PhraseName,
    /// The session it names now.
    pub id: Uuid,
}

impl Handler<BindPhrase> for Store {
    type Result = Result<Option<Uuid>, StoreError>;

    fn handle(&mut self, msg: BindPhrase, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.bind_phrase(&msg.name, msg.id)
    }
}

/// The session a user's phrase names.
#[derive(Message)]
#[rtype(result = "Result<Option<Uuid>, StoreError>")]
pub struct FindPhrase {
    /// The phrase.
    pub name: PhraseName,
}

impl Handler<FindPhrase> for Store {
    type Result = Result<Option<Uuid>, StoreError>;

    fn handle(&mut self, msg: FindPhrase, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.phrase(&msg.name)
    }
}

/// A user's phrases, by name.
#[derive(Message)]
#[rtype(result = "Result<Vec<(String, Uuid)>, StoreError>")]
pub struct ListPhrases {
    /// The owning API key, or `""`.
    pub owner: String,
    /// The user.
    pub user: String,
    /// Page size.
    pub limit: u32,
    /// Entries to skip.
    pub offset: u64,
}

impl Handler<ListPhrases> for Store {
    type Result = Result<Vec<(String, Uuid)>, StoreError>;

    fn handle(&mut self, msg: ListPhrases, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .phrases(&msg.owner, &msg.user, msg.limit, msg.offset)
    }
}

/// Forget a user's phrase if it still names a session; whether it did.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct UnbindPhrase {
    /// The phrase.
    pub name: PhraseName,
    /// The session it must still name (a re-upload may have moved it).
    pub id: Uuid,
}

impl Handler<UnbindPhrase> for Store {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: UnbindPhrase, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.unbind_phrase(&msg.name, msg.id)
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

/// Take a session's lease; see [`Leases::claim`].
#[derive(Message)]
#[rtype(result = "Result<LeaseClaim, StoreError>")]
pub struct ClaimLease {
    /// The session.
    pub id: Uuid,
    /// This replica.
    pub owner: String,
    /// The lease's length, in milliseconds.
    pub ttl_ms: u64,
}

/// Claims.
impl Handler<ClaimLease> for Store {
    type Result = Result<LeaseClaim, StoreError>;

    fn handle(&mut self, msg: ClaimLease, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.claim(msg.id, &msg.owner, msg.ttl_ms)
    }
}

/// Renew this replica's leases; see [`Leases::renew`].
#[derive(Message)]
#[rtype(result = "Result<Vec<Uuid>, StoreError>")]
pub struct RenewLeases {
    /// This replica.
    pub owner: String,
    /// The leases' length, in milliseconds.
    pub ttl_ms: u64,
}

/// Renews.
impl Handler<RenewLeases> for Store {
    type Result = Result<Vec<Uuid>, StoreError>;

    fn handle(&mut self, msg: RenewLeases, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.renew(&msg.owner, msg.ttl_ms)
    }
}

/// Give a lease up; see [`Leases::release`].
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct ReleaseLease {
    /// The session.
    pub id: Uuid,
    /// This replica.
    pub owner: String,
}

/// Releases.
impl Handler<ReleaseLease> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: ReleaseLease, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.release(msg.id, &msg.owner)
    }
}

/// Who holds a session's lease; see [`Leases::holder`].
#[derive(Message)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct LeaseHolder {
    /// The session.
    pub id: Uuid,
}

/// Reads the row.
impl Handler<LeaseHolder> for Store {
    type Result = Result<Option<String>, StoreError>;

    fn handle(&mut self, msg: LeaseHolder, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.holder(msg.id)
    }
}

/// Ask a session's holder to hand it over; see [`Leases::request_handover`].
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RequestHandover {
    /// The session.
    pub id: Uuid,
}

/// Records the request.
impl Handler<RequestHandover> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RequestHandover, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.request_handover(msg.id)
    }
}

/// Claim orphaned live sessions; see [`Leases::claim_orphans`].
#[derive(Message)]
#[rtype(result = "Result<Vec<SessionRecord>, StoreError>")]
pub struct ClaimOrphans {
    /// This replica.
    pub owner: String,
    /// The lease's length, in milliseconds.
    pub ttl_ms: u64,
    /// How long a session must have been unowned, in milliseconds.
    pub grace_ms: u64,
    /// Most sessions at once.
    pub limit: u32,
}

/// Claims.
impl Handler<ClaimOrphans> for Store {
    type Result = Result<Vec<SessionRecord>, StoreError>;

    fn handle(&mut self, msg: ClaimOrphans, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .claim_orphans(&msg.owner, msg.ttl_ms, msg.grace_ms, msg.limit)
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
        self.catalog.save(&record)?;
        Ok(record)
    }
}
