//! A durable segment of a recording in object storage: a run of whole FLAC
//! frames behind a small self-describing header.
//!
//! In scaled mode a live session's frames reach shared storage as segments,
//! one object each, written create-only under consecutive numbers
//! (`live/{session}/{seq:010}.seg`). A segment's header says where it starts
//! (frame and sample), how much it holds, the stream's format, the frame
//! size bounds so far, and the STREAMINFO MD5 state after its last sample
//! ([`crate::stream_digest`]). So the last segment alone tells a replica
//! that takes the session over where the durable stream ends and how to go
//! on, and the segments alone make the final FLAC, with no catalog read.
//!
//! Layout (little-endian): magic `FSSEG\x01\0\0`, first frame `u32`, frames
//! `u32`, first sample `u64`, samples `u64`, sample rate `u32`, channels
//! `u8`, bytes per sample `u8`, block size `u32`, min and max frame bytes so
//! far `u32` each, FLAC frame bytes so far `u64`, the MD5 state's length
//! `u16` and the state; then the frames.

use flacstream_codec::flac::StreamFormat;
use flacstream_codec::pcm::PcmLayout;

/// The first bytes of every segment (format version 1).
const MAGIC: [u8; 8] = *b"FSSEG\x01\0\0";

/// Longest MD5 state a header may carry, in bytes (md-5's is 88): bounds
/// what a corrupt header can make a reader take.
const MAX_STATE_BYTES: usize = 256;

/// Bytes of the fixed part of the header, before the MD5 state.
const FIXED_BYTES: usize = 8 + 4 + 4 + 8 + 8 + 4 + 1 + 1 + 4 + 4 + 4 + 8 + 2;

/// The most header bytes a reader must fetch to parse any header.
pub const MAX_HEADER_BYTES: usize = FIXED_BYTES + MAX_STATE_BYTES;

/// What a segment's header says; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// FLAC frame number of its first frame.
    pub first_frame: u32,
    /// Whole frames it holds.
    pub frames: u32,
    /// Sample (per channel) its first frame starts at.
    pub first_sample: u64,
    /// Samples per channel it holds.
    pub samples: u64,
    /// The stream's format.
    pub format: StreamFormat,
    /// Smallest frame so far in the stream, this segment included.
    pub min_frame_bytes: u32,
    /// Largest frame so far.
    pub max_frame_bytes: u32,
    /// FLAC frame bytes so far (the stream header not counted).
    pub frame_bytes: u64,
    /// The MD5 state after this segment's last sample.
    pub md5_state: Vec<u8>,
}

/// Why bytes are not a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Too short, wrong magic, or fields out of range.
    #[error("not a flacstream segment: {0}")]
    Malformed(&'static str),
}

impl SegmentHeader {
    /// Sample just past this segment: where the next one starts.
    pub fn end_sample(&self) -> u64 {
        self.first_sample + self.samples
    }

    /// Frame number just past this segment.
    pub fn end_frame(&self) -> u32 {
        self.first_frame + self.frames
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_BYTES + self.md5_state.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.first_frame.to_le_bytes());
        out.extend_from_slice(&self.frames.to_le_bytes());
        out.extend_from_slice(&self.first_sample.to_le_bytes());
        out.extend_from_slice(&self.samples.to_le_bytes());
        out.extend_from_slice(&self.format.sample_rate.to_le_bytes());
        out.push(self.format.layout.channels as u8);
        out.push(self.format.layout.bytes_per_sample as u8);
        out.extend_from_slice(&(self.format.block_size as u32).to_le_bytes());
        out.extend_from_slice(&self.min_frame_bytes.to_le_bytes());
        out.extend_from_slice(&self.max_frame_bytes.to_le_bytes());
        out.extend_from_slice(&self.frame_bytes.to_le_bytes());
        out.extend_from_slice(&(self.md5_state.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.md5_state);
        out
    }

