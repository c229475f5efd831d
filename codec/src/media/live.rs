//! Decoding a container as it arrives (`/stream`): symphonia reads from a
//! blocking `Read`, so the decoder runs on a thread of its own, fed bytes
//! through a bounded channel and handing back events through another. The
//! caller (a session actor, which must never block) pushes without
//! waiting, takes events without waiting, and is woken by a callback when
//! the decoder took input or has events.
//!
//! Bounded: at most [`INPUT_CHUNKS`] input messages and [`OUTPUT_EVENTS`]
//! events of at most about [`EVENT_PCM_BYTES`] are queued; a full queue
//! stops the side that fills it, which is how a slow encoder slows the
//! client. One thread per stream, of [`THREAD_STACK_BYTES`].
//!
//! Containers that need to seek cannot be decoded as they arrive: an MP4
//! (its index may be at the end) is refused at once, naming `/convert`.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use symphonia::core::io::ReadOnlySource;

use super::{DecodeOptions, MediaDecoder, MediaError, MediaInfo};

/// Input messages queued for the decoder thread at most.
pub const INPUT_CHUNKS: usize = 4;

/// Events queued for the caller at most.
pub const OUTPUT_EVENTS: usize = 4;

/// PCM gathered into one event, at least (the last may be shorter): fewer,
/// larger hand-overs than one per packet.
pub const EVENT_PCM_BYTES: usize = 64 * 1024;

/// Stack of a decoder thread: symphonia's decoders keep their tables on the
/// heap; 1 MiB is plenty and keeps thousands of streams cheap.
pub const THREAD_STACK_BYTES: usize = 1024 * 1024;

/// What the decoder thread reports, in order.
#[derive(Debug)]
pub enum LiveEvent {
    /// The stream's format, once, before any PCM.
    Format(MediaInfo),
    /// Decoded PCM in that format's layout (whole sample frames).
    Pcm(Vec<u8>),
    /// The input ended and everything was decoded.
    End,
    /// Decoding failed; nothing follows.
    Failed(MediaError),
}

/// Called from the decoder thread when it took input or queued an event.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The caller's side of a live decoder.
pub struct LiveDecoder {
    input: Option<SyncSender<Bytes>>,
    output: Receiver<LiveEvent>,
    finished: bool,
}

impl LiveDecoder {
    /// Starts the decoder thread.
    pub fn start(options: DecodeOptions, wake: Wake) -> std::io::Result<Self> {
        let (input, input_rx) = sync_channel::<Bytes>(INPUT_CHUNKS);
        let (output_tx, output) = sync_channel::<LiveEvent>(OUTPUT_EVENTS);
        std::thread::Builder::new()
            .name("flacstream-decode".into())
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || run(input_rx, output_tx, options, wake))?;
        Ok(Self {
            input: Some(input),
            output,
            finished: false,
        })
    }

    /// Hands `bytes` to the decoder unless its queue is full or it has
    /// stopped taking input (then they come back).
    pub fn push(&mut self, bytes: Bytes) -> Result<(), Bytes> {
        match self.input.as_ref() {
            Some(input) => match input.try_send(bytes) {
                Ok(()) => Ok(()),
                // Full, or the thread is gone (it failed or ended): the bytes
                // come back, and the caller learns why from the events.
                Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => Err(b),
            },
            None => Err(bytes),
        }
    }

    /// No more input: the decoder finishes what it has, then says `End`.
    pub fn close_input(&mut self) {
        self.input = None;
    }

    /// The next event, if one is ready.
    pub fn try_next(&mut self) -> Option<LiveEvent> {
        if self.finished {
            return None;
        }
        match self.output.try_recv() {
            Ok(event) => {
                self.finished = matches!(event, LiveEvent::End | LiveEvent::Failed(_));
                Some(event)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                // The thread ended without saying so (a panic past the
                // decoder's own containment): a failure, not an end.
                self.finished = true;
                Some(LiveEvent::Failed(MediaError::Corrupt(
                    "the decoder stopped unexpectedly".into(),
                )))
            }
        }
    }

    /// Whether `End` or `Failed` was taken.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// The decoder thread's input: chunks from the channel, then end of file
/// when the caller closes it.
struct ChannelReader {
    input: Mutex<Receiver<Bytes>>,
    current: Bytes,
    at: usize,
    wake: Wake,
    /// Set once the caller closed the input (end of file for symphonia).
    closed: Arc<AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let next = self
                .input
                .lock()
                .map_err(|_| std::io::Error::other("input lock poisoned"))?
                .recv();
            match next {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                    // Room in the queue: the caller may push again.
                    (self.wake)();
                }
                Err(_) => {
                    self.closed.store(true, Ordering::Release);
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Whether a stream's first bytes begin a container that can be read front
/// to back: FLAC, Ogg, Matroska/WebM (EBML), AIFF (`FORM`), CAF, WAV, MP3
/// (an ID3v2 tag or a frame sync) or ADTS AAC (a frame sync).
fn known_start(head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 7] = [
        b"fLaC",
        b"OggS",
        b"\x1A\x45\xDF\xA3",
        b"FORM",
        b"caff",
        b"ID3",
        b"RIFF",
    ];
    MAGICS.iter().any(|m| head.starts_with(m))
        || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0)
}

