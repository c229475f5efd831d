//! Compression levels 0–8 mapped onto flacenc settings, and default block sizes.

use flacenc::config::{Encoder, OrderSel, Window};
use flacenc::error::Verified;

/// Highest compression level (inclusive), as in libFLAC.
pub const MAX_LEVEL: u8 = 8;

/// Level used when a client names none, as in libFLAC: an LPC of order 10
/// with an estimated stereo pair, within 1% of `flac -5` in size.
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
///
/// The presets were chosen by measurement so that each level is about as small
/// as libFLAC's level of the same number and as fast as flacenc allows.
///
/// Size is output bytes / WAV data bytes; speed is audio seconds per CPU
/// second of one single-threaded encode through the service's codec path
/// (`codec/examples/encode.rs`: WAV parsing, MD5 and frame writing
/// included; x86-64-v3 build). Measured with `benches/compare.sh -r 3`
/// (median of 3 interleaved runs, 2-core VM) on the audio of
/// `benches/audio.sh`: music = `music-16.wav` (240 s, 44.1 kHz 16-bit
/// stereo), speech = `speech-16k.wav` (120 s, 16 kHz 16-bit mono; its
/// speeds are dominated by process start-up and are not listed).
///
/// | level | predictors | stereo | music size | music speed | speech size | `flac -N` music size, speed / speech size |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | 0 | fixed¹ | independent | 0.4525 | 698x | 0.6304 | 0.4552, 831x / 0.6336 |
/// | 1 | fixed¹ | mid/side | 0.4521 | 695x | 0.6304 | 0.4509 / 0.6336 |
/// | 2 | fixed¹ | estimated | 0.4422 | 700x | 0.6304 | 0.4433 / 0.6336 |
/// | 3 | LPC 6 | independent | 0.3902 | 677x | 0.6119 | 0.3898 / 0.6270 |
/// | 4 | LPC 8 | estimated | 0.3803 | 643x | 0.6082 | 0.3811 / 0.6238 |
/// | 5 | LPC 10 | estimated | 0.3794 | 612x | 0.6068 | 0.3771, 443x / 0.6220 |
/// | 6 | LPC 12 + fixed ≤ 2 | estimated | 0.3773 | 507x | 0.6034 | 0.3746 / 0.6184 |
/// | 7 | LPC 12 + fixed | exhaustive | 0.3751 | 317x | 0.6033 | 0.3727 / 0.6163 |
/// | 8 | LPC 16 + fixed, Tukey 0.6 | exhaustive | 0.3749 | 277x | 0.6020 | 0.3719, 245x / 0.6141 |
///
/// LPC uses a Tukey(0.4) window and 15-bit coefficients; fixed orders are
/// chosen by counting bits. "Estimated" stereo encodes two channels instead
/// of flacenc's four ([`StereoSearch::Estimated`]). Level 5 is 0.6% larger
/// than `flac -5` on music and 2.4% smaller on speech, at 1.4 times its speed;
/// on `music-24.wav` (48 kHz 24-bit) it is 0.5475 against 0.5456, and on
/// `music-16.wav` padded into 24 bits (`sox music-16.wav -b 24`) 0.2536
/// against 0.2527: wasted bits are found per channel and block
/// (`flac/wasted.rs`; without them it was 0.5868).
/// flacenc cannot reach `flac -8`: it tries one LPC order and one window.
/// ¹ Above 16 bits, levels 0–2 use LPC 4 instead ([`EncoderLevel::plan`]).
///
/// Other findings behind the table (flacenc alone, music-16): LPC alone is
/// about twice as fast as LPC plus fixed predictors and 0.5% larger (the
/// fixed search costs as much as the LPC); choosing fixed orders by bit count
/// is faster than flacenc's entropy estimate and no larger; coefficient
/// precision below 15 bits or a rectangular window only lose (13 bits:
/// +0.5%, rectangle: +9%); a smaller Rice parameter cap gains nothing;
/// orders above 12 gain under 0.1%. Block sizes stay
/// [`default_block_size`]: at 16 kHz, blocks above 1024 lose on speech
/// (2048: +1%, 4096: +3%).
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

    /// How this level encodes audio of `bits_per_sample` bits: the flacenc
    /// settings for each channel and the stereo search (see [`EncoderLevel`]).
    pub fn plan(self, bits_per_sample: usize) -> LevelPlan {
        let row = &LEVEL_TABLE[usize::from(self.0)];
        // flacenc has no RICE2 escape (Rice parameters stop at 14), so fixed
        // predictors leave residuals of loud 24-bit audio many times larger
        // than the samples; a short LPC keeps them small at about the same
        // speed (music-24: 0.58 instead of verbatim).
        let predictor = match row.predictor {
            Predictor::Fixed if bits_per_sample > FIXED_ONLY_MAX_BITS => Predictor::Lpc {
                order: WIDE_FAST_LPC_ORDER,
                fixed_max_order: None,
                tukey_alpha: DEFAULT_TUKEY_ALPHA,
            },
            p => p,
        };
        let mut c = Encoder::default();
        c.multithread = false;
        // Stereo modes are searched in crate::flac, not by flacenc, except
        // for the exhaustive search, which is flacenc's own.
        c.stereo_coding.use_leftside = true;
        c.stereo_coding.use_rightside = true;
        c.stereo_coding.use_midside = true;
        let sub = &mut c.subframe_coding;
        match predictor {
            Predictor::Fixed => {
                sub.use_lpc = false;
                sub.fixed.order_sel = OrderSel::BitCount;
            }
            Predictor::Lpc {
                order,
                fixed_max_order,
                tukey_alpha,
            } => {
                sub.use_lpc = true;
                sub.qlpc.lpc_order = order;
                sub.qlpc.window = Window::Tukey { alpha: tukey_alpha };
                sub.use_fixed = fixed_max_order.is_some();
                sub.fixed.max_order = fixed_max_order.unwrap_or(0);
                sub.fixed.order_sel = OrderSel::BitCount;
            }
        }
        LevelPlan {
            config: super::verify(c),
            stereo: row.stereo,
        }
    }
}

