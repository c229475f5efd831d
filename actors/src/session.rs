//! The session actor: one per stream or recorded session.
//!
//! It owns the WAV parser (or takes raw PCM), the PCM decoder and the staging
//! ring; cuts blocks; hands them to the [`EncoderPool`]; puts the frames that
//! come back (in any order) into stream order; sends them to its connections
//! ([`fanout`]) and, for a recorded session, to its file ([`recorder`]).
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
mod recorder;

pub use connect::{Abort, Connect, Delivered, Describe, Disconnect, SessionView, Welcome};
pub use fanout::{ConnectionId, Role};

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message,
    ResponseFuture, SpawnHandle,
};
use bytes::{Buf, Bytes};
use flacstream_codec::flac::{
    default_block_size, EncodedFrame, EncoderLevel, FrameStats, StreamFormat, StreamInfo,
    STREAMINFO_BYTES,
};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavEvent, WavParser};
use tokio::sync::{mpsc, oneshot};

use crate::activity::Activity;
use crate::encoder::{EncodeBlock, EncodeFailure};
use crate::registry::{Attach, Registry, Release, SessionId};
use crate::staging::Staging;
use crate::store::{
    now_ms, CreateRecording, FinalizeRecording, Recover, Save, SessionRecord, SessionStatus, Store,
};
use crate::{EncoderPool, StreamError};
use fanout::Fanout;
use recorder::Recorder;

/// Default blocks a session may have encoding or waiting for its producer
/// or its file at once. Two keep one block encoding while the previous one is
/// written; four let a session use more than one encoder thread.
pub const DEFAULT_MAX_BLOCKS_IN_FLIGHT: usize = 4;

/// Outbound slots beyond the frames in flight: the stream header and the
/// final `done` or `error` event, so neither ever waits for room.
const OUTBOUND_SLACK: usize = 2;

/// FLAC frame numbers are 31-bit (exclusive bound).
const MAX_FRAME_NUMBER: u32 = 1 << 31;

/// STREAMINFO counts samples per channel in 36 bits (inclusive bound).
const MAX_TOTAL_SAMPLES: u64 = (1 << 36) - 1;

/// How often a recorded session saves its progress to the catalog, in seconds.
const PROGRESS_SAVE_SECONDS: u64 = 5;

/// What the input bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A WAV file: header first.
    Wav,
    /// Headerless little-endian PCM in this layout.
    Raw {
        /// Channels and sample width.
        layout: PcmLayout,
        /// Samples per second.
        sample_rate: u32,
    },
}

/// Per-stream settings, fixed when the session starts.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Compression level.
    pub level: EncoderLevel,
    /// Samples per block; `None` picks [`default_block_size`] for the rate.
    pub block_size: Option<usize>,
    /// Bound on header bytes before `data` (see [`WavParser::new`]).
    pub max_header_bytes: u64,
    /// Blocks encoding or waiting for the producer or the disk, at least 1.
    pub max_blocks_in_flight: usize,
    /// What the input is.
    pub input: InputFormat,
}

/// How a recorded session lives and is stored.
#[derive(Debug, Clone)]
pub struct RecordingPolicy {
    /// The store that writes files and metadata.
    pub store: Addr<Store>,
    /// Directory the recording goes under.
    pub data_dir: PathBuf,
    /// Whether audio is recorded to a file at all.
    pub record: bool,
    /// Time after the last connection leaves before the session is finalized.
    pub resume_window: Duration,
    /// Longest a session may run before it is finalized.
    pub max_duration: Duration,
    /// Owner, for listing.
    pub user_id: Option<String>,
    /// The input encoding's name (`s16le`, `wav`, …), for the catalog.
    pub encoding: String,
}

/// What kind of session this is.
#[derive(Debug, Clone)]
pub enum SessionKind {
    /// `/stream`: one connection; the session ends with it.
    Stream,
    /// A recorded session that outlives its connections.
    Recording(Box<RecordingPolicy>),
}

/// Why a session ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The WAV data chunk was complete, or the client said `end`.
    Complete,
    /// The client or an HTTP call closed the session.
    Closed,
    /// The server is shutting down.
    GoingAway,
    /// The session reached its maximum length.
    MaxDuration,
    /// No connection came back within the resume window.
    ResumeWindowExpired,
}

