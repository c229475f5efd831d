//! A session's input that is a container other than WAV, decoded as it
//! arrives by `codec::media::live` on a thread of its own, whose PCM is
//! staged as raw input is: a `/stream` whose first bytes are not a WAV's,
//! or a recorded session opened with a container `format`. The decoder
//! wakes the session ([`DecoderWake`]) when it took input or has events; a
//! full decoder queue leaves the input unanswered, which slows the client.
//!
//! The decoder's state lives only here, so a recorded container session
//! counts the bytes the decoder took (`bytes_accepted`): a producer that
//! resumes sends the container on from that byte, and the same decoder
//! reads on. Bytes taken are never dropped; bytes not yet taken when a
//! producer leaves were never acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::{AsyncContext, Context, Handler, Message};
use bytes::Bytes;
use flacstream_codec::media::live::{LiveDecoder, LiveEvent};
use flacstream_codec::media::{DecodeOptions, MediaError};

use super::{InputFormat, Session, SessionKind};
use crate::StreamError;

/// First bytes of the containers the WAV parser reads.
const WAV_MAGICS: [&[u8; 4]; 3] = [b"RIFF", b"RIFX", b"RF64"];

/// The live decoder of a session, once its input turned out not to be WAV.
#[derive(Default)]
pub struct LiveInput {
    decoder: Option<LiveDecoder>,
    /// The first bytes were looked at.
    sniffed: bool,
    /// A wake is queued in the session's mailbox (coalesces wakes).
    wake_pending: Arc<AtomicBool>,
    /// Container bytes the decoder took (or read past after its end).
    accepted: u64,
}

impl LiveInput {
    /// Whether the decoder has more to say (input to take, events to give).
    pub fn busy(&self) -> bool {
        self.decoder.as_ref().is_some_and(|d| !d.is_finished())
    }

    /// Container bytes taken so far: where a resuming producer goes on.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }
}

/// Whether `first` (the first bytes of a stream) may begin a WAV: a prefix
/// of, or starting with, `RIFF`, `RIFX` or `RF64`.
fn may_be_wav(first: &[u8]) -> bool {
    let n = first.len().min(4);
    WAV_MAGICS.iter().any(|m| m[..n] == first[..n])
}

/// The decoder took input or has events.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DecoderWake;

impl Handler<DecoderWake> for Session {
    type Result = ();

    fn handle(&mut self, _: DecoderWake, ctx: &mut Self::Context) {
        self.live.wake_pending.store(false, Ordering::Release);
        self.pump(ctx);
    }
}

impl Session {
    /// For a `/stream` session still expecting WAV: looks at its first
    /// bytes once, and starts a live decoder if they are not a WAV's. A
    /// session opened with a container format starts its decoder with its
    /// first bytes.
    pub(super) fn sniff_input(&mut self, ctx: &mut Context<Self>) -> Result<(), StreamError> {
        if self.live.sniffed || self.input.is_empty() || self.stream.is_some() {
            return Ok(());
        }
        match (self.settings.input, &self.kind) {
            (InputFormat::Container { .. }, _) => {}
            (InputFormat::Wav, SessionKind::Stream) if !may_be_wav(&self.input) => {
                self.settings.input = InputFormat::Live;
            }
            (InputFormat::Wav, SessionKind::Stream) => {
                self.live.sniffed = true;
                return Ok(());
            }
            _ => return Ok(()),
        }
        self.live.sniffed = true;
        let addr = ctx.address();
        let pending = Arc::clone(&self.live.wake_pending);
        let wake = Arc::new(move || {
            if !pending.swap(true, Ordering::AcqRel) {
                addr.do_send(DecoderWake);
            }
        });
        let decoder = LiveDecoder::start(DecodeOptions::default(), wake).map_err(|e| {
            StreamError::Media(MediaError::Corrupt(format!("cannot start a decoder: {e}")))
        })?;
        self.live.decoder = Some(decoder);
        Ok(())
    }

    /// Hands input to the decoder and takes its events; whether anything
    /// moved.
    pub(super) fn stage_live(&mut self, ctx: &mut Context<Self>) -> Result<bool, StreamError> {
        let Some(decoder) = self.live.decoder.as_mut() else {
            return Ok(false);
        };
        let mut progressed = false;
        if decoder.is_finished() {
            // After the container's own end (Ogg's last page, the end of a
            // Matroska segment, trailing tags such as ID3v1), what follows
            // is no audio: read past, as file decoders do.
            let dropped = !self.input.is_empty();
            self.live.accepted += self.input.len() as u64;
            self.input = Bytes::new();
            return Ok(dropped);
        }
        // When the decoder's queue is full the input stays: the wake after
        // it takes a chunk retries. The bytes go over as they are, never
        // copied (the chunk's measuring may hold them too).
        if !self.input.is_empty() {
            let len = self.input.len() as u64;
            match decoder.push(std::mem::take(&mut self.input)) {
                Ok(()) => {
                    self.live.accepted += len;
                    progressed = true;
                }
                Err(back) => self.input = back,
            }
        }
        if self.ending.is_some() && self.input.is_empty() {
            decoder.close_input();
        }
        if !self.audio.is_empty() || self.measures.full() {
            // The analysis is behind: the decoder waits (its queue fills,
            // and the client with it); the batch's end pumps again.
            return Ok(progressed);
        }
        match decoder.try_next() {
            Some(LiveEvent::Format(info)) => {
                if let InputFormat::Container { expected } = self.settings.input {
                    if info.container != expected {
                        return Err(StreamError::Media(MediaError::FormatMismatch {
                            declared: expected,
                            found: info.container,
                        }));
                    }
                }
                self.settings.source = info.codec;
                if let SessionKind::Recording(policy) = &mut self.kind {
                    // The catalog's `format` says what the content was.
                    policy.encoding = format!("{}/{}", info.container, info.codec.as_str());
                }
                self.start_stream(info.sample_rate, info.layout, ctx);
                Ok(true)
            }
            Some(LiveEvent::Pcm(pcm)) => {
                self.audio = Bytes::from(pcm);
                Ok(true)
            }
            Some(LiveEvent::End) => Ok(true),
            Some(LiveEvent::Failed(e)) => Err(StreamError::Media(e)),
            None => Ok(progressed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_be_wav;

    #[test]
    fn wav_prefixes_and_others() {
        assert!(may_be_wav(b"RI"));
        assert!(may_be_wav(b"RIFF\x10\0\0\0WAVE"));
        assert!(may_be_wav(b"RF64"));
        assert!(!may_be_wav(b"fLaC"));
        assert!(!may_be_wav(b"OggS\0"));
        assert!(!may_be_wav(b"ID3"));
        assert!(!may_be_wav(b"R\x00"));
    }
}
