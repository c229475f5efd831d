//! The session actor: one per stream.
//!
//! It owns the WAV parser, the PCM decoder and the staging ring; cuts blocks;
//! hands them to the [`EncoderPool`]; puts the frames that come back (in any
//! order) into stream order; and reports [`Outbound`] events to its transport
//! through a bounded channel.
//!
//! Backpressure: an [`Ingest`] is answered only once all its bytes are staged.
//! The ring holds a few blocks, and at most `max_blocks_in_flight` blocks are
//! being encoded or waiting to be written to the client, so a client that
//! sends faster than the encoders (or its own reader) can drain waits on its
//! socket instead of growing server memory.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::fut::wrap_future;
use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message,
    ResponseFuture,
};
use bytes::{Buf, Bytes};
use flacstream_codec::flac::{
    default_block_size, EncodedFrame, EncoderLevel, FrameStats, StreamFormat, StreamInfo,
    STREAMINFO_BYTES,
};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavEvent, WavFormat, WavParser};
use tokio::sync::{mpsc, oneshot};

use crate::activity::Activity;
use crate::encoder::{EncodeBlock, EncodeFailure};
use crate::registry::{Attach, Registry, Release, SessionId};
use crate::staging::Staging;
use crate::{EncoderPool, StreamError};

/// Default blocks a session may have encoding or queued for its client at
/// once. Two keep one block encoding while the previous one is written; four
/// let a session use more than one encoder thread when the pool is idle.
pub const DEFAULT_MAX_BLOCKS_IN_FLIGHT: usize = 4;

/// Outbound slots beyond the frames in flight: the stream header and the
/// final `done` or `error` event, so neither ever waits for room.
const OUTBOUND_SLACK: usize = 2;

/// FLAC frame numbers are 31-bit (exclusive bound).
const MAX_FRAME_NUMBER: u32 = 1 << 31;

/// Per-stream settings, fixed when the session starts.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Compression level.
    pub level: EncoderLevel,
    /// Samples per block; `None` picks [`default_block_size`] for the rate.
    pub block_size: Option<usize>,
    /// Bound on header bytes before `data` (see [`WavParser::new`]).
    pub max_header_bytes: u64,
    /// Blocks encoding or waiting for the client at once, at least 1.
    pub max_blocks_in_flight: usize,
}

/// What a session tells its transport.
#[derive(Debug)]
pub enum Outbound {
    /// FLAC bytes, in stream order: first the header, then one frame each.
    Flac(Bytes),
    /// The stream is complete (or flushed on shutdown); no more events follow.
    Done(DoneSummary),
    /// The stream failed; no more events follow.
    Failed(StreamError),
}

/// The outcome of a completed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneSummary {
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
    /// Audio bytes received (WAV bytes, header included).
    pub bytes_in: u64,
    /// FLAC bytes sent.
    pub bytes_out: u64,
    /// The stream's sample rate, channels and bits per sample.
    pub sample_rate: u32,
    /// Channels.
    pub channels: usize,
    /// Bits per sample as stored in FLAC.
    pub bits_per_sample: usize,
    /// The server was shutting down and ended the stream early.
    pub going_away: bool,
}

/// The channel a session reports on; its capacity follows from `settings`.
pub fn outbound_channel(
    settings: &SessionSettings,
) -> (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>) {
    mpsc::channel(settings.max_blocks_in_flight.max(1) + OUTBOUND_SLACK)
}

/// The session has ended; no more input is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session has ended")]
pub struct SessionClosed;

/// A stream whose header has been parsed.
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
    pool: EncoderPool,
    registry: Addr<Registry>,
    outbound: mpsc::Sender<Outbound>,
    activity: Arc<Activity>,
    parser: WavParser,
    stream: Option<Stream>,
    /// Bytes of the current [`Ingest`] not yet parsed.
    input: Bytes,
    /// Audio bytes parsed but not yet staged (the ring was full).
    audio: Bytes,
    /// Answers the current [`Ingest`] once `input` and `audio` are empty.
    reply: Option<oneshot::Sender<Result<(), SessionClosed>>>,
    /// No more input will come (client `end`, data chunk complete, or shutdown).
    input_ended: bool,
    going_away: bool,
    finished: bool,
    bytes_in: u64,
}

