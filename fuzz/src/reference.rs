//! An independent reading of WAV and raw PCM bytes, to judge the codec by.
//!
//! Whole-buffer and written from the formats' definitions, not from
//! `flacstream_codec`: it walks the RIFF chunks, reads the `fmt ` fields at
//! their offsets, and converts samples with plain arithmetic. It does not
//! validate (the codec decides what is accepted); it says what an accepted
//! input holds. The service's documented leniencies are followed: a streaming
//! header (`data` size `0xFFFFFFFF`, or 0 under a RIFF size of 0 or
//! `0xFFFFFFFF`) runs to the end, data shorter than declared is what arrived,
//! and a missing pad byte after an odd-sized chunk is tolerated (a pad byte is
//! zero; a chunk id never starts with zero).

use md5::{Digest, Md5};

/// Where an input's audio is and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavLayout<'a> {
    /// Channels as declared.
    pub channels: u16,
    /// Sample rate as declared.
    pub sample_rate: u32,
    /// Bytes per sample: the declared bits rounded up to whole bytes.
    pub bytes_per_sample: usize,
    /// Offset of the first audio byte.
    pub data_offset: usize,
    /// The audio bytes present: up to the declared length, or everything
    /// after the header for a streaming header.
    pub data: &'a [u8],
    /// Whether every declared audio byte is present (never for a streaming
    /// header).
    pub data_complete: bool,
    /// Header bytes a bound applies to: the RIFF header, every chunk header
    /// (`data`'s included) and the bodies before `data`; pad bytes excluded.
    pub counted_header_bytes: u64,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from(b[at]) | (u16::from(b[at + 1]) << 8)
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from(u16le(b, at)) | (u32::from(u16le(b, at + 2)) << 16)
}

/// The audio layout of a WAV file, or `None` if no `data` chunk after a
/// `fmt ` chunk can be found in `b`.
pub fn read_wav(b: &[u8]) -> Option<WavLayout<'_>> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return None;
    }
    let riff_size = u32le(b, 4);
    let mut pos = 12usize;
    let mut counted = 12u64;
    // (channels, rate, bits) from the first fmt chunk.
    let mut fmt: Option<(u16, u32, u16)> = None;
    loop {
        let header = b.get(pos..pos + 8)?;
        let size = u32le(header, 4);
        let is_data = &header[..4] == b"data";
        let is_fmt = &header[..4] == b"fmt ";
        pos += 8;
        counted += 8;
        if is_data {
            let (channels, sample_rate, bits) = fmt?;
            let rest = &b[pos..];
            let streaming =
                size == u32::MAX || (size == 0 && (riff_size == 0 || riff_size == u32::MAX));
            let (data, data_complete) = if streaming {
                (rest, false)
            } else {
                let n = rest.len().min(size as usize);
                (&rest[..n], n == size as usize)
            };
            return Some(WavLayout {
                channels,
                sample_rate,
                bytes_per_sample: usize::from(bits).div_ceil(8),
                data_offset: pos,
                data,
                data_complete,
                counted_header_bytes: counted,
            });
        }
        let body = b.get(pos..pos.checked_add(size as usize)?)?;
        if is_fmt && fmt.is_none() {
            if body.len() < 16 {
                return None;
            }
            fmt = Some((u16le(body, 2), u32le(body, 4), u16le(body, 14)));
        }
        pos += body.len();
        counted += u64::from(size);
        if size % 2 == 1 && b.get(pos) == Some(&0) {
            pos += 1;
        }
    }
}

/// The whole sample frames of little-endian PCM, interleaved: 8-bit is
/// unsigned (128 is silence), 16- and 24-bit are two's complement. A trailing
/// partial frame is left out.
pub fn samples(data: &[u8], channels: usize, bytes_per_sample: usize) -> Vec<i32> {
    let align = channels * bytes_per_sample;
    let whole = data.len() / align * align;
    data[..whole]
        .chunks_exact(bytes_per_sample)
        .map(|c| match c {
            [u] => i32::from(*u) - 128,
            [lo, hi] => {
                let u = i32::from(*lo) | (i32::from(*hi) << 8);
                if u >= 1 << 15 {
                    u - (1 << 16)
                } else {
                    u
                }
            }
            [lo, mid, hi] => {
                let u = i32::from(*lo) | (i32::from(*mid) << 8) | (i32::from(*hi) << 16);
                if u >= 1 << 23 {
                    u - (1 << 24)
                } else {
                    u
                }
            }
            _ => unreachable!("1 to 3 bytes per sample"),
        })
        .collect()
}

/// FLAC's STREAMINFO MD5: over the samples as signed little-endian integers
/// of `bytes_per_sample` bytes, interleaved.
pub fn flac_md5(samples: &[i32], bytes_per_sample: usize) -> [u8; 16] {
    let bytes: Vec<u8> = samples
        .iter()
        .flat_map(|s| s.to_le_bytes().into_iter().take(bytes_per_sample))
        .collect();
    Md5::digest(&bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_width() {
        assert_eq!(samples(&[0, 128, 255], 1, 1), [-128, 0, 127]);
        assert_eq!(
            samples(&[0xFF, 0x7F, 0x00, 0x80, 1], 2, 1),
            [127, -1, -128, 0]
        );
        assert_eq!(samples(&[0x00, 0x80, 0xFF, 0x7F, 9], 1, 2), [-32768, 32767]);
        assert_eq!(
            samples(&[0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x80, 0xFF, 0xFF], 2, 3),
            [-1, -8_388_608]
        );
    }

    #[test]
    fn finds_data_after_an_odd_chunk_with_or_without_its_pad() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        wav.extend_from_slice(&[1, 0, 1, 0, 0x44, 0xAC, 0, 0, 0, 0, 0, 0, 2, 0, 16, 0]);
        for pad in [&[0u8][..], &[]] {
            let mut w = wav.clone();
            w.extend_from_slice(b"odd \x01\0\0\0x");
            w.extend_from_slice(pad);
            w.extend_from_slice(b"data\x02\0\0\0\x01\x02\x03");
            let r = read_wav(&w).unwrap();
            assert_eq!(
                (r.channels, r.sample_rate, r.bytes_per_sample),
                (1, 44_100, 2)
            );
            assert_eq!((r.data, r.data_complete), (&[1u8, 2][..], true));
            assert_eq!(r.counted_header_bytes, 12 + 24 + 9 + 8);
        }
    }
}
