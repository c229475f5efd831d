//! Streaming FLAC writer over flacenc: the stream header, STREAMINFO, and
//! one independently encoded frame per block.
//!
//! flacenc is used for what it does well (predictor search, residual coding)
//! and bypassed where it does not fit a live service:
//! - STREAMINFO is written here, because flacenc's `StreamInfo` refuses rates
//!   above 96 kHz and the live stream needs a header before totals are known.
//! - Each frame header is rebuilt with the real sample rate (192 kHz and any
//!   rate up to 655,350 Hz are representable in a frame header).
//! - Every frame is bounded by its verbatim size: flacenc 0.5 has no RICE2
//!   escape and can emit frames far larger than the input for loud 24-bit
//!   audio, so such frames are re-encoded with verbatim subframes.
//! - Wasted bits (low bits zero in a whole channel of a block, as in 16-bit
//!   audio padded into 24 bits) are found here and such frames written here
//!   (`wasted`); flacenc has no wasted-bits detection.

mod level;
mod wasted;

pub use level::{
    default_block_size, EncoderLevel, LevelPlan, StereoSearch, DEFAULT_BLOCK_MAX_MS, DEFAULT_LEVEL,
    MAX_LEVEL,
};

use flacenc::bitsink::MemSink;
use flacenc::component::{
    BitRepr, ChannelAssignment, Frame, FrameHeader, FrameOffset, StreamInfo as FlacencStreamInfo,
    SubFrame, Verbatim,
};
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};
use thiserror::Error;

use crate::pcm::PcmLayout;

/// Smallest block flacenc's predictors are given; shorter (final) blocks are
/// written verbatim, which is both safe and optimal at that size.
pub const MIN_PREDICTED_BLOCK: usize = 32;

/// Largest block size accepted (inclusive). FLAC's streamable subset allows
/// 16384 samples above 48 kHz (4608 at or below), and flacenc stops at 32767.
pub const MAX_BLOCK_SIZE: usize = 16_384;

/// Smallest block size a client may ask for (inclusive); only the last block
/// of a stream may be shorter.
pub const MIN_BLOCK_SIZE: usize = 32;

/// Length of the STREAMINFO body in bytes.
pub const STREAMINFO_BYTES: usize = 34;

/// Offset of the STREAMINFO body within the stream (after `fLaC` and the
/// 4-byte metadata block header).
pub const STREAMINFO_OFFSET: usize = 8;

/// A frame could not be encoded. Converted from flacenc's errors (which are not
/// `Send`) at this boundary, keeping only their text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlacError {
    /// The block is empty, too long, or not whole sample frames.
    #[error("a block must hold between 1 and {MAX_BLOCK_SIZE} whole sample frames, got {samples} samples for {channels} channels")]
    BadBlock {
        /// Samples given (all channels).
        samples: usize,
        /// Channels of the stream.
        channels: usize,
    },
    /// A sample is outside the stream's bit depth.
    #[error("a sample of channel {channel} does not fit in {bits} bits")]
    SampleOutOfRange {
        /// The channel, from 0.
        channel: usize,
        /// The stream's bits per sample.
        bits: usize,
    },
    /// flacenc refused the block (its message).
    #[error("the encoder rejected the block: {0}")]
    Encoder(String),
}

/// The fixed parameters of a FLAC stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    /// Samples per second, 1..=655,350.
    pub sample_rate: u32,
    /// Sample layout (channels and width).
    pub layout: PcmLayout,
    /// Samples per channel in every block but the last.
    pub block_size: usize,
}

/// What STREAMINFO says about a stream; serialised by [`StreamInfo::to_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// Fixed parameters.
    pub format: StreamFormat,
    /// Smallest frame in bytes, 0 if unknown.
    pub min_frame_bytes: u32,
    /// Largest frame in bytes, 0 if unknown.
    pub max_frame_bytes: u32,
    /// Samples per channel, 0 if unknown.
    pub total_samples: u64,
    /// MD5 of the decoded audio, zeros if unknown.
    pub md5: [u8; 16],
}

impl StreamInfo {
    /// STREAMINFO for a stream whose totals are not known yet.
    pub fn provisional(format: StreamFormat) -> Self {
        Self {
            format,
            min_frame_bytes: 0,
            max_frame_bytes: 0,
            total_samples: 0,
            md5: [0; 16],
        }
    }

