//! Test fixtures: WAV files of any header shape and deterministic test audio,
//! and ([`encoded`]) other formats made from them with Debian's encoders.
//!
//! Only built with the `fixtures` feature; the tests and benches of every
//! crate in the workspace use it so that no fixture is written twice.

pub mod encoded;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the `data` (and RIFF) sizes are declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSize {
    /// The true sizes.
    Exact,
    /// `0xFFFFFFFF` for both, as ffmpeg writes when piping.
    StreamingMax,
    /// `0` for both.
    StreamingZero,
    /// A `data` size larger than the bytes that follow (the file is cut short).
    Overstated(u32),
}

/// Everything a test may vary about a WAV file.
#[derive(Debug, Clone)]
pub struct WavSpec {
    /// Channels, 1..=8 for valid files.
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// Container bits: 8, 16 or 24.
    pub bits: u16,
    /// Write `WAVE_FORMAT_EXTENSIBLE` with this channel mask.
    pub extensible_mask: Option<u32>,
    /// Chunks (id, body) written between `fmt ` and `data`; odd bodies get a pad byte.
    pub chunks_before_data: Vec<([u8; 4], Vec<u8>)>,
    /// Chunks written after `data`.
    pub chunks_after_data: Vec<([u8; 4], Vec<u8>)>,
    /// How sizes are declared.
    pub data_size: DataSize,
}

impl WavSpec {
    /// A plain PCM spec with exact sizes and no extra chunks.
    pub fn pcm(channels: u16, sample_rate: u32, bits: u16) -> Self {
        Self {
            channels,
            sample_rate,
            bits,
            extensible_mask: None,
            chunks_before_data: Vec::new(),
            chunks_after_data: Vec::new(),
            data_size: DataSize::Exact,
        }
    }

    /// Bytes per sample frame.
    pub fn block_align(&self) -> usize {
        usize::from(self.channels) * usize::from(self.bits / 8)
    }
}

/// The `fmt ` chunk body for `spec`.
pub fn fmt_body(spec: &WavSpec) -> Vec<u8> {
    let bytes_per_sample = spec.bits / 8;
    let block_align = spec.channels * bytes_per_sample;
    let mut b = Vec::with_capacity(40);
    let tag: u16 = if spec.extensible_mask.is_some() {
        0xFFFE
    } else {
        1
    };
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&spec.channels.to_le_bytes());
    b.extend_from_slice(&spec.sample_rate.to_le_bytes());
    b.extend_from_slice(&(spec.sample_rate * u32::from(block_align)).to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&spec.bits.to_le_bytes());
    if let Some(mask) = spec.extensible_mask {
        b.extend_from_slice(&22u16.to_le_bytes());
        b.extend_from_slice(&spec.bits.to_le_bytes());
        b.extend_from_slice(&mask.to_le_bytes());
        b.extend_from_slice(&[
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38,
            0x9B, 0x71,
        ]);
    }
    b
}

/// A complete WAV file: header per `spec`, then `data` as raw bytes.
pub fn wav_bytes(spec: &WavSpec, data: &[u8]) -> Vec<u8> {
    wav_with_fmt(spec, &fmt_body(spec), data)
}

/// Like [`wav_bytes`] with a hand-made `fmt ` body (for malformed cases).
pub fn wav_with_fmt(spec: &WavSpec, fmt: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"WAVE");
    push_chunk(&mut body, b"fmt ", fmt);
    for (id, chunk) in &spec.chunks_before_data {
        push_chunk(&mut body, id, chunk);
    }
    let declared = match spec.data_size {
        DataSize::Exact => data.len() as u32,
        DataSize::StreamingMax => u32::MAX,
        DataSize::StreamingZero => 0,
        DataSize::Overstated(n) => n,
    };
    body.extend_from_slice(b"data");
    body.extend_from_slice(&declared.to_le_bytes());
    body.extend_from_slice(data);
    if spec.data_size == DataSize::Exact && data.len() % 2 == 1 {
        body.push(0);
    }
    for (id, chunk) in &spec.chunks_after_data {
        push_chunk(&mut body, id, chunk);
    }
    let riff_size = match spec.data_size {
        DataSize::Exact | DataSize::Overstated(_) => body.len() as u32,
        DataSize::StreamingMax => u32::MAX,
        DataSize::StreamingZero => 0,
    };
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_size.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn push_chunk(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(id);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
}

/// Deterministic test audio: per channel a different mix of a swept tone,
/// noise and full-scale excursions (both extremes appear), so predictors,
/// stereo decorrelation and the verbatim fallback are all exercised.
pub fn test_signal(frames: usize, channels: u16, bits: u16, seed: u64) -> Vec<i32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let max = (1i64 << (bits - 1)) - 1;
    let min = -(1i64 << (bits - 1));
    let mut out = Vec::with_capacity(frames * usize::from(channels));
    for t in 0..frames {
        for ch in 0..channels {
            let phase = t as f64 * (0.01 + 0.003 * f64::from(ch)) * (1.0 + t as f64 / 50_000.0);
            let tone = phase.sin() * 0.6 * max as f64;
            let noise = rng.random_range(-0.05..0.05) * max as f64;
            let mut v = (tone + noise) as i64;
            match (t + usize::from(ch)) % 997 {
                0 => v = max,
                1 => v = min,
                _ => {}
            }
            if ch == 3 {
                // One channel of pure white noise at full scale: incompressible.
                v = rng.random_range(min..=max);
            }
            out.push(v.clamp(min, max) as i32);
        }
    }
    out
}

/// Samples as WAV `data` bytes (8-bit unsigned, else signed little-endian).
pub fn pcm_bytes(samples: &[i32], bits: u16) -> Vec<u8> {
    let width = usize::from(bits / 8);
    let mut out = Vec::with_capacity(samples.len() * width);
    for &s in samples {
        match width {
            1 => out.push((s + 128) as u8),
            _ => out.extend_from_slice(&s.to_le_bytes()[..width]),
        }
    }
    out
}

/// Splits `bytes` into pieces of random length in `1..=max_piece`.
pub fn random_splits(bytes: &[u8], max_piece: usize, seed: u64) -> Vec<&[u8]> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pieces = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // Mostly small pieces, sometimes large ones.
        let cap = if rng.random_bool(0.2) {
            max_piece
        } else {
            max_piece.min(64)
        };
        let n = rng.random_range(1..=cap.max(1)).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
