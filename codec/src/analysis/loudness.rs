//! Loudness per EBU R128 / ITU-R BS.1770, kept live over a whole stream:
//! momentary (400 ms), short-term (3 s) and gated integrated loudness,
//! loudness range (EBU Tech 3342) and true peak.
//!
//! The K-weighted energy of every 100 ms sub-block is what everything is
//! made of: momentary and short-term loudness are the means of the last 4
//! and 30, the gating blocks of integrated loudness the means of each 4
//! consecutive ones (75% overlap), the short-term values of the loudness
//! range one per sub-block (10 Hz). Integrated loudness and range keep
//! histograms of 0.1 LU bins (each bin's block count and exact energy sum),
//! so the memory is fixed (about 32 KiB) however long the stream, and a
//! gate falls at most within one bin.
//!
//! Hand-written (the K-weighting and the true peak in their own files):
//! the `ebur128` crate this replaced cost 187% of level-5 encoding for
//! these measures and held 2 MiB per CD stereo stream (3 s of f64 audio
//! per channel); see BENCHMARKS.md "Analysis". Checked against ffmpeg's
//! `ebur128` filter (tests/it/analysis.rs) and the crate's figures on the
//! same audio (this module's tests).

use serde::Serialize;

use super::k_weighting::{KWeighting, MAX_CHANNELS};
use super::true_peak::TruePeak;
use super::{db, full_scale};

/// What the meter says now; decibel values are `None` while there is no
/// measure yet (or only silence).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Loudness {
    /// Integrated (gated) loudness over everything so far, LUFS.
    pub integrated_lufs: Option<f64>,
    /// Momentary loudness (the last 400 ms), LUFS.
    pub momentary_lufs: Option<f64>,
    /// Short-term loudness (the last 3 s), LUFS.
    pub short_term_lufs: Option<f64>,
    /// Loudness range, LU.
    pub loudness_range_lu: Option<f64>,
    /// Largest true peak of any channel (4× oversampled), dBTP.
    pub true_peak_dbtp: Option<f64>,
}

/// Lowest sample rate measured, in Hz: telephony's. Below it the
/// K-weighting shelf (at 1.68 kHz) reaches the Nyquist frequency, and under
/// 3.4 kHz its filter is not even stable.
pub const MIN_SAMPLE_RATE: u32 = 8000;

/// Sub-blocks in a momentary window (400 ms).
const MOMENTARY_BLOCKS: usize = 4;
/// Sub-blocks in a short-term window (3 s).
const SHORT_TERM_BLOCKS: usize = 30;
/// The absolute gate, LUFS.
const ABSOLUTE_GATE_LUFS: f64 = -70.0;
/// Integrated loudness' relative gate, LU below the absolutely gated mean.
const RELATIVE_GATE_LU: f64 = -10.0;
/// Loudness range's relative gate.
const RANGE_GATE_LU: f64 = -20.0;
/// Histogram bins: 0.1 LU each from the absolute gate up.
const BINS: usize = 1000;
const BINS_PER_LU: f64 = 10.0;

fn lufs(energy: f64) -> f64 {
    -0.691 + 10.0 * energy.log10()
}

/// Block energies by loudness, 0.1 LU bins from −70 LUFS.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    energies: Vec<f64>,
}

impl Histogram {
    fn new() -> Self {
        Self {
            counts: vec![0; BINS],
            energies: vec![0.0; BINS],
        }
    }

    fn bin(loudness: f64) -> usize {
        (((loudness - ABSOLUTE_GATE_LUFS) * BINS_PER_LU)
            .floor()
            .max(0.0) as usize)
            .min(BINS - 1)
    }

    fn center(bin: usize) -> f64 {
        ABSOLUTE_GATE_LUFS + (bin as f64 + 0.5) / BINS_PER_LU
    }

    /// Adds a block above the absolute gate.
    fn add(&mut self, energy: f64) {
        let loudness = lufs(energy);
        if loudness > ABSOLUTE_GATE_LUFS {
            let b = Self::bin(loudness);
            self.counts[b] += 1;
            self.energies[b] += energy;
        }
    }

