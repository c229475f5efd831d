//! The session actor: one per stream or recorded session.
//!
//! It owns the WAV parser (or takes raw PCM), the PCM decoder and the staging
//! ring; cuts blocks; hands them to the [`EncoderPool`]; puts the frames that
//! come back (in any order) into stream order; sends them to its connections
//! (`fanout`) and, for a recorded session, to its file (`recorder`).
//!
//! Backpressure: an [`Ingest`] is answered only once all its bytes are staged.
//! The ring holds a few blocks, and at most `max_blocks_in_flight` blocks are
//! being encoded or waiting for the producer or the disk, so a client that
//! sends faster than the encoders, its own reader or the disk can drain waits
//! on its socket instead of growing server memory.
//!
//! A `/stream` session ends with its one connection. A recorded session
//! outlives its connections: a producer may reconnect within the resume
//! window and continue where the session stands (`samples_received`).

mod connect;
mod fanout;
mod input;
mod input_rate;
mod lifecycle;
mod live_input;
mod measures;
mod membership;
mod outcome;
mod recorder;
mod retry;
mod segment_writer;
mod segments;
mod settings;

pub use connect::{Abort, Connect, Delivered, Describe, Disconnect, SessionView, Welcome};
pub use fanout::{ConnectionId, Role};
pub use input::{EndOfInput, Ingest};
pub use input_rate::{InputRateLimit, DEFAULT_INPUT_BURST_SECONDS, DEFAULT_MAX_INPUT_RATE};
pub use lifecycle::{DrainStarted, Finalize, IdleTimeout, Shutdown};
pub use live_input::DecoderWake;
use live_input::LiveInput;
pub use outcome::{
    connection_channel, listener_channel, outbound_channel, DoneSummary, EndReason, IngestAck,
    Outbound, SessionClosed, METADATA_ROOM,
};
pub use segment_writer::ObjectSink;
pub use segments::HandOver;
pub use settings::{InputFormat, RecordingPolicy, SessionKind, SessionSettings, Takeover};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, SpawnHandle};
use bytes::Bytes;
use flacstream_codec::flac::{
    default_block_size, EncodedFrame, FrameStats, StreamFormat, StreamInfo,
};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::WavParser;
use tokio::sync::oneshot;

use crate::activity::Activity;
use crate::encoder::{EncodeBlock, EncodeFailure};
use crate::metrics::{FRAME_LATENCY_SECONDS, OUTPUT_BYTES, OUTPUT_SAMPLES};
use crate::registry::{Attach, Registry, Release};
use crate::session_id::SessionId;
use crate::staging::Staging;
use crate::store::{now_ms, CreateRecording};
use crate::{EncoderPool, StreamError};
use fanout::Fanout;
use recorder::Recorder;
use segment_writer::SegmentWriter;

/// Default blocks a session may have encoding or waiting for its producer
/// or its file at once. Two keep one block encoding while the previous one is
/// written; four let a session use more than one encoder thread.
pub const DEFAULT_MAX_BLOCKS_IN_FLIGHT: usize = 4;

/// Default FLAC frames a listener may fall behind the stream before it is
/// cut off (`slow_reader`). 64 frames of the default 4096 samples are 5.9 s
/// of 44.1 kHz audio: a producer's burst (a reconnect sending its backlog,
/// a short file) reaches a listener faster than real time, and with the
/// old bound of the producer's blocks in flight (6 events) a listener on a
/// busy 2-core CI machine was cut off in the middle of a 0.7 s burst. The
/// frames are shared with the producer's and other listeners' queues, so a
/// full queue holds at most 64 frames no other connection has taken yet
/// (about 1 MiB of CD audio at level 5).
pub const DEFAULT_LISTENER_QUEUE_FRAMES: usize = 64;

/// FLAC frame numbers are 31-bit (exclusive bound).
const MAX_FRAME_NUMBER: u32 = 1 << 31;

/// STREAMINFO counts samples per channel in 36 bits (inclusive bound).
const MAX_TOTAL_SAMPLES: u64 = (1 << 36) - 1;

/// How often a recorded session saves its progress to the catalog, in seconds.
const PROGRESS_SAVE_SECONDS: u64 = 5;