fn run(input: Receiver<Bytes>, output: SyncSender<LiveEvent>, options: DecodeOptions, wake: Wake) {
    let send = |event: LiveEvent| {
        let sent = output.send(event).is_ok();
        wake();
        sent
    };
    let closed = Arc::new(AtomicBool::new(false));
    let mut reader = ChannelReader {
        input: Mutex::new(input),
        current: Bytes::new(),
        at: 0,
        wake: Arc::clone(&wake),
        closed: Arc::clone(&closed),
    };
    // Eight bytes say whether it is an MP4, which needs to seek.
    let mut head = Vec::with_capacity(8);
    let mut byte = [0u8; 1];
    while head.len() < 8 {
        match reader.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    if head.len() == 8 && &head[4..8] == b"ftyp" {
        send(LiveEvent::Failed(MediaError::NeedsSeeking));
        return;
    }
    if !known_start(&head) {
        // symphonia's probe would read on through the whole stream looking
        // for a sync word; a live client is told at once instead.
        send(LiveEvent::Failed(MediaError::Unrecognized));
        return;
    }
    let source = ReadOnlySource::new(std::io::Cursor::new(head).chain(reader));
    let mut decoder = match MediaDecoder::open_with(Box::new(source), options) {
        Ok(d) => d,
        Err(e) => {
            send(LiveEvent::Failed(e));
            return;
        }
    };
    if !send(LiveEvent::Format(decoder.info())) {
        return;
    }
    let mut pcm = Vec::with_capacity(EVENT_PCM_BYTES * 2);
    loop {
        match decoder.next_pcm(&mut pcm) {
            Ok(true) if pcm.len() < EVENT_PCM_BYTES => continue,
            Ok(true) => {
                if !send(LiveEvent::Pcm(std::mem::replace(
                    &mut pcm,
                    Vec::with_capacity(EVENT_PCM_BYTES * 2),
                ))) {
                    return;
                }
            }
            Ok(false) => {
                if !pcm.is_empty() && !send(LiveEvent::Pcm(std::mem::take(&mut pcm))) {
                    return;
                }
                send(LiveEvent::End);
                return;
            }
            // The client's input ended inside the container (it stopped
            // mid-file, or a demuxer such as Matroska's reads past its last
            // packet for an index that only a seekable file has): a live
            // stream ends where its input ends, as a WAV whose data is
            // shorter than declared does. Everything that arrived whole
            // was decoded. A short read while the input is still open is
            // a broken packet, not an end.
            Err(MediaError::Truncated) if closed.load(Ordering::Acquire) => {
                if !pcm.is_empty() && !send(LiveEvent::Pcm(std::mem::take(&mut pcm))) {
                    return;
                }
                send(LiveEvent::End);
                return;
            }
            Err(e) => {
                // What was decoded before the failure is kept (lossless
                // sources lose nothing that arrived whole).
                if !pcm.is_empty() {
                    send(LiveEvent::Pcm(std::mem::take(&mut pcm)));
                }
                send(LiveEvent::Failed(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn collect(decoder: &mut LiveDecoder) -> (Option<MediaInfo>, Vec<u8>, Option<MediaError>) {
        let (mut info, mut pcm, mut failed) = (None, Vec::new(), None);
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(10) {
            match decoder.try_next() {
                Some(LiveEvent::Format(i)) => info = Some(i),
                Some(LiveEvent::Pcm(p)) => pcm.extend(p),
                Some(LiveEvent::End) => break,
                Some(LiveEvent::Failed(e)) => {
                    failed = Some(e);
                    break;
                }
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        (info, pcm, failed)
    }

    #[test]
    fn a_wav_in_small_pieces_decodes_and_mp4_is_refused() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&wakes);
        let samples = crate::fixture::test_signal(5000, 2, 16, 1);
        let wav = crate::fixture::wav_bytes(
            &crate::fixture::WavSpec::pcm(2, 8000, 16),
            &crate::fixture::pcm_bytes(&samples, 16),
        );
        let live = LiveDecoder::start(
            DecodeOptions::default(),
            Arc::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .unwrap();
        let feeder = std::thread::spawn({
            let mut pieces: Vec<Bytes> = wav.chunks(333).map(Bytes::copy_from_slice).collect();
            pieces.reverse();
            move || {
                let mut live = live;
                while let Some(piece) = pieces.pop() {
                    let mut piece = piece;
                    loop {
                        match live.push(piece) {
                            Ok(()) => break,
                            Err(back) => {
                                piece = back;
                                std::thread::sleep(std::time::Duration::from_millis(1));
                            }
                        }
                    }
                }
                live.close_input();
                live
            }
        });
        let mut live = feeder.join().unwrap();
        let (info, pcm, failed) = collect(&mut live);
        assert!(failed.is_none(), "{failed:?}");
        assert_eq!(info.unwrap().sample_rate, 8000);
        assert_eq!(pcm, crate::fixture::pcm_bytes(&samples, 16));
        assert!(wakes.load(Ordering::Relaxed) > 0);

        assert!(known_start(b"fLaC\0\0\0\x22"));
        assert!(known_start(&[0xFF, 0xFB, 0x90, 0x64]));
        assert!(!known_start(b"hello world"));
        assert!(!known_start(&[0xFF, 0x10]));
        let mut mp4 = LiveDecoder::start(DecodeOptions::default(), Arc::new(|| {})).unwrap();
        mp4.push(Bytes::from_static(b"\0\0\0\x20ftypM4A \0\0\0\0"))
            .unwrap();
        mp4.close_input();
        let (_, _, failed) = collect(&mut mp4);
        assert_eq!(failed, Some(MediaError::NeedsSeeking));
    }
}
