//! Little-endian integer PCM bytes → interleaved `i32` samples, split anywhere.
//!
//! [`PcmDecoder`] carries a partial sample frame (at most one block align minus
//! one byte) across calls, so a message boundary may fall inside a sample. It
//! also keeps the running MD5 of the decoded audio exactly as FLAC's STREAMINFO
//! defines it (signed little-endian samples, container width), hashing whole
//! frames only, so a trailing partial frame never reaches the digest.

use flacenc::source::{Context, Fill};

/// Widest sample frame in bytes: 8 channels of 24-bit samples.
pub const MAX_BLOCK_ALIGN: usize = 8 * 3;

/// Sample layout of a PCM byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmLayout {
    /// Interleaved channels, 1..=8.
    pub channels: usize,
    /// Bytes per sample: 1 (unsigned), 2 or 3 (signed little-endian).
    pub bytes_per_sample: usize,
}

impl PcmLayout {
    /// Bytes per sample frame.
    pub fn block_align(&self) -> usize {
        self.channels * self.bytes_per_sample
    }

    /// Bits per sample as FLAC stores them.
    pub fn bits_per_sample(&self) -> usize {
        self.bytes_per_sample * 8
    }
}

/// Streaming PCM decoder with a running FLAC MD5; see the module docs.
pub struct PcmDecoder {
    layout: PcmLayout,
    carry: [u8; MAX_BLOCK_ALIGN],
    carry_len: usize,
    md5: Context,
    /// Reused buffer for 8-bit audio, whose MD5 is over signed bytes.
    signed_scratch: Vec<u8>,
}

impl PcmDecoder {
    /// A decoder for `layout`. Panics if the layout is outside FLAC's range,
    /// which [`crate::wav`] and the raw-PCM parameters already exclude.
    pub fn new(layout: PcmLayout) -> Self {
        assert!((1..=8).contains(&layout.channels), "1..=8 channels");
        assert!((1..=3).contains(&layout.bytes_per_sample), "1..=3 bytes");
        Self {
            layout,
            carry: [0; MAX_BLOCK_ALIGN],
            carry_len: 0,
            md5: Context::new(layout.bits_per_sample(), layout.channels),
            signed_scratch: Vec::new(),
        }
    }

    /// The layout being decoded.
    pub fn layout(&self) -> PcmLayout {
        self.layout
    }

    /// Bytes of an incomplete sample frame held back for the next call.
    pub fn pending_bytes(&self) -> usize {
        self.carry_len
    }

    /// Forgets a held partial sample frame (its producer went away and will
    /// resend from the last whole frame); returns the bytes dropped.
    pub fn discard_partial(&mut self) -> usize {
        std::mem::take(&mut self.carry_len)
    }

