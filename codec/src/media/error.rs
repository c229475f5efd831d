//! Why a non-WAV source was refused.

use thiserror::Error;

/// Why a source could not be decoded. Codes are stable (the API's `code`);
/// the service maps them to HTTP statuses and close codes in one place.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaError {
    /// No container or codec this service reads was recognised.
    #[error(
        "the content is not audio this service reads (WAV, FLAC, MP3, AAC in ADTS or MP4/M4A, \
         ALAC, Ogg Vorbis, WebM/MKV, AIFF, CAF)"
    )]
    Unrecognized,
    /// A container with no audio track (a video-only MP4, say).
    #[error("the file has no audio track")]
    NoAudioTrack,
    /// An audio codec out of scope (HE-AAC, AC-3, Opus where not decoded…).
    #[error("the audio is coded with {0}, which this service does not decode")]
    UnsupportedCodec(String),
    /// Float PCM: FLAC holds integers only.
    #[error(
        "the audio is floating-point PCM, which FLAC cannot hold losslessly; convert it to \
         16- or 24-bit integer PCM first"
    )]
    FloatPcm,
    /// Integer samples wider than 24 bits.
    #[error("{0}-bit samples are not supported; FLAC here takes 8 to 24 bits")]
    UnsupportedBitDepth(u32),
    /// More channels than FLAC's 8.
    #[error("{0} channels; FLAC takes 1 to 8")]
    TooManyChannels(usize),
    /// A sample rate FLAC cannot declare (or none at all).
    #[error("a sample rate of {0} Hz is not supported (1 to 655350 Hz)")]
    UnsupportedSampleRate(u32),
    /// The sample rate or channel count changed mid-stream (a chained Ogg,
    /// an AAC stream switching layout).
    #[error("the audio changes its sample rate or channels part-way; send one stream per file")]
    FormatChanged,
    /// The data is broken.
    #[error("the audio is corrupt: {0}")]
    Corrupt(String),
    /// The file ends in the middle of the audio.
    #[error("the audio ends part-way through (the file is truncated)")]
    Truncated,
    /// A container that has to be read out of order (MP4), sent where the
    /// audio is decoded as it arrives.
    #[error(
        "MP4/M4A cannot be decoded as it arrives (its index may be at its end); send the \
         file to /convert or /upload"
    )]
    NeedsSeeking,
    /// The content is another container than the client named
    /// (`/api/ws/audio?format=ogg` carrying an MP3, say).
    #[error("the audio was declared as {declared} but its content is {found}")]
    FormatMismatch {
        /// The client's `format`.
        declared: &'static str,
        /// The container the content turned out to be.
        found: &'static str,
    },
    /// A bound of the demuxer or decoder (against hostile files) was hit.
    #[error("the file exceeds a decoder limit: {0}")]
    Limit(String),
}

impl MediaError {
    /// Stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unrecognized => "unrecognized_format",
            Self::NoAudioTrack => "no_audio_track",
            Self::UnsupportedCodec(_) => "unsupported_codec",
            Self::FloatPcm => "float_pcm",
            Self::UnsupportedBitDepth(_) => "unsupported_bit_depth",
            Self::TooManyChannels(_) => "too_many_channels",
            Self::UnsupportedSampleRate(_) => "unsupported_sample_rate",
            Self::FormatChanged => "format_changed",
            Self::Corrupt(_) => "corrupt_audio",
            Self::Truncated => "truncated_audio",
            Self::Limit(_) => "media_limit",
            Self::NeedsSeeking => "needs_seeking",
            Self::FormatMismatch { .. } => "format_mismatch",
        }
    }

    /// Whether the input is broken (else: valid, but not something FLAC or
    /// this service takes).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Corrupt(_) | Self::Truncated | Self::Limit(_))
    }
}

impl From<symphonia::core::errors::Error> for MediaError {
    fn from(e: symphonia::core::errors::Error) -> Self {
        use symphonia::core::errors::Error as E;
        match e {
            E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Self::Truncated,
            E::IoError(io) => Self::Corrupt(io.to_string()),
            E::DecodeError(what) => Self::Corrupt(what.to_string()),
            E::SeekError(_) => Self::Corrupt("a seek failed".into()),
            E::Unsupported(what) => Self::UnsupportedCodec(what.to_string()),
            E::LimitError(what) => Self::Limit(what.to_string()),
            E::ResetRequired => Self::FormatChanged,
            other => Self::Corrupt(other.to_string()),
        }
    }
}
