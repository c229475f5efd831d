//! How a WAV file is cut into binary messages, and when each is due.
//!
//! As fast as possible, the file goes out in [`MAX_MESSAGE_BYTES`] pieces and
//! WebSocket backpressure sets the pace. With `--realtime` the header goes at
//! once, then the audio in pieces of [`REALTIME_STEP`], each due when a live
//! source would have captured its last byte: the piece ending `n` audio bytes
//! in is due `n / byte rate` seconds after the start. Bytes after the `data`
//! chunk go at once.

use std::ops::Range;
use std::time::Duration;

use crate::input::Header;

/// Largest binary message: the protocol recommends 64 KiB or less.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Audio per message with `--realtime`.
pub const REALTIME_STEP: Duration = Duration::from_millis(20);

/// One binary message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Its bytes within the file.
    pub range: Range<usize>,
    /// When it is due, from the start of sending; `None`: at once.
    pub due: Option<Duration>,
}

/// The messages for one file, in order.
#[derive(Debug, Clone)]
pub struct Pacing {
    len: usize,
    pos: usize,
    live: Option<Live>,
}

#[derive(Debug, Clone, Copy)]
struct Live {
    start: usize,
    end: usize,
    byte_rate: u64,
    step: usize,
}

impl Pacing {
    /// Pieces of a `len`-byte file; paced when `realtime` and the header
    /// could be read (an unreadable one goes at once for the server to judge).
    pub fn new(len: usize, header: Option<&Header>, realtime: bool) -> Self {
        let live = header.filter(|_| realtime).map(|h| {
            let align = h.format.block_align().max(1);
            let per_step = h.byte_rate() as u128 * REALTIME_STEP.as_nanos() / 1_000_000_000;
            let per_step = usize::try_from(per_step).unwrap_or(usize::MAX);
            let step = (per_step / align * align).clamp(align, MAX_MESSAGE_BYTES / align * align);
            Live {
                start: h.data_offset.min(len),
                end: h.data_end(len),
                byte_rate: h.byte_rate().max(1),
                step,
            }
        });
        Self { len, pos: 0, live }
    }
}

impl Iterator for Pacing {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.pos >= self.len {
            return None;
        }
        let start = self.pos;
        let (end, due) = match self.live {
            Some(live) if start < live.start => ((start + MAX_MESSAGE_BYTES).min(live.start), None),
            Some(live) if start < live.end => {
                let end = (start + live.step).min(live.end);
                let audio = (end - live.start) as u128;
                let nanos = audio * 1_000_000_000 / u128::from(live.byte_rate);
                let due = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                (end, Some(due))
            }
            _ => ((start + MAX_MESSAGE_BYTES).min(self.len), None),
        };
        self.pos = end;
        Some(Piece {
            range: start..end,
            due,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_header;
    use flacstream_codec::fixture::{wav_bytes, WavSpec};

    fn covers(pieces: &[Piece], len: usize) {
        let mut pos = 0;
        for p in pieces {
            assert_eq!(p.range.start, pos);
            assert!(p.range.end > pos && p.range.len() <= MAX_MESSAGE_BYTES);
            pos = p.range.end;
        }
        assert_eq!(pos, len);
    }

    #[test]
    fn fast_pieces_are_64k_and_never_due() {
        let pieces: Vec<_> = Pacing::new(200_000, None, true).collect();
        covers(&pieces, 200_000);
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().all(|p| p.due.is_none()));
    }

    #[test]
    fn realtime_paces_audio_only_at_its_byte_rate() {
        // One second of 16-bit stereo 8 kHz: 32,000 bytes, 640 per 20 ms.
        let mut spec = WavSpec::pcm(2, 8_000, 16);
        spec.chunks_after_data = vec![(*b"LIST", vec![1; 10])];
        let wav = wav_bytes(&spec, &[0; 32_000]);
        let header = parse_header(&wav).unwrap();
        let pieces: Vec<_> = Pacing::new(wav.len(), Some(&header), true).collect();
        covers(&pieces, wav.len());
        assert_eq!(pieces[0].range, 0..header.data_offset);
        assert_eq!(pieces[0].due, None);
        assert_eq!(pieces[1].range.len(), 640);
        assert_eq!(pieces[1].due, Some(Duration::from_millis(20)));
        let last_audio = &pieces[pieces.len() - 2];
        assert_eq!(last_audio.due, Some(Duration::from_secs(1)));
        assert_eq!(pieces.last().unwrap().due, None, "trailing chunk at once");
        assert_eq!(pieces.len(), 1 + 50 + 1);
    }

    #[test]
    fn realtime_steps_are_whole_frames() {
        // 24-bit 3 channels at 11,025 Hz: 99,225 B/s, 1,984.5 per 20 ms.
        let wav = wav_bytes(&WavSpec::pcm(3, 11_025, 24), &[0; 9 * 3000]);
        let header = parse_header(&wav).unwrap();
        for p in Pacing::new(wav.len(), Some(&header), true).skip(1) {
            assert_eq!(p.range.len() % 9, 0);
        }
    }
}