/// How often a session in scaled mode checks whether its waiting frames are
/// due to become a segment, in milliseconds: the resolution of the durable
/// lag bound.
const SEGMENT_CHECK_MS: u64 = 250;

/// A stream whose format is known.
struct Stream {
    format: StreamFormat,
    decoder: PcmDecoder,
    staging: Staging,
    /// Frame number of the next block to dispatch.
    next_frame: u32,
    /// Results for frames `first_pending..next_frame`, `None` until encoded.
    in_flight: VecDeque<Option<Result<EncodedFrame, EncodeFailure>>>,
    /// When each in-flight block's last sample was staged, in step with
    /// `in_flight`: the start of its frame latency.
    staged_at: VecDeque<Instant>,
    first_pending: u32,
    stats: FrameStats,
    bytes_out: u64,
    /// Samples per channel before the first one this actor decoded: what
    /// was durable when this replica took the session over (else 0).
    base_samples: u64,
}

impl Stream {
    /// Samples per channel accepted since the session began.
    fn samples(&self) -> u64 {
        self.base_samples + self.decoder.frames_decoded()
    }
}

/// The session actor; see the module docs.
pub struct Session {
    id: SessionId,
    settings: SessionSettings,
    kind: SessionKind,
    pool: EncoderPool,
    registry: Addr<Registry<Addr<Session>>>,
    activity: Arc<Activity>,
    fanout: Fanout,
    recorder: Option<Recorder>,
    /// The recording in object storage (scaled mode) instead of `recorder`.
    segments: Option<SegmentWriter>,
    parser: WavParser,
    stream: Option<Stream>,
    /// Bytes of the current [`Ingest`] not yet parsed.
    input: Bytes,
    /// Audio bytes parsed but not yet staged (the ring was full).
    audio: Bytes,
    /// Answers the current [`Ingest`] once `input` and `audio` are empty.
    reply: Option<oneshot::Sender<Result<IngestAck, SessionClosed>>>,
    /// No more input will come; finish once everything is out.
    ending: Option<EndReason>,
    finished: bool,
    finalizing: bool,
    bytes_in: u64,
    chunk_count: u64,
    created_at_ms: i64,
    /// When the actor started: the clock of the session's length and of
    /// its input rate.
    started_at: Instant,
    resume_timer: Option<SpawnHandle>,
    /// Notified when the session has ended.
    waiters: Vec<oneshot::Sender<()>>,
    /// Set by [`HandOver`]: no more input; stop once everything is durable.
    handing_over: bool,
    /// Answered when a handover is done.
    handover: Vec<oneshot::Sender<Result<u64, SessionClosed>>>,
    /// A `/stream` input that is not WAV, decoded as it arrives.
    live: LiveInput,
    /// What a recorded session measures of its chunks and audio.
    measures: measures::Measures,
    /// The binary message being taken (its chunk's bytes as received).
    chunk_bytes: Bytes,
}

impl Session {
    /// A session that was admitted by `registry` as `id`.
    pub fn new(
        id: SessionId,
        settings: SessionSettings,
        kind: SessionKind,
        pool: EncoderPool,
        registry: Addr<Registry<Addr<Session>>>,
    ) -> Self {
        let takeover = match &kind {
            SessionKind::Recording(p) => p.takeover.clone(),
            SessionKind::Stream => None,
        };
        let mut settings = settings;
        if let Some(last) = takeover.as_ref().and_then(|t| t.tail.last.as_ref()) {
            // The durable stream fixes the format: the producer resumes with
            // the same PCM (a WAV session's header is behind it); G.711
            // stays G.711 on the wire.
            if !matches!(settings.input, InputFormat::G711 { .. }) {
                settings.input = InputFormat::Raw {
                    layout: last.format.layout,
                    sample_rate: last.format.sample_rate,
                };
            }
            settings.block_size = Some(last.format.block_size);
        }
        let measures = measures::Measures::for_session(id, &kind);
        Self {
            id,
            settings,
            kind,
            pool,
            registry,
            activity: Arc::new(Activity::new()),
            fanout: Fanout::default(),
            recorder: None,
            segments: None,
            parser: WavParser::new(settings.max_header_bytes),
            stream: None,
            input: Bytes::new(),
            audio: Bytes::new(),
            reply: None,
            ending: None,
            finished: false,
            finalizing: false,
            bytes_in: takeover.as_ref().map_or(0, |t| t.bytes_in),
            chunk_count: takeover.as_ref().map_or(0, |t| t.chunk_count),
            created_at_ms: takeover.as_ref().map_or_else(now_ms, |t| t.created_at_ms),
            started_at: Instant::now(),
            resume_timer: None,
            waiters: Vec::new(),
            handing_over: false,
            handover: Vec::new(),
            live: LiveInput::default(),
            measures,
            chunk_bytes: Bytes::new(),
        }
    }