    /// Sample frames (per channel) decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.md5.total_samples() as u64
    }

    /// MD5 of every sample decoded so far, as FLAC's STREAMINFO wants it.
    pub fn md5_digest(&self) -> [u8; 16] {
        self.md5.md5_digest()
    }

    /// Decodes whole sample frames from the front of `input` into `out`,
    /// at most `out.len() / channels` frames, and advances `input` past the
    /// bytes used (including bytes moved into the partial-frame carry).
    /// Returns the number of samples (not frames) written to `out`.
    pub fn decode(&mut self, input: &mut &[u8], out: &mut [i32]) -> usize {
        let align = self.layout.block_align();
        let max_frames = out.len() / self.layout.channels;
        let mut frames = 0;

        if self.carry_len > 0 {
            if max_frames == 0 {
                return 0;
            }
            let n = (align - self.carry_len).min(input.len());
            self.carry[self.carry_len..self.carry_len + n].copy_from_slice(&input[..n]);
            self.carry_len += n;
            *input = &input[n..];
            if self.carry_len < align {
                return 0;
            }
            let carry = self.carry;
            self.convert(&carry[..align], out);
            self.carry_len = 0;
            frames = 1;
        }

        let whole = (input.len() / align).min(max_frames - frames);
        let bytes = whole * align;
        let start = frames * self.layout.channels;
        self.convert(&input[..bytes], &mut out[start..]);
        *input = &input[bytes..];
        frames += whole;

        if frames < max_frames && !input.is_empty() {
            // Fewer than one frame left: keep it for the next call.
            self.carry[..input.len()].copy_from_slice(input);
            self.carry_len = input.len();
            *input = &[];
        }
        frames * self.layout.channels
    }

    /// Converts whole frames of `bytes` into `out` and hashes them.
    fn convert(&mut self, bytes: &[u8], out: &mut [i32]) {
        if bytes.is_empty() {
            return;
        }
        let bps = self.layout.bytes_per_sample;
        match bps {
            1 => {
                self.signed_scratch.clear();
                self.signed_scratch.extend(bytes.iter().map(|b| b ^ 0x80));
                for (o, b) in out.iter_mut().zip(&self.signed_scratch) {
                    *o = i32::from(*b as i8);
                }
                // fill_le_bytes only hashes and counts; it cannot fail.
                let _ = self.md5.fill_le_bytes(&self.signed_scratch, bps);
            }
            2 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = i32::from(i16::from_le_bytes([c[0], c[1]]));
                }
                let _ = self.md5.fill_le_bytes(bytes, bps);
            }
            _ => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(3)) {
                    *o = i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8;
                }
                let _ = self.md5.fill_le_bytes(bytes, bps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(layout: PcmLayout, bytes: &[u8], split: usize) -> (Vec<i32>, usize) {
        let mut dec = PcmDecoder::new(layout);
        let mut out = Vec::new();
        let mut buf = vec![0i32; 7 * layout.channels];
        for piece in bytes.chunks(split.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = dec.decode(&mut rest, &mut buf);
                out.extend_from_slice(&buf[..n]);
            }
        }
        (out, dec.pending_bytes())
    }

    #[test]
    fn decodes_every_width_across_any_split() {
        let samples16: Vec<i16> = vec![0, 1, -1, i16::MAX, i16::MIN, 1234, -4321, 7];
        let bytes: Vec<u8> = samples16.iter().flat_map(|s| s.to_le_bytes()).collect();
        let layout = PcmLayout {
            channels: 2,
            bytes_per_sample: 2,
        };
        for split in 1..=bytes.len() {
            let (out, pending) = decode_all(layout, &bytes, split);
            assert_eq!(
                out,
                samples16.iter().map(|&s| i32::from(s)).collect::<Vec<_>>()
            );
            assert_eq!(pending, 0);
        }

        let samples24 = [0i32, 1, -1, 8_388_607, -8_388_608, 65_536, -65_537];
        let bytes: Vec<u8> = samples24
            .iter()
            .flat_map(|s| s.to_le_bytes()[..3].to_vec())
            .collect();
        let layout = PcmLayout {
            channels: 1,
            bytes_per_sample: 3,
        };
        for split in 1..=bytes.len() {
            assert_eq!(decode_all(layout, &bytes, split).0, samples24);
        }

        let bytes8 = [0u8, 128, 255, 127, 1];
        let layout = PcmLayout {
            channels: 1,
            bytes_per_sample: 1,
        };
        assert_eq!(decode_all(layout, &bytes8, 2).0, [-128, 0, 127, -1, -127]);
    }

    #[test]
    fn keeps_a_trailing_partial_frame_out_of_output_and_md5() {
        let layout = PcmLayout {
            channels: 2,
            bytes_per_sample: 3,
        };
        let whole: Vec<u8> = (0u8..12).collect();
        let mut with_tail = whole.clone();
        with_tail.extend_from_slice(&[9, 9, 9, 9]);
        let (a, pa) = decode_all(layout, &whole, 5);
        let (b, pb) = decode_all(layout, &with_tail, 5);
        assert_eq!(a, b);
        assert_eq!((pa, pb), (0, 4));

        let mut da = PcmDecoder::new(layout);
        let mut db = PcmDecoder::new(layout);
        let mut out = [0i32; 64];
        da.decode(&mut whole.as_slice(), &mut out);
        db.decode(&mut with_tail.as_slice(), &mut out);
        assert_eq!(da.md5_digest(), db.md5_digest());
        assert_eq!(da.frames_decoded(), 2);
    }

    #[test]
    fn never_writes_more_than_out_holds() {
        let layout = PcmLayout {
            channels: 2,
            bytes_per_sample: 2,
        };
        let bytes = vec![1u8; 40];
        let mut dec = PcmDecoder::new(layout);
        let mut input = bytes.as_slice();
        let mut out = [0i32; 5];
        assert_eq!(dec.decode(&mut input, &mut out), 4);
        assert_eq!(input.len(), 32);
        let mut none: [i32; 1] = [0];
        assert_eq!(dec.decode(&mut input, &mut none), 0);
        assert_eq!(input.len(), 32);
    }
}
