//! Compression levels 0–8 mapped onto flacenc settings, and default block sizes.

use flacenc::config::Encoder;
use flacenc::error::Verified;

/// Highest compression level (inclusive), as in libFLAC.
pub const MAX_LEVEL: u8 = 8;

/// Level used when a client names none: libFLAC's own default, LPC of order 8
/// with full stereo search.
pub const DEFAULT_LEVEL: u8 = 5;

/// Audio a default block may hold, in milliseconds: short enough that a live
/// client gets a frame back at least ten times a second.
pub const DEFAULT_BLOCK_MAX_MS: u32 = 100;

/// Largest block FLAC's streamable subset allows at or below 48 kHz, rounded
/// down to a power of two (the subset maximum is 4608).
const SUBSET_BLOCK_LIMIT_LOW_RATE: usize = 4096;
/// Largest block FLAC's streamable subset allows above 48 kHz.
const SUBSET_BLOCK_LIMIT_HIGH_RATE: usize = 16_384;

/// A compression level in 0..=[`MAX_LEVEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EncoderLevel(u8);

impl Default for EncoderLevel {
    fn default() -> Self {
        Self(DEFAULT_LEVEL)
    }
}

impl EncoderLevel {
    /// The level, or `None` above [`MAX_LEVEL`].
    pub fn new(level: u8) -> Option<Self> {
        (level <= MAX_LEVEL).then_some(Self(level))
    }

    /// The level as a number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// flacenc settings for this level. Like libFLAC: 0–2 use fixed
    /// predictors only, 3–8 add LPC of growing order; stereo decorrelation
    /// grows from none (0) to mid/side (1) to the full search (2 and up).
    pub fn config(self) -> Verified<Encoder> {
        let mut c = Encoder::default();
        c.multithread = false;
        let (use_lpc, lpc_order, stereo) = match self.0 {
            0 => (false, 1, Stereo::None),
            1 => (false, 1, Stereo::MidSide),
            2 => (false, 1, Stereo::Full),
            3 => (true, 6, Stereo::None),
            4 => (true, 8, Stereo::MidSide),
            5 | 6 => (true, 8, Stereo::Full),
            _ => (true, 12, Stereo::Full),
        };
        c.subframe_coding.use_lpc = use_lpc;
        c.subframe_coding.qlpc.lpc_order = lpc_order;
        c.stereo_coding.use_midside = stereo != Stereo::None;
        c.stereo_coding.use_leftside = stereo == Stereo::Full;
        c.stereo_coding.use_rightside = stereo == Stereo::Full;
        super::verify(c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stereo {
    None,
    MidSide,
    Full,
}

/// The default block size for `sample_rate`: the largest power of two that
/// holds at most [`DEFAULT_BLOCK_MAX_MS`] of audio and stays inside FLAC's
/// streamable subset, but never below [`super::MIN_BLOCK_SIZE`].
pub fn default_block_size(sample_rate: u32) -> usize {
    let limit = if sample_rate <= 48_000 {
        SUBSET_BLOCK_LIMIT_LOW_RATE
    } else {
        SUBSET_BLOCK_LIMIT_HIGH_RATE
    };
    let fits = (u64::from(sample_rate) * u64::from(DEFAULT_BLOCK_MAX_MS) / 1000) as usize;
    let pow2 = if fits == 0 { 1 } else { 1usize << fits.ilog2() };
    pow2.clamp(super::MIN_BLOCK_SIZE, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_config_verifies() {
        for level in 0..=MAX_LEVEL {
            let _ = EncoderLevel::new(level).map(EncoderLevel::config);
        }
        assert!(EncoderLevel::new(MAX_LEVEL + 1).is_none());
    }

    #[test]
    fn default_blocks_stay_under_100ms_and_in_the_subset() {
        assert_eq!(default_block_size(44_100), 4096);
        assert_eq!(default_block_size(48_000), 4096);
        assert_eq!(default_block_size(16_000), 1024);
        assert_eq!(default_block_size(8_000), 512);
        assert_eq!(default_block_size(96_000), 8192);
        assert_eq!(default_block_size(192_000), 16_384);
        assert_eq!(default_block_size(1), 32);
        for rate in [
            8_000u32, 11_025, 22_050, 32_000, 44_100, 48_000, 88_200, 192_000,
        ] {
            let block = default_block_size(rate);
            assert!(block as u64 * 1000 <= u64::from(rate) * 100, "{rate}");
        }
    }
}
