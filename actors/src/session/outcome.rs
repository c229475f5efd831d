//! What a session reports: events to its connections, the final summary,
//! ingest acknowledgements.

use bytes::Bytes;
use flacstream_codec::flac::STREAMINFO_BYTES;
use tokio::sync::mpsc;

use super::SessionSettings;
use crate::session_id::SessionId;
use crate::StreamError;
use flacstream_codec::media::SourceCodec;

/// Outbound slots beyond the frames in flight: the stream header and the
/// final `done` or `error` event, so neither ever waits for room.
const OUTBOUND_SLACK: usize = 2;

/// Why a session ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The WAV data chunk was complete, or the client said `end`.
    Complete,
    /// The client or an HTTP call closed the session.
    Closed,
    /// The server is shutting down.
    GoingAway,
    /// The session reached its maximum length.
    MaxDuration,
    /// No connection came back within the resume window.
    ResumeWindowExpired,
}

impl EndReason {
    /// The name reported to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Closed => "closed",
            Self::GoingAway => "going_away",
            Self::MaxDuration => "max_session_length",
            Self::ResumeWindowExpired => "resume_window_expired",
        }
    }
}

/// What a session tells each of its connections.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// FLAC bytes, in stream order: first the header, then one frame each.
    Flac(Bytes),
    /// The stream is complete (or flushed on shutdown); no more events follow.
    Done(DoneSummary),
    /// The stream (or this connection) failed; no more events follow.
    Failed(StreamError),
    /// A chunk's metadata, to connections that asked (`metadata=chunk`).
    Chunk(std::sync::Arc<crate::chunk_analysis::ChunkMetadata>),
    /// To the producer: storage stopped taking the recording's writes
    /// (`available: false`: `samples_durable` waits, nothing acknowledged
    /// is lost, the writes are retried) or takes them again.
    Storage {
        /// Whether storage takes writes again.
        available: bool,
        /// Samples per channel durable now.
        samples_durable: u64,
    },
}

/// The outcome of a completed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneSummary {
    /// The session.
    pub session_id: SessionId,
    /// Samples per channel encoded.
    pub samples: u64,
    /// MD5 of the decoded audio, as in STREAMINFO.
    pub md5: [u8; 16],
    /// The final STREAMINFO body, to write over bytes 8..42 of the stream.
    pub streaminfo: [u8; STREAMINFO_BYTES],
    /// Bytes of a trailing partial sample frame that were dropped.
    pub dropped_bytes: usize,
    /// Frames written.
    pub frames: u64,
    /// Frames stored verbatim to stay within the verbatim bound.
    pub verbatim_frames: u64,
    /// Input bytes received.
    pub bytes_in: u64,
    /// FLAC bytes produced.
    pub bytes_out: u64,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: usize,
    /// Bits per sample as stored in FLAC.
    pub bits_per_sample: usize,
    /// What the audio was coded with before it reached the session.
    pub source: SourceCodec,
    /// Why the session ended.
    pub reason: EndReason,
}

/// The session has ended (or this connection no longer feeds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session has ended")]
pub struct SessionClosed;

/// What an [`super::Ingest`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestAck {
    /// Binary messages taken so far.
    pub chunk_count: u64,
    /// Samples per channel accepted, in order. A resuming producer continues here.
    pub samples_received: u64,
    /// Samples per channel synced to the recording file.
    pub samples_durable: u64,
    /// For a container decoded as it arrives: its bytes the decoder took.
    /// A resuming producer sends on from this byte.
    pub bytes_accepted: Option<u64>,
    /// The acknowledged message's chunk id, when the session measures its
    /// chunks (`None` in the session's welcome).
    pub chunk_id: Option<String>,
}
/// A producer's outbound channel, sized for the in-flight bound.
pub fn outbound_channel(
    settings: &SessionSettings,
) -> (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>) {
    mpsc::channel(settings.max_blocks_in_flight.max(1) + OUTBOUND_SLACK)
}

/// A listener's outbound channel: `frames` FLAC frames it may fall behind
/// before it is cut off with `slow_reader` (`--listener-queue-frames`).
/// A listener does not throttle the producer, so its queue is sized for
/// the producer's bursts, not for the blocks in flight.
pub fn listener_channel(frames: usize) -> (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>) {
    mpsc::channel(frames.max(1) + OUTBOUND_SLACK)
}

/// Room a connection that asked for chunk metadata gets on top of its
/// channel: every chunk the analysis may close in one batch, so a reader
/// that keeps up misses none.
pub const METADATA_ROOM: usize = super::measures::MAX_CHUNKS_QUEUED;

/// A recorded session's connection's channel: a producer's as
/// [`outbound_channel`], a listener's as [`listener_channel`] with
/// `listener_frames`, and [`METADATA_ROOM`] more for one that asked for
/// chunk metadata.
pub fn connection_channel(
    role: super::Role,
    settings: &SessionSettings,
    listener_frames: usize,
    metadata: bool,
) -> (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>) {
    let queued = match role {
        super::Role::Producer => settings.max_blocks_in_flight.max(1),
        super::Role::Listener => listener_frames.max(1),
    };
    let room = if metadata { METADATA_ROOM } else { 0 };
    mpsc::channel(queued + OUTBOUND_SLACK + room)
}