    /// The 34-byte STREAMINFO body.
    pub fn to_bytes(&self) -> [u8; STREAMINFO_BYTES] {
        let f = &self.format;
        let mut out = [0u8; STREAMINFO_BYTES];
        // Fixed blocking: min = max = the block size; the last block may be
        // shorter, which the format allows.
        let block = f.block_size as u16;
        out[0..2].copy_from_slice(&block.to_be_bytes());
        out[2..4].copy_from_slice(&block.to_be_bytes());
        out[4..7].copy_from_slice(&self.min_frame_bytes.to_be_bytes()[1..]);
        out[7..10].copy_from_slice(&self.max_frame_bytes.to_be_bytes()[1..]);
        // 20 bits rate, 3 bits channels-1, 5 bits bps-1, 36 bits total samples.
        let packed: u64 = (u64::from(f.sample_rate) << 44)
            | (((f.layout.channels as u64) - 1) << 41)
            | (((f.layout.bits_per_sample() as u64) - 1) << 36)
            | (self.total_samples & 0xF_FFFF_FFFF);
        out[10..18].copy_from_slice(&packed.to_be_bytes());
        out[18..34].copy_from_slice(&self.md5);
        out
    }

    /// Reads a STREAMINFO body written by [`StreamInfo::to_bytes`]; `None`
    /// if a field is outside what this service writes.
    pub fn parse(b: &[u8; STREAMINFO_BYTES]) -> Option<Self> {
        let block_size = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let u24 = |i: usize| u32::from_be_bytes([0, b[i], b[i + 1], b[i + 2]]);
        let mut packed = [0u8; 8];
        packed.copy_from_slice(&b[10..18]);
        let packed = u64::from_be_bytes(packed);
        let sample_rate = (packed >> 44) as u32;
        let channels = ((packed >> 41) & 0x7) as usize + 1;
        let bits = ((packed >> 36) & 0x1F) as usize + 1;
        if !matches!(bits, 8 | 16 | 24) || sample_rate == 0 || block_size == 0 {
            return None;
        }
        let mut md5 = [0u8; 16];
        md5.copy_from_slice(&b[18..34]);
        Some(Self {
            format: StreamFormat {
                sample_rate,
                layout: PcmLayout {
                    channels,
                    bytes_per_sample: bits / 8,
                },
                block_size,
            },
            min_frame_bytes: u24(4),
            max_frame_bytes: u24(7),
            total_samples: packed & 0xF_FFFF_FFFF,
            md5,
        })
    }

    /// `fLaC`, the STREAMINFO block header (marked last) and its body.
    pub fn stream_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STREAMINFO_OFFSET + STREAMINFO_BYTES);
        out.extend_from_slice(b"fLaC");
        // Last-metadata-block flag set, type 0 (STREAMINFO), 24-bit length.
        out.push(0x80);
        out.extend_from_slice(&(STREAMINFO_BYTES as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&self.to_bytes());
        out
    }
}

/// Frame statistics folded into the final STREAMINFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames written.
    pub frames: u64,
    /// Smallest frame in bytes (0 before the first frame).
    pub min_frame_bytes: u32,
    /// Largest frame in bytes.
    pub max_frame_bytes: u32,
    /// Frames replaced by verbatim subframes to stay within verbatim size.
    pub verbatim_fallbacks: u64,
}

