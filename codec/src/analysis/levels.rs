//! Per-channel levels of a run of interleaved samples.

use serde::Serialize;

use super::{db, full_scale};

/// One channel's levels over a run of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChannelLevels {
    /// Largest magnitude, dB relative to full scale; `None` if all zero.
    pub peak_dbfs: Option<f64>,
    /// Root mean square, dBFS (a full-scale square wave is 0 dBFS, a
    /// full-scale sine −3.01); `None` if all zero.
    pub rms_dbfs: Option<f64>,
    /// Samples at either end of the range (the most negative value, or the
    /// most positive): where a recording clipped, or came close.
    pub clipped_samples: u64,
    /// The mean, as a fraction of full scale (−1 to 1).
    pub dc_offset: f64,
}

/// Running sums for one channel, so a run can be measured in pieces.
#[derive(Debug, Clone, Copy, Default)]
pub struct LevelSums {
    peak: u64,
    /// Exact while under 2^63: 2^31-magnitude samples, 2^32 of them.
    sum: i64,
    /// Exact: a square is below 2^62, and a 128-bit add is two one-cycle
    /// instructions, where a floating-point sum waits four cycles on each
    /// add (measured: the chunk levels were a fifth of the analysis).
    sum_squares: u128,
    clipped: u64,
    count: u64,
}

