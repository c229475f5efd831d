//! flacstream's codec layer: everything between WAV bytes and FLAC bytes,
//! with no actors and no I/O, so it can be unit-tested and fuzzed alone.
//!
//! # Layout
//! - [`wav`]: incremental, bounded RIFF/WAVE header parser ([`wav::WavParser`]).
//! - [`pcm`]: little-endian PCM bytes → `i32` samples, split anywhere, with the
//!   running MD5 FLAC's STREAMINFO needs ([`pcm::PcmDecoder`]).
//! - [`media`]: every other container and codec (MP3, AAC, ALAC, FLAC,
//!   Vorbis, AIFF, CAF, G.711…) decoded by symphonia into the same PCM bytes.
//! - [`g711`]: A-law and μ-law bytes expanded to 16-bit linear PCM.
//! - [`analysis`]: levels, loudness (EBU R128) and silences of the PCM, for
//!   chunk metadata and session analysis.
//! - [`flac`]: STREAMINFO and the stream header, compression levels, and
//!   [`flac::FrameEncoder`], which turns one block into one bounded frame.
//! - `fixture` (feature `fixtures`): WAV builders and test signals for tests
//!   and benches.

pub mod analysis;
pub mod flac;
pub mod g711;
pub mod media;
pub mod pcm;
pub mod wav;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
