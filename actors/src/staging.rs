//! PCM staging: a bounded, lock-free `ringbuf` ring between the PCM decoder
//! and block dispatch.
//!
//! Decoded samples are pushed as they arrive (any amount, split anywhere) and
//! popped a whole block at a time. The ring holds [`STAGING_BLOCKS`] blocks;
//! when it is full the session stops taking input, which is what makes the
//! transport's read loop wait and TCP push back on the client.
//!
//! The ring also notes when each block became whole (its last sample was
//! staged), for the frame latency metric, and counts what goes in and out
//! once per call, never per sample.

use std::collections::VecDeque;
use std::time::Instant;

use flacstream_codec::pcm::PcmDecoder;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::metrics::{STAGING_POPPED, STAGING_PUSHED};

/// Capacity of a session's ring in blocks: one block filling while the one
/// before it is popped for the encoder. More would buy nothing, since a
/// client that sends faster than blocks drain already waits in the read loop,
/// and each block costs 32 KiB for a stereo 4096-sample stream (4 × 8 ch at
/// most 128 KiB): with four, the ring was half of a live CD stream's measured
/// memory (BENCHMARKS.md, "Load").
pub const STAGING_BLOCKS: usize = 2;

/// Samples decoded per step from input into the ring; bounds the scratch
/// buffer at 8 KiB per session (a 20 ms chunk of CD audio is 1764 samples).
const DECODE_STEP_SAMPLES: usize = 2048;

/// A session's staging ring; see the module docs.
pub struct Staging {
    producer: HeapProd<i32>,
    consumer: HeapCons<i32>,
    block_samples: usize,
    scratch: Vec<i32>,
    /// Samples pushed since the ring was made; block boundaries fall on
    /// multiples of `block_samples`.
    pushed: u64,
    /// When each whole block still in the ring became whole, oldest first.
    whole_since: VecDeque<Instant>,
    /// When a sample was last staged: the end of a final partial block.
    last_staged: Option<Instant>,
}

impl Staging {
    /// A ring for blocks of `block_size` frames of `channels` samples.
    pub fn new(block_size: usize, channels: usize) -> Self {
        let block_samples = block_size * channels;
        let (producer, consumer) = HeapRb::new(block_samples * STAGING_BLOCKS).split();
        Self {
            producer,
            consumer,
            block_samples,
            scratch: Vec::new(),
            pushed: 0,
            whole_since: VecDeque::with_capacity(STAGING_BLOCKS),
            last_staged: None,
        }
    }

    /// Samples (all channels) in one full block.
    pub fn block_samples(&self) -> usize {
        self.block_samples
    }

    /// Samples waiting in the ring.
    pub fn staged(&self) -> usize {
        self.producer.occupied_len()
    }

    /// Free room in samples.
    pub fn room(&self) -> usize {
        self.producer.vacant_len()
    }

    /// Decodes as much of `input` as the ring has room for, advancing `input`
    /// past what was used. Returns the samples staged.
    pub fn stage(&mut self, decoder: &mut PcmDecoder, input: &mut &[u8]) -> usize {
        let channels = decoder.layout().channels;
        let mut staged = 0;
        loop {
            let room = self.room().min(DECODE_STEP_SAMPLES);
            let room = room - room % channels;
            if room == 0 || input.is_empty() {
                break;
            }
            self.scratch.resize(room, 0);
            let n = decoder.decode(input, &mut self.scratch);
            let pushed = self.producer.push_slice(&self.scratch[..n]);
            debug_assert_eq!(pushed, n, "decode never exceeds the room it was given");
            staged += n;
            if n == 0 {
                // Only a partial sample frame was left; the decoder holds it.
                break;
            }
        }
        if staged > 0 {
            self.note_staged(staged);
        }
        staged
    }

    fn note_staged(&mut self, staged: usize) {
        let now = Instant::now();
        let block = self.block_samples as u64;
        let before = self.pushed / block;
        self.pushed += staged as u64;
        for _ in before..self.pushed / block {
            self.whole_since.push_back(now);
        }
        self.last_staged = Some(now);
        metrics::counter!(STAGING_PUSHED).increment(staged as u64);
    }

    /// Pops a full block, or with `flush` whatever is left (if anything).
    pub fn pop_block(&mut self, flush: bool) -> Option<Vec<i32>> {
        self.pop_block_timed(flush).map(|(block, _)| block)
    }

    /// Like [`Staging::pop_block`], also telling when the block's last
    /// sample was staged.
    pub fn pop_block_timed(&mut self, flush: bool) -> Option<(Vec<i32>, Instant)> {
        let staged = self.consumer.occupied_len();
        let (n, whole_since) = if staged >= self.block_samples {
            (self.block_samples, self.whole_since.pop_front())
        } else if flush && staged > 0 {
            (staged, self.last_staged)
        } else {
            return None;
        };
        let mut block = vec![0; n];
        let popped = self.consumer.pop_slice(&mut block);
        debug_assert_eq!(popped, n);
        metrics::counter!(STAGING_POPPED).increment(n as u64);
        Some((block, whole_since.unwrap_or_else(Instant::now)))
    }
}

/// Counts what is left in the ring as popped, so that pushed minus popped
/// stays the samples staged in live sessions.
impl Drop for Staging {
    fn drop(&mut self) {
        let left = self.staged();
        if left > 0 {
            metrics::counter!(STAGING_POPPED).increment(left as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flacstream_codec::pcm::PcmLayout;

    #[test]
    fn stages_until_full_then_yields_blocks_in_order() {
        let layout = PcmLayout {
            channels: 2,
            bytes_per_sample: 2,
        };
        let mut decoder = PcmDecoder::new(layout);
        let mut staging = Staging::new(32, 2);
        let samples: Vec<i16> = (0..1000).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut input = bytes.as_slice();

        let staged = staging.stage(&mut decoder, &mut input);
        assert_eq!(staged, 32 * 2 * STAGING_BLOCKS, "stops at capacity");
        assert_eq!(staging.room(), 0);

        let mut out = Vec::new();
        loop {
            while let Some(block) = staging.pop_block(false) {
                assert_eq!(block.len(), 64);
                out.extend(block);
            }
            if input.is_empty() {
                break;
            }
            staging.stage(&mut decoder, &mut input);
        }
        let tail = staging.pop_block(true).unwrap();
        assert!(tail.len() < 64);
        out.extend(tail);
        assert!(staging.pop_block(true).is_none());
        assert_eq!(
            out,
            samples.iter().map(|&s| i32::from(s)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_block_is_timed_from_when_its_last_sample_was_staged() {
        let layout = PcmLayout {
            channels: 1,
            bytes_per_sample: 2,
        };
        let mut decoder = PcmDecoder::new(layout);
        let mut staging = Staging::new(4, 1);
        let bytes = [0u8; 2 * 6];
        // One whole block and half of the next.
        let mut input = &bytes[..12];
        staging.stage(&mut decoder, &mut input);
        let first_staged = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let more = [0u8; 2];
        staging.stage(&mut decoder, &mut &more[..]);
        let (block, whole) = staging.pop_block_timed(false).expect("a whole block");
        assert_eq!(block.len(), 4);
        assert!(whole <= first_staged, "timed from its own last sample");
        assert!(staging.pop_block_timed(false).is_none());
        let (tail, last) = staging.pop_block_timed(true).expect("the partial block");
        assert_eq!(tail.len(), 3);
        assert!(
            last > first_staged,
            "a partial block is timed from the last staging"
        );
    }
}
