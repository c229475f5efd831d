//! An MP4 audio track's timing: the movie and track timescales, the
//! track's media duration and its first edit, which is all gapless
//! trimming needs (see [`super::trim`]).
//!
//! Hand-written rather than `mp4parse`: Mozilla's parser reserves memory
//! for the counts a file declares, and the `media` fuzz target made it
//! allocate 108 MiB from a 1619-byte M4A. This reader walks box headers
//! with seeks and reads only fixed-size fields (at most 36 bytes at a
//! time), so what it allocates does not depend on the file, and it stops
//! after [`MAX_BOXES`] boxes.

use std::io::{Read, Seek, SeekFrom};

/// Boxes visited at most: a real M4A's path to its edit list passes a few
/// dozen; a file of millions of tiny boxes is not walked to its end.
const MAX_BOXES: u32 = 4096;

/// A box's body, as file offsets: its first byte and its end.
type Span = (u64, u64);

/// An MP4 audio track's timing, as its boxes declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Timing {
    /// The track's timescale (mdhd), ticks per second.
    pub timescale: u64,
    /// The track's media duration (mdhd), in its ticks.
    pub duration: u64,
    /// Where the first edit starts in the media, in its ticks (0 if none).
    pub media_time: u64,
    /// The first edit's duration and the movie's timescale (mvhd).
    pub edited: Option<(u64, u64)>,
}

impl Mp4Timing {
    /// Reads the first audio (`soun`) track's timing; `None` if the file
    /// has no such track or its boxes do not hold together (then nothing
    /// is trimmed).
    pub fn read<R: Read + Seek>(reader: &mut R) -> Option<Self> {
        let end = reader.seek(SeekFrom::End(0)).ok()?;
        let mut walk = Walk {
            reader,
            budget: MAX_BOXES,
        };
        let moov = walk.children((0, end), b"moov").into_iter().next()?;
        let movie_timescale = walk
            .children(moov, b"mvhd")
            .into_iter()
            .next()
            .and_then(|mvhd| walk.header_times(mvhd))
            .map(|(timescale, _)| timescale);
        for trak in walk.children(moov, b"trak") {
            let Some(mdia) = walk.children(trak, b"mdia").into_iter().next() else {
                continue;
            };
            let is_audio = walk
                .children(mdia, b"hdlr")
                .into_iter()
                .next()
                .and_then(|hdlr| walk.bytes::<12>(hdlr.0))
                .is_some_and(|h| &h[8..12] == b"soun");
            if !is_audio {
                continue;
            }
            let mdhd = walk.children(mdia, b"mdhd").into_iter().next()?;
            let (timescale, duration) = walk.header_times(mdhd)?;
            let edit = walk
                .children(trak, b"edts")
                .into_iter()
                .next()
                .and_then(|edts| walk.children(edts, b"elst").into_iter().next())
                .and_then(|elst| walk.first_edit(elst));
            return Some(Self {
                timescale,
                duration,
                media_time: edit.map_or(0, |(_, start)| start),
                edited: edit.zip(movie_timescale).map(|((d, _), m)| (d, m)),
            });
        }
        None
    }
}

struct Walk<'r, R> {
    reader: &'r mut R,
    budget: u32,
}

impl<R: Read + Seek> Walk<'_, R> {
    /// The bodies of the boxes of type `kind` directly inside `span`.
    fn children(&mut self, span: Span, kind: &[u8; 4]) -> Vec<Span> {
        let mut found = Vec::new();
        let mut at = span.0;
        while at + 8 <= span.1 && self.budget > 0 {
            self.budget -= 1;
            let Some(head) = self.bytes::<8>(at) else {
                break;
            };
            let size32 = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
            let (size, header) = match size32 {
                0 => (span.1 - at, 8),
                1 => match self.bytes::<8>(at + 8) {
                    Some(large) => (u64::from_be_bytes(large), 16),
                    None => break,
                },
                n => (n, 8),
            };
            let Some(end) = at
                .checked_add(size)
                .filter(|e| size >= header && *e <= span.1)
            else {
                break;
            };
            if &head[4..8] == kind {
                found.push((at + header, end));
            }
            at = end;
        }
        found
    }

    /// `N` bytes at `at`, if the file has them.
    fn bytes<const N: usize>(&mut self, at: u64) -> Option<[u8; N]> {
        let mut buf = [0u8; N];
        self.reader.seek(SeekFrom::Start(at)).ok()?;
        self.reader.read_exact(&mut buf).ok()?;
        Some(buf)
    }

    /// The timescale and duration of an `mvhd` or `mdhd` body (same layout
    /// up to there, version 0 with 32-bit times or 1 with 64-bit).
    fn header_times(&mut self, body: Span) -> Option<(u64, u64)> {
        let b = self
            .bytes::<32>(body.0)
            .filter(|_| body.1 - body.0 >= 32)
            .or_else(|| {
                // Version 0 bodies may be shorter than 32 bytes in a broken file.
                let short = self.bytes::<20>(body.0)?;
                let mut b = [0u8; 32];
                b[..20].copy_from_slice(&short);
                Some(b)
            })?;
        let be32 = |i: usize| u64::from(u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
        let be64 = |i: usize| (be32(i) << 32) | be32(i + 4);
        match b[0] {
            0 => Some((be32(12), be32(16))),
            1 => Some((be32(20), be64(24))),
            _ => None,
        }
    }

    /// The first non-empty edit of an `elst` body: (duration in the
    /// movie's timescale, start in the track's media time).
    fn first_edit(&mut self, body: Span) -> Option<(u64, u64)> {
        let head = self.bytes::<8>(body.0)?;
        let version = head[0];
        let count = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let entry_len: u64 = if version == 1 { 20 } else { 12 };
        for i in 0..u64::from(count.min(2)) {
            let at = body.0 + 8 + i * entry_len;
            if at + entry_len > body.1 {
                return None;
            }
            let e = self.bytes::<20>(at).or_else(|| {
                let short = self.bytes::<12>(at)?;
                let mut e = [0u8; 20];
                e[..12].copy_from_slice(&short);
                Some(e)
            })?;
            let be32 = |i: usize| u32::from_be_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            let (duration, start) = if version == 1 {
                (
                    (u64::from(be32(0)) << 32) | u64::from(be32(4)),
                    ((i64::from(be32(8)) << 32) | i64::from(be32(12))),
                )
            } else {
                (u64::from(be32(0)), i64::from(be32(4) as i32))
            };
            // -1: an empty edit (a gap before the media); skip to the next.
            if start == -1 {
                continue;
            }
            return u64::try_from(start).ok().map(|s| (duration, s));
        }
        None
    }
}
