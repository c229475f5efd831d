//! flacstream's concurrency core, shaped as the design card asks: one
//! [`session::Session`] actor per stream, a supervised pool of
//! [`encoder::Encoder`] actors on dedicated threads, lock-free PCM
//! [`staging`], and a [`registry::Registry`] actor that admits, times out and
//! drains sessions.
//!
//! # Layout
//! - [`session`]: the per-stream actor: parses WAV or takes raw PCM, stages
//!   PCM, dispatches blocks, reorders frames, and reports [`session::Outbound`]
//!   events to its connections. Its parts: `settings` (how it is set up),
//!   `input` (ingest, parsing, staging), `connect` and `fanout` (producer and
//!   listeners), `recorder` (frames to the file), `lifecycle` (finalize,
//!   timers, catalog saves), `outcome` (what it reports), `membership` (its
//!   address as the registry's [`registry::Member`]). The transport's read
//!   loop awaits each ingest, which is how TCP backpressure reaches a client.
//! - [`encoder`]: the encoder actor (one per pool thread) with panic
//!   supervision; [`encoder::pool`] the bounded handle sessions use.
//! - [`registry`]: the actor that knows every live session: global cap,
//!   connections per session, idle timeout, drain on shutdown. Generic over
//!   the handle it keeps per session ([`registry::Member`]) so that it does
//!   not depend on the session, which depends on it; [`Registry`] is the one
//!   the service runs. [`registry::LeaveGuard`] counts a connection out of
//!   its session if its request is dropped.
//! - [`session_id`]: [`session_id::SessionId`], used by the registry and the
//!   session alike (a leaf, so that neither imports the other for it).
//! - [`staging`]: the bounded `ringbuf` ring that holds decoded PCM until a
//!   whole block is ready.
//! - [`store`]: the store actor (a `SyncArbiter` pool) for every blocking
//!   storage call, over the [`store::Catalog`] trait (SQLite in the service).
//! - [`recording`]: a session's FLAC file on disk: synced appends, final
//!   STREAMINFO, and repair after a crash.
//! - [`object_recordings`]: recordings in object storage (scaled mode):
//!   durable [`segment`]s written create-only, composed into one FLAC at
//!   the end; [`stream_digest`] is the MD5 whose state each segment saves.
//! - [`lease_clock`]: how long this replica may still extend its sessions
//!   (scaled mode): a session writes a segment only while it holds.
//! - [`error`]: [`error::StreamError`], every way a stream can fail, each with
//!   a stable client code and a [`error::ErrorKind`] the service maps to
//!   close codes and HTTP statuses.
//! - [`chunk_analysis`]: per-chunk metadata and the session's live analysis
//!   (loudness, silences, clipping), run off the I/O threads.
//! - [`activity`]: the lock-free "last heard from" clock the registry sweeps.
//! - [`metrics`]: every metric's name, kind, unit and help text; recorded
//!   here through the `metrics` facade, served by the service.

pub mod activity;
pub mod chunk_analysis;
pub mod encoder;
pub mod error;
pub mod lease_clock;
pub mod metrics;
pub mod object_recordings;
pub mod recording;
pub mod registry;
pub mod segment;
pub mod session;
pub mod session_id;
pub mod staging;
pub mod store;
pub mod stream_digest;

pub use encoder::pool::EncoderPool;
pub use error::{ErrorKind, StreamError};
pub use session::{Outbound, Session, SessionSettings};

/// The registry the service runs: [`registry::Registry`] keeping each live
/// session's address, so that [`registry::Join`] and [`registry::Lookup`]
/// answer an `Addr<Session>` to send the session more messages. Named here,
/// at the root, because only the root may see both the registry and the
/// session without making them depend on each other.
pub type Registry = registry::Registry<actix::Addr<Session>>;
