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
    /// In floating point: 53 bits of precision are far finer than the
    /// 0.01 dB the levels are given to, and cheaper than 128-bit integers.
    sum_squares: f64,
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
        let v = f64::from(sample);
        self.sum_squares += v * v;
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
            rms_dbfs: db((self.sum_squares / n).sqrt() / scale),
            clipped_samples: self.clipped,
            dc_offset: self.sum as f64 / n / scale,
        }
    }
}

/// The levels of each channel of `samples` (interleaved, whole frames of
/// `channels`) in a `bits`-bit stream.
pub fn levels(samples: &[i32], channels: usize, bits: u32) -> Vec<ChannelLevels> {
    let mut sums = vec![LevelSums::default(); channels.max(1)];
    for frame in samples.chunks_exact(channels.max(1)) {
        for (sum, &s) in sums.iter_mut().zip(frame) {
            sum.add(s, bits);
        }
    }
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
}
