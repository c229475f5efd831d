//! The `segment` check: the header of a durable segment in object storage
//! (`flacstream_actors::segment`) parsed from any bytes, as a replica that
//! takes a session over reads whatever the store holds.
//!
//! It must never panic; a header it accepts must lie within the bytes and
//! within its bound, and must write back to exactly the bytes it was read
//! from; the MD5 state it carries must restore or be refused, never panic;
//! and a segment object's name must parse back only from its own form.

use flacstream_actors::segment::{parse_segment_name, segment_name, SegmentHeader, MAX_HEADER_BYTES};
use flacstream_actors::stream_digest::StreamDigest;

/// Parses `data` as a segment; see the module docs for what must hold.
pub fn check(data: &[u8]) {
    if let Ok((header, len)) = SegmentHeader::parse(data) {
        assert!(len <= data.len(), "header length {len} past the {} bytes", data.len());
        assert!(len <= MAX_HEADER_BYTES, "header length {len} over the bound");
        assert_eq!(header.to_bytes(), &data[..len], "a header must write back as read");
        assert!(header.end_sample() >= header.first_sample);
        if let Some(digest) = StreamDigest::restore(&header.md5_state) {
            let _ = digest.digest();
        }
    }
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(seq) = parse_segment_name(name) {
            assert_eq!(segment_name(seq), name, "a name must parse only from its own form");
        }
    }
}
