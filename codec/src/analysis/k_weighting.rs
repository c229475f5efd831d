//! The K-weighting filter of ITU-R BS.1770: a high shelf (the head's
//! acoustic effect) followed by a high pass (RLB), combined into one
//! fourth-order IIR filter in direct form II, in f64, with the analog
//! prototypes' parameters libebur128 (and ffmpeg's `ebur128` filter) use,
//! so it is exact at 48 kHz and adapted to any other rate by the bilinear
//! transform.
//!
//! Hand-written rather than the `ebur128` crate's: measured (benches/
//! analysis.rs, BENCHMARKS.md "Analysis") that crate's meter cost 106% of
//! level-5 encoding for integrated loudness alone, where the budget is 20%;
//! it filters sample by sample through a generic per-frame path and keeps
//! 3 s of filtered audio per channel. This one runs channel states side by
//! side in one pass over interleaved samples and keeps 4 numbers per
//! channel.

/// Channels at most (FLAC's).
pub const MAX_CHANNELS: usize = 8;

/// The combined filter's coefficients; `a[0]` is 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    /// Numerator.
    pub b: [f64; 5],
    /// Denominator.
    pub a: [f64; 5],
}

impl Coefficients {
    /// The K-weighting filter at `sample_rate`.
    pub fn for_rate(sample_rate: u32) -> Self {
        let rate = f64::from(sample_rate.max(1));
        // Stage 1, the high shelf.
        let (f0, gain_db, q) = (1681.974450955533, 3.999843853973347, 0.7071752369554196);
        let k = (std::f64::consts::PI * f0 / rate).tan();
        let vh = 10f64.powf(gain_db / 20.0);
        let vb = vh.powf(0.4996667741545416);
        let a0 = 1.0 + k / q + k * k;
        let pb = [
            (vh + vb * k / q + k * k) / a0,
            2.0 * (k * k - vh) / a0,
            (vh - vb * k / q + k * k) / a0,
        ];
        let pa = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0];
        // Stage 2, the high pass.
        let (f0, q) = (38.13547087602444, 0.5003270373238773);
        let k = (std::f64::consts::PI * f0 / rate).tan();
        let a0 = 1.0 + k / q + k * k;
        let rb = [1.0, -2.0, 1.0];
        let ra = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0];
        Self {
            b: convolve(pb, rb),
            a: convolve(pa, ra),
        }
    }
}

/// The product of two second-order polynomials.
fn convolve(x: [f64; 3], y: [f64; 3]) -> [f64; 5] {
    let mut out = [0.0; 5];
    for (i, xi) in x.iter().enumerate() {
        for (j, yj) in y.iter().enumerate() {
            out[i + j] += xi * yj;
        }
    }
    out
}

/// The filter's state over a stream's channels.
#[derive(Debug, Clone)]
pub struct KWeighting {
    c: Coefficients,
    channels: usize,
    /// Per channel, the last four intermediate values (v[n-1] … v[n-4]).
    state: [[f64; 4]; MAX_CHANNELS],
}

impl KWeighting {
    /// A filter for `channels` (1..=8) at `sample_rate`.
    pub fn new(channels: usize, sample_rate: u32) -> Self {
        Self {
            c: Coefficients::for_rate(sample_rate),
            channels: channels.clamp(1, MAX_CHANNELS),
            state: [[0.0; 4]; MAX_CHANNELS],
        }
    }

    /// Filters interleaved whole frames (scaled to ±1 by `scale`) and adds
    /// each channel's sum of squared outputs to `energy`.
    pub fn filter_energy(&mut self, samples: &[i32], scale: f64, energy: &mut [f64; MAX_CHANNELS]) {
        let ch = self.channels;
        if ch == 2 {
            // Both channels in one pass: two independent recursions keep
            // the core busy where one waits on its own last result.
            let [mut l, mut r] = [self.state[0], self.state[1]];
            let (mut sl, mut sr) = (0.0, 0.0);
            for frame in samples.chunks_exact(2) {
                sl += step(&self.c, &mut l, f64::from(frame[0]) * scale);
                sr += step(&self.c, &mut r, f64::from(frame[1]) * scale);
            }
            self.state[0] = flush_denormals(l);
            self.state[1] = flush_denormals(r);
            energy[0] += sl;
            energy[1] += sr;
            return;
        }
        for (c, out) in energy.iter_mut().enumerate().take(ch) {
            let mut v = self.state[c];
            let mut sum = 0.0;
            for &s in samples.iter().skip(c).step_by(ch) {
                sum += step(&self.c, &mut v, f64::from(s) * scale);
            }
            self.state[c] = flush_denormals(v);
            *out += sum;
        }
    }
}

