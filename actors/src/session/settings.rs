//! How a session is set up: input format, encoder settings, and for
//! recorded sessions how they live and are stored.

use std::path::PathBuf;
use std::time::Duration;

use actix::Addr;
use flacstream_codec::flac::EncoderLevel;
use flacstream_codec::g711::Law;
use flacstream_codec::media::SourceCodec;
use flacstream_codec::pcm::PcmLayout;

use super::segment_writer::ObjectSink;
use super::InputRateLimit;
use crate::object_recordings::DurableTail;
use crate::store::Store;

/// What the input bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A WAV file: header first.
    Wav,
    /// Headerless little-endian PCM in this layout.
    Raw {
        /// Channels and sample width.
        layout: PcmLayout,
        /// Samples per second.
        sample_rate: u32,
    },
    /// Another container (MP3, Ogg, FLAC, WebM…), decoded as it arrives
    /// (`live_input`); a `/stream` whose first bytes are not a WAV's
    /// becomes this.
    Live,
    /// A container named by the client (`/api/ws/audio?format=ogg`),
    /// decoded as it arrives like [`InputFormat::Live`]. Its decoder's
    /// state lives only in this process: the session resumes here, at a
    /// byte offset, and is never taken over elsewhere.
    Container {
        /// The container the content must turn out to be, as
        /// `MediaInfo::container` names it (`ogg`, `mkv`, `flac`, `mp3`,
        /// `adts`, `aiff`, `caf`).
        expected: &'static str,
    },
    /// Headerless G.711, one byte per sample, stored as its 16-bit
    /// linear expansion.
    G711 {
        /// A-law or μ-law.
        law: Law,
        /// Channels, interleaved.
        channels: usize,
        /// Samples per second.
        sample_rate: u32,
    },
}

impl InputFormat {
    /// Whether the input is a container decoded as it arrives.
    pub fn is_decoded(&self) -> bool {
        matches!(self, Self::Live | Self::Container { .. })
    }

    /// The rate and PCM layout a headerless input starts its stream with
    /// (G.711 as its 16-bit expansion); `None` for WAV, which has to say.
    pub fn headerless(&self) -> Option<(u32, PcmLayout)> {
        match *self {
            Self::Wav | Self::Live | Self::Container { .. } => None,
            Self::Raw {
                layout,
                sample_rate,
            } => Some((sample_rate, layout)),
            Self::G711 {
                channels,
                sample_rate,
                ..
            } => Some((
                sample_rate,
                PcmLayout {
                    channels,
                    bytes_per_sample: 2,
                },
            )),
        }
    }
}

/// Per-stream settings, fixed when the session starts.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Compression level.
    pub level: EncoderLevel,
    /// Samples per block; `None` picks [`flacstream_codec::flac::default_block_size`] for the rate.
    pub block_size: Option<usize>,
    /// Bound on header bytes before `data` (see [`flacstream_codec::wav::WavParser::new`]).
    pub max_header_bytes: u64,
    /// Blocks encoding or waiting for the producer or the disk, at least 1.
    pub max_blocks_in_flight: usize,
    /// What the input is.
    pub input: InputFormat,
    /// What the audio was coded with before it became this input (PCM for
    /// WAV and raw input; the decoded codec for an upload decoded first).
    pub source: SourceCodec,
    /// Longest the session may run, counted from its start, whatever its
    /// kind; then it ends with what it has (`max_session_length`): a
    /// `/stream` fed slowly enough never to be idle is bounded too.
    pub max_duration: Duration,
    /// How fast its producers may send, for live sessions
    /// (`/api/ws/audio`); `None` for sessions fed from a file or meant to
    /// go faster than real time.
    pub input_rate: Option<InputRateLimit>,
}

/// How a recorded session lives and is stored.
#[derive(Debug, Clone)]
pub struct RecordingPolicy {
    /// The store that writes files and metadata.
    pub store: Addr<Store>,
    /// Directory the recording goes under.
    pub data_dir: PathBuf,
    /// Whether audio is recorded to a file at all.
    pub record: bool,
    /// Time after the last connection leaves before the session is finalized.
    pub resume_window: Duration,
    /// The user the session is for, for listing.
    pub user_id: Option<String>,
    /// The API key that owns the session (`None` with authentication off).
    pub owner_key: Option<String>,
    /// The input encoding's name (`s16le`, `wav`, …), for the catalog.
    pub encoding: String,
    /// Recordings in object storage (scaled mode) instead of files under
    /// `data_dir`.
    pub objects: Option<ObjectSink>,
    /// Set when this replica takes over a session another one held: where
    /// its durable stream ends and the counters it had.
    pub takeover: Option<Takeover>,
    /// How it measures its chunks and its audio; `None`: it does not.
    pub analysis: Option<crate::chunk_analysis::AnalysisSettings>,
    /// An upload: its body is its one chunk, closed when the input ends.
    pub whole_upload: Option<crate::chunk_analysis::WholeUpload>,
}

/// A session continued on this replica from what is durable.
#[derive(Debug, Clone)]
pub struct Takeover {
    /// The end of the durable stream (its last segment).
    pub tail: DurableTail,
    /// Binary messages the session had taken, from the catalog.
    pub chunk_count: u64,
    /// Input bytes it had taken, from the catalog.
    pub bytes_in: u64,
    /// When it was created.
    pub created_at_ms: i64,
}

/// What kind of session this is.
#[derive(Debug, Clone)]
pub enum SessionKind {
    /// `/stream`: one connection; the session ends with it.
    Stream,
    /// A recorded session that outlives its connections.
    Recording(Box<RecordingPolicy>),
}