impl EndReason {
    /// The name reported to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Closed => "closed",
            Self::GoingAway => "going_away",
            Self::MaxDuration => "max_session_length",
            Self::ResumeWindowExpired => "resume_window_expired",
        }
    }
}

/// What a session tells each of its connections.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// FLAC bytes, in stream order: first the header, then one frame each.
    Flac(Bytes),
    /// The stream is complete (or flushed on shutdown); no more events follow.
    Done(DoneSummary),
    /// The stream (or this connection) failed; no more events follow.
    Failed(StreamError),
}

/// The outcome of a completed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneSummary {
    /// The session.
    pub session_id: SessionId,
    /// Samples per channel encoded.
    pub samples: u64,
    /// MD5 of the decoded audio, as in STREAMINFO.
    pub md5: [u8; 16],
    /// The final STREAMINFO body, to write over bytes 8..42 of the stream.
    pub streaminfo: [u8; STREAMINFO_BYTES],
    /// Bytes of a trailing partial sample frame that were dropped.
    pub dropped_bytes: usize,
    /// Frames written.
    pub frames: u64,
    /// Frames stored verbatim to stay within the verbatim bound.
    pub verbatim_frames: u64,
    /// Input bytes received.
    pub bytes_in: u64,
    /// FLAC bytes produced.
    pub bytes_out: u64,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: usize,
    /// Bits per sample as stored in FLAC.
    pub bits_per_sample: usize,
    /// Why the session ended.
    pub reason: EndReason,
}

/// A connection's outbound channel, sized for the in-flight bound.
pub fn outbound_channel(
    settings: &SessionSettings,
) -> (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>) {
    mpsc::channel(settings.max_blocks_in_flight.max(1) + OUTBOUND_SLACK)
}

/// The session has ended (or this connection no longer feeds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session has ended")]
pub struct SessionClosed;

/// What an [`Ingest`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestAck {
    /// Binary messages taken so far.
    pub chunk_count: u64,
    /// Samples per channel accepted, in order. A resuming producer continues here.
    pub samples_received: u64,
    /// Samples per channel synced to the recording file.
    pub samples_durable: u64,
}

/// A stream whose format is known.
struct Stream {
    format: StreamFormat,
    decoder: PcmDecoder,
    staging: Staging,
    /// Frame number of the next block to dispatch.
    next_frame: u32,
    /// Results for frames `first_pending..next_frame`, `None` until encoded.
    in_flight: VecDeque<Option<Result<EncodedFrame, EncodeFailure>>>,
    first_pending: u32,
    stats: FrameStats,
    bytes_out: u64,
}

/// The session actor; see the module docs.
pub struct Session {
    id: SessionId,
    settings: SessionSettings,
    kind: SessionKind,
    pool: EncoderPool,
    registry: Addr<Registry>,
    activity: Arc<Activity>,
    fanout: Fanout,
    recorder: Option<Recorder>,
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
    resume_timer: Option<SpawnHandle>,
    /// Notified when the session has ended.
    waiters: Vec<oneshot::Sender<()>>,
}

impl Session {
    /// A session that was admitted by `registry` as `id`.
    pub fn new(
        id: SessionId,
        settings: SessionSettings,
        kind: SessionKind,
        pool: EncoderPool,
        registry: Addr<Registry>,
    ) -> Self {
        Self {
            id,
            settings,
            kind,
            pool,
            registry,
            activity: Arc::new(Activity::new()),
            fanout: Fanout::default(),
            recorder: None,
            parser: WavParser::new(settings.max_header_bytes),
            stream: None,
            input: Bytes::new(),
            audio: Bytes::new(),
            reply: None,
            ending: None,
            finished: false,
            finalizing: false,
            bytes_in: 0,
            chunk_count: 0,
            created_at_ms: now_ms(),
            resume_timer: None,
            waiters: Vec::new(),
        }
    }

    fn policy(&self) -> Option<&RecordingPolicy> {
        match &self.kind {
            SessionKind::Recording(p) => Some(p),
            SessionKind::Stream => None,
        }
    }

    fn samples_received(&self) -> u64 {
        self.stream
            .as_ref()
            .map_or(0, |s| s.decoder.frames_decoded())
    }