    /// Parses a header from the front of `bytes`; returns it and its length
    /// (where the frames start).
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), SegmentError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(SegmentError::Malformed("wrong magic"));
        }
        let first_frame = r.u32()?;
        let frames = r.u32()?;
        let first_sample = r.u64()?;
        let samples = r.u64()?;
        let sample_rate = r.u32()?;
        let channels = usize::from(r.u8()?);
        let bytes_per_sample = usize::from(r.u8()?);
        let block_size = r.u32()? as usize;
        let min_frame_bytes = r.u32()?;
        let max_frame_bytes = r.u32()?;
        let frame_bytes = r.u64()?;
        let state_len = usize::from(r.u16()?);
        if state_len > MAX_STATE_BYTES {
            return Err(SegmentError::Malformed("MD5 state too long"));
        }
        let md5_state = r.take(state_len)?.to_vec();
        if !(1..=8).contains(&channels) || !(1..=3).contains(&bytes_per_sample) {
            return Err(SegmentError::Malformed("format out of range"));
        }
        if sample_rate == 0 || block_size == 0 || frames == 0 || samples == 0 {
            return Err(SegmentError::Malformed("empty segment"));
        }
        // Where it ends must be a position, and its frames must hold its
        // samples (found by the fuzzer: an end past 2^64 overflowed).
        if first_sample.checked_add(samples).is_none()
            || first_frame.checked_add(frames).is_none()
            || samples > u64::from(frames) * block_size as u64
        {
            return Err(SegmentError::Malformed("position out of range"));
        }
        let header = Self {
            first_frame,
            frames,
            first_sample,
            samples,
            format: StreamFormat {
                sample_rate,
                layout: PcmLayout {
                    channels,
                    bytes_per_sample,
                },
                block_size,
            },
            min_frame_bytes,
            max_frame_bytes,
            frame_bytes,
            md5_state,
        };
        Ok((header, r.pos))
    }
}

/// The object name of segment `seq` under a session's live prefix.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:010}.seg")
}

/// The sequence number in a segment's object name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SegmentError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(SegmentError::Malformed("truncated header"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, SegmentError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SegmentError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, SegmentError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, SegmentError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> SegmentHeader {
        SegmentHeader {
            first_frame: 7,
            frames: 3,
            first_sample: 7 * 4096,
            samples: 3 * 4096,
            format: StreamFormat {
                sample_rate: 44_100,
                layout: PcmLayout {
                    channels: 2,
                    bytes_per_sample: 2,
                },
                block_size: 4096,
            },
            min_frame_bytes: 100,
            max_frame_bytes: 9_000,
            frame_bytes: 123_456,
            md5_state: vec![9; 88],
        }
    }

    #[test]
    fn a_header_reads_back_as_written() {
        let h = header();
        let mut bytes = h.to_bytes();
        let len = bytes.len();
        bytes.extend_from_slice(b"frames");
        assert_eq!(SegmentHeader::parse(&bytes).unwrap(), (h.clone(), len));
        assert_eq!(h.end_sample(), 10 * 4096);
        assert_eq!(h.end_frame(), 10);
        assert!(len <= MAX_HEADER_BYTES);
    }

    #[test]
    fn every_truncation_and_bad_field_is_refused_without_panic() {
        let bytes = header().to_bytes();
        for cut in 0..bytes.len() {
            assert!(SegmentHeader::parse(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(SegmentHeader::parse(&bad).is_err());
        let mut bad = bytes.clone();
        bad[FIXED_BYTES - 2..FIXED_BYTES].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(SegmentHeader::parse(&bad).is_err());
        let mut h = header();
        h.format.layout.channels = 9;
        assert!(SegmentHeader::parse(&h.to_bytes()).is_err());
        let mut h = header();
        h.samples = u64::MAX - 1;
        assert!(
            SegmentHeader::parse(&h.to_bytes()).is_err(),
            "an end past 2^64"
        );
        let mut h = header();
        h.first_frame = u32::MAX;
        assert!(
            SegmentHeader::parse(&h.to_bytes()).is_err(),
            "a frame past 2^32"
        );
        let mut h = header();
        h.samples = 3 * 4096 + 1;
        assert!(
            SegmentHeader::parse(&h.to_bytes()).is_err(),
            "more samples than frames hold"
        );
    }

    #[test]
    fn names_sort_in_sequence_and_parse_back() {
        assert_eq!(segment_name(42), "0000000042.seg");
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name(&segment_name(123)), Some(123));
        assert_eq!(parse_segment_name("12.seg"), None);
        assert_eq!(parse_segment_name("000000001x.seg"), None);
    }
}