impl FrameStats {
    /// Records one written frame.
    pub fn record(&mut self, frame: &EncodedFrame) {
        let len = frame.bytes.len() as u32;
        self.min_frame_bytes = if self.frames == 0 {
            len
        } else {
            self.min_frame_bytes.min(len)
        };
        self.max_frame_bytes = self.max_frame_bytes.max(len);
        self.frames += 1;
        self.verbatim_fallbacks += u64::from(frame.verbatim_fallback);
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The frame's bytes, header to CRC-16.
    pub bytes: Vec<u8>,
    /// Samples per channel in the frame.
    pub samples: usize,
    /// Whether the verbatim bound replaced flacenc's output.
    pub verbatim_fallback: bool,
}

/// Encodes blocks into frames. Holds reusable buffers; one per worker thread.
pub struct FrameEncoder {
    framebuf: Option<FrameBuf>,
    /// One channel at a time, for stereo searches done here.
    mono_framebuf: Option<FrameBuf>,
    channel_scratch: Vec<i32>,
    /// Left, right, mid and side of a stereo block.
    stereo_scratch: [Vec<i32>; 4],
    /// A channel shifted right by its wasted bits.
    shift_scratch: Vec<i32>,
    /// Plans by level, for samples of at most 16 bits and for wider ones.
    plans: Vec<Option<LevelPlan>>,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameEncoder {
    /// An encoder with empty buffers; they grow to the largest block seen.
    pub fn new() -> Self {
        Self {
            framebuf: None,
            mono_framebuf: None,
            channel_scratch: Vec::new(),
            stereo_scratch: Default::default(),
            shift_scratch: Vec::new(),
            plans: vec![None; 2 * (usize::from(MAX_LEVEL) + 1)],
        }
    }

    /// Encodes `interleaved` (whole sample frames of `format`) as frame number
    /// `frame_number`, never larger than the same frame written verbatim.
    pub fn encode(
        &mut self,
        format: &StreamFormat,
        level: EncoderLevel,
        frame_number: u32,
        interleaved: &[i32],
    ) -> Result<EncodedFrame, FlacError> {
        let channels = format.layout.channels;
        let bps = format.layout.bits_per_sample();
        let samples = interleaved.len() / channels;
        if interleaved.is_empty()
            || !interleaved.len().is_multiple_of(channels)
            || samples > MAX_BLOCK_SIZE.max(format.block_size)
        {
            return Err(FlacError::BadBlock {
                samples: interleaved.len(),
                channels,
            });
        }
        check_range(interleaved, channels, bps)?;
        // Subframes only: the header and CRC are the same either way.
        let verbatim_bits: usize = channels * (8 + bps * samples);
        let predicted = if samples < MIN_PREDICTED_BLOCK {
            None
        } else if wasted::any_wasted_bits(interleaved, channels) {
            self.predict_wasted(format, level, frame_number, interleaved, verbatim_bits)?
        } else {
            let frame = self.predict(format, level, frame_number, interleaved)?;
            let body: usize = (0..frame.subframe_count())
                .filter_map(|ch| frame.subframe(ch))
                .map(BitRepr::count_bits)
                .sum();
            if body <= verbatim_bits {
                Some(write_frame(&frame)?)
            } else {
                None
            }
        };
        let verbatim_fallback = predicted.is_none() && samples >= MIN_PREDICTED_BLOCK;
        let bytes = match predicted {
            Some(bytes) => bytes,
            None => write_frame(&self.verbatim(format, frame_number, interleaved)?)?,
        };
        Ok(EncodedFrame {
            bytes,
            samples,
            verbatim_fallback,
        })
    }

    fn plan(&mut self, level: EncoderLevel, bits_per_sample: usize) -> LevelPlan {
        let wide = usize::from(bits_per_sample > 16);
        let slot = &mut self.plans[2 * usize::from(level.get()) + wide];
        slot.get_or_insert_with(|| level.plan(bits_per_sample))
            .clone()
    }

    /// flacenc's best frame, with the header rebuilt for the real rate.
    fn predict(
        &mut self,
        format: &StreamFormat,
        level: EncoderLevel,
        frame_number: u32,
        interleaved: &[i32],
    ) -> Result<Frame, FlacError> {
        let channels = format.layout.channels;
        let bps = format.layout.bits_per_sample();
        let samples = interleaved.len() / channels;
        let plan = self.plan(level, bps);
        let (assignment, subframes) = if channels == 2 && plan.stereo != StereoSearch::Exhaustive {
            self.predict_stereo(&plan, format, interleaved)?
        } else {
            self.predict_whole(&plan, format, interleaved)?
        };
        let header = frame_header(format, samples, assignment, frame_number)?;
        Frame::new(header, subframes.into_iter()).map_err(encoder_error)
    }

    /// Every channel through flacenc at once (its own stereo search included).
    fn predict_whole(
        &mut self,
        plan: &LevelPlan,
        format: &StreamFormat,
        interleaved: &[i32],
    ) -> Result<(ChannelAssignment, Vec<SubFrame>), FlacError> {
        let channels = format.layout.channels;
        let bps = format.layout.bits_per_sample();
        let size = (interleaved.len() / channels).max(MIN_PREDICTED_BLOCK);
        let info = flacenc_info(format.sample_rate, channels, bps)?;
        let mut framebuf = match self.framebuf.take() {
            Some(fb) if fb.channels() == channels => fb,
            _ => FrameBuf::with_size(channels, size).map_err(encoder_error)?,
        };
        if framebuf.size() != size {
            framebuf.resize(size);
        }
        framebuf
            .fill_interleaved(interleaved)
            .map_err(encoder_error)?;
        let result = flacenc::encode_fixed_size_frame(&plan.config, &framebuf, 0, &info);
        self.framebuf = Some(framebuf);
        let (header, subframes) = result.map_err(encoder_error)?.into_parts();
        Ok((header.channel_assignment().clone(), subframes))
    }

    /// A stereo block whose channel pair is chosen here
    /// ([`StereoSearch`]); each channel of the pair is encoded alone, so
    /// only two channels are encoded instead of flacenc's four.
    fn predict_stereo(
        &mut self,
        plan: &LevelPlan,
        format: &StreamFormat,
        interleaved: &[i32],
    ) -> Result<(ChannelAssignment, Vec<SubFrame>), FlacError> {
        let bps = format.layout.bits_per_sample();
        self.fill_stereo(interleaved, plan.stereo != StereoSearch::Independent);
        let assignment = choose_pair(plan.stereo, &self.stereo_scratch, [0; 4]);
        let (first, second) = pair_channels(&assignment);
        let mut encode = |index| {
            let signal = &self.stereo_scratch[index];
            let width = stereo_width(index, bps);
            encode_mono(
                &mut self.mono_framebuf,
                plan,
                format.sample_rate,
                signal,
                width,
            )
        };
        let a = encode(first)?;
        let b = encode(second)?;
        Ok((assignment, vec![a, b]))
    }

    /// Splits a stereo block into `stereo_scratch`: left and right, and mid
    /// and side if `mid_side`.
    fn fill_stereo(&mut self, interleaved: &[i32], mid_side: bool) {
        let [left, right, mid, side] = &mut self.stereo_scratch;
        left.clear();
        right.clear();
        left.extend(interleaved.iter().step_by(2));
        right.extend(interleaved.iter().skip(1).step_by(2));
        if mid_side {
            mid.clear();
            side.clear();
            // FLAC's mid drops the low bit of left + right; side keeps it.
            mid.extend(left.iter().zip(right.iter()).map(|(l, r)| (l + r) >> 1));
            side.extend(left.iter().zip(right.iter()).map(|(l, r)| l - r));
        }
    }

    /// The frame with every channel stored verbatim.
    fn verbatim(
        &mut self,
        format: &StreamFormat,
        frame_number: u32,
        interleaved: &[i32],
    ) -> Result<Frame, FlacError> {
        let channels = format.layout.channels;
        let bps = format.layout.bits_per_sample();
        let samples = interleaved.len() / channels;
        let header = frame_header(
            format,
            samples,
            ChannelAssignment::Independent(channels as u8),
            frame_number,
        )?;
        let mut subframes = Vec::with_capacity(channels);
        for ch in 0..channels {
            self.channel_scratch.clear();
            self.channel_scratch
                .extend(interleaved.iter().skip(ch).step_by(channels));
            let sub = Verbatim::new(&self.channel_scratch, bps).map_err(encoder_error)?;
            subframes.push(SubFrame::from(sub));
        }
        Frame::new(header, subframes.into_iter()).map_err(encoder_error)
    }
}

/// Writes a frame built from flacenc's parts: header, subframes, CRC-16.
fn write_frame(frame: &Frame) -> Result<Vec<u8>, FlacError> {
    let mut sink = MemSink::<u8>::with_capacity(frame.count_bits());
    frame.write(&mut sink).map_err(encoder_error)?;
    Ok(sink.into_inner())
}

/// The stereo pair a search other than [`StereoSearch::Exhaustive`] picks
/// (that one is flacenc's, or done in `wasted`). `wasted` holds the wasted
/// bits of left, right, mid and side in `scratch` (all filled unless the
/// search is [`StereoSearch::Independent`]).
fn choose_pair(
    search: StereoSearch,
    scratch: &[Vec<i32>; 4],
    wasted: [u32; 4],
) -> ChannelAssignment {
    match search {
        StereoSearch::Independent | StereoSearch::Exhaustive => ChannelAssignment::Independent(2),
        StereoSearch::MidSide => ChannelAssignment::MidSide,
        StereoSearch::Estimated => {
            // A channel with k wasted bits is coded k bits per sample
            // narrower: about its residuals divided by 2^k.
            let [l, r, m, s]: [u64; 4] =
                std::array::from_fn(|i| residual_cost(&scratch[i]) >> wasted[i]);
            let pairs = [
                (l + r, ChannelAssignment::Independent(2)),
                (l + s, ChannelAssignment::LeftSide),
                (r + s, ChannelAssignment::RightSide),
                (m + s, ChannelAssignment::MidSide),
            ];
            let cheapest = pairs.into_iter().min_by_key(|(cost, _)| *cost);
            cheapest.map_or(ChannelAssignment::Independent(2), |(_, a)| a)
        }
    }
}

/// The `stereo_scratch` indices of a stereo pair, in FLAC's order.
fn pair_channels(assignment: &ChannelAssignment) -> (usize, usize) {
    match assignment {
        ChannelAssignment::LeftSide => (LEFT, SIDE),
        ChannelAssignment::RightSide => (SIDE, RIGHT),
        ChannelAssignment::MidSide => (MID, SIDE),
        ChannelAssignment::Independent(_) => (LEFT, RIGHT),
    }
}

/// Width of `stereo_scratch[index]` in bits: the side channel is one bit
/// wider than the stream.
fn stereo_width(index: usize, bps: usize) -> usize {
    if index == SIDE {
        bps + 1
    } else {
        bps
    }
}

/// Encodes `signal` as one subframe whose samples fit in `bps` bits, which
/// must be a width flacenc accepts (8 to 25 bits, 4n or 4n + 1).
fn encode_mono(
    framebuf: &mut Option<FrameBuf>,
    plan: &LevelPlan,
    sample_rate: u32,
    signal: &[i32],
    bps: usize,
) -> Result<SubFrame, FlacError> {
    let size = signal.len().max(MIN_PREDICTED_BLOCK);
    let info = flacenc_info(sample_rate, 1, bps)?;
    let mut fb = match framebuf.take() {
        Some(fb) => fb,
        None => FrameBuf::with_size(1, size).map_err(encoder_error)?,
    };
    if fb.size() != size {
        fb.resize(size);
    }
    fb.fill_interleaved(signal).map_err(encoder_error)?;
    let result = flacenc::encode_fixed_size_frame(&plan.config, &fb, 0, &info);
    *framebuf = Some(fb);
    let (_, subframes) = result.map_err(encoder_error)?.into_parts();
    subframes
        .into_iter()
        .next()
        .ok_or_else(|| FlacError::Encoder("flacenc returned no subframe".into()))
}

/// flacenc's stream parameters for encoding one frame. They only feed a
/// frame header that is rebuilt with the real rate, so any rate flacenc
/// accepts will do.
fn flacenc_info(
    sample_rate: u32,
    channels: usize,
    bps: usize,
) -> Result<FlacencStreamInfo, FlacError> {
    let encode_rate = (sample_rate as usize).min(FLACENC_MAX_RATE_HZ);
    FlacencStreamInfo::new(encode_rate, channels, bps).map_err(encoder_error)
}

/// Indices into `FrameEncoder::stereo_scratch`.
const LEFT: usize = 0;
const RIGHT: usize = 1;
const MID: usize = 2;
const SIDE: usize = 3;

/// Highest sample rate flacenc's `StreamInfo` accepts, in Hz (inclusive).
const FLACENC_MAX_RATE_HZ: usize = 96_000;

/// Sum of absolute second-order fixed residuals: a cheap stand-in for the
/// size of a channel once predicted, used to pick a stereo pair.
fn residual_cost(signal: &[i32]) -> u64 {
    signal
        .windows(3)
        .map(|w| u64::from((w[2] - 2 * w[1] + w[0]).unsigned_abs()))
        .sum()
}

/// Refuses samples outside `bps` bits. flacenc checks the channels it is
/// given, but a derived side channel is one bit wider and could hide an
/// out-of-range left or right sample.
fn check_range(interleaved: &[i32], channels: usize, bps: usize) -> Result<(), FlacError> {
    let max = (1i32 << (bps - 1)) - 1;
    let min = -(1i32 << (bps - 1));
    match interleaved.iter().position(|s| !(min..=max).contains(s)) {
        Some(i) => Err(FlacError::SampleOutOfRange {
            channel: i % channels,
            bits: bps,
        }),
        None => Ok(()),
    }
}

/// flacenc's errors are not `Send`; keep their text only.
/// The header of frame `frame_number`, holding `samples` sample frames of
/// `format` stored as `assignment`.
fn frame_header(
    format: &StreamFormat,
    samples: usize,
    assignment: ChannelAssignment,
    frame_number: u32,
) -> Result<FrameHeader, FlacError> {
    FrameHeader::new(
        samples,
        assignment,
        format.layout.bits_per_sample(),
        format.sample_rate as usize,
        FrameOffset::Frame(frame_number),
    )
    .map_err(encoder_error)
}

fn encoder_error(e: impl std::fmt::Display) -> FlacError {
    FlacError::Encoder(e.to_string())
}

/// Checks a flacenc config once; used by [`EncoderLevel::config`].
fn verify(config: flacenc::config::Encoder) -> Verified<flacenc::config::Encoder> {
    // The level table holds constant, in-range settings; the
    // `every_level_config_verifies` test proves each one.
    let verified = config.into_verified().map_err(|(_, e)| e.to_string());
    verified.expect("constant settings, proven by the every_level_config_verifies test")
}

#[cfg(test)]
#[path = "flac_tests.rs"]
mod tests;