    fn ack(&self) -> IngestAck {
        IngestAck {
            chunk_count: self.chunk_count,
            samples_received: self.samples_received(),
            samples_durable: self.recorder.as_ref().map_or(0, Recorder::durable_samples),
        }
    }

    /// The catalog record as things stand.
    fn record(&self, status: SessionStatus, error: Option<&StreamError>) -> Option<SessionRecord> {
        let policy = self.policy()?;
        let format = self.stream.as_ref().map(|s| s.format);
        Some(SessionRecord {
            id: self.id,
            user_id: policy.user_id.clone(),
            status,
            encoding: policy.encoding.clone(),
            sample_rate: format.map(|f| f.sample_rate),
            channels: format.map(|f| f.layout.channels as u16),
            bits_per_sample: format.map(|f| f.layout.bits_per_sample() as u16),
            level: self.settings.level.get(),
            block_size: format.map(|f| f.block_size as u32),
            record: policy.record,
            chunk_count: self.chunk_count,
            samples: self.samples_received(),
            bytes_in: self.bytes_in,
            bytes_out: self.stream.as_ref().map_or(0, |s| s.bytes_out),
            created_at_ms: self.created_at_ms,
            updated_at_ms: now_ms(),
            closed_at_ms: (status != SessionStatus::Live).then(now_ms),
            file: self.recorder.as_ref().map(|r| r.relative.clone()),
            error: error.map(|e| e.code().to_string()),
        })
    }

    fn save_progress(&self) {
        if let (Some(policy), Some(record)) =
            (self.policy(), self.record(SessionStatus::Live, None))
        {
            policy.store.do_send(Save { record });
        }
    }