    /// The first bin counted by a gate `relative_lu` below the mean of all:
    /// the threshold's own bin only if the threshold is at or below its
    /// centre (libebur128's rule for its histogram mode).
    fn gate(&self, relative_lu: f64) -> Option<usize> {
        let n: u64 = self.counts.iter().sum();
        if n == 0 {
            return None;
        }
        let mean = self.energies.iter().sum::<f64>() / n as f64;
        let threshold = lufs(mean) + relative_lu;
        if threshold <= ABSOLUTE_GATE_LUFS {
            return Some(0);
        }
        let bin = Self::bin(threshold);
        Some(if threshold > Self::center(bin) {
            (bin + 1).min(BINS - 1)
        } else {
            bin
        })
    }

    /// Integrated loudness: the mean energy of the blocks above the gate.
    fn integrated(&self) -> Option<f64> {
        let from = self.gate(RELATIVE_GATE_LU)?;
        let n: u64 = self.counts[from..].iter().sum();
        let e: f64 = self.energies[from..].iter().sum();
        Some(lufs(e / n.max(1) as f64)).filter(|l| n > 0 && l.is_finite())
    }

    /// Loudness range: the 10th to the 95th percentile above the gate.
    fn range(&self) -> Option<f64> {
        let from = self.gate(RANGE_GATE_LU)?;
        let n: u64 = self.counts[from..].iter().sum();
        if n == 0 {
            return None;
        }
        let percentile = |p: f64| {
            let rank = ((n - 1) as f64 * p + 0.5) as u64;
            let mut seen = 0;
            for (b, &count) in self.counts.iter().enumerate().skip(from) {
                seen += count;
                if seen > rank {
                    return Self::center(b);
                }
            }
            Self::center(BINS - 1)
        };
        Some(percentile(0.95) - percentile(0.10)).filter(|r| r.is_finite())
    }
}

/// A live loudness meter over one stream; see the module docs.
pub struct LoudnessMeter {
    channels: usize,
    /// BS.1770 channel weights (surrounds 1.41, the LFE 0).
    weights: [f64; MAX_CHANNELS],
    scale: f64,
    filter: KWeighting,
    true_peak: TruePeak,
    /// Frames in 100 ms.
    block_frames: usize,
    /// Frames in the open sub-block, and its channels' sums of squares.
    filled: usize,
    sums: [f64; MAX_CHANNELS],
    /// Weighted mean-square energy of the last sub-blocks, newest at
    /// `(newest)`, and how many there have been.
    recent: [f64; SHORT_TERM_BLOCKS],
    newest: usize,
    blocks: u64,
    gated: Histogram,
    short_terms: Histogram,
}

impl LoudnessMeter {
    /// A meter for a stream of `channels` (1..=8) at `sample_rate` (at
    /// least [`MIN_SAMPLE_RATE`]), `bits` wide; `None` outside those ranges.
    pub fn new(channels: usize, sample_rate: u32, bits: u32) -> Option<Self> {
        if !(1..=MAX_CHANNELS).contains(&channels) || sample_rate < MIN_SAMPLE_RATE || bits == 0 {
            return None;
        }
        let mut weights = [1.0; MAX_CHANNELS];
        if channels == 4 {
            // FLAC's quad: front left and right, back left and right.
            weights[2] = 1.41;
            weights[3] = 1.41;
        }
        if channels >= 5 {
            // FLAC's (and WAV's) orders: L R C (LFE) Ls Rs …
            let lfe = usize::from(channels >= 6);
            if lfe == 1 {
                weights[3] = 0.0;
            }
            for w in weights.iter_mut().take(channels).skip(3 + lfe) {
                *w = 1.41;
            }
        }
        Some(Self {
            channels,
            weights,
            scale: 1.0 / full_scale(bits),
            filter: KWeighting::new(channels, sample_rate),
            true_peak: TruePeak::new(channels, sample_rate),
            block_frames: ((sample_rate as usize + 5) / 10).max(1),
            filled: 0,
            sums: [0.0; MAX_CHANNELS],
            recent: [0.0; SHORT_TERM_BLOCKS],
            newest: 0,
            blocks: 0,
            gated: Histogram::new(),
            short_terms: Histogram::new(),
        })
    }

