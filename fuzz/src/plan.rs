//! The fixed-size prefix every fuzz input starts with.
//!
//! A plain byte prefix rather than `arbitrary`: the seed generator writes real
//! WAV files behind a few readable bytes, and a crash file can be read by eye
//! (prefix, then the bytes a client would send).
//!
//! `wav_header` inputs: [`Splits`] (5 bytes), then one byte for the header
//! bound ([`max_header_bytes`]), then the bytes.
//!
//! `ingest` inputs: [`Splits`] (5 bytes), then [`IngestPlan`]'s 9 bytes (input
//! kind, raw sample rate, level, block size, header bound, resume point),
//! then the bytes.

use flacstream_codec::flac::{EncoderLevel, MAX_LEVEL};
use flacstream_codec::wav::{frame_header_can_state, DEFAULT_MAX_HEADER_BYTES};

/// How the payload is cut into messages: a mode and a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splits {
    /// Piece sizes; see [`SplitMode`].
    pub mode: SplitMode,
    /// Seed of the piece sizes when they are random.
    pub seed: u32,
}

/// Piece sizes a [`Splits`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitMode {
    /// One message holding everything.
    Whole,
    /// One byte per message: every header field and sample is split.
    OneByte,
    /// Random sizes in `1..=max` bytes.
    Random {
        /// Largest piece, inclusive.
        max: usize,
    },
}

/// The largest random pieces, by mode byte (modulo the table's length, after
/// the two fixed modes): splits inside a sample, inside a chunk header, a
/// typical browser message, and large ones.
const RANDOM_MAX_PIECE: [usize; 4] = [3, 16, 256, 8192];

/// Modes a mode byte selects, in order: whole, one byte, then each
/// [`RANDOM_MAX_PIECE`].
const SPLIT_MODES: u8 = 2 + RANDOM_MAX_PIECE.len() as u8;

impl Splits {
    /// Bytes of the prefix.
    pub const BYTES: usize = 5;

    /// Reads the prefix.
    pub fn from_bytes(b: [u8; Self::BYTES]) -> Self {
        let mode = match b[0] % SPLIT_MODES {
            0 => SplitMode::Whole,
            1 => SplitMode::OneByte,
            m => SplitMode::Random {
                max: RANDOM_MAX_PIECE[usize::from(m - 2)],
            },
        };
        Self {
            mode,
            seed: u32::from_le_bytes([b[1], b[2], b[3], b[4]]),
        }
    }

    /// Writes the prefix [`Splits::from_bytes`] reads back.
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mode = match self.mode {
            SplitMode::Whole => 0,
            SplitMode::OneByte => 1,
            SplitMode::Random { max } => {
                let i = RANDOM_MAX_PIECE.iter().position(|&m| m == max);
                2 + i.expect("a piece size from RANDOM_MAX_PIECE") as u8
            }
        };
        let s = self.seed.to_le_bytes();
        [mode, s[0], s[1], s[2], s[3]]
    }

    /// `data` cut into pieces, none empty (an empty input gives none).
    pub fn pieces<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut rng = SplitMix(u64::from(self.seed));
        let mut pieces = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = match self.mode {
                SplitMode::Whole => rest.len(),
                SplitMode::OneByte => 1,
                SplitMode::Random { max } => 1 + (rng.next() % max as u64) as usize,
            };
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }
}

/// splitmix64: a tiny, well-mixed generator, so any seed gives usable sizes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The header bound a prefix byte selects: 0 is the service's default
/// (16 MiB); otherwise 4 bytes per unit (4..=1020), small enough that real
/// headers cross it.
pub fn max_header_bytes(b: u8) -> u64 {
    match b {
        0 => DEFAULT_MAX_HEADER_BYTES,
        n => u64::from(n) * 4,
    }
}

/// What the `ingest` target streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A WAV file, header first (`/stream`, `format=wav`).
    Wav,
    /// Headerless little-endian PCM (`format=u8|s16le|s24le`).
    Raw {
        /// 1..=8.
        channels: usize,
        /// 1 (unsigned), 2 or 3.
        bytes_per_sample: usize,
        /// A rate a FLAC frame header can state.
        sample_rate: u32,
    },
}

/// The block sizes a block byte of 201..=255 selects (cyclically).
const LISTED_BLOCK_SIZES: [usize; 5] = [64, 256, 1024, 4096, 16_384];

/// Block byte values 1..=[`SMALL_BLOCK_CODES`] select blocks of 32..=231
/// samples: short enough that small inputs span several frames.
const SMALL_BLOCK_CODES: u8 = 200;