    fn policy(&self) -> Option<&RecordingPolicy> {
        match &self.kind {
            SessionKind::Recording(p) => Some(p),
            SessionKind::Stream => None,
        }
    }

    fn samples_received(&self) -> u64 {
        self.stream.as_ref().map_or(0, Stream::samples)
    }

    fn samples_durable(&self) -> u64 {
        match (&self.recorder, &self.segments) {
            (Some(r), _) => r.durable_samples(),
            (None, Some(w)) => w.durable_samples(),
            (None, None) => 0,
        }
    }

    fn ack(&self) -> IngestAck {
        IngestAck {
            chunk_count: self.chunk_count,
            samples_received: self.samples_received(),
            samples_durable: self.samples_durable(),
            chunk_id: None,
            bytes_accepted: self
                .settings
                .input
                .is_decoded()
                .then(|| self.live.accepted()),
        }
    }

    fn start_stream(&mut self, sample_rate: u32, layout: PcmLayout, ctx: &mut Context<Self>) {
        let block_size = self
            .settings
            .block_size
            .unwrap_or_else(|| default_block_size(sample_rate));
        let format = StreamFormat {
            sample_rate,
            layout,
            block_size,
        };
        let header = StreamInfo::provisional(format).stream_header();
        log::debug!(
            "Session {} streams {sample_rate} Hz, {} ch, {} bit, blocks of {block_size}.",
            self.id,
            layout.channels,
            layout.bits_per_sample()
        );
        self.fanout.flac(&Bytes::from(header.clone()));
        metrics::counter!(OUTPUT_BYTES).increment(header.len() as u64);
        let takeover = self
            .policy()
            .and_then(|p| p.takeover.as_ref())
            .and_then(|t| t.tail.last.clone());
        self.measure_format(sample_rate, layout);
        self.stream = Some(Stream {
            format,
            decoder: PcmDecoder::new(layout),
            staging: Staging::new(block_size, layout.channels),
            next_frame: 0,
            in_flight: VecDeque::new(),
            staged_at: VecDeque::new(),
            first_pending: 0,
            stats: FrameStats::default(),
            bytes_out: header.len() as u64,
            base_samples: 0,
        });
        if let (Some(stream), Some(last)) = (self.stream.as_mut(), takeover.as_ref()) {
            // Continue the durable stream: frame numbers, totals and frame
            // size bounds go on from its last segment.
            stream.next_frame = last.end_frame();
            stream.first_pending = last.end_frame();
            stream.base_samples = last.end_sample();
            stream.bytes_out += last.frame_bytes;
            stream.stats.frames = u64::from(last.end_frame());
            stream.stats.min_frame_bytes = last.min_frame_bytes;
            stream.stats.max_frame_bytes = last.max_frame_bytes;
        }
        let Some(policy) = self.policy().filter(|p| p.record).cloned() else {
            return;
        };
        if let Some(sink) = policy.objects.clone() {
            self.segments = Some(SegmentWriter::new(
                sink,
                policy.takeover.as_ref().map(|t| &t.tail),
            ));
            self.save_progress();
            return;
        }
        let relative = format!("recordings/{}.flac", self.id);
        let path = policy.data_dir.join(&relative);
        self.recorder = Some(Recorder::new(path.clone(), relative));
        let created = wrap_future::<_, Self>(policy.store.send(CreateRecording { path, header }))
            .map(|result, act, ctx| match result {
                Ok(Ok(file)) => {
                    if let Some(r) = act.recorder.as_mut() {
                        r.ready(file);
                    }
                    act.save_progress();
                    act.flush_recording(ctx);
                    act.pump(ctx);
                }
                Ok(Err(e)) => act.fail(StreamError::Storage(e.to_string()), ctx),
                Err(e) => act.fail(StreamError::Storage(e.to_string()), ctx),
            });
        ctx.spawn(created);
    }