    /// Adds interleaved whole frames.
    pub fn add(&mut self, samples: &[i32]) {
        let ch = self.channels;
        let whole = samples.len() - samples.len() % ch;
        let mut rest = &samples[..whole];
        self.true_peak.add(rest, self.scale as f32);
        while !rest.is_empty() {
            let n = (self.block_frames - self.filled).min(rest.len() / ch);
            let (now, later) = rest.split_at(n * ch);
            self.filter.filter_energy(now, self.scale, &mut self.sums);
            self.filled += n;
            rest = later;
            if self.filled == self.block_frames {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let energy = (0..self.channels)
            .map(|c| self.weights[c] * self.sums[c])
            .sum::<f64>()
            / self.block_frames as f64;
        self.sums = [0.0; MAX_CHANNELS];
        self.filled = 0;
        self.newest = (self.newest + 1) % SHORT_TERM_BLOCKS;
        self.recent[self.newest] = energy;
        self.blocks += 1;
        if self.blocks >= MOMENTARY_BLOCKS as u64 {
            self.gated.add(self.window(MOMENTARY_BLOCKS));
        }
        if self.blocks >= SHORT_TERM_BLOCKS as u64 {
            self.short_terms.add(self.window(SHORT_TERM_BLOCKS));
        }
    }

    /// The mean energy of the last `n` sub-blocks (those before the
    /// stream's start count as silence).
    fn window(&self, n: usize) -> f64 {
        (0..n)
            .map(|i| self.recent[(self.newest + SHORT_TERM_BLOCKS - i) % SHORT_TERM_BLOCKS])
            .sum::<f64>()
            / n as f64
    }

    /// The measures now.
    pub fn loudness(&self) -> Loudness {
        let measured = |n: usize| {
            (self.blocks > 0)
                .then(|| lufs(self.window(n)))
                .filter(|l| l.is_finite())
        };
        Loudness {
            integrated_lufs: self.gated.integrated(),
            momentary_lufs: measured(MOMENTARY_BLOCKS),
            short_term_lufs: measured(SHORT_TERM_BLOCKS),
            loudness_range_lu: self.short_terms.range(),
            true_peak_dbtp: db(self.true_peak.peak()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1_khz_sine_at_minus_20_dbfs_reads_about_minus_20_lufs_per_channel_pair() {
        // BS.1770: a 997 Hz sine at −20 dBFS in both channels of a stereo
        // stream reads −20 LUFS... minus 3.01 for being a sine, plus 3.01
        // for two channels.
        let rate = 48_000;
        let amplitude = 0.1 * 32768.0;
        let samples: Vec<i32> = (0..rate * 10)
            .flat_map(|i| {
                let v = ((i as f64) * 997.0 * std::f64::consts::TAU / f64::from(rate)).sin()
                    * amplitude;
                [v as i32, v as i32]
            })
            .collect();
        let mut meter = LoudnessMeter::new(2, rate, 16).unwrap();
        for piece in samples.chunks(4_410 * 2) {
            meter.add(piece);
        }
        let l = meter.loudness();
        let integrated = l.integrated_lufs.unwrap();
        assert!((integrated + 20.0).abs() < 0.1, "{integrated}");
        let peak = l.true_peak_dbtp.unwrap();
        assert!((peak + 20.0).abs() < 0.1, "{peak}");
        assert!(l.loudness_range_lu.unwrap() < 0.2);
    }

    #[test]
    fn rates_below_telephonys_are_not_measured() {
        // The K-weighting filter is unstable below 3.4 kHz.
        assert!(LoudnessMeter::new(1, 3_000, 16).is_none());
        assert!(LoudnessMeter::new(1, MIN_SAMPLE_RATE, 16).is_some());
    }

    #[test]
    fn a_gate_inside_a_bin_counts_only_what_is_above_it() {
        // Half the blocks at -19.93 LUFS, half at -32.73: the relative gate
        // (-32.718) is 0.012 LU above the quieter half, in its bin; they
        // must not count.
        let mut h = Histogram::new();
        let energy = |l: f64| 10f64.powf((l + 0.691) / 10.0);
        for _ in 0..100 {
            h.add(energy(-19.93));
            h.add(energy(-32.73));
        }
        let i = h.integrated().unwrap();
        assert!((i + 19.93).abs() < 0.01, "{i}");
    }

    #[test]
    fn silence_has_no_loudness() {
        let mut meter = LoudnessMeter::new(1, 16_000, 16).unwrap();
        meter.add(&vec![0; 16_000 * 3]);
        let l = meter.loudness();
        assert_eq!(l.integrated_lufs, None);
        assert_eq!(l.true_peak_dbtp, None);
    }
}

#[cfg(test)]
mod against_libebur128 {
    //! The same audio through the `ebur128` crate (a port of libebur128).
    use super::*;
    use ebur128::{EbuR128, Mode};

    /// Speech-like bursts: tones at changing levels with pauses, in
    /// `channels` channels at `rate`.
    fn signal(channels: usize, rate: u32, seconds: usize) -> Vec<i32> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        (0..rate as usize * seconds)
            .flat_map(|i| {
                let t = i as f64 / f64::from(rate);
                let level = [0.5, 0.05, 0.0, 0.2, 0.8, 0.01][(t * 0.7) as usize % 6];
                let tone = (t * 440.0 * std::f64::consts::TAU).sin() * 0.6 + noise() * 0.4;
                (0..channels)
                    .map(|c| {
                        (tone * level * [1.0, 0.3, 0.7, 0.9, 0.2, 0.5][c % 6] * 32767.0) as i32
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn reference(samples: &[i32], channels: usize, rate: u32) -> (f64, f64, f64, f64, f64) {
        let mode = Mode::I | Mode::LRA | Mode::TRUE_PEAK | Mode::M | Mode::S;
        let mut m = EbuR128::new(channels as u32, rate, mode).unwrap();
        {
            use ebur128::Channel::*;
            // FLAC's orders, as BS.1770 weighs them.
            match channels {
                4 => m.set_channel_map(&[Left, Right, LeftSurround, RightSurround]),
                5 => m.set_channel_map(&[Left, Right, Center, LeftSurround, RightSurround]),
                6 => m.set_channel_map(&[Left, Right, Center, Unused, LeftSurround, RightSurround]),
                _ => Ok(()),
            }
            .unwrap();
        }
        let f: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
        m.add_frames_f32(&f).unwrap();
        let tp = (0..channels as u32)
            .map(|c| m.true_peak(c).unwrap())
            .fold(0.0, f64::max);
        (
            m.loudness_global().unwrap(),
            m.loudness_range().unwrap(),
            20.0 * tp.log10(),
            m.loudness_momentary().unwrap(),
            m.loudness_shortterm().unwrap(),
        )
    }

    #[test]
    fn integrated_range_true_peak_momentary_and_short_term_agree() {
        let cases = [
            (1, 8_000),
            (1, 16_000),
            (2, 44_100),
            (2, 48_000),
            (4, 48_000),
            (5, 44_100),
            (6, 48_000),
            (2, 96_000),
        ];
        for (channels, rate) in cases {
            let samples = signal(channels, rate, 20);
            let (integrated, range, peak, momentary, short_term) =
                reference(&samples, channels, rate);
            let mut meter = LoudnessMeter::new(channels, rate, 16).unwrap();
            for piece in samples.chunks(channels * 1237) {
                meter.add(piece);
            }
            let l = meter.loudness();
            let case = format!("{channels} ch at {rate} Hz: {l:?}");
            assert!(
                (l.integrated_lufs.unwrap() - integrated).abs() < 0.05,
                "{case} {integrated}"
            );
            assert!(
                (l.true_peak_dbtp.unwrap() - peak).abs() < 0.01,
                "{case} {peak}"
            );
            assert!(
                (l.momentary_lufs.unwrap() - momentary).abs() < 0.05,
                "{case} {momentary}"
            );
            assert!(
                (l.short_term_lufs.unwrap() - short_term).abs() < 0.05,
                "{case} {short_term}"
            );
            // Loudness range is not compared here: libebur128 takes its
            // short-term values every second, we every 100 ms as EBU Tech
            // 3342 asks and ffmpeg does (1.2 LU apart on this signal's
            // abrupt steps); tests/it/analysis.rs holds it to ffmpeg's.
            assert!(l.loudness_range_lu.unwrap() > 0.0 && range > 0.0, "{case}");
        }
    }
}
