//! Wasted bits: low bits that are zero in every sample of a subframe, which
//! FLAC stores once (a flag and a unary count) instead of in every sample.
//!
//! flacenc never looks for them and always writes the flag clear, so 16-bit
//! audio padded into 24 bits (as DAWs and capture cards export it) came out
//! 2.3 times larger than `flac -5`. Here a channel with `k` wasted bits is
//! shifted right by `k`, predicted by flacenc as narrower audio, and its
//! subframe written by [`write_subframe`] from flacenc's parts: subframe
//! header with the flag set, the count, then warm-up samples and the rest at
//! the exact narrower width (flacenc only encodes some widths, so its own
//! writer cannot be used for all of them), and flacenc's residual bits as
//! they are.

use std::convert::Infallible;

use flacenc::bitsink::{BitSink, MemSink};
use flacenc::component::{BitRepr, ChannelAssignment, SubFrame, Verbatim};
use flacenc::source::FrameBuf;

use super::{
    choose_pair, encode_mono, encoder_error, frame_header, pair_channels, stereo_width,
    EncoderLevel, FlacError, FrameEncoder, LevelPlan, StereoSearch, StreamFormat, LEFT, MID, RIGHT,
    SIDE,
};

/// Most channels a FLAC frame holds.
const MAX_CHANNELS: usize = 8;

/// Sample frames scanned between checks for an early exit in
/// [`any_wasted_bits`]: ordinary audio shows an odd sample in every channel
/// within the first few, so the scan costs almost nothing there.
const SCAN_CHUNK_FRAMES: usize = 16;

/// Bytes of a frame's CRC-16.
const CRC_BYTES: usize = 2;
/// Bits after the last subframe: at most 7 of padding, and the CRC-16.
const FOOTER_BITS: usize = 7 + 8 * CRC_BYTES;

/// Bit 0 of a subframe's first byte: "wasted bits follow".
const WASTED_FLAG: u8 = 0x01;

/// Subframe type codes (the first byte, flag clear): constant, verbatim,
/// fixed predictor (plus order << 1) and LPC (plus (order − 1) << 1).
const TYPE_CONSTANT: u8 = 0x00;
const TYPE_VERBATIM: u8 = 0x02;
const TYPE_FIXED: u8 = 0x10;
const TYPE_LPC: u8 = 0x40;

/// Bits of an LPC subframe's coefficient-precision field (stored minus one).
const LPC_PRECISION_BITS: usize = 4;
/// Bits of an LPC subframe's quantisation-shift field (two's complement).
const LPC_SHIFT_BITS: usize = 5;

/// Narrowest sample width flacenc encodes, in bits (FLAC allows 4).
const FLACENC_MIN_BITS: usize = 8;

/// One subframe of a frame with wasted bits, ready to write.
struct Channel {
    /// flacenc's subframe of the shifted samples.
    sub: SubFrame,
    /// Width of the shifted samples in bits.
    width: usize,
    /// Wasted bits (the shift).
    wasted: u32,
    /// Size as written, in bits ([`subframe_bits`]).
    bits: usize,
}

impl FrameEncoder {
    /// The frame for a block in which some channel has wasted bits, or
    /// `None` if its subframes take more than `verbatim_bits`. Like
    /// `predict`, but every channel is encoded alone, shifted by its own
    /// wasted bits (the exhaustive stereo search included: four channels,
    /// as flacenc's).
    pub(super) fn predict_wasted(
        &mut self,
        format: &StreamFormat,
        level: EncoderLevel,
        frame_number: u32,
        interleaved: &[i32],
        verbatim_bits: usize,
    ) -> Result<Option<Vec<u8>>, FlacError> {
        let channels = format.layout.channels;
        let bps = format.layout.bits_per_sample();
        let samples = interleaved.len() / channels;
        let plan = self.plan(level, bps);
        let (assignment, subframes) = if channels == 2 {
            self.wasted_stereo(&plan, format, interleaved)?
        } else {
            let mut subframes = Vec::with_capacity(channels);
            for ch in 0..channels {
                self.channel_scratch.clear();
                self.channel_scratch
                    .extend(interleaved.iter().skip(ch).step_by(channels));
                subframes.push(encode_shifted(
                    &mut self.mono_framebuf,
                    &mut self.shift_scratch,
                    &plan,
                    format.sample_rate,
                    &self.channel_scratch,
                    bps,
                )?);
            }
            (ChannelAssignment::Independent(channels as u8), subframes)
        };
        let body: usize = subframes.iter().map(|c| c.bits).sum();
        if body > verbatim_bits {
            return Ok(None);
        }
        let header = frame_header(format, samples, assignment, frame_number)?;
        // Written in 64-bit words, as flacenc writes frames: writing the
        // residuals byte by byte made the whole encode of padded music
        // about 30% slower.
        let mut sink = MemSink::<u64>::with_capacity(header.count_bits() + body + FOOTER_BITS);
        header.write(&mut sink).map_err(encoder_error)?;
        for c in &subframes {
            write_subframe(&mut sink, &c.sub, c.width, c.wasted)?;
        }
        let Ok(_) = sink.align_to_byte();
        let mut bytes = vec![0u8; sink.len() / 8 + CRC_BYTES];
        let (frame, crc) = bytes.split_at_mut(sink.len() / 8);
        sink.write_to_byte_slice(frame);
        crc.copy_from_slice(&crc16(frame).to_be_bytes());
        Ok(Some(bytes))
    }