    /// Sends full blocks (and, once input has ended, the last partial one) to
    /// the pool while the in-flight bound allows. Returns whether any went.
    fn dispatch(&mut self, ctx: &mut Context<Self>) -> Result<bool, StreamError> {
        let storage_full = self
            .segments
            .as_ref()
            .is_some_and(|w| w.unwritten_bytes() >= w.sink.max_unwritten_bytes);
        let waiting = if storage_full {
            // Object storage is behind: the producer waits.
            usize::MAX
        } else {
            self.fanout
                .producer_backlog()
                .max(self.recorder.as_ref().map_or(0, Recorder::unwritten_frames))
        };
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let flush = self.ending.is_some() && self.audio.is_empty() && self.input.is_empty();
        let mut any = false;
        loop {
            if stream.in_flight.len().saturating_add(waiting)
                >= self.settings.max_blocks_in_flight.max(1)
            {
                break;
            }
            let Some((samples, staged_at)) = stream.staging.pop_block_timed(flush) else {
                break;
            };
            if stream.next_frame >= MAX_FRAME_NUMBER || stream.samples() > MAX_TOTAL_SAMPLES {
                return Err(StreamError::StreamTooLong);
            }
            let seq = stream.next_frame;
            if let Some(writer) = self.segments.as_mut() {
                writer.hash_block(seq, &samples, stream.format.layout.bytes_per_sample);
            }
            stream.next_frame += 1;
            stream.in_flight.push_back(None);
            stream.staged_at.push_back(staged_at);
            let job = EncodeBlock {
                format: stream.format,
                level: self.settings.level,
                frame_number: seq,
                samples,
                permit: None,
            };
            let encoded = wrap_future::<_, Self>(self.pool.encode(job))
                .map(move |result, act, ctx| act.on_encoded(seq, result, ctx));
            ctx.spawn(encoded);
            any = true;
        }
        Ok(any)
    }

