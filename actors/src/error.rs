//! Every way a stream can fail, with stable client codes.
//!
//! The service maps each [`ErrorKind`] to a WebSocket close code and an HTTP
//! status in exactly one place (`flacstream::error`).

use flacstream_codec::flac::FlacError;
use flacstream_codec::media::MediaError;
use flacstream_codec::wav::{WavError, WavErrorKind};
use thiserror::Error;

/// Broad class of a failure; decides the close code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is not valid WAV (close 1007).
    Malformed,
    /// Valid input FLAC or the service cannot hold (close 1003).
    Unsupported,
    /// A limit or timeout was hit, or the client broke the protocol (close 1008).
    Policy,
    /// A message or header was too big (close 1009).
    TooLarge,
    /// The service failed (close 1011).
    Internal,
    /// The server is shutting down (close 1001).
    GoingAway,
    /// A newer producer took over the session (close 4001).
    Superseded,
}

/// Why a stream ended early.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    /// The WAV header was rejected.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// A source other than WAV could not be decoded.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// An encoder panicked on this stream's audio; it was restarted.
    #[error("the encoder failed on this stream's audio; the stream cannot continue")]
    EncoderPanicked,
    /// The encoder refused a block (a bug if it happens: input is validated first).
    #[error("encoding failed: {0}")]
    Encode(#[from] FlacError),
    /// The encoder pool has shut down.
    #[error("the encoder pool is not running")]
    PoolUnavailable,
    /// No audio arrived for the configured idle timeout.
    #[error("no audio arrived for {0} seconds")]
    IdleTimeout(u64),
    /// The client did not read output for the configured stall timeout.
    #[error("the client stopped reading; output stalled for {0} seconds")]
    SlowReader(u64),
    /// A listener fell a whole outbound queue behind the stream.
    #[error("this listener fell too far behind the live stream")]
    ListenerTooSlow,
    /// A frame or reassembled message was over the configured size.
    #[error("a message was larger than the limit of {0} bytes")]
    MessageTooLarge(usize),
    /// The client sent something the protocol does not allow.
    #[error("{0}")]
    BadMessage(String),
    /// FLAC numbers frames with 31 bits; the stream would need more.
    #[error("the stream is longer than FLAC's frame numbering allows")]
    StreamTooLong,
    /// Writing the recording or its metadata failed.
    #[error("storing the recording failed: {0}")]
    Storage(String),
    /// Another connection became the session's producer.
    #[error("another connection took over as this session's producer")]
    Superseded,
    /// The session moved to another replica (a handover, or this replica
    /// lost its lease): the producer reconnects and resumes there.
    #[error("the session moved to another replica; reconnect to resume it")]
    Moved,
    /// The server shut down before the stream's header was complete.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A live session's producer sent audio faster than the input-rate
    /// bound allows (`session::input_rate`).
    #[error(
        "audio is arriving faster than {} times real time beyond a burst of \
         {burst_seconds} s; this endpoint is for live sources (send files to /stream, \
         /convert or /upload)",
        f64::from(*max_rate_percent) / 100.0
    )]
    InputTooFast {
        /// The bound, in hundredths of real time (`StreamError` is `Eq`,
        /// so no float).
        max_rate_percent: u32,
        /// The burst allowance, in seconds of audio.
        burst_seconds: u64,
    },
}

impl StreamError {
    /// Stable, machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Wav(e) => e.code(),
            Self::Media(e) => e.code(),
            Self::EncoderPanicked | Self::Encode(_) | Self::PoolUnavailable => "internal",
            Self::IdleTimeout(_) => "idle_timeout",
            Self::SlowReader(_) | Self::ListenerTooSlow => "slow_reader",
            Self::MessageTooLarge(_) => "message_too_large",
            Self::BadMessage(_) => "bad_message",
            Self::StreamTooLong => "stream_too_long",
            Self::ShuttingDown => "shutting_down",
            Self::Storage(_) => "storage",
            Self::Superseded => "superseded",
            Self::Moved => "session_moved",
            Self::InputTooFast { .. } => "input_too_fast",
        }
    }

    /// The failure's class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Wav(e) => match e.kind() {
                WavErrorKind::Malformed => ErrorKind::Malformed,
                WavErrorKind::Unsupported => ErrorKind::Unsupported,
                WavErrorKind::TooLarge => ErrorKind::TooLarge,
            },
            Self::Media(e) if e.is_malformed() => ErrorKind::Malformed,
            Self::Media(_) => ErrorKind::Unsupported,
            Self::EncoderPanicked | Self::Encode(_) | Self::PoolUnavailable => ErrorKind::Internal,
            Self::IdleTimeout(_)
            | Self::SlowReader(_)
            | Self::ListenerTooSlow
            | Self::BadMessage(_) => ErrorKind::Policy,
            Self::StreamTooLong | Self::InputTooFast { .. } => ErrorKind::Policy,
            Self::MessageTooLarge(_) => ErrorKind::TooLarge,
            Self::ShuttingDown | Self::Moved => ErrorKind::GoingAway,
            Self::Storage(_) => ErrorKind::Internal,
            Self::Superseded => ErrorKind::Superseded,
        }
    }
}
