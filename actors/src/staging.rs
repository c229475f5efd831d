//! PCM staging: a bounded, lock-free `ringbuf` ring between the PCM decoder
//! and block dispatch.
//!
//! Decoded samples are pushed as they arrive (any amount, split anywhere) and
//! popped a whole block at a time. The ring holds [`STAGING_BLOCKS`] blocks;
//! when it is full the session stops taking input, which is what makes the
//! transport's read loop wait and TCP push back on the client.

use flacstream_codec::pcm::PcmDecoder;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Capacity of a session's ring in blocks. Two would keep the encoder fed
/// while the next block fills; four absorbs bursty clients without letting
/// one session hold much memory (4 × 4096 × 8 ch × 4 B = 512 KiB at most).
pub const STAGING_BLOCKS: usize = 4;

/// Samples decoded per step from input into the ring; bounds the scratch buffer.
const DECODE_STEP_SAMPLES: usize = 8192;

/// A session's staging ring; see the module docs.
pub struct Staging {
    producer: HeapProd<i32>,
    consumer: HeapCons<i32>,
    block_samples: usize,
    scratch: Vec<i32>,
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
                return staged;
            }
            self.scratch.resize(room, 0);
            let n = decoder.decode(input, &mut self.scratch);
            let pushed = self.producer.push_slice(&self.scratch[..n]);
            debug_assert_eq!(pushed, n, "decode never exceeds the room it was given");
            staged += n;
            if n == 0 {
                // Only a partial sample frame was left; the decoder holds it.
                return staged;
            }
        }
    }

    /// Pops a full block, or with `flush` whatever is left (if anything).
    pub fn pop_block(&mut self, flush: bool) -> Option<Vec<i32>> {
        let staged = self.consumer.occupied_len();
        let n = if staged >= self.block_samples {
            self.block_samples
        } else if flush && staged > 0 {
            staged
        } else {
            return None;
        };
        let mut block = vec![0; n];
        let popped = self.consumer.pop_slice(&mut block);
        debug_assert_eq!(popped, n);
        Some(block)
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
}