    /// Files a frame and sends out every frame that is now next in order.
    fn on_encoded(
        &mut self,
        seq: u32,
        result: Result<EncodedFrame, EncodeFailure>,
        ctx: &mut Context<Self>,
    ) {
        if self.finished {
            return;
        }
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let slot = (seq - stream.first_pending) as usize;
        stream.in_flight[slot] = Some(result);
        let mut frames = Vec::new();
        while matches!(stream.in_flight.front(), Some(Some(_))) {
            let Some(Some(result)) = stream.in_flight.pop_front() else {
                break;
            };
            let staged_at = stream.staged_at.pop_front();
            stream.first_pending += 1;
            match result {
                Ok(frame) => {
                    stream.stats.record(&frame);
                    stream.bytes_out += frame.bytes.len() as u64;
                    frames.push((frame, staged_at));
                }
                Err(EncodeFailure::Panicked) => {
                    return self.fail(StreamError::EncoderPanicked, ctx);
                }
                Err(EncodeFailure::Rejected(e)) => return self.fail(e.into(), ctx),
                Err(EncodeFailure::PoolGone) => {
                    return self.fail(StreamError::PoolUnavailable, ctx);
                }
            }
        }
        for (frame, staged_at) in frames {
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.queue(&frame.bytes, frame.samples);
            }
            if let Some(writer) = self.segments.as_mut() {
                writer.queue(&frame.bytes, frame.samples);
            }
            metrics::counter!(OUTPUT_BYTES).increment(frame.bytes.len() as u64);
            metrics::counter!(OUTPUT_SAMPLES).increment(frame.samples as u64);
            self.fanout.flac(&Bytes::from(frame.bytes));
            if let Some(staged_at) = staged_at {
                metrics::histogram!(FRAME_LATENCY_SECONDS).record(staged_at.elapsed());
            }
        }
        self.flush_recording(ctx);
        self.pump(ctx);
    }

    /// Starts the next append to the recording file, if one may start.
    fn flush_recording(&mut self, ctx: &mut Context<Self>) {
        if self.segments.is_some() {
            return self.flush_segments(ctx);
        }
        let Some(write) = self.recorder.as_mut().and_then(Recorder::next_write) else {
            return;
        };
        let Some(store) = self.policy().map(|p| p.store.clone()) else {
            return;
        };
        self.send_file_write(store, write, ctx);
    }

    fn send_file_write(
        &mut self,
        store: Addr<crate::store::Store>,
        write: crate::store::AppendFrames,
        ctx: &mut Context<Self>,
    ) {
        let written =
            wrap_future::<_, Self>(store.send(write)).map(|result, act, ctx| match result {
                Ok(Ok(_len)) => {
                    let recovered = act.recorder.as_mut().is_some_and(Recorder::written);
                    if recovered {
                        log::info!("Session {}: the recording file takes writes again.", act.id);
                        act.storage_notice(true);
                    }
                    act.flush_recording(ctx);
                    act.pump(ctx);
                }
                // A full disk, an I/O error: the same frames are written
                // again (at the same offset) until the disk takes them.
                Ok(Err(e)) => act.file_refused(&e.to_string(), ctx),
                Err(e) => act.fail(StreamError::Storage(e.to_string()), ctx),
            });
        ctx.spawn(written);
    }

    fn file_refused(&mut self, error: &str, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        metrics::counter!(crate::metrics::SEGMENT_WRITE_FAILURES).increment(1);
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        let wait = recorder.retry.refused();
        if recorder.retry.failures() == 1 {
            log::warn!(
                "Session {}: the recording file refused a write ({error}); retrying, samples_durable stays at {}.",
                self.id,
                recorder.durable_samples()
            );
            self.storage_notice(false);
        }
        ctx.run_later(wait, |act, ctx| {
            if act.finished {
                return;
            }
            let (Some(write), Some(store)) = (
                act.recorder.as_ref().and_then(Recorder::retry_write),
                act.policy().map(|p| p.store.clone()),
            ) else {
                return;
            };
            act.send_file_write(store, write, ctx);
        });
    }

    /// Moves data as far as it can go, answers the pending ingest when its
    /// bytes are staged, and finishes the stream when everything is out.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.finished || self.finalizing {
            return;
        }
        loop {
            let staged = match self.stage_input(ctx) {
                Ok(staged) => staged,
                Err(e) => return self.fail(e, ctx),
            };
            let dispatched = match self.dispatch(ctx) {
                Ok(dispatched) => dispatched,
                Err(e) => return self.fail(e, ctx),
            };
            if !staged && !dispatched {
                break;
            }
        }
        if self.input.is_empty() && self.audio.is_empty() && !self.measures.full() {
            if let Some(reply) = self.reply.take() {
                self.activity.touch();
                let bytes = std::mem::take(&mut self.chunk_bytes);
                let mut ack = self.ack();
                ack.chunk_id = self.measure_chunk(self.chunk_count, bytes);
                let _ = reply.send(Ok(ack));
            }
        }
        // Eagerly: a container's PCM arrives between acks.
        self.run_measures(ctx);
        if self.handing_over {
            self.finish_handover_if_drained(ctx);
        } else if let Some(reason) = self.ending {
            self.finish_if_drained(reason, ctx);
        }
    }
}

/// Attaches to the registry; starts raw streams and the session-length
/// limit, and progress saves for recorded sessions; releases the slot on
/// stop.
impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.started_at = Instant::now();
        self.activity.touch();
        self.registry.do_send(Attach {
            id: self.id,
            session: ctx.address(),
            activity: Arc::clone(&self.activity),
        });
        if let Some((sample_rate, layout)) = self.settings.input.headerless() {
            self.start_stream(sample_rate, layout, ctx);
        }
        ctx.run_later(self.settings.max_duration, |act, ctx| {
            act.begin_end(EndReason::MaxDuration, ctx)
        });
        if self.policy().is_some_and(|p| p.objects.is_some()) {
            ctx.run_interval(Duration::from_millis(SEGMENT_CHECK_MS), |act, ctx| {
                act.flush_recording(ctx)
            });
        }
        if self.policy().is_some() {
            ctx.run_interval(Duration::from_secs(PROGRESS_SAVE_SECONDS), |act, _| {
                act.save_progress()
            });
            self.save_progress();
            // A session nobody connects to must not live until its maximum
            // length: the first connection disarms this.
            self.arm_resume_window(ctx);
        }
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.registry.do_send(Release {
            id: self.id,
            session: Some(ctx.address()),
        });
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