/// Widest samples (inclusive, in bits) that levels 0–2 encode with fixed
/// predictors only; wider audio gets an LPC of [`WIDE_FAST_LPC_ORDER`].
const FIXED_ONLY_MAX_BITS: usize = 16;

/// LPC order used instead of fixed predictors for wide samples at levels 0–2.
const WIDE_FAST_LPC_ORDER: usize = 4;

/// flacenc's default Tukey window parameter for LPC analysis.
const DEFAULT_TUKEY_ALPHA: f32 = 0.4;

/// How a level encodes: the flacenc settings for one channel and how the two
/// channels of a stereo stream are decorrelated.
#[derive(Debug, Clone)]
pub struct LevelPlan {
    /// flacenc settings applied to each channel (or, for
    /// [`StereoSearch::Exhaustive`] and streams that are not stereo, to the
    /// whole frame).
    pub config: Verified<Encoder>,
    /// Stereo decorrelation; ignored unless the stream has two channels.
    pub stereo: StereoSearch,
}

/// How the channels of a stereo block are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StereoSearch {
    /// Left and right, each encoded once.
    Independent,
    /// Mid and side, each encoded once.
    MidSide,
    /// The pair (left/right, left/side, right/side or mid/side) whose
    /// second-order fixed residuals are smallest, estimated in one cheap pass;
    /// two channels encoded. Like libFLAC's adaptive mid/side.
    Estimated,
    /// flacenc's search: all four channels encoded, the smallest pair kept.
    /// About twice the work of the others.
    Exhaustive,
}

/// The predictors a level tries on each channel.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Predictor {
    /// Fixed predictors of order 0–4, chosen by counting bits.
    Fixed,
    /// A quantised LPC of `order`, computed through a Tukey window of
    /// `tukey_alpha`; with `fixed_max_order`, fixed predictors up to that
    /// order are tried too (bit count) and the smaller subframe kept.
    Lpc {
        order: usize,
        fixed_max_order: Option<usize>,
        tukey_alpha: f32,
    },
}

/// One level's settings.
#[derive(Debug, Clone, Copy)]
struct LevelRow {
    predictor: Predictor,
    stereo: StereoSearch,
}

const fn lpc(order: usize, fixed_max_order: Option<usize>, tukey_alpha: f32) -> Predictor {
    Predictor::Lpc {
        order,
        fixed_max_order,
        tukey_alpha,
    }
}

/// The presets; [`EncoderLevel`] documents them and their measurements.
const LEVEL_TABLE: [LevelRow; MAX_LEVEL as usize + 1] = [
    LevelRow {
        predictor: Predictor::Fixed,
        stereo: StereoSearch::Independent,
    },
    LevelRow {
        predictor: Predictor::Fixed,
        stereo: StereoSearch::MidSide,
    },
    LevelRow {
        predictor: Predictor::Fixed,
        stereo: StereoSearch::Estimated,
    },
    LevelRow {
        predictor: lpc(6, None, DEFAULT_TUKEY_ALPHA),
        stereo: StereoSearch::Independent,
    },
    LevelRow {
        predictor: lpc(8, None, DEFAULT_TUKEY_ALPHA),
        stereo: StereoSearch::Estimated,
    },
    LevelRow {
        predictor: lpc(10, None, DEFAULT_TUKEY_ALPHA),
        stereo: StereoSearch::Estimated,
    },
    LevelRow {
        predictor: lpc(12, Some(2), DEFAULT_TUKEY_ALPHA),
        stereo: StereoSearch::Estimated,
    },
    LevelRow {
        predictor: lpc(12, Some(4), DEFAULT_TUKEY_ALPHA),
        stereo: StereoSearch::Exhaustive,
    },
    LevelRow {
        predictor: lpc(16, Some(4), 0.6),
        stereo: StereoSearch::Exhaustive,
    },
];

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
            for bits in [8, 16, 24] {
                let _ = EncoderLevel::new(level).map(|l| l.plan(bits));
            }
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