    /// Parses and stages as much input as the ring takes. Returns whether
    /// anything moved.
    fn stage_input(&mut self, ctx: &mut Context<Self>) -> Result<bool, StreamError> {
        let mut progressed = false;
        loop {
            if !self.audio.is_empty() {
                let Some(stream) = self.stream.as_mut() else {
                    return Err(StreamError::BadMessage("audio before header".into()));
                };
                let mut rest: &[u8] = &self.audio;
                let staged = stream.staging.stage(&mut stream.decoder, &mut rest);
                let used = self.audio.len() - rest.len();
                self.audio.advance(used);
                progressed |= used > 0 || staged > 0;
                if !self.audio.is_empty() {
                    return Ok(progressed);
                }
            }
            if let InputFormat::Raw { .. } = self.settings.input {
                if self.input.is_empty() {
                    return Ok(progressed);
                }
                self.audio = std::mem::take(&mut self.input);
                continue;
            }
            if self.ending.is_some() && self.parser.is_done() {
                self.input.clear();
            }
            let mut rest: &[u8] = &self.input;
            let event = self.parser.next(&mut rest)?;
            let consumed = self.input.len() - rest.len();
            let event = event.map(|e| match e {
                WavEvent::Format(f) => Parsed::Format(f.sample_rate, layout_of(&f)),
                WavEvent::Audio(a) => Parsed::Audio(self.input.slice_ref(a)),
                WavEvent::DataEnd => Parsed::DataEnd,
            });
            self.input.advance(consumed);
            match event {
                None => return Ok(progressed || consumed > 0),
                Some(Parsed::Format(rate, layout)) => self.start_stream(rate, layout, ctx),
                Some(Parsed::Audio(audio)) => self.audio = audio,
                Some(Parsed::DataEnd) => {
                    self.ending.get_or_insert(EndReason::Complete);
                    self.input.clear();
                }
            }
            progressed = true;
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
        self.stream = Some(Stream {
            format,
            decoder: PcmDecoder::new(layout),
            staging: Staging::new(block_size, layout.channels),
            next_frame: 0,
            in_flight: VecDeque::new(),
            first_pending: 0,
            stats: FrameStats::default(),
            bytes_out: header.len() as u64,
        });
        let Some(policy) = self.policy().filter(|p| p.record).cloned() else {
            return;
        };
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
        let waiting = self
            .fanout
            .producer_backlog()
            .max(self.recorder.as_ref().map_or(0, Recorder::unwritten_frames));
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let flush = self.ending.is_some() && self.audio.is_empty() && self.input.is_empty();
        let mut any = false;
        loop {
            if stream.in_flight.len() + waiting >= self.settings.max_blocks_in_flight.max(1) {
                break;
            }
            let Some(samples) = stream.staging.pop_block(flush) else {
                break;
            };
            if stream.next_frame >= MAX_FRAME_NUMBER
                || stream.decoder.frames_decoded() > MAX_TOTAL_SAMPLES
            {
                return Err(StreamError::StreamTooLong);
            }
            let seq = stream.next_frame;
            stream.next_frame += 1;
            stream.in_flight.push_back(None);
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
            stream.first_pending += 1;
            match result {
                Ok(frame) => {
                    stream.stats.record(&frame);
                    stream.bytes_out += frame.bytes.len() as u64;
                    frames.push(frame);
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
        for frame in frames {
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.queue(&frame.bytes, frame.samples);
            }
            self.fanout.flac(&Bytes::from(frame.bytes));
        }
        self.flush_recording(ctx);
        self.pump(ctx);
    }

    /// Starts the next append to the recording file, if one may start.
    fn flush_recording(&mut self, ctx: &mut Context<Self>) {
        let Some(write) = self.recorder.as_mut().and_then(Recorder::next_write) else {
            return;
        };
        let Some(policy) = self.policy() else {
            return;
        };
        let written =
            wrap_future::<_, Self>(policy.store.send(write)).map(|result, act, ctx| match result {
                Ok(Ok(_len)) => {
                    if let Some(r) = act.recorder.as_mut() {
                        r.written();
                    }
                    act.flush_recording(ctx);
                    act.pump(ctx);
                }
                Ok(Err(e)) => act.fail(StreamError::Storage(e.to_string()), ctx),
                Err(e) => act.fail(StreamError::Storage(e.to_string()), ctx),
            });
        ctx.spawn(written);
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
        if self.input.is_empty() && self.audio.is_empty() {
            if let Some(reply) = self.reply.take() {
                self.activity.touch();
                let _ = reply.send(Ok(self.ack()));
            }
        }
        if let Some(reason) = self.ending {
            self.finish_if_drained(reason, ctx);
        }
    }

    fn finish_if_drained(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        let Some(stream) = self.stream.as_ref() else {
            let error = match (reason, self.parser.finish()) {
                (EndReason::GoingAway, _) => StreamError::ShuttingDown,
                (_, Err(e)) => e.into(),
                (_, Ok(())) => StreamError::BadMessage("no WAV header arrived".into()),
            };
            if self.policy().is_some() && self.chunk_count == 0 {
                // A recorded session that never received audio just ends.
                return self.end_empty(reason, ctx);
            }
            return self.fail(error, ctx);
        };
        let recording_busy = self.recorder.as_ref().is_some_and(|r| !r.is_idle());
        if !self.audio.is_empty()
            || !self.input.is_empty()
            || stream.staging.staged() > 0
            || !stream.in_flight.is_empty()
            || recording_busy
        {
            return;
        }
        let info = StreamInfo {
            format: stream.format,
            min_frame_bytes: stream.stats.min_frame_bytes,
            max_frame_bytes: stream.stats.max_frame_bytes,
            total_samples: stream.decoder.frames_decoded(),
            md5: stream.decoder.md5_digest(),
        };
        let summary = DoneSummary {
            session_id: self.id,
            samples: info.total_samples,
            md5: info.md5,
            streaminfo: info.to_bytes(),
            dropped_bytes: stream.decoder.pending_bytes(),
            frames: stream.stats.frames,
            verbatim_frames: stream.stats.verbatim_fallbacks,
            bytes_in: self.bytes_in,
            bytes_out: stream.bytes_out,
            sample_rate: stream.format.sample_rate,
            channels: stream.format.layout.channels,
            bits_per_sample: stream.format.layout.bits_per_sample(),
            reason,
        };
        let file = self.recorder.as_ref().and_then(|r| r.file().cloned());
        match (self.policy().map(|p| p.store.clone()), file) {
            (Some(store), Some(file)) => {
                self.finalizing = true;
                let finalize = FinalizeRecording {
                    file,
                    streaminfo: summary.streaminfo,
                };
                let done =
                    wrap_future::<_, Self>(store.send(finalize)).map(move |result, act, ctx| {
                        match result {
                            Ok(Ok(())) => act.end(summary, ctx),
                            Ok(Err(e)) => act.fail(StreamError::Storage(e.to_string()), ctx),
                            Err(e) => act.fail(StreamError::Storage(e.to_string()), ctx),
                        }
                    });
                ctx.spawn(done);
            }
            _ => self.end(summary, ctx),
        }
    }

    /// Ends normally: every connection gets `done`, the catalog is updated.
    fn end(&mut self, summary: DoneSummary, ctx: &mut Context<Self>) {
        log::info!(
            "Session {} done ({}): {} samples in {} frames.",
            self.id,
            summary.reason.as_str(),
            summary.samples,
            summary.frames
        );
        if let (Some(policy), Some(record)) =
            (self.policy(), self.record(SessionStatus::Closed, None))
        {
            policy.store.do_send(Save { record });
        }
        self.finished = true;
        self.fanout.finish_all(&Outbound::Done(summary));
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Ok(self.ack()));
        }
        ctx.stop();
    }

    /// Ends a recorded session that never got audio.
    fn end_empty(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        log::info!(
            "Session {} ended without audio ({}).",
            self.id,
            reason.as_str()
        );
        if let (Some(policy), Some(record)) =
            (self.policy(), self.record(SessionStatus::Closed, None))
        {
            policy.store.do_send(Save { record });
        }
        self.finished = true;
        self.fanout
            .finish_all(&Outbound::Failed(StreamError::BadMessage(
                "the session ended before any audio arrived".into(),
            )));
        ctx.stop();
    }

    fn fail(&mut self, error: StreamError, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        log::info!("Session {} failed: {} ({error}).", self.id, error.code());
        self.finished = true;
        if let Some(policy) = self.policy() {
            // Keep what reached the disk: repair and finalize the file from
            // its own frames, then record the failure.
            if let Some(record) = self.record(SessionStatus::Failed, Some(&error)) {
                if let Some(recorder) = &self.recorder {
                    policy.store.do_send(Recover {
                        path: recorder.path.clone(),
                        file: recorder.file().cloned(),
                    });
                }
                policy.store.do_send(Save { record });
            }
        }
        self.fanout.finish_all(&Outbound::Failed(error));
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(SessionClosed));
        }
        ctx.stop();
    }

    /// Forgets input from a producer that is gone: bytes not yet staged were
    /// never acknowledged, and its successor resends from `samples_received`.
    pub(super) fn drop_producer_input(&mut self) {
        self.input.clear();
        self.audio.clear();
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(SessionClosed));
        }
        match self.stream.as_mut() {
            Some(stream) => {
                stream.decoder.discard_partial();
            }
            // A WAV header cut off mid-way is sent again from the start.
            None => self.parser = WavParser::new(self.settings.max_header_bytes),
        }
    }

    /// Starts (or restarts) ending the session for `reason`.
    fn begin_end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        self.ending.get_or_insert(reason);
        self.pump(ctx);
    }

    /// Arms the resume window when the last connection has left.
    fn arm_resume_window(&mut self, ctx: &mut Context<Self>) {
        let Some(window) = self.policy().map(|p| p.resume_window) else {
            return;
        };
        if !self.fanout.is_empty() || self.resume_timer.is_some() || self.finished {
            return;
        }
        log::debug!("Session {} waits {window:?} for a connection.", self.id);
        self.resume_timer = Some(ctx.run_later(window, |act, ctx| {
            act.resume_timer = None;
            if act.fanout.is_empty() {
                act.begin_end(EndReason::ResumeWindowExpired, ctx);
            }
        }));
    }

    fn disarm_resume_window(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.resume_timer.take() {
            ctx.cancel_future(timer);
        }
    }
}

