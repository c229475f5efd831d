//! Audio coming in: ingest and end-of-input messages, parsing and staging.

use actix::{Context, Handler, Message, ResponseFuture};
use bytes::{Buf, Bytes};
use flacstream_codec::pcm::PcmLayout;
use flacstream_codec::wav::{WavEvent, WavParser};
use tokio::sync::oneshot;

use super::{ConnectionId, EndReason, IngestAck, InputFormat, Session, SessionClosed, SessionKind};
use crate::metrics::{INPUT_BYTES, INPUT_SAMPLES};
use crate::StreamError;

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
            || self.handing_over
            || self.reply.is_some()
            || !self.fanout.is_producer(msg.conn)
            || matches!(self.ending, Some(r) if r != EndReason::Complete)
        {
            return Box::pin(async { Err(SessionClosed) });
        }
        if let Err(error) = self.input_rate_kept() {
            // Only this producer goes: what it sent before is accepted and
            // stays, and the session's clock keeps running for a resume.
            log::info!("Session {}: producer refused ({error}).", self.id);
            crate::metrics::rejected(error.code());
            match self.kind {
                SessionKind::Stream => self.fail(error, ctx),
                SessionKind::Recording(_) => self.remove_connection(msg.conn, Some(error), ctx),
            }
            return Box::pin(async { Err(SessionClosed) });
        }
        self.activity.touch();
        self.bytes_in += msg.bytes.len() as u64;
        metrics::counter!(INPUT_BYTES).increment(msg.bytes.len() as u64);
        self.chunk_count += 1;
        if self.ending.is_some() {
            // Bytes after the data chunk are ignored: acknowledged, not
            // measured (they are no chunk of the recording).
            let ack = self.ack();
            return Box::pin(async move { Ok(ack) });
        }
        let (tx, rx) = oneshot::channel();
        if self.measures.per_message() {
            self.chunk_bytes = msg.bytes.clone();
        }
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

impl Session {
    /// Parses and stages as much input as the ring takes. Returns whether
    /// anything moved.
    pub(super) fn stage_input(&mut self, ctx: &mut Context<Self>) -> Result<bool, StreamError> {
        let mut progressed = false;
        loop {
            if !self.audio.is_empty() {
                let Some(stream) = self.stream.as_mut() else {
                    return Err(StreamError::BadMessage("audio before header".into()));
                };
                let mut rest: &[u8] = &self.audio;
                let decoded = stream.decoder.frames_decoded();
                let staged = stream.staging.stage(&mut stream.decoder, &mut rest);
                metrics::counter!(INPUT_SAMPLES)
                    .increment(stream.decoder.frames_decoded() - decoded);
                let used = self.audio.len() - rest.len();
                self.measure_pcm(self.audio.slice(..used));
                self.audio.advance(used);
                progressed |= used > 0 || staged > 0;
                if !self.audio.is_empty() {
                    return Ok(progressed);
                }
            }
            self.sniff_input(ctx)?;
            match self.settings.input {
                InputFormat::Wav => {}
                InputFormat::Live | InputFormat::Container { .. } => {
                    let moved = self.stage_live(ctx)?;
                    if !moved {
                        return Ok(progressed);
                    }
                    progressed = true;
                    continue;
                }
                InputFormat::Raw { .. } => {
                    if self.input.is_empty() {
                        return Ok(progressed);
                    }
                    self.audio = std::mem::take(&mut self.input);
                    continue;
                }
                InputFormat::G711 { law, .. } => {
                    if self.input.is_empty() {
                        return Ok(progressed);
                    }
                    // One byte a sample: any split of the input expands alike.
                    let mut linear = Vec::with_capacity(self.input.len() * 2);
                    law.expand(&self.input, &mut linear);
                    self.input.clear();
                    self.audio = Bytes::from(linear);
                    continue;
                }
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

    /// Forgets input from a producer that is gone: bytes not yet staged were
    /// never acknowledged, and its successor resends from `samples_received`.
    pub(super) fn drop_producer_input(&mut self) {
        self.input.clear();
        if self.reply.is_some() {
            // The message being taken was counted and may be partly staged:
            // it closes as a chunk (stored, never acknowledged), so the
            // successor's chunks start where the stream stands.
            let bytes = std::mem::take(&mut self.chunk_bytes);
            self.measure_chunk(self.chunk_count, bytes);
        }
        if self.settings.input.is_decoded() {
            // What the decoder took stays, and so does its PCM still to be
            // staged: the successor sends on from `bytes_accepted`.
            if let Some(reply) = self.reply.take() {
                let _ = reply.send(Err(SessionClosed));
            }
            return;
        }
        let unstaged = self.audio.len() as u64;
        self.audio.clear();
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(SessionClosed));
        }
        match self.stream.as_mut() {
            Some(stream) => {
                // The parser already counted these bytes against a declared
                // data length; they will be sent again.
                let partial = stream.decoder.discard_partial() as u64;
                self.parser.unread(unstaged + partial);
                if partial > 0 {
                    self.measure_discard_partial();
                }
            }
            // A WAV header cut off mid-way is sent again from the start.
            None => self.parser = WavParser::new(self.settings.max_header_bytes),
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