impl LevelSums {
    /// Adds one sample of a `bits`-bit stream.
    #[inline]
    pub fn add(&mut self, sample: i32, bits: u32) {
        let magnitude = u64::from(sample.unsigned_abs());
        self.peak = self.peak.max(magnitude);
        self.sum = self.sum.wrapping_add(i64::from(sample));
        let v = i64::from(sample);
        self.sum_squares += (v * v) as u128;
        let max = (1i64 << (bits - 1)) - 1;
        if i64::from(sample) >= max || i64::from(sample) < -max {
            self.clipped += 1;
        }
        self.count += 1;
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The levels of what was added.
    pub fn levels(&self, bits: u32) -> ChannelLevels {
        let scale = full_scale(bits);
        let n = self.count.max(1) as f64;
        ChannelLevels {
            peak_dbfs: db(self.peak as f64 / scale),
            rms_dbfs: db((self.sum_squares as f64 / n).sqrt() / scale),
            clipped_samples: self.clipped,
            dc_offset: self.sum as f64 / n / scale,
        }
    }
}

/// Lanes of the vectorised sums: a multiple of 1, 2, 4 and 8 channels.
const LANES: usize = 16;

/// Adds interleaved whole frames of `sums.len()` channels of a `bits`-bit
/// stream. With 1, 2, 4 or 8 channels the samples are summed in 16 lanes
/// (lane `i` holds channel `i % channels`), which the compiler vectorises:
/// measured, the chunk levels went from a quarter of the analysis' time to
/// a tenth. Other counts go one channel at a time.
pub fn add_frames(sums: &mut [LevelSums], samples: &[i32], bits: u32) {
    let channels = sums.len().max(1);
    let max = (1i64 << (bits.clamp(1, 32) - 1)) - 1;
    let mut rest = samples;
    if LANES.is_multiple_of(channels) {
        let whole = samples.len() / LANES * LANES;
        add_lanes(sums, &samples[..whole], max, bits);
        rest = &samples[whole..];
    }
    add_strided(sums, rest, max);
}

/// [`add_frames`] over whole 16-sample groups.
fn add_lanes(sums: &mut [LevelSums], samples: &[i32], max: i64, bits: u32) {
    let channels = sums.len();
    // Squares are below 2^(2·bits − 2); a u64 lane takes this many groups
    // before it must be emptied into the exact 128-bit total.
    let per_flush = 1usize << (64 - (2 * bits.clamp(1, 32) - 2)).saturating_sub(1).min(12);
    let mut squares = [0u128; LANES];
    let (mut peak, mut sum, mut clipped) = ([0u32; LANES], [0i64; LANES], [0u32; LANES]);
    for block in samples.chunks(LANES * per_flush.max(1)) {
        let mut sq = [0u64; LANES];
        for group in block.chunks_exact(LANES) {
            for i in 0..LANES {
                let v = group[i];
                peak[i] = peak[i].max(v.unsigned_abs());
                sum[i] += i64::from(v);
                let wide = i64::from(v);
                sq[i] += (wide * wide) as u64;
                clipped[i] += u32::from(wide >= max || wide < -max);
            }
        }
        for i in 0..LANES {
            squares[i] += u128::from(sq[i]);
        }
    }
    for i in 0..LANES {
        let s = &mut sums[i % channels];
        s.peak = s.peak.max(u64::from(peak[i]));
        s.sum = s.sum.wrapping_add(sum[i]);
        s.sum_squares += squares[i];
        s.clipped += u64::from(clipped[i]);
    }
    for s in sums.iter_mut() {
        s.count += (samples.len() / channels) as u64;
    }
}

/// [`add_frames`] one channel at a time.
fn add_strided(sums: &mut [LevelSums], samples: &[i32], max: i64) {
    let channels = sums.len().max(1);
    for (c, total) in sums.iter_mut().enumerate() {
        let mut run = *total;
        for &s in samples.iter().skip(c).step_by(channels) {
            let v = i64::from(s);
            run.peak = run.peak.max(v.unsigned_abs());
            run.sum = run.sum.wrapping_add(v);
            run.sum_squares += (v * v) as u128;
            run.clipped += u64::from(v >= max || v < -max);
        }
        run.count += (samples.len() / channels) as u64 + u64::from(c < samples.len() % channels);
        *total = run;
    }
}

/// The levels of each channel of `samples` (interleaved, whole frames of
/// `channels`) in a `bits`-bit stream.
pub fn levels(samples: &[i32], channels: usize, bits: u32) -> Vec<ChannelLevels> {
    let mut sums = vec![LevelSums::default(); channels.max(1)];
    add_frames(&mut sums, samples, bits);
    sums.iter().map(|s| s.levels(bits)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_scale_square_is_0_dbfs_and_clips() {
        let samples: Vec<i32> = (0..1000)
            .map(|i| if i % 2 == 0 { 32767 } else { -32768 })
            .collect();
        let l = levels(&samples, 1, 16);
        assert!(l[0].peak_dbfs.unwrap().abs() < 1e-9);
        assert!(l[0].rms_dbfs.unwrap().abs() < 1e-3);
        assert_eq!(l[0].clipped_samples, 1000);
        assert!(l[0].dc_offset.abs() < 1e-4);
    }

    #[test]
    fn silence_has_no_decibels_and_channels_are_apart() {
        let samples: Vec<i32> = (0..200)
            .map(|i| if i % 2 == 0 { 0 } else { 4096 })
            .collect();
        let l = levels(&samples, 2, 16);
        assert_eq!(l[0].peak_dbfs, None);
        assert_eq!(l[0].rms_dbfs, None);
        let peak = l[1].peak_dbfs.unwrap();
        assert!((peak - 20.0 * (4096.0f64 / 32768.0).log10()).abs() < 1e-9);
        assert!((l[1].dc_offset - 0.125).abs() < 1e-12);
        assert_eq!(l[1].clipped_samples, 0);
    }

    #[test]
    fn a_sine_is_3_db_below_its_peak() {
        let samples: Vec<i32> = (0..48_000)
            .map(|i| {
                ((i as f64 * 1000.0 * std::f64::consts::TAU / 48_000.0).sin() * 8_000_000.0) as i32
            })
            .collect();
        let l = levels(&samples, 1, 24);
        let gap = l[0].peak_dbfs.unwrap() - l[0].rms_dbfs.unwrap();
        assert!((gap - 3.0103).abs() < 0.01, "{gap}");
    }

    #[test]
    fn the_lanes_sum_exactly_what_one_sample_at_a_time_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for bits in [8u32, 16, 24, 32] {
            for channels in 1..=8usize {
                let max = (1i64 << (bits - 1)) - 1;
                let samples: Vec<i32> = (0..channels * 5000 + channels * 3)
                    .map(|i| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        match i % 97 {
                            0 => (-max - 1) as i32,
                            1 => max as i32,
                            _ => ((state as i64).rem_euclid(2 * max + 1) - max) as i32,
                        }
                    })
                    .collect();
                let mut fast = vec![LevelSums::default(); channels];
                add_frames(&mut fast, &samples, bits);
                let mut slow = vec![LevelSums::default(); channels];
                for frame in samples.chunks_exact(channels) {
                    for (s, &v) in slow.iter_mut().zip(frame) {
                        s.add(v, bits);
                    }
                }
                for (f, s) in fast.iter().zip(&slow) {
                    assert_eq!(
                        (f.peak, f.sum, f.sum_squares, f.clipped, f.count),
                        (s.peak, s.sum, s.sum_squares, s.clipped, s.count),
                        "{bits} bits, {channels} channels"
                    );
                }
            }
        }
    }
}