enum Parsed {
    Format(u32, PcmLayout),
    Audio(Bytes),
    DataEnd,
}

fn layout_of(f: &flacstream_codec::wav::WavFormat) -> PcmLayout {
    PcmLayout {
        channels: usize::from(f.channels),
        bytes_per_sample: f.bytes_per_sample(),
    }
}

/// Attaches to the registry; starts raw streams, the session-length limit and
/// progress saves for recorded sessions; releases the slot on stop.
impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.activity.touch();
        self.registry.do_send(Attach {
            id: self.id,
            session: ctx.address(),
            activity: Arc::clone(&self.activity),
        });
        if let InputFormat::Raw {
            layout,
            sample_rate,
        } = self.settings.input
        {
            self.start_stream(sample_rate, layout, ctx);
        }
        if let Some(policy) = self.policy() {
            ctx.run_later(policy.max_duration, |act, ctx| {
                act.begin_end(EndReason::MaxDuration, ctx)
            });
            ctx.run_interval(Duration::from_secs(PROGRESS_SAVE_SECONDS), |act, _| {
                act.save_progress()
            });
            self.save_progress();
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.registry.do_send(Release { id: self.id });
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

/// Audio bytes from the producer, in order, split anywhere.
#[derive(Message)]
#[rtype(result = "Result<IngestAck, SessionClosed>")]
pub struct Ingest {
    /// The sending connection (must be the producer).
    pub conn: ConnectionId,
    /// The bytes of one binary message.
    pub bytes: Bytes,
}

/// Stages the bytes; answers once all of them are staged (backpressure).
impl Handler<Ingest> for Session {
    type Result = ResponseFuture<Result<IngestAck, SessionClosed>>;

    fn handle(&mut self, msg: Ingest, ctx: &mut Self::Context) -> Self::Result {
        if self.finished
            || self.reply.is_some()
            || !self.fanout.is_producer(msg.conn)
            || matches!(self.ending, Some(r) if r != EndReason::Complete)
        {
            return Box::pin(async { Err(SessionClosed) });
        }
        self.activity.touch();
        self.bytes_in += msg.bytes.len() as u64;
        self.chunk_count += 1;
        if self.ending.is_some() {
            // Bytes after the data chunk are ignored.
            let ack = self.ack();
            return Box::pin(async move { Ok(ack) });
        }
        let (tx, rx) = oneshot::channel();
        self.input = msg.bytes;
        self.reply = Some(tx);
        self.pump(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(SessionClosed)) })
    }
}

