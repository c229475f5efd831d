//! `record --realtime`: the pace of a live source.

use std::time::Duration;

use crate::pacing::{MAX_MESSAGE_BYTES, REALTIME_STEP};
use crate::source::RawSpec;

/// `--realtime`: audio goes out no faster than a live source would make it,
/// in [`REALTIME_STEP`] pieces, each due when its last byte would have been
/// captured, counted from the start of the recording (so a resume does not
/// restart the clock, and resent audio goes out at once).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    start: tokio::time::Instant,
    /// Audio bytes per second.
    byte_rate: u64,
    /// Bytes per message: whole frames, [`REALTIME_STEP`] of audio.
    pub step: usize,
}

impl Pace {
    /// The pace of audio in `spec`, from now.
    pub fn new(spec: &RawSpec) -> Self {
        let frame = spec.frame_bytes().max(1);
        let byte_rate = (u64::from(spec.sample_rate) * frame).max(1);
        let per_step = u128::from(byte_rate) * REALTIME_STEP.as_nanos() / 1_000_000_000;
        let frames = (per_step / u128::from(frame)).max(1);
        let step = usize::try_from(frames * u128::from(frame))
            .unwrap_or(MAX_MESSAGE_BYTES)
            .min(MAX_MESSAGE_BYTES);
        Self {
            start: tokio::time::Instant::now(),
            byte_rate,
            step,
        }
    }

    /// When the audio up to byte `end` is due.
    pub fn due(&self, end: u64) -> tokio::time::Instant {
        let nanos = u128::from(end) * 1_000_000_000 / u128::from(self.byte_rate);
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_pieces_are_whole_frames_of_20_ms() {
        let spec = RawSpec {
            format: crate::source::SampleFormat::S24le,
            sample_rate: 11_025,
            channels: 3,
        };
        let pace = Pace::new(&spec);
        assert_eq!(pace.byte_rate, 99_225);
        assert_eq!(pace.step % 9, 0);
        assert_eq!(pace.step, 220 * 9, "20 ms of 11,025 Hz is 220.5 frames");
        assert_eq!(pace.due(99_225) - pace.start, Duration::from_secs(1));
    }
}
