//! The running STREAMINFO MD5 of a recording in object storage, whose state
//! can be saved with each durable segment and restored by another replica.
//!
//! FLAC's MD5 is over the samples as signed little-endian integers of the
//! container width, in stream order. A replica that takes a session over
//! restores the digest as it stood after the last durable segment (see
//! [`crate::segment`]) and goes on hashing, so the final STREAMINFO never
//! needs the audio decoded again. `md-5` 0.11 serializes its state
//! (`SerializableState`): 16 bytes of state, a block count and the partial
//! block; nothing here is a hand-made MD5.

use md5_resumable::digest::common::hazmat::{SerializableState, SerializedState};
use md5_resumable::{Digest, Md5};

/// The serialized state's length in bytes.
pub fn state_len() -> usize {
    SerializedState::<Md5>::default().len()
}

/// A resumable MD5 over interleaved samples; see the module docs.
#[derive(Clone, Default)]
pub struct StreamDigest {
    md5: Md5,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for StreamDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDigest").finish_non_exhaustive()
    }
}

impl StreamDigest {
    /// A digest of nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a digest saved by [`StreamDigest::state`]; `None` if the
    /// bytes are not a saved state.
    pub fn restore(state: &[u8]) -> Option<Self> {
        let state = SerializedState::<Md5>::try_from(state).ok()?;
        let md5 = Md5::deserialize(&state).ok()?;
        Some(Self {
            md5,
            scratch: Vec::new(),
        })
    }

    /// The state to save, [`state_len`] bytes.
    pub fn state(&self) -> Vec<u8> {
        self.md5.serialize().to_vec()
    }

    /// Hashes interleaved samples `bytes_per_sample` bytes wide.
    pub fn update(&mut self, samples: &[i32], bytes_per_sample: usize) {
        self.scratch.clear();
        for s in samples {
            self.scratch
                .extend_from_slice(&s.to_le_bytes()[..bytes_per_sample]);
        }
        self.md5.update(&self.scratch);
    }

    /// The digest of everything hashed so far.
    pub fn digest(&self) -> [u8; 16] {
        self.md5.clone().finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_digest_continues_exactly_where_it_was_saved() {
        let samples: Vec<i32> = (0..10_001).map(|i| (i * 7919 % 65_536) - 32_768).collect();
        let mut whole = StreamDigest::new();
        whole.update(&samples, 2);
        // Cut at an odd place, so the partial MD5 block is in the state.
        for cut in [0, 1, 31, 5_000, 10_001] {
            let mut first = StreamDigest::new();
            first.update(&samples[..cut], 2);
            let saved = first.state();
            assert_eq!(saved.len(), state_len());
            let mut second = StreamDigest::restore(&saved).unwrap();
            second.update(&samples[cut..], 2);
            assert_eq!(second.digest(), whole.digest(), "cut at {cut}");
        }
    }

    #[test]
    fn it_is_flacs_md5_of_little_endian_samples() {
        use md5::Digest as _;
        let samples = [1i32, -1, 0x12_3456, -0x40_0000];
        let mut d = StreamDigest::new();
        d.update(&samples, 3);
        let mut reference = md5::Md5::new();
        for s in samples {
            reference.update(&s.to_le_bytes()[..3]);
        }
        assert_eq!(d.digest(), <[u8; 16]>::from(reference.finalize()));
    }

    #[test]
    fn garbage_is_not_a_state() {
        assert!(StreamDigest::restore(&[1, 2, 3]).is_none());
    }
}
