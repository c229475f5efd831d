//! The silent stretches of a stream, found as ffmpeg's `silencedetect`
//! finds them: a sample frame is silent when every channel's magnitude is
//! below the threshold; a run of silent frames at least the minimum
//! duration long is a silence, from its first silent frame to the first
//! frame that is not (or the end of the stream).

use serde::Serialize;

use super::full_scale;

/// One silence, in milliseconds from the start of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Silence {
    /// Where it starts.
    pub start_ms: u64,
    /// Where it ends.
    pub end_ms: u64,
}

/// Finds silences in a stream fed in pieces; see the module docs.
#[derive(Debug, Clone)]
pub struct SilenceDetector {
    channels: usize,
    sample_rate: u64,
    /// Magnitudes below this are silent, in sample units.
    threshold: f64,
    /// Frames a silence lasts at least.
    min_frames: u64,
    /// Frames seen.
    position: u64,
    /// The first frame of the current silent run, if in one.
    run_start: Option<u64>,
    found: Vec<Silence>,
    /// Silences kept at most; older ones are dropped (and counted).
    max_kept: usize,
    dropped: u64,
}

impl SilenceDetector {
    /// A detector for a stream of `channels` at `sample_rate`, `bits` wide:
    /// silent below `threshold_dbfs`, for at least `min_duration_ms`;
    /// keeps the last `max_kept` silences.
    pub fn new(
        channels: usize,
        sample_rate: u32,
        bits: u32,
        threshold_dbfs: f64,
        min_duration_ms: u64,
        max_kept: usize,
    ) -> Self {
        Self {
            channels: channels.max(1),
            sample_rate: u64::from(sample_rate.max(1)),
            threshold: full_scale(bits) * 10f64.powf(threshold_dbfs / 20.0),
            min_frames: (min_duration_ms * u64::from(sample_rate)).div_ceil(1000),
            position: 0,
            run_start: None,
            found: Vec::new(),
            max_kept,
            dropped: 0,
        }
    }

    /// Adds interleaved whole frames.
    pub fn add(&mut self, samples: &[i32]) {
        for frame in samples.chunks_exact(self.channels) {
            let silent = frame.iter().all(|&s| f64::from(s).abs() < self.threshold);
            match (silent, self.run_start) {
                (true, None) => self.run_start = Some(self.position),
                (false, Some(start)) => {
                    self.close(start, self.position);
                    self.run_start = None;
                }
                _ => {}
            }
            self.position += 1;
        }
    }

    fn close(&mut self, start: u64, end: u64) {
        if end - start < self.min_frames.max(1) {
            return;
        }
        if self.found.len() == self.max_kept {
            if self.max_kept == 0 {
                self.dropped += 1;
                return;
            }
            self.found.remove(0);
            self.dropped += 1;
        }
        self.found.push(Silence {
            start_ms: self.ms(start),
            end_ms: self.ms(end),
        });
    }

    fn ms(&self, frame: u64) -> u64 {
        frame * 1000 / self.sample_rate
    }

    /// The silences found so far; a silence still running counts up to
    /// now if it is long enough already.
    pub fn silences(&self) -> Vec<Silence> {
        let mut all = self.found.clone();
        if let Some(start) = self.run_start {
            if self.position - start >= self.min_frames.max(1) {
                all.push(Silence {
                    start_ms: self.ms(start),
                    end_ms: self.ms(self.position),
                });
            }
        }
        all
    }

    /// Silences dropped to keep the last `max_kept`.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_long_enough_is_a_silence_a_short_one_is_not() {
        // 1 kHz rate: 1 frame = 1 ms. Loud 100, silent 600, loud 100,
        // silent 200 (too short), loud 100, silent 700 to the end.
        let mut s = Vec::new();
        for (len, v) in [
            (100, 20_000),
            (600, 3),
            (100, 20_000),
            (200, 0),
            (100, -20_000),
            (700, 0),
        ] {
            s.extend(std::iter::repeat_n(v, len));
        }
        let mut d = SilenceDetector::new(1, 1000, 16, -60.0, 500, 100);
        for piece in s.chunks(37) {
            d.add(piece);
        }
        assert_eq!(
            d.silences(),
            vec![
                Silence {
                    start_ms: 100,
                    end_ms: 700
                },
                Silence {
                    start_ms: 1100,
                    end_ms: 1800
                },
            ]
        );
    }

    #[test]
    fn every_channel_must_be_quiet_and_the_list_is_bounded() {
        let mut d = SilenceDetector::new(2, 1000, 16, -60.0, 10, 2);
        // Left silent, right loud: no silence.
        d.add(&[0, 20_000].repeat(50));
        assert!(d.silences().is_empty());
        for _ in 0..3 {
            d.add(&[0, 0].repeat(20));
            d.add(&[9_000, 9_000].repeat(5));
        }
        assert_eq!(d.silences().len(), 2);
        assert_eq!(d.dropped(), 1);
    }
}
