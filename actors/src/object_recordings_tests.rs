//! Segments in an in-memory object store: the composed FLAC decodes (claxon)
//! to exactly the samples written, with the MD5 the segments carried; a
//! second writer of a segment is refused; a gap is found, not papered over.

use super::*;
use crate::segment::SegmentHeader;
use crate::stream_digest::StreamDigest;
use flacstream_codec::fixture::test_signal;
use flacstream_codec::flac::{EncoderLevel, FrameEncoder, FrameStats, StreamFormat};
use flacstream_codec::pcm::PcmLayout;
use md5::Digest as _;
use object_store::memory::InMemory;

const BLOCK: usize = 1024;

fn format() -> StreamFormat {
    StreamFormat {
        sample_rate: 16_000,
        layout: PcmLayout {
            channels: 2,
            bytes_per_sample: 2,
        },
        block_size: BLOCK,
    }
}

/// Encodes `blocks` blocks and cuts them into segments of `per_segment`
/// frames; returns the samples and the segments.
fn segments(blocks: usize, per_segment: usize) -> (Vec<i32>, Vec<(SegmentHeader, Bytes)>) {
    let samples = test_signal(BLOCK * blocks, 2, 16, 7);
    let mut encoder = FrameEncoder::new();
    let mut digest = StreamDigest::new();
    let mut stats = FrameStats::default();
    let mut out = Vec::new();
    let mut frame_bytes = 0u64;
    for (seg, chunk) in samples.chunks(BLOCK * 2 * per_segment).enumerate() {
        let mut bytes = Vec::new();
        let first_frame = (seg * per_segment) as u32;
        let mut frames = 0u32;
        for (i, block) in chunk.chunks(BLOCK * 2).enumerate() {
            let frame = encoder
                .encode(
                    &format(),
                    EncoderLevel::default(),
                    first_frame + i as u32,
                    block,
                )
                .unwrap();
            digest.update(block, 2);
            stats.record(&frame);
            frame_bytes += frame.bytes.len() as u64;
            bytes.extend_from_slice(&frame.bytes);
            frames += 1;
        }
        let header = SegmentHeader {
            first_frame,
            frames,
            first_sample: u64::from(first_frame) * BLOCK as u64,
            samples: (chunk.len() / 2) as u64,
            format: format(),
            min_frame_bytes: stats.min_frame_bytes,
            max_frame_bytes: stats.max_frame_bytes,
            frame_bytes,
            md5_state: digest.state(),
        };
        out.push((header, Bytes::from(bytes)));
    }
    (samples, out)
}

fn recordings() -> ObjectRecordings {
    ObjectRecordings::new(Arc::new(InMemory::new()), Path::from("pre/fix"))
}

#[actix_rt::test]
async fn composed_segments_decode_exactly_with_their_md5() {
    let r = recordings();
    let id = Uuid::new_v4();
    let (samples, segs) = segments(23, 4);
    for (seq, (h, frames)) in segs.iter().enumerate() {
        r.put_segment(id, seq as u64, h, frames.clone())
            .await
            .unwrap();
    }
    let tail = r.tail(id).await.unwrap();
    assert_eq!(tail.next_seq, segs.len() as u64);
    assert_eq!(tail.samples(), 23 * BLOCK as u64);
    let composed = r.compose(id, None).await.unwrap().unwrap();
    let (size, body) = r.read(&composed.key).await.unwrap().unwrap();
    let bytes: Vec<u8> = body.try_collect::<Vec<Bytes>>().await.unwrap().concat();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(size, composed.bytes);
    let mut reader = claxon::FlacReader::new(bytes.as_slice()).unwrap();
    let info = reader.streaminfo();
    assert_eq!(info.samples, Some(23 * BLOCK as u64));
    let mut md5 = md5::Md5::new();
    for s in &samples {
        md5.update(&s.to_le_bytes()[..2]);
    }
    assert_eq!(info.md5sum, <[u8; 16]>::from(md5.finalize()));
    let decoded: Vec<i32> = reader.samples().map(|s| s.unwrap()).collect();
    assert_eq!(decoded, samples);

    // The live view is the same audio with a provisional header.
    let live: Vec<u8> = r
        .live_stream(id)
        .await
        .unwrap()
        .unwrap()
        .try_collect::<Vec<Bytes>>()
        .await
        .unwrap()
        .concat();
    let mut reader = claxon::FlacReader::new(live.as_slice()).unwrap();
    let decoded: Vec<i32> = reader.samples().map(|s| s.unwrap()).collect();
    assert_eq!(decoded, samples);

    r.delete(id, Some(&composed.key)).await.unwrap();
    assert!(r.read(&composed.key).await.unwrap().is_none());
    assert_eq!(r.tail(id).await.unwrap().next_seq, 0);
}

#[actix_rt::test]
async fn a_second_writer_of_a_segment_is_refused() {
    let r = recordings();
    let id = Uuid::new_v4();
    let (_, segs) = segments(4, 2);
    let (h, frames) = &segs[0];
    r.put_segment(id, 0, h, frames.clone()).await.unwrap();
    assert_eq!(
        r.put_segment(id, 0, &segs[1].0, segs[1].1.clone()).await,
        Err(ObjectError::Superseded)
    );
    // What the first writer wrote stays.
    assert_eq!(&r.segment_header(id, 0).await.unwrap(), h);
}

#[actix_rt::test]
async fn a_missing_segment_is_found_at_compose() {
    let r = recordings();
    let id = Uuid::new_v4();
    let (_, segs) = segments(12, 2);
    for (seq, (h, frames)) in segs.iter().enumerate() {
        if seq != 2 {
            r.put_segment(id, seq as u64, h, frames.clone())
                .await
                .unwrap();
        }
    }
    assert!(matches!(
        r.compose(id, None).await,
        Err(ObjectError::Inconsistent(_))
    ));
    // Nothing became visible.
    assert!(r
        .read(&ObjectRecordings::final_key(id))
        .await
        .unwrap()
        .is_none());
}

#[actix_rt::test]
async fn a_session_without_segments_has_nothing_to_compose() {
    let r = recordings();
    let id = Uuid::new_v4();
    assert_eq!(r.compose(id, None).await.unwrap(), None);
    assert!(r.live_stream(id).await.unwrap().is_none());
}
