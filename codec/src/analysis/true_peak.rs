//! True peak per ITU-R BS.1770 annex 2: the largest magnitude of the signal
//! oversampled 4× (below 96 kHz; 2× below 192 kHz; the samples themselves
//! above), with the interpolation filter libebur128 and ffmpeg's `ebur128`
//! filter use: a 49-tap Hann-windowed sinc in polyphase form.
//!
//! Phase 0 of that filter is the identity (its other taps fall on the
//! sinc's zeros), so the true peak is the larger of the sample peak and the
//! other phases' peaks, and only those are computed. And they are computed
//! only where they could matter: an output of a phase is at most the sum of
//! its taps' magnitudes times the largest input under them, so a stretch
//! whose inputs cannot reach the peak found so far is skipped. The bound is
//! exact, not a guess; loud passages are interpolated, the rest is one
//! scan for the largest magnitude.
//!
//! Hand-written for the cost (see `k_weighting`): the `ebur128` crate's
//! true peak took the meter from 124% to 187% of level-5 encoding.

/// Channels at most (FLAC's).
pub const MAX_CHANNELS: usize = 8;

/// Frames taken from the interleaved input at a time (the scratch
/// buffers' length).
const STRETCH: usize = 256;

/// Frames checked against the bound, and interpolated if they pass, at a
/// time: short, so that inside a loud passage its quieter moments are
/// skipped too.
const WINDOW: usize = 32;

/// One phase's taps: `coeffs[t]` applies to the input `delays[t]` frames
/// before the newest.
#[derive(Debug, Clone)]
struct Phase {
    coeffs: Vec<f32>,
    delays: Vec<usize>,
    /// Σ|coeffs|: the phase's output is at most this times its largest input.
    gain_bound: f32,
}

/// The largest magnitude of `values` (no NaN among them), in lanes: a
/// comparison-and-select per lane, which compiles to packed maxima where
/// `f32::max` (NaN-aware) stays one scalar step at a time.
fn max_abs(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            let a = v.abs();
            *l = if a > *l { a } else { *l };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    lanes.into_iter().fold(tail, f32::max)
}

/// The true-peak meter of a stream's channels.
#[derive(Debug, Clone)]
pub struct TruePeak {
    channels: usize,
    /// Phases 1.. of the interpolator (phase 0 is the samples).
    phases: Vec<Phase>,
    /// The longest delay: the history kept per channel.
    history: usize,
    /// Per channel, its last `history` inputs, then scratch for a stretch.
    buffers: Vec<Vec<f32>>,
    /// The largest phase's [`Phase::gain_bound`].
    bound: f32,
    /// Largest magnitude so far per channel (inputs and interpolated).
    peaks: [f32; MAX_CHANNELS],
    out: Vec<f32>,
}

impl TruePeak {
    /// A meter for `channels` (1..=8) at `sample_rate`.
    pub fn new(channels: usize, sample_rate: u32) -> Self {
        let (taps, factor) = if sample_rate < 96_000 {
            (49usize, 4usize)
        } else if sample_rate < 192_000 {
            (49, 2)
        } else {
            (1, 1)
        };
        let mut phases: Vec<Phase> = (0..factor)
            .map(|_| Phase {
                coeffs: Vec::new(),
                delays: Vec::new(),
                gain_bound: 0.0,
            })
            .collect();
        for j in 0..taps {
            let m = j as f64 - (taps - 1) as f64 / 2.0;
            let x = m * std::f64::consts::PI / factor as f64;
            let sinc = if m.abs() < 1e-9 { 1.0 } else { x.sin() / x };
            let window = if taps > 1 {
                0.5 * (1.0 - (std::f64::consts::TAU * j as f64 / (taps - 1) as f64).cos())
            } else {
                1.0
            };
            let c = sinc * window;
            if c.abs() > 1e-9 {
                let phase = &mut phases[j % factor];
                phase.coeffs.push(c as f32);
                phase.delays.push(j / factor);
            }
        }
        for p in &mut phases {
            p.gain_bound = p.coeffs.iter().map(|c| c.abs()).sum::<f32>() * (1.0 + 1e-5);
        }
        let history = phases
            .iter()
            .flat_map(|p| p.delays.iter().copied())
            .max()
            .unwrap_or(0);
        let channels = channels.clamp(1, MAX_CHANNELS);
        let bound = phases
            .iter()
            .skip(1)
            .fold(0.0f32, |m, p| m.max(p.gain_bound));
        Self {
            channels,
            // Phase 0 holds the centre tap alone: the samples, delayed.
            phases: phases.into_iter().skip(1).collect(),
            history,
            buffers: vec![vec![0.0; history + STRETCH]; channels],
            bound,
            peaks: [0.0; MAX_CHANNELS],
            out: vec![0.0; STRETCH],
        }
    }