    /// The stereo pair (searched as `plan` says) and its channels.
    fn wasted_stereo(
        &mut self,
        plan: &LevelPlan,
        format: &StreamFormat,
        interleaved: &[i32],
    ) -> Result<(ChannelAssignment, Vec<Channel>), FlacError> {
        let bps = format.layout.bits_per_sample();
        self.fill_stereo(interleaved, plan.stereo != StereoSearch::Independent);
        let mut encode = |index: usize| {
            encode_shifted(
                &mut self.mono_framebuf,
                &mut self.shift_scratch,
                plan,
                format.sample_rate,
                &self.stereo_scratch[index],
                stereo_width(index, bps),
            )
        };
        if plan.stereo == StereoSearch::Exhaustive {
            let [l, r, m, s] = [encode(LEFT)?, encode(RIGHT)?, encode(MID)?, encode(SIDE)?];
            let sizes = [
                (l.bits + r.bits, ChannelAssignment::Independent(2)),
                (l.bits + s.bits, ChannelAssignment::LeftSide),
                (s.bits + r.bits, ChannelAssignment::RightSide),
                (m.bits + s.bits, ChannelAssignment::MidSide),
            ];
            let best = sizes.into_iter().min_by_key(|(bits, _)| *bits);
            let best = best.map_or(ChannelAssignment::Independent(2), |(_, a)| a);
            let pair = match best {
                ChannelAssignment::LeftSide => vec![l, s],
                ChannelAssignment::RightSide => vec![s, r],
                ChannelAssignment::MidSide => vec![m, s],
                ChannelAssignment::Independent(_) => vec![l, r],
            };
            return Ok((best, pair));
        }
        let wasted = match plan.stereo {
            StereoSearch::Estimated => self.stereo_scratch.each_ref().map(|s| wasted_bits(s)),
            _ => [0; 4],
        };
        let assignment = choose_pair(plan.stereo, &self.stereo_scratch, wasted);
        let (first, second) = pair_channels(&assignment);
        let a = encode(first)?;
        let b = encode(second)?;
        Ok((assignment, vec![a, b]))
    }
}

/// Encodes `signal` (samples of `width` bits) shifted right by its wasted
/// bits, as a verbatim subframe if that is smaller.
fn encode_shifted(
    framebuf: &mut Option<FrameBuf>,
    shifted: &mut Vec<i32>,
    plan: &LevelPlan,
    sample_rate: u32,
    signal: &[i32],
    width: usize,
) -> Result<Channel, FlacError> {
    let wasted = wasted_bits(signal);
    let signal = if wasted == 0 {
        signal
    } else {
        shifted.clear();
        shifted.extend(signal.iter().map(|s| s >> wasted));
        &shifted[..]
    };
    let width = width - wasted as usize;
    let sub = encode_mono(framebuf, plan, sample_rate, signal, flacenc_width(width))?;
    let bits = subframe_bits(&sub, width, wasted);
    let verbatim_size = verbatim_bits(signal.len(), width, wasted);
    let (sub, bits) = if bits <= verbatim_size {
        (sub, bits)
    } else {
        (verbatim(signal, width)?, verbatim_size)
    };
    Ok(Channel {
        sub,
        width,
        wasted,
        bits,
    })
}

