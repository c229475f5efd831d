//! Audio that is not WAV: the container is recognised from its content, its
//! audio track decoded by symphonia, and the result handed on as
//! little-endian integer PCM in a [`crate::pcm::PcmLayout`], so everything
//! after this point (the MD5, the session, the encoder) is the WAV path's.
//!
//! - [`SourceCodec`]: what the audio was coded with, and whether that is
//!   lossless (`source_codec`, `lossless` in the API).
//! - [`MediaDecoder`]: probe, pick the audio track, decode packet by packet
//!   into PCM bytes; synchronous, so callers keep it off I/O threads.
//! - [`live`]: the decoder on a thread of its own, fed as bytes arrive
//!   (`/stream`).
//! - `opus`: Opus packets (which symphonia demuxes but does not decode).
//! - [`depth`]: which integer width the decoded audio is stored at, and the
//!   exact (integer sources) or rounded (lossy sources) conversion.
//! - `trim`: the gapless trimming symphonia leaves to its caller (MP4's
//!   edit list, read by `mp4_timing`).
//! - [`MediaError`]: why a file was refused.

mod decoder;
pub mod depth;
mod error;
pub mod live;
mod mp4_timing;
mod opus;
mod source_codec;
mod trim;

pub use decoder::{DecodeOptions, MediaDecoder, MediaInfo};
pub use error::MediaError;
pub use source_codec::SourceCodec;