impl Session {
    /// A session that was admitted by `registry` as `id`, reporting on `outbound`.
    pub fn new(
        id: SessionId,
        settings: SessionSettings,
        pool: EncoderPool,
        registry: Addr<Registry>,
        outbound: mpsc::Sender<Outbound>,
    ) -> Self {
        Self {
            id,
            settings,
            pool,
            registry,
            outbound,
            activity: Arc::new(Activity::new()),
            parser: WavParser::new(settings.max_header_bytes),
            stream: None,
            input: Bytes::new(),
            audio: Bytes::new(),
            reply: None,
            input_ended: false,
            going_away: false,
            finished: false,
            bytes_in: 0,
        }
    }

    /// Parses and stages as much input as the ring takes. Returns whether
    /// anything moved.
    fn stage_input(&mut self) -> Result<bool, StreamError> {
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
            if self.input_ended && self.parser.is_done() {
                self.input.clear();
            }
            let mut rest: &[u8] = &self.input;
            let event = self.parser.next(&mut rest)?;
            let consumed = self.input.len() - rest.len();
            let event = event.map(|e| match e {
                WavEvent::Format(f) => Parsed::Format(f),
                WavEvent::Audio(a) => Parsed::Audio(self.input.slice_ref(a)),
                WavEvent::DataEnd => Parsed::DataEnd,
            });
            self.input.advance(consumed);
            match event {
                None => return Ok(progressed || consumed > 0),
                Some(Parsed::Format(format)) => self.start_stream(format),
                Some(Parsed::Audio(audio)) => self.audio = audio,
                Some(Parsed::DataEnd) => {
                    self.input_ended = true;
                    self.input.clear();
                }
            }
            progressed = true;
        }
    }

    fn start_stream(&mut self, wav: WavFormat) {
        let layout = PcmLayout {
            channels: usize::from(wav.channels),
            bytes_per_sample: wav.bytes_per_sample(),
        };
        let block_size = self
            .settings
            .block_size
            .unwrap_or_else(|| default_block_size(wav.sample_rate));
        let format = StreamFormat {
            sample_rate: wav.sample_rate,
            layout,
            block_size,
        };
        let header = StreamInfo::provisional(format).stream_header();
        let bytes_out = header.len() as u64;
        self.send(Outbound::Flac(Bytes::from(header)));
        log::debug!(
            "Session {} streams {} Hz, {} ch, {} bit, blocks of {}.",
            self.id,
            wav.sample_rate,
            wav.channels,
            wav.container_bits,
            block_size
        );
        self.stream = Some(Stream {
            format,
            decoder: PcmDecoder::new(layout),
            staging: Staging::new(block_size, layout.channels),
            next_frame: 0,
            in_flight: VecDeque::new(),
            first_pending: 0,
            stats: FrameStats::default(),
            bytes_out,
        });
    }

    /// Sends full blocks (and, once input has ended, the last partial one) to
    /// the pool while the in-flight bound allows. Returns whether any went.
    fn dispatch(&mut self, ctx: &mut Context<Self>) -> Result<bool, StreamError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        let flush = self.input_ended && self.audio.is_empty();
        let mut any = false;
        loop {
            let queued = self.outbound.max_capacity() - self.outbound.capacity();
            if stream.in_flight.len() + queued >= self.settings.max_blocks_in_flight.max(1) {
                break;
            }
            let Some(samples) = stream.staging.pop_block(flush) else {
                break;
            };
            if stream.next_frame >= MAX_FRAME_NUMBER {
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
            };
            let encoded = wrap_future::<_, Self>(self.pool.encode(job))
                .map(move |result, act, ctx| act.on_encoded(seq, result, ctx));
            ctx.spawn(encoded);
            any = true;
        }
        Ok(any)
    }

    /// Files a frame and writes out every frame that is now next in order.
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
        let mut ready = Vec::new();
        while matches!(stream.in_flight.front(), Some(Some(_))) {
            if let Some(Some(result)) = stream.in_flight.pop_front() {
                stream.first_pending += 1;
                ready.push(result);
            }
        }
        let mut frames = Vec::with_capacity(ready.len());
        for result in ready {
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
            self.send(Outbound::Flac(Bytes::from(frame.bytes)));
        }
        self.pump(ctx);
    }

    /// Moves data as far as it can go, answers the pending ingest when its
    /// bytes are staged, and finishes the stream when everything is out.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        loop {
            let staged = match self.stage_input() {
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
                let _ = reply.send(Ok(()));
            }
        }
        if self.input_ended {
            self.finish_if_drained(ctx);
        }
    }

    fn finish_if_drained(&mut self, ctx: &mut Context<Self>) {
        let Some(stream) = self.stream.as_ref() else {
            let error = match (self.going_away, self.parser.finish()) {
                (true, _) => StreamError::ShuttingDown,
                (false, Err(e)) => e.into(),
                (false, Ok(())) => StreamError::BadMessage("no WAV header arrived".into()),
            };
            return self.fail(error, ctx);
        };
        if !self.audio.is_empty() || stream.staging.staged() > 0 || !stream.in_flight.is_empty() {
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
            going_away: self.going_away,
        };
        log::info!(
            "Session {} done: {} samples in {} frames.",
            self.id,
            summary.samples,
            summary.frames
        );
        self.finished = true;
        self.send(Outbound::Done(summary));
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Ok(()));
        }
        ctx.stop();
    }

    fn fail(&mut self, error: StreamError, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        log::info!("Session {} failed: {} ({error}).", self.id, error.code());
        self.finished = true;
        self.send(Outbound::Failed(error));
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(SessionClosed));
        }
        ctx.stop();
    }

    /// Queues an event. The channel has room by construction (see
    /// [`outbound_channel`]); if the transport is gone, so is the client.
    fn send(&mut self, event: Outbound) {
        if let Err(e) = self.outbound.try_send(event) {
            log::debug!("Session {} could not report: {e}.", self.id);
        }
    }
}