/// Whether some channel of `interleaved` (whole frames of `channels`) has
/// wasted bits. Silent channels have none: a constant subframe needs no shift.
pub(super) fn any_wasted_bits(interleaved: &[i32], channels: usize) -> bool {
    if channels > MAX_CHANNELS {
        return false;
    }
    let mut ors = [0i32; MAX_CHANNELS];
    let ors = &mut ors[..channels];
    for chunk in interleaved.chunks(channels * SCAN_CHUNK_FRAMES) {
        for frame in chunk.chunks_exact(channels) {
            for (acc, sample) in ors.iter_mut().zip(frame) {
                *acc |= *sample;
            }
        }
        if ors.iter().all(|or| or & 1 != 0) {
            return false;
        }
    }
    ors.iter().any(|&or| or != 0 && or & 1 == 0)
}

/// Low bits that are zero in every sample of `signal`; 0 if all are zero.
fn wasted_bits(signal: &[i32]) -> u32 {
    let or = signal.iter().fold(0i32, |acc, s| acc | s);
    if or == 0 {
        0
    } else {
        or.trailing_zeros()
    }
}

/// The narrowest width flacenc accepts for samples of `bits` bits (1..=25):
/// at least 8, and 4n or 4n + 1.
fn flacenc_width(bits: usize) -> usize {
    let bits = bits.max(FLACENC_MIN_BITS);
    if bits % 4 <= 1 {
        bits
    } else {
        bits.next_multiple_of(4)
    }
}

/// Size in bits of `sub` as [`write_subframe`] writes it.
fn subframe_bits(sub: &SubFrame, width: usize, wasted: u32) -> usize {
    // flacenc counts warm-up samples (and constants and verbatim samples) at
    // the width it encoded with; they are written at `width`.
    let (samples, encoded_width) = match sub {
        SubFrame::Constant(c) => (1, c.bits_per_sample()),
        SubFrame::Verbatim(v) => (v.samples().len(), v.bits_per_sample()),
        SubFrame::FixedLpc(f) => (f.order(), f.bits_per_sample()),
        SubFrame::Lpc(l) => (l.order(), l.bits_per_sample()),
    };
    sub.count_bits() - samples * encoded_width + samples * width + wasted as usize
}

/// Size in bits of a verbatim subframe of `samples` samples.
fn verbatim_bits(samples: usize, width: usize, wasted: u32) -> usize {
    8 + samples * width + wasted as usize
}

/// A verbatim subframe of `signal`, whose samples fit in `width` bits.
fn verbatim(signal: &[i32], width: usize) -> Result<SubFrame, FlacError> {
    Verbatim::new(signal, flacenc_width(width))
        .map(SubFrame::from)
        .map_err(encoder_error)
}

/// Writes `sub` (samples already shifted right by `wasted`) with samples of
/// `width` bits and `wasted` bits declared wasted; `width + wasted` is the
/// width the decoder expects for the channel.
fn write_subframe(
    sink: &mut MemSink<u64>,
    sub: &SubFrame,
    width: usize,
    wasted: u32,
) -> Result<(), FlacError> {
    let residual = match sub {
        SubFrame::Constant(c) => {
            let Ok(()) = write_head(sink, TYPE_CONSTANT, wasted);
            let Ok(()) = sink.write_twoc(c.dc_offset(), width);
            None
        }
        SubFrame::Verbatim(v) => {
            let Ok(()) = write_head(sink, TYPE_VERBATIM, wasted);
            let Ok(()) = write_samples(sink, v.samples(), width);
            None
        }
        SubFrame::FixedLpc(f) => {
            let Ok(()) = write_head(sink, TYPE_FIXED | ((f.order() as u8) << 1), wasted);
            let Ok(()) = write_samples(sink, f.warm_up(), width);
            Some(f.residual())
        }
        SubFrame::Lpc(l) => {
            let params = l.parameters();
            let Ok(()) = write_head(sink, TYPE_LPC | (((l.order() - 1) as u8) << 1), wasted);
            let Ok(()) = write_samples(sink, l.warm_up(), width);
            let Ok(()) = write_lpc_parameters(sink, params);
            Some(l.residual())
        }
    };
    match residual {
        Some(r) => r.write(sink).map_err(encoder_error),
        None => Ok(()),
    }
}

/// The subframe header byte, then `wasted` in unary (`wasted − 1` zeros and
/// a one) if there are wasted bits.
fn write_head(sink: &mut MemSink<u64>, kind: u8, wasted: u32) -> Result<(), Infallible> {
    if wasted == 0 {
        return sink.write(kind);
    }
    sink.write(kind | WASTED_FLAG)?;
    sink.write_zeros(wasted as usize - 1)?;
    sink.write_lsbs(1u8, 1)
}

fn write_samples(sink: &mut MemSink<u64>, samples: &[i32], width: usize) -> Result<(), Infallible> {
    samples.iter().try_for_each(|s| sink.write_twoc(*s, width))
}