/// The producer will send no more audio (`end`, or `close_session`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndOfInput {
    /// The connection that said so; ignored unless it is the producer.
    pub conn: ConnectionId,
    /// `Complete` for a stream's `end`, `Closed` for `close_session`.
    pub reason: EndReason,
}

/// Flushes the last partial block and finishes.
impl Handler<EndOfInput> for Session {
    type Result = ();

    fn handle(&mut self, msg: EndOfInput, ctx: &mut Self::Context) {
        if self.fanout.is_producer(msg.conn) {
            self.begin_end(msg.reason, ctx);
        }
    }
}

/// Finalize the session (HTTP `close`); answers once it has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finalize;

/// Ends input now and waits for the session to stop.
impl Handler<Finalize> for Session {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Finalize, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.begin_end(EndReason::Closed, ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Sent by the registry when no audio arrived for the idle timeout.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IdleTimeout {
    /// The timeout that passed, for the error message.
    pub after_seconds: u64,
}

/// A `/stream` session fails; a recorded session drops its idle producer
/// (it may resume) and keeps running. A session that is finishing, or whose
/// producer is waiting on backpressure, is left alone.
impl Handler<IdleTimeout> for Session {
    type Result = ();

    fn handle(&mut self, msg: IdleTimeout, ctx: &mut Self::Context) {
        // Audio may have arrived since the registry's sweep looked.
        let still_idle = self.activity.idle_for() >= Duration::from_secs(msg.after_seconds);
        if self.ending.is_some() || self.reply.is_some() || !still_idle {
            return;
        }
        let error = StreamError::IdleTimeout(msg.after_seconds);
        match (&self.kind, self.fanout.producer()) {
            (SessionKind::Stream, _) => self.fail(error, ctx),
            (SessionKind::Recording(_), Some(producer)) => {
                self.remove_connection(producer, Some(error), ctx)
            }
            (SessionKind::Recording(_), None) => {}
        }
    }
}

/// Sent by the registry when a drain's grace period is over: flush what was
/// received and end with "going away".
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Ends input now and finishes with what was received.
impl Handler<Shutdown> for Session {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        self.ending = Some(EndReason::GoingAway);
        self.pump(ctx);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
