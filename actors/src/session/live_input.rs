//! A `/stream` session's input that is not WAV: recognised from its first
//! bytes and decoded as it arrives by `codec::media::live` on a thread of
//! its own, whose PCM is staged as raw input is. The decoder wakes the
//! session ([`DecoderWake`]) when it took input or has events; a full
//! decoder queue leaves the input unanswered, which slows the client.

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
}

impl LiveInput {
    /// Whether the decoder has more to say (input to take, events to give).
    pub fn busy(&self) -> bool {
        self.decoder.as_ref().is_some_and(|d| !d.is_finished())
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
    /// bytes once, and starts a live decoder if they are not a WAV's.
    pub(super) fn sniff_input(&mut self, ctx: &mut Context<Self>) -> Result<(), StreamError> {
        if self.live.sniffed
            || self.input.is_empty()
            || self.stream.is_some()
            || self.settings.input != InputFormat::Wav
            || !matches!(self.kind, SessionKind::Stream)
        {
            return Ok(());
        }
        self.live.sniffed = true;
        if may_be_wav(&self.input) {
            return Ok(());
        }
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
        self.settings.input = InputFormat::Live;
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
            self.input = Bytes::new();
            return Ok(dropped);
        }
        // When the decoder's queue is full the input stays: the wake after
        // it takes a chunk retries.
        if !self.input.is_empty() && decoder.push(self.input.to_vec()).is_ok() {
            self.input = Bytes::new();
            progressed = true;
        }
        if self.ending.is_some() && self.input.is_empty() {
            decoder.close_input();
        }
        if !self.audio.is_empty() {
            return Ok(progressed);
        }
        match decoder.try_next() {
            Some(LiveEvent::Format(info)) => {
                self.settings.source = info.codec;
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
