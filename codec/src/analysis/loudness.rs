//! Loudness per EBU R128 / ITU-R BS.1770, kept live over a whole stream,
//! through the `ebur128` crate (a port of libebur128).
//!
//! The meter runs in histogram mode: its memory is fixed (a 1,000-bin
//! histogram per measure) however long the stream, where the exact mode
//! keeps every 100 ms block, 1.2 MiB over a 4-hour session. The histogram's
//! bins are 0.1 LU apart; integrated loudness and range agree with ffmpeg's
//! `ebur128` filter within 0.1 LU (tests/it/analysis.rs).

use ebur128::{Channel, EbuR128, Mode};
use serde::Serialize;

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

/// A live loudness meter over one stream; see the module docs.
pub struct LoudnessMeter {
    meter: EbuR128,
    channels: usize,
    scale: f32,
    buffer: Vec<f32>,
}

impl LoudnessMeter {
    /// A meter for a stream of `channels` at `sample_rate`, `bits` wide;
    /// `None` if the crate refuses the parameters.
    pub fn new(channels: usize, sample_rate: u32, bits: u32) -> Option<Self> {
        let mode = Mode::I | Mode::LRA | Mode::TRUE_PEAK | Mode::HISTOGRAM;
        let mut meter = EbuR128::new(u32::try_from(channels).ok()?, sample_rate, mode).ok()?;
        if channels == 6 {
            // FLAC's (and WAV's) 5.1 order; the LFE is not measured.
            meter
                .set_channel_map(&[
                    Channel::Left,
                    Channel::Right,
                    Channel::Center,
                    Channel::Unused,
                    Channel::LeftSurround,
                    Channel::RightSurround,
                ])
                .ok()?;
        }
        Some(Self {
            meter,
            channels,
            scale: (1.0 / full_scale(bits)) as f32,
            buffer: Vec::new(),
        })
    }

    /// Adds interleaved whole frames.
    pub fn add(&mut self, samples: &[i32]) {
        let whole = samples.len() - samples.len() % self.channels.max(1);
        self.buffer.clear();
        self.buffer
            .extend(samples[..whole].iter().map(|&s| s as f32 * self.scale));
        // Only a wrong channel count fails, which `new` fixed.
        let _ = self.meter.add_frames_f32(&self.buffer);
    }

    /// The measures now.
    pub fn loudness(&self) -> Loudness {
        let finite = |v: Result<f64, ebur128::Error>| v.ok().filter(|v| v.is_finite());
        let true_peak = (0..self.channels as u32)
            .filter_map(|c| self.meter.true_peak(c).ok())
            .fold(0.0f64, f64::max);
        Loudness {
            integrated_lufs: finite(self.meter.loudness_global()),
            momentary_lufs: finite(self.meter.loudness_momentary()),
            short_term_lufs: finite(self.meter.loudness_shortterm()),
            loudness_range_lu: finite(self.meter.loudness_range()),
            true_peak_dbtp: db(true_peak),
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
    fn silence_has_no_loudness() {
        let mut meter = LoudnessMeter::new(1, 16_000, 16).unwrap();
        meter.add(&vec![0; 16_000 * 3]);
        let l = meter.loudness();
        assert_eq!(l.integrated_lufs, None);
        assert_eq!(l.true_peak_dbtp, None);
    }
}