/// An `ingest` input's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestPlan {
    /// How the payload is cut into messages.
    pub splits: Splits,
    /// What the payload is.
    pub input: Input,
    /// Compression level.
    pub level: EncoderLevel,
    /// `block_size`; `None` is the service's default for the rate.
    pub block_size: Option<usize>,
    /// Header bound (WAV only).
    pub max_header_bytes: u64,
    /// The producer goes away after this message (counted modulo the
    /// messages) and a new one resends from where the session stands, as a
    /// recorded session's resuming producer does; `None`: no resume.
    pub resume_after: Option<u8>,
}

impl IngestPlan {
    /// Bytes of the whole prefix, [`Splits`] included.
    pub const BYTES: usize = Splits::BYTES + 9;

    /// Reads the prefix and returns the plan and the payload; `None` when the
    /// input is too short or names raw parameters the service refuses before
    /// a session exists (a rate no frame header can state).
    pub fn parse(data: &[u8]) -> Option<(Self, &[u8])> {
        if data.len() < Self::BYTES {
            return None;
        }
        let (prefix, payload) = data.split_at(Self::BYTES);
        let mut splits = [0; Splits::BYTES];
        splits.copy_from_slice(&prefix[..Splits::BYTES]);
        let p = &prefix[Splits::BYTES..];
        let kind = p[0];
        let input = if kind & 1 == 0 {
            Input::Wav
        } else {
            let sample_rate = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
            if !frame_header_can_state(sample_rate) {
                return None;
            }
            Input::Raw {
                channels: 1 + usize::from((kind >> 3) & 7),
                bytes_per_sample: 1 + usize::from((kind >> 1) & 3) % 3,
                sample_rate,
            }
        };
        let level = EncoderLevel::new(p[5] % (MAX_LEVEL + 1))?;
        let block_size = match p[6] {
            0 => None,
            b @ 1..=SMALL_BLOCK_CODES => Some(31 + usize::from(b)),
            b => Some(LISTED_BLOCK_SIZES[usize::from(b - SMALL_BLOCK_CODES - 1) % 5]),
        };
        let plan = Self {
            splits: Splits::from_bytes(splits),
            input,
            level,
            block_size,
            max_header_bytes: max_header_bytes(p[7]),
            resume_after: p[8].checked_sub(1),
        };
        Some((plan, payload))
    }

    /// The prefix for `plan`; `header_byte` is the byte behind
    /// `max_header_bytes` (see [`max_header_bytes`]). Panics on a block size
    /// the prefix cannot name.
    pub fn to_bytes(&self, header_byte: u8) -> Vec<u8> {
        let mut out = self.splits.to_bytes().to_vec();
        let (kind, rate) = match self.input {
            Input::Wav => (0, 0),
            Input::Raw {
                channels,
                bytes_per_sample,
                sample_rate,
            } => (
                1 | ((bytes_per_sample as u8 - 1) << 1) | ((channels as u8 - 1) << 3),
                sample_rate,
            ),
        };
        out.push(kind);
        out.extend_from_slice(&rate.to_le_bytes());
        out.push(self.level.get());
        out.push(match self.block_size {
            None => 0,
            Some(b @ 32..=231) => (b - 31) as u8,
            Some(b) => {
                let i = LISTED_BLOCK_SIZES.iter().position(|&l| l == b);
                SMALL_BLOCK_CODES + 1 + i.expect("a listed block size") as u8
            }
        });
        out.push(header_byte);
        out.push(self.resume_after.map_or(0, |r| r.saturating_add(1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_input_in_order() {
        let data: Vec<u8> = (0..=255).collect();
        for mode in 0..SPLIT_MODES {
            let splits = Splits::from_bytes([mode, 7, 0, 0, 1]);
            assert_eq!(Splits::from_bytes(splits.to_bytes()), splits);
            let pieces = splits.pieces(&data);
            assert!(pieces.iter().all(|p| !p.is_empty()));
            assert_eq!(pieces.concat(), data);
        }
    }

    #[test]
    fn an_ingest_prefix_reads_back() {
        let plan = IngestPlan {
            splits: Splits::from_bytes([3, 1, 2, 3, 4]),
            input: Input::Raw {
                channels: 6,
                bytes_per_sample: 3,
                sample_rate: 655_350,
            },
            level: EncoderLevel::new(8).unwrap(),
            block_size: Some(16_384),
            max_header_bytes: max_header_bytes(9),
            resume_after: Some(3),
        };
        let bytes = [plan.to_bytes(9), b"xyz".to_vec()].concat();
        assert_eq!(IngestPlan::parse(&bytes), Some((plan, &b"xyz"[..])));
    }
}