/// One sample through the filter; its output squared. The newest state
/// enters last, through one fused multiply-add: that is the recursion's
/// whole latency per sample.
#[inline(always)]
fn step(c: &Coefficients, v: &mut [f64; 4], x: f64) -> f64 {
    let [v1, v2, v3, v4] = *v;
    let older = x - c.a[4] * v4 - c.a[3] * v3 - c.a[2] * v2;
    // A fused multiply-add where the CPU has one (the release build's
    // x86-64-v3 does); elsewhere `mul_add` would be a libm call per sample.
    #[cfg(target_feature = "fma")]
    let v0 = (-c.a[1]).mul_add(v1, older);
    #[cfg(not(target_feature = "fma"))]
    let v0 = older - c.a[1] * v1;
    let y = c.b[0] * v0 + c.b[1] * v1 + c.b[2] * v2 + c.b[3] * v3 + c.b[4] * v4;
    *v = [v0, v1, v2, v3];
    y * y
}

/// A denormal tail after long silence costs a hundred times a normal
/// number on x86; it is far below any measurable level.
fn flush_denormals(mut v: [f64; 4]) -> [f64; 4] {
    for x in &mut v {
        if x.abs() < 1e-30 {
            *x = 0.0;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_48_khz_the_coefficients_are_bs_1770s() {
        // ITU-R BS.1770-4, tables 1 and 2 (48 kHz).
        let c = Coefficients::for_rate(48_000);
        let shelf_b = [1.53512485958697, -2.69169618940638, 1.19839281085285];
        let shelf_a = [1.0, -1.69065929318241, 0.73248077421585];
        let pass_a = [1.0, -1.99004745483398, 0.99007225036621];
        let b = convolve(shelf_b, [1.0, -2.0, 1.0]);
        let a = convolve(shelf_a, pass_a);
        for i in 0..5 {
            assert!((c.b[i] - b[i]).abs() < 1e-6, "b{i}: {} {}", c.b[i], b[i]);
            assert!((c.a[i] - a[i]).abs() < 1e-6, "a{i}: {} {}", c.a[i], a[i]);
        }
    }

    #[test]
    fn a_1_khz_tone_gains_about_0_7_db_and_dc_is_removed() {
        let rate = 48_000;
        let n = rate as usize * 2;
        let tone: Vec<i32> = (0..n)
            .map(|i| {
                ((i as f64 * 1000.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 16384.0)
                    as i32
            })
            .collect();
        let mut f = KWeighting::new(1, rate);
        let mut e = [0.0; MAX_CHANNELS];
        f.filter_energy(&tone[..rate as usize], 1.0 / 32768.0, &mut e);
        let mut e = [0.0; MAX_CHANNELS];
        f.filter_energy(&tone[rate as usize..], 1.0 / 32768.0, &mut e);
        let input: f64 = tone[rate as usize..]
            .iter()
            .map(|&s| (f64::from(s) / 32768.0).powi(2))
            .sum();
        let gain_db = 10.0 * (e[0] / input).log10();
        assert!((gain_db - 0.69).abs() < 0.05, "{gain_db}");
        let dc = vec![10_000; n];
        let mut f = KWeighting::new(1, rate);
        let mut e = [0.0; MAX_CHANNELS];
        f.filter_energy(&dc, 1.0 / 32768.0, &mut e);
        let mut e = [0.0; MAX_CHANNELS];
        f.filter_energy(&dc, 1.0 / 32768.0, &mut e);
        assert!(e[0] < 1e-6, "{}", e[0]);
    }
}