enum Parsed {
    Format(WavFormat),
    Audio(Bytes),
    DataEnd,
}

/// Attaches to the registry on start and releases the slot on stop.
impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.activity.touch();
        self.registry.do_send(Attach {
            id: self.id,
            session: ctx.address(),
            activity: Arc::clone(&self.activity),
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.registry.do_send(Release { id: self.id });
    }
}

/// WAV bytes from the client, in order, split anywhere.
#[derive(Message)]
#[rtype(result = "Result<(), SessionClosed>")]
pub struct Ingest {
    /// The bytes of one binary message.
    pub bytes: Bytes,
}

/// Stages the bytes; answers once all of them are staged (backpressure).
impl Handler<Ingest> for Session {
    type Result = ResponseFuture<Result<(), SessionClosed>>;

    fn handle(&mut self, msg: Ingest, ctx: &mut Self::Context) -> Self::Result {
        if self.finished || self.going_away || self.reply.is_some() {
            return Box::pin(async { Err(SessionClosed) });
        }
        self.activity.touch();
        self.bytes_in += msg.bytes.len() as u64;
        if self.input_ended {
            // Bytes after the data chunk are ignored.
            return Box::pin(async { Ok(()) });
        }
        let (tx, rx) = oneshot::channel();
        self.input = msg.bytes;
        self.reply = Some(tx);
        self.pump(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(SessionClosed)) })
    }
}

/// The client will send no more audio.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndOfInput;

/// Flushes the last partial block and finishes.
impl Handler<EndOfInput> for Session {
    type Result = ();

    fn handle(&mut self, _msg: EndOfInput, ctx: &mut Self::Context) {
        self.input_ended = true;
        self.pump(ctx);
    }
}

/// The transport saw the client break a rule (oversize message, bad text,
/// stalled reading); the stream fails with `error`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abort {
    /// Why the stream ends.
    pub error: StreamError,
}

/// Fails the stream.
impl Handler<Abort> for Session {
    type Result = ();

    fn handle(&mut self, msg: Abort, ctx: &mut Self::Context) {
        self.fail(msg.error, ctx);
    }
}

/// The client closed the connection or vanished; nothing more can be sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientGone;

/// Stops at once; in-flight work is dropped.
impl Handler<ClientGone> for Session {
    type Result = ();

    fn handle(&mut self, _msg: ClientGone, ctx: &mut Self::Context) {
        if !self.finished {
            log::info!("Session {} ended by the client.", self.id);
            self.finished = true;
            ctx.stop();
        }
    }
}

/// The transport wrote a queued event to the client, freeing a slot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delivered;

/// Resumes dispatch now that an outbound slot is free.
impl Handler<Delivered> for Session {
    type Result = ();

    fn handle(&mut self, _msg: Delivered, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

/// Sent by the registry when no audio arrived for the idle timeout.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IdleTimeout {
    /// The timeout that passed, for the error message.
    pub after_seconds: u64,
}

/// Fails an idle stream; a stream whose input ended is finishing and is left alone.
impl Handler<IdleTimeout> for Session {
    type Result = ();

    fn handle(&mut self, msg: IdleTimeout, ctx: &mut Self::Context) {
        if !self.input_ended && self.reply.is_none() {
            self.fail(StreamError::IdleTimeout(msg.after_seconds), ctx);
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
        self.going_away = true;
        self.input_ended = true;
        self.pump(ctx);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
