//! The recording side of a session in scaled mode: frames gathered into
//! durable segments in object storage ([`crate::segment`]), one PUT in
//! flight at a time, retried until storage takes it.
//!
//! A segment is cut when the oldest frame waiting has waited
//! [`ObjectSink::segment_interval`] (the bound on how far `samples_durable`
//! lags live audio, less the PUT itself), when the frames waiting reach
//! [`ObjectSink::max_segment_bytes`], or when the session ends. While
//! storage refuses writes, frames keep coming until
//! [`ObjectSink::max_unwritten_bytes`] wait, and then the producer waits
//! (backpressure); `samples_durable` stands still and catches up when a
//! retry succeeds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flacstream_codec::flac::{FrameStats, StreamFormat};

use super::retry::Retry;
use crate::lease_clock::LeaseClock;
use crate::object_recordings::{DurableTail, ObjectRecordings};
use crate::segment::SegmentHeader;
use crate::stream_digest::StreamDigest;

/// Where and how a session's segments are written.
#[derive(Debug, Clone)]
pub struct ObjectSink {
    /// The bucket and prefix.
    pub recordings: ObjectRecordings,
    /// Longest a frame waits before its segment is cut.
    pub segment_interval: Duration,
    /// Frame bytes that cut a segment early.
    pub max_segment_bytes: usize,
    /// Frame bytes not yet durable beyond which the producer waits.
    pub max_unwritten_bytes: usize,
    /// This replica's lease validity: no segment is written without it.
    pub lease: Arc<LeaseClock>,
    /// This replica's id, the owner in the catalog's lease rows.
    pub replica: String,
    /// Whether other replicas share the catalog: a drain then hands the
    /// session over instead of ending it.
    pub shared: bool,
}

/// A segment being written: kept until storage takes it, for the retry.
#[derive(Debug, Clone)]
pub struct SegmentWrite {
    /// Its sequence number.
    pub seq: u64,
    /// Its header.
    pub header: SegmentHeader,
    /// Its frames.
    pub frames: Bytes,
}

/// A session's segments; see the module docs.
#[derive(Debug)]
pub struct SegmentWriter {
    /// The sink.
    pub sink: ObjectSink,
    next_seq: u64,
    pending: Vec<u8>,
    pending_frames: u32,
    pending_samples: u64,
    /// Frame number and sample of the first frame waiting.
    next_frame: u32,
    next_sample: u64,
    oldest_pending: Option<Instant>,
    writing: Option<SegmentWrite>,
    durable_samples: u64,
    /// Hashed at dispatch, in stream order.
    digest: StreamDigest,
    /// The digest's state after each frame dispatched but not yet in a
    /// segment: (frame number, state).
    states: VecDeque<(u32, Vec<u8>)>,
    /// Refusals of the write in flight.
    pub retry: Retry,
}

impl SegmentWriter {
    /// A writer for a new session, or one that continues a durable `tail`
    /// (a session taken over from another replica).
    pub fn new(sink: ObjectSink, tail: Option<&DurableTail>) -> Self {
        let last = tail.and_then(|t| t.last.as_ref());
        Self {
            sink,
            next_seq: tail.map_or(0, |t| t.next_seq),
            pending: Vec::new(),
            pending_frames: 0,
            pending_samples: 0,
            next_frame: last.map_or(0, SegmentHeader::end_frame),
            next_sample: last.map_or(0, SegmentHeader::end_sample),
            oldest_pending: None,
            writing: None,
            durable_samples: last.map_or(0, SegmentHeader::end_sample),
            digest: last
                .and_then(|l| StreamDigest::restore(&l.md5_state))
                .unwrap_or_default(),
            states: VecDeque::new(),
            retry: Retry::default(),
        }
    }

    /// Hashes a block as it is dispatched (blocks go out in order).
    pub fn hash_block(&mut self, frame: u32, samples: &[i32], bytes_per_sample: usize) {
        self.digest.update(samples, bytes_per_sample);
        self.states.push_back((frame, self.digest.state()));
    }

    /// The MD5 of everything dispatched, from the session's first sample.
    pub fn md5(&self) -> [u8; 16] {
        self.digest.digest()
    }

    /// Queues one frame (frames come in order).
    pub fn queue(&mut self, frame: &[u8], samples: usize) {
        self.pending.extend_from_slice(frame);
        self.pending_frames += 1;
        self.pending_samples += samples as u64;
        self.oldest_pending.get_or_insert_with(Instant::now);
    }

    /// Samples per channel in segments storage has taken.
    pub fn durable_samples(&self) -> u64 {
        self.durable_samples
    }

    /// Frame bytes not yet durable.
    pub fn unwritten_bytes(&self) -> usize {
        self.pending.len() + self.writing.as_ref().map_or(0, |w| w.frames.len())
    }

    /// Whether every queued frame is durable.
    pub fn is_idle(&self) -> bool {
        self.writing.is_none() && self.pending_frames == 0
    }

    /// Whether a write is in flight (or waiting for its retry).
    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// When the waiting frames are due to be cut into a segment, if any wait.
    pub fn due_in(&self) -> Option<Duration> {
        let oldest = self.oldest_pending?;
        Some(self.sink.segment_interval.saturating_sub(oldest.elapsed()))
    }

    /// Cuts the next segment, if one may start now: nothing is in flight,
    /// and `force` (the session is ending or handing over), or the frames
    /// waiting are old or big enough.
    pub fn next_write(
        &mut self,
        force: bool,
        format: StreamFormat,
        stats: &FrameStats,
        frame_bytes: u64,
    ) -> Option<SegmentWrite> {
        if self.writing.is_some() || self.pending_frames == 0 {
            return None;
        }
        let due = force
            || self.pending.len() >= self.sink.max_segment_bytes
            || self.due_in() == Some(Duration::ZERO);
        if !due {
            return None;
        }
        let last_frame = self.next_frame + self.pending_frames - 1;
        while self.states.front().is_some_and(|(f, _)| *f < last_frame) {
            self.states.pop_front();
        }
        let md5_state = match self.states.front() {
            Some((f, state)) if *f == last_frame => state.clone(),
            // Every dispatched frame was hashed; this cannot happen, but a
            // segment without its true state must not be written.
            _ => return None,
        };
        let header = SegmentHeader {
            first_frame: self.next_frame,
            frames: self.pending_frames,
            first_sample: self.next_sample,
            samples: self.pending_samples,
            format,
            min_frame_bytes: stats.min_frame_bytes,
            max_frame_bytes: stats.max_frame_bytes,
            frame_bytes,
            md5_state,
        };
        let write = SegmentWrite {
            seq: self.next_seq,
            header,
            frames: Bytes::from(std::mem::take(&mut self.pending)),
        };
        self.next_seq += 1;
        self.next_frame += self.pending_frames;
        self.next_sample += self.pending_samples;
        self.pending_frames = 0;
        self.pending_samples = 0;
        self.oldest_pending = None;
        self.writing = Some(write.clone());
        Some(write)
    }

    /// The write in flight, to send again after a failure.
    pub fn retry(&self) -> Option<SegmentWrite> {
        self.writing.clone()
    }

    /// Storage took the segment in flight; answers whether it had refused
    /// writes before.
    pub fn written(&mut self) -> bool {
        if let Some(w) = self.writing.take() {
            self.durable_samples = w.header.end_sample();
        }
        self.retry.succeeded()
    }
}