/// Coefficient precision, quantisation shift and coefficients, as flacenc
/// writes them.
fn write_lpc_parameters(
    sink: &mut MemSink<u64>,
    params: &flacenc::component::QuantizedParameters,
) -> Result<(), Infallible> {
    let precision = params.precision();
    sink.write_lsbs((precision - 1) as u8, LPC_PRECISION_BITS)?;
    sink.write_twoc(params.shift(), LPC_SHIFT_BITS)?;
    (0..params.order())
        .filter_map(|i| params.coefficient(i))
        .try_for_each(|c| sink.write_twoc(i32::from(c), precision))
}

/// FLAC's frame CRC-16 (polynomial 0x8005, initial value 0, MSB first).
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// [`crc16`] one byte at a time.
const CRC16_TABLE: [u16; 256] = {
    const POLY: u16 = 0x8005;
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_flacs() {
        // CRC-16/UMTS (FLAC's frame CRC) of "123456789".
        assert_eq!(crc16(b"123456789"), 0xFEE8);
        assert_eq!(crc16(&[]), 0);
    }

    #[test]
    fn widths_round_up_to_what_flacenc_encodes() {
        let widths: Vec<usize> = (1..=25).map(flacenc_width).collect();
        let mut expected = vec![8; 8];
        expected.extend([
            9, 12, 12, 12, 13, 16, 16, 16, 17, 20, 20, 20, 21, 24, 24, 24, 25,
        ]);
        assert_eq!(widths, expected);
    }

    #[test]
    fn detection_looks_at_each_channel_and_ignores_silence() {
        assert!(!any_wasted_bits(&[0; 64], 2));
        assert!(!any_wasted_bits(&[1, 3, 5, -7], 2));
        assert!(any_wasted_bits(&[2, 4, -6, 8], 2));
        // Channel 0 is odd at once (an early exit would be wrong here);
        // channel 1 is even throughout.
        let block: Vec<i32> = (0..4096).flat_map(|t| [t | 1, 2 * t]).collect();
        assert!(any_wasted_bits(&block, 2));
        // Silence beside a wasted channel.
        let block: Vec<i32> = (0..4096).flat_map(|t| [0, 0, t << 3]).collect();
        assert!(any_wasted_bits(&block, 3));
        assert_eq!(wasted_bits(&[0, 0]), 0);
        assert_eq!(wasted_bits(&[-(1 << 23), 0]), 23);
        assert_eq!(wasted_bits(&[12, -4, 8]), 2);
    }

    #[test]
    fn counted_bits_are_written_bits() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let tone: Vec<i32> = (0..4096)
            .map(|t| ((t as f64 * 0.02).sin() * 30_000.0) as i32 + rng.random_range(-99..99))
            .collect();
        let noise: Vec<i32> = (0..4096)
            .map(|_| rng.random_range(-32_768..32_768))
            .collect();
        let signals = [
            (tone.iter().map(|s| s << 8).collect::<Vec<_>>(), 24), // LPC
            (tone.iter().map(|s| s << 1).collect(), 17),           // LPC, side width
            (noise.iter().map(|s| s << 4).collect(), 20),          // verbatim
            (vec![5 << 9; 4096], 24),                              // constant
            (tone.clone(), 16),                                    // nothing wasted
        ];
        let mut kinds = std::collections::BTreeSet::new();
        // Level 0 predicts with fixed predictors only at 16 bits or less.
        for (level, bits) in [(0, 16), (3, 24), (8, 24)] {
            let plan = EncoderLevel::new(level).unwrap().plan(bits);
            let mut framebuf = None;
            let mut shifted = Vec::new();
            for (signal, width) in &signals {
                let c = encode_shifted(&mut framebuf, &mut shifted, &plan, 44_100, signal, *width)
                    .unwrap();
                let mut sink = MemSink::<u64>::new();
                write_subframe(&mut sink, &c.sub, c.width, c.wasted).unwrap();
                assert_eq!(sink.len(), c.bits, "level {level}, {:?}", c.sub);
                assert_eq!(c.width + c.wasted as usize, *width);
                kinds.insert(match c.sub {
                    SubFrame::Constant(_) => "constant",
                    SubFrame::Verbatim(_) => "verbatim",
                    SubFrame::FixedLpc(_) => "fixed",
                    SubFrame::Lpc(_) => "lpc",
                });
            }
        }
        assert_eq!(kinds.len(), 4, "every subframe type was written: {kinds:?}");
    }
}
