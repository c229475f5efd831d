//! Measuring audio as it passes: per-chunk levels, loudness per EBU R128
//! (ITU-R BS.1770), and silences. Pure, like the rest of the codec layer:
//! samples in, numbers out. The service runs it off the I/O threads.
//!
//! - [`levels`]: peak, RMS, clipping and DC offset per channel of a run of
//!   samples ([`levels::ChannelLevels`]).
//! - [`loudness`]: integrated, momentary and short-term loudness, loudness
//!   range and true peak of a whole stream, kept live
//!   ([`loudness::LoudnessMeter`]).
//! - [`k_weighting`] and [`true_peak`]: the loudness meter's filters.
//! - [`silence`]: the stream's silent stretches, as ffmpeg's
//!   `silencedetect` finds them ([`silence::SilenceDetector`]).
//!
//! Decibel values of digital silence are `None` (minus infinity has no
//! JSON form).

pub mod k_weighting;
pub mod levels;
pub mod loudness;
pub mod silence;
pub mod true_peak;

/// Full scale of `bits`-bit samples: the magnitude 0 dBFS stands for.
pub fn full_scale(bits: u32) -> f64 {
    f64::from(1u32 << (bits.clamp(1, 32) - 1).min(31))
}

/// `20·log10(ratio)`, or `None` for 0 (and anything not above it).
pub fn db(ratio: f64) -> Option<f64> {
    (ratio > 0.0).then(|| 20.0 * ratio.log10())
}
