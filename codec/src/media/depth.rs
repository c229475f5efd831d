//! The integer width decoded audio is stored at, and the conversion to it.
//!
//! - Integer sources (PCM, FLAC, ALAC, G.711) keep their samples exactly.
//!   Symphonia hands them over left-justified (an `i32` holding a 16-bit
//!   sample has it in the top 16 bits), so the width is the source's bits
//!   per sample rounded up to 8, 16 or 24, and the conversion is a shift.
//!   A 20-bit source becomes 24-bit with four zero bits below each sample,
//!   as a 20-bit WAV stores it. Any non-zero bit the shift would drop is an
//!   error, never a silent loss.
//! - Lossy sources (MP3, AAC, Vorbis, Opus) decode to floating point; they
//!   are stored at [`LOSSY_BYTES_PER_SAMPLE`] bytes, rounded to nearest and
//!   clamped to full scale.

use super::MediaError;

/// Bytes per sample for lossy sources: 24 bits. The decoders' own output is
/// float; at 24 bits the rounding (−144 dBFS) is far below any codec's noise
/// and below the differences between two decoders, so the FLAC holds the
/// decoded PCM as closely as FLAC can. 16 bits (−96 dBFS) would make
/// smaller files but add audible-in-principle rounding to quiet passages.
pub const LOSSY_BYTES_PER_SAMPLE: usize = 3;

/// Widest integer samples kept, in bits (the encoder's limit).
pub const MAX_BITS_PER_SAMPLE: u32 = 24;

/// The stored width in bytes for an integer source of `bits` per sample.
pub fn integer_bytes(bits: u32) -> Result<usize, MediaError> {
    match bits {
        1..=8 => Ok(1),
        9..=16 => Ok(2),
        17..=24 => Ok(3),
        _ => Err(MediaError::UnsupportedBitDepth(bits)),
    }
}

/// Appends left-justified `i32` samples as little-endian PCM of `bytes`
/// per sample (8-bit as unsigned, as WAV stores it). Errors if a sample has
/// bits below the kept width (the source was wider than it said).
pub fn push_integer(samples: &[i32], bytes: usize, out: &mut Vec<u8>) -> Result<(), MediaError> {
    let shift = 32 - 8 * bytes as u32;
    let dropped = (1i32 << shift).wrapping_sub(1);
    if samples.iter().any(|s| s & dropped != 0) {
        return Err(MediaError::Corrupt(
            "samples are wider than the bits per sample the file declares".into(),
        ));
    }
    out.reserve(samples.len() * bytes);
    for s in samples {
        push_sample(s >> shift, bytes, out);
    }
    Ok(())
}

/// Appends float samples (full scale ±1.0) as little-endian PCM of `bytes`
/// per sample, rounded to nearest and clamped.
pub fn push_float(samples: &[f64], bytes: usize, out: &mut Vec<u8>) {
    let scale = f64::from(1u32 << (8 * bytes as u32 - 1));
    let (lo, hi) = (-scale, scale - 1.0);
    out.reserve(samples.len() * bytes);
    for s in samples {
        let v = (s * scale).round();
        // NaN (never from a sane decoder) becomes silence.
        let v = if v.is_nan() { 0.0 } else { v.clamp(lo, hi) };
        push_sample(v as i32, bytes, out);
    }
}

fn push_sample(v: i32, bytes: usize, out: &mut Vec<u8>) {
    match bytes {
        1 => out.push((v as i8 as u8) ^ 0x80),
        2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
        _ => out.extend_from_slice(&v.to_le_bytes()[..3]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_samples_keep_their_values_at_each_width() {
        let mut out = Vec::new();
        push_integer(&[-128 << 24, 127 << 24, 0], 1, &mut out).unwrap();
        assert_eq!(out, [0x00, 0xFF, 0x80]);
        out.clear();
        push_integer(&[-32768 << 16, 12345 << 16], 2, &mut out).unwrap();
        assert_eq!(out, [0x00, 0x80, 0x39, 0x30]);
        out.clear();
        push_integer(&[-8_388_608 << 8, 0x123456 << 8], 3, &mut out).unwrap();
        assert_eq!(out, [0x00, 0x00, 0x80, 0x56, 0x34, 0x12]);
    }

    #[test]
    fn a_sample_wider_than_declared_is_an_error_not_a_loss() {
        let mut out = Vec::new();
        assert!(push_integer(&[(5 << 16) | 1], 2, &mut out).is_err());
    }

    #[test]
    fn floats_round_to_nearest_and_clamp() {
        let mut out = Vec::new();
        push_float(
            &[1.0, -1.0, 0.5, -2.0, f64::NAN, 1.5 / 8_388_608.0],
            3,
            &mut out,
        );
        let v: Vec<i32> = out
            .chunks(3)
            .map(|c| i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8)
            .collect();
        assert_eq!(v, [8_388_607, -8_388_608, 4_194_304, -8_388_608, 0, 2]);
    }

    #[test]
    fn widths() {
        assert_eq!(integer_bytes(8).unwrap(), 1);
        assert_eq!(integer_bytes(12).unwrap(), 2);
        assert_eq!(integer_bytes(20).unwrap(), 3);
        assert!(integer_bytes(32).is_err());
        assert!(integer_bytes(0).is_err());
    }
}
