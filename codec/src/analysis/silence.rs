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

/// Samples looked at as one group before frame by frame: a whole number
/// of frames for 1, 2, 4 and 8 channels.
const GROUP: usize = 16;

/// Whether a group of `GROUP` samples of `CH` channels holds a silent
/// frame (`want_silent`) or a loud one, without a branch per sample.
fn group_has<const CH: usize>(group: &[i32], threshold: u64, want_silent: bool) -> bool {
    let mut below = [0u8; GROUP];
    for (b, &s) in below.iter_mut().zip(group) {
        *b = u8::from(u64::from(s.unsigned_abs()) < threshold);
    }
    let wanted = u8::from(want_silent);
    let mut hit = 0u8;
    for frame in below.chunks_exact(CH) {
        // A frame is silent when all its channels are below.
        let silent = frame.iter().fold(1u8, |all, &b| all & b);
        hit |= u8::from(silent == wanted);
    }
    hit != 0
}

/// The first frame at or after `from` that is silent (`want_silent`) or
/// loud (not). Groups of frames without one are passed over with a
/// comparison per sample the compiler vectorises; only the group holding
/// the change is searched frame by frame.
fn next_change(
    samples: &[i32],
    ch: usize,
    from: usize,
    threshold: u64,
    want_silent: bool,
    silent: &impl Fn(&[i32]) -> bool,
) -> Option<usize> {
    let frames = samples.len() / ch;
    let mut frame = from;
    if GROUP.is_multiple_of(ch) {
        let per_group = GROUP / ch;
        // Frame by frame up to a group boundary, then group by group.
        while frame < frames && !frame.is_multiple_of(per_group) {
            if silent(&samples[frame * ch..(frame + 1) * ch]) == want_silent {
                return Some(frame);
            }
            frame += 1;
        }
        while frame + per_group <= frames {
            let group = &samples[frame * ch..frame * ch + GROUP];
            let found = match ch {
                1 => group_has::<1>(group, threshold, want_silent),
                2 => group_has::<2>(group, threshold, want_silent),
                4 => group_has::<4>(group, threshold, want_silent),
                _ => group_has::<8>(group, threshold, want_silent),
            };
            if found {
                break;
            }
            frame += per_group;
        }
    }
    (frame..frames).find(|&f| silent(&samples[f * ch..(f + 1) * ch]) == want_silent)
}

/// Finds silences in a stream fed in pieces; see the module docs.
#[derive(Debug, Clone)]
pub struct SilenceDetector {
    channels: usize,
    sample_rate: u64,
    /// Magnitudes below this are silent, in sample units: the level's
    /// threshold rounded up (an integer is below a real number exactly
    /// when it is below its ceiling).
    threshold: u64,
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
            threshold: (full_scale(bits) * 10f64.powf(threshold_dbfs / 20.0))
                .ceil()
                .clamp(0.0, u64::MAX as f64) as u64,
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
        // Long scans for the next change (a silent frame while sound runs,
        // a loud one during a silence) instead of a state step per frame.
        let threshold = self.threshold;
        let silent = |frame: &[i32]| {
            frame
                .iter()
                .all(|&s| u64::from(s.unsigned_abs()) < threshold)
        };
        let ch = self.channels;
        let total = (samples.len() / ch) as u64;
        let end = self.position + total;
        let base = self.position;
        let mut from = 0usize;
        loop {
            let want_silent = self.run_start.is_none();
            let Some(i) = next_change(samples, ch, from, threshold, want_silent, &silent) else {
                break;
            };
            from = i + 1;
            let at = base + i as u64;
            match self.run_start {
                None => self.run_start = Some(at),
                Some(start) => {
                    self.close(start, at);
                    self.run_start = None;
                }
            }
        }
        self.position = end;
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

    #[test]
    fn group_scanning_finds_what_a_frame_by_frame_scan_finds() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for channels in 1..=8usize {
            // Stretches of loud and quiet frames of random lengths.
            let mut samples = Vec::new();
            for stretch in 0..60 {
                let len = (next() % 3000) as usize;
                for _ in 0..len * channels {
                    let v = (next() % 2000) as i32 - 1000;
                    samples.push(if stretch % 2 == 0 { v * 30 } else { v / 100 });
                }
            }
            let naive = {
                let (mut found, mut run, thr) = (Vec::new(), None, 33u64);
                for (i, f) in samples.chunks_exact(channels).enumerate() {
                    let quiet = f.iter().all(|&s| u64::from(s.unsigned_abs()) < thr);
                    match (quiet, run) {
                        (true, None) => run = Some(i),
                        (false, Some(s)) => {
                            if i - s >= 1600 {
                                found.push((s * 1000 / 16_000, i * 1000 / 16_000));
                            }
                            run = None;
                        }
                        _ => {}
                    }
                }
                found
            };
            // −60 dBFS of 16-bit: 32.77, so magnitudes up to 32 are silent.
            let mut d = SilenceDetector::new(channels, 16_000, 16, -60.0, 100, 10_000);
            let mut at = 0;
            while at < samples.len() / channels {
                let n = ((next() % 700) as usize + 1).min(samples.len() / channels - at);
                d.add(&samples[at * channels..(at + n) * channels]);
                at += n;
            }
            let got: Vec<(usize, usize)> = d
                .found
                .iter()
                .map(|s| (s.start_ms as usize, s.end_ms as usize))
                .collect();
            assert!(!naive.is_empty());
            assert_eq!(got, naive, "{channels} channels");
        }
    }
}