    /// Adds interleaved whole frames, scaled to ±1 by `scale`.
    pub fn add(&mut self, samples: &[i32], scale: f32) {
        let (ch, h) = (self.channels, self.history);
        let frames = samples.len() / ch;
        let mut at = 0;
        while at < frames {
            let n = STRETCH.min(frames - at);
            let stretch = &samples[at * ch..(at + n) * ch];
            // De-interleaved in one pass over the frames, each channel into
            // its buffer after its history (measured: a strided pass per
            // channel was half of the true peak's time).
            match &mut self.buffers[..] {
                [mono] => {
                    for (x, &s) in mono[h..h + n].iter_mut().zip(stretch) {
                        *x = s as f32 * scale;
                    }
                }
                [left, right] => {
                    let pairs = stretch.chunks_exact(2);
                    for ((l, r), f) in left[h..h + n]
                        .iter_mut()
                        .zip(&mut right[h..h + n])
                        .zip(pairs)
                    {
                        *l = f[0] as f32 * scale;
                        *r = f[1] as f32 * scale;
                    }
                }
                buffers => {
                    for (i, frame) in stretch.chunks_exact(ch).enumerate() {
                        for (buf, &s) in buffers.iter_mut().zip(frame) {
                            buf[h + i] = s as f32 * scale;
                        }
                    }
                }
            }
            for c in 0..ch {
                self.interpolate(c, n);
            }
            at += n;
        }
    }

    /// Channel `c`'s new `n` inputs, after its history in its buffer.
    fn interpolate(&mut self, c: usize, n: usize) {
        let h = self.history;
        let buf = &mut self.buffers[c];
        let peak = &mut self.peaks[c];
        *peak = peak.max(max_abs(&buf[h..h + n]));
        let mut start = 0;
        while start < n {
            let len = WINDOW.min(n - start);
            // Outputs start.. read inputs from `h` before them.
            let reach = max_abs(&buf[start..h + start + len]);
            if reach * self.bound > *peak {
                for phase in &self.phases {
                    // out[i] = Σ_t coeff[t] · x[i − delay[t]], x[i] = buf[h + i].
                    let out = &mut self.out[..len];
                    out.fill(0.0);
                    for (&coeff, &delay) in phase.coeffs.iter().zip(&phase.delays) {
                        let from = &buf[h + start - delay..h + start - delay + len];
                        for (o, x) in out.iter_mut().zip(from) {
                            *o += coeff * x;
                        }
                    }
                    *peak = peak.max(max_abs(out));
                }
            }
            start += len;
        }
        // Keep the last `h` inputs for the next stretch.
        buf.copy_within(n..n + h, 0);
    }

    /// The largest true peak of any channel, as a ratio to full scale.
    pub fn peak(&self) -> f64 {
        f64::from(
            self.peaks[..self.channels]
                .iter()
                .fold(0.0f32, |m, &p| m.max(p)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same filter, every phase and every output, no skipping.
    fn brute_force(samples: &[i32], rate: u32, scale: f32) -> f64 {
        let meter = TruePeak::new(1, rate);
        let mut peak = 0.0f32;
        for i in 0..samples.len() {
            let x = |d: usize| {
                if i >= d {
                    samples[i - d] as f32 * scale
                } else {
                    0.0
                }
            };
            peak = peak.max(x(0).abs());
            for p in &meter.phases {
                let v: f32 = p.coeffs.iter().zip(&p.delays).map(|(c, &d)| c * x(d)).sum();
                peak = peak.max(v.abs());
            }
        }
        f64::from(peak)
    }

    #[test]
    fn skipping_stretches_changes_nothing() {
        let scale = 1.0 / 32768.0;
        // Loud, then quiet, then a louder burst, with a peak between samples.
        let mut samples: Vec<i32> = (0..5000)
            .map(|i| ((i as f64 * 0.7).sin() * 20000.0) as i32)
            .collect();
        samples.extend((0..5000).map(|i| ((i as f64 * 0.3).sin() * 300.0) as i32));
        samples.extend((0..100).map(|i| if i % 2 == 0 { 32767 } else { -32768 }));
        samples.extend((0..3000).map(|i| ((i as f64 * 1.9).sin() * 1000.0) as i32));
        for piece in [1usize, 7, 256, 1000, 20_000] {
            let mut meter = TruePeak::new(1, 44_100);
            for chunk in samples.chunks(piece) {
                meter.add(chunk, scale);
            }
            let want = brute_force(&samples, 44_100, scale);
            assert!(
                (meter.peak() - want).abs() < 1e-6,
                "{piece}: {} {want}",
                meter.peak()
            );
        }
    }

    #[test]
    fn a_sine_sampled_off_its_peaks_reads_its_true_peak() {
        // fs/4 at 45° phase: every sample is at 0.707 of the amplitude.
        let samples: Vec<i32> = (0..4800)
            .map(|i| {
                let v =
                    (std::f64::consts::FRAC_PI_2 * i as f64 + std::f64::consts::FRAC_PI_4).sin();
                (v * 16384.0).round() as i32
            })
            .collect();
        let mut meter = TruePeak::new(1, 48_000);
        meter.add(&samples, 1.0 / 32768.0);
        let sample_peak = 16384.0 * std::f64::consts::FRAC_1_SQRT_2 / 32768.0;
        assert!(meter.peak() > sample_peak * 1.3, "{}", meter.peak());
        assert!((meter.peak() - 0.5).abs() < 0.02, "{}", meter.peak());
    }
}
