//! The audio a recorded session has not acknowledged yet, kept so a
//! producer that lost its connection can send it again from wherever the
//! server says it stands (docs/protocol.md 9.5). Bounded: the caller reads
//! no more input while it is full.
//!
//! Offsets are bytes of audio from the start of the input, which the
//! session's `samples_received × frame bytes` is in the same units as.

use std::collections::VecDeque;

/// Kept audio, as the pieces it was read in.
#[derive(Debug)]
pub struct Backlog {
    /// (offset of the first byte, bytes), in order and contiguous.
    pieces: VecDeque<(u64, Vec<u8>)>,
    /// Offset of the first byte still kept (everything before is acknowledged).
    start: u64,
    /// Offset just past the last byte read.
    end: u64,
    /// Most bytes kept.
    capacity: u64,
}

/// The server asked for audio the backlog no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server resumes at byte {wanted} but audio before byte {start} was already dropped as acknowledged")]
pub struct Gone {
    /// Where the server resumes.
    pub wanted: u64,
    /// The first byte still kept.
    pub start: u64,
}

impl Backlog {
    /// An empty backlog holding at most `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Self {
            pieces: VecDeque::new(),
            start: 0,
            end: 0,
            capacity,
        }
    }

    /// Bytes that may still be added.
    pub fn room(&self) -> u64 {
        self.capacity.saturating_sub(self.end - self.start)
    }

    /// Offset just past the last byte read.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Offset of the first byte kept.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Appends audio read from the input (at most [`Self::room`] bytes).
    pub fn push(&mut self, bytes: Vec<u8>) {
        debug_assert!(bytes.len() as u64 <= self.room());
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len() as u64;
        self.pieces.push_back((self.end, bytes));
        self.end += len;
    }

    /// The server holds everything before `offset`: drop it. An offset at or
    /// before what was already dropped changes nothing; one past the end
    /// (impossible from a sane server) is clamped.
    pub fn acknowledge(&mut self, offset: u64) {
        let offset = offset.min(self.end);
        if offset <= self.start {
            return;
        }
        while let Some((first, bytes)) = self.pieces.front() {
            if first + bytes.len() as u64 <= offset {
                self.pieces.pop_front();
            } else {
                break;
            }
        }
        self.start = offset;
    }

    /// Checks that sending can resume at `offset`, and drops what is before it.
    pub fn resume_at(&mut self, offset: u64) -> Result<(), Gone> {
        if offset < self.start {
            return Err(Gone {
                wanted: offset,
                start: self.start,
            });
        }
        self.acknowledge(offset);
        Ok(())
    }

    /// Up to `max` bytes from `offset` on, within one piece; `None` when
    /// `offset` is at the end (or was dropped).
    pub fn slice_from(&self, offset: u64, max: usize) -> Option<&[u8]> {
        if offset < self.start || offset >= self.end {
            return None;
        }
        // Pieces are contiguous: find the one holding `offset`.
        let i = self
            .pieces
            .partition_point(|(first, bytes)| first + bytes.len() as u64 <= offset);
        let (first, bytes) = self.pieces.get(i)?;
        let from = usize::try_from(offset - first).ok()?;
        let to = bytes.len().min(from.saturating_add(max));
        Some(&bytes[from..to])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_from_any_offset_and_drops_what_is_acknowledged() {
        let mut b = Backlog::new(10);
        b.push(vec![0, 1, 2, 3]);
        b.push(vec![4, 5, 6]);
        assert_eq!(b.room(), 3);
        assert_eq!(b.slice_from(0, 100), Some(&[0, 1, 2, 3][..]));
        assert_eq!(b.slice_from(5, 1), Some(&[5][..]));
        assert_eq!(b.slice_from(7, 1), None);
        b.acknowledge(2);
        assert_eq!(b.start(), 2);
        assert_eq!(b.room(), 5, "a partly acknowledged piece frees its bytes");
        assert_eq!(b.slice_from(1, 9), None);
        assert_eq!(b.slice_from(2, 9), Some(&[2, 3][..]));
        b.acknowledge(5);
        assert_eq!(b.slice_from(5, 9), Some(&[5, 6][..]));
        assert_eq!(
            b.resume_at(3),
            Err(Gone {
                wanted: 3,
                start: 5
            })
        );
        assert!(b.resume_at(6).is_ok());
        assert_eq!(b.slice_from(6, 9), Some(&[6][..]));
        b.acknowledge(100);
        assert_eq!((b.start(), b.end(), b.room()), (7, 7, 10));
    }
}
