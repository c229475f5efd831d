//! Chunking invariance at the codec level (property tests): the same WAV or
//! raw PCM bytes, split anywhere (1-byte pieces, inside the header, inside a
//! sample, large pieces), give byte-identical FLAC, equal to the whole
//! input's, and that FLAC decodes (claxon) to the input's samples.
//!
//! The encoding path is the service's: [`WavParser`] over each piece,
//! [`PcmDecoder`] carrying partial sample frames across pieces, whole blocks
//! to [`FrameEncoder`], the last partial block at the end, and the final
//! STREAMINFO written over the provisional one.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test, with its line"
)]

use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, DataSize, WavSpec};
use flacstream_codec::flac::{
    EncoderLevel, FrameEncoder, FrameStats, StreamFormat, StreamInfo, STREAMINFO_BYTES,
    STREAMINFO_OFFSET,
};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavEvent, WavParser, DEFAULT_MAX_HEADER_BYTES};
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property: each encodes a stream of up to [`MAX_FRAMES`] sample
/// frames twice (tens of microseconds each with the dependencies optimised,
/// as the dev profile has them), so all of them take well under a second.
const CASES: u32 = 128;

/// Longest input in sample frames per channel; enough for several blocks of
/// the small block sizes below.
const MAX_FRAMES: usize = 700;

/// One stream: its bytes and what they hold.
#[derive(Debug, Clone)]
struct Case {
    bytes: Vec<u8>,
    /// Where the audio starts (0 for raw PCM).
    header_len: usize,
    /// `Some` for raw PCM, which has no header to declare its format.
    raw: Option<(u32, PcmLayout)>,
    samples: Vec<i32>,
    layout: PcmLayout,
    level: EncoderLevel,
    block_size: usize,
}

/// How a case is cut into messages.
#[derive(Debug, Clone)]
enum Split {
    /// One byte per message.
    OneByte,
    /// Messages of a fixed size.
    Every(usize),
    /// Cuts at random places, always including one inside the header (for a
    /// WAV) and one inside a sample frame.
    Cuts(Vec<Index>),
}

fn case() -> impl Strategy<Value = Case> {
    (
        1u16..=8,
        prop::sample::select(vec![8u16, 16, 24]),
        prop::sample::select(vec![1u32, 8_000, 44_100, 65_535, 96_000, 655_350]),
        0usize..=MAX_FRAMES,
        0u8..=8,
        prop::sample::select(vec![32usize, 33, 100, 256, 4096]),
        0u8..6,
        any::<u64>(),
    )
        .prop_map(
            |(channels, bits, rate, frames, level, block_size, header, seed)| {
                let samples = test_signal(frames, channels, bits, seed);
                let data = pcm_bytes(&samples, bits);
                let layout = PcmLayout {
                    channels: usize::from(channels),
                    bytes_per_sample: usize::from(bits / 8),
                };
                let mut spec = WavSpec::pcm(channels, rate, bits);
                let raw = match header {
                    0 => Some((rate, layout)),
                    1 => {
                        spec.data_size = DataSize::StreamingMax;
                        None
                    }
                    2 => {
                        spec.data_size = DataSize::StreamingZero;
                        None
                    }
                    3 => {
                        spec.extensible_mask = Some(0x3F);
                        None
                    }
                    4 => {
                        // An odd chunk before the data, and one after it.
                        spec.chunks_before_data.push((*b"LIST", vec![b'x'; 13]));
                        spec.chunks_after_data.push((*b"id3 ", vec![0; 10]));
                        None
                    }
                    _ => None,
                };
                let bytes = match raw {
                    Some(_) => data.clone(),
                    None => wav_bytes(&spec, &data),
                };
                let header_len = match raw {
                    Some(_) => 0,
                    None => bytes.len() - data.len() - trailer_len(&spec, data.len()),
                };
                Case {
                    bytes,
                    header_len,
                    raw,
                    samples,
                    layout,
                    level: EncoderLevel::new(level).expect("0..=8 is a level"),
                    block_size,
                }
            },
        )
}

/// Bytes [`wav_bytes`] writes after the audio: a pad byte, trailing chunks.
fn trailer_len(spec: &WavSpec, data_len: usize) -> usize {
    let pad = usize::from(spec.data_size == DataSize::Exact && data_len % 2 == 1);
    let chunks: usize = spec
        .chunks_after_data
        .iter()
        .map(|(_, body)| 8 + body.len() + body.len() % 2)
        .sum();
    pad + chunks
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        Just(Split::OneByte),
        (2usize..=4096).prop_map(Split::Every),
        prop::collection::vec(any::<Index>(), 2..24).prop_map(Split::Cuts),
    ]
}

/// `case.bytes` cut as `split` says.
fn pieces<'a>(case: &'a Case, split: &Split) -> Vec<&'a [u8]> {
    let len = case.bytes.len();
    let mut cuts: Vec<usize> = match split {
        Split::OneByte => (1..len).collect(),
        Split::Every(n) => (1..len.div_ceil(*n)).map(|i| i * n).collect(),
        Split::Cuts(indexes) => {
            let align = case.layout.channels * case.layout.bytes_per_sample;
            let audio = len - case.header_len;
            let mut cuts: Vec<usize> = indexes[2..].iter().map(|i| i.index(len + 1)).collect();
            if case.header_len > 1 {
                cuts.push(1 + indexes[0].index(case.header_len - 1));
            }
            if audio > align {
                // Just after the first byte of some sample frame.
                cuts.push(case.header_len + indexes[1].index(audio / align) * align + 1);
            }
            cuts
        }
    };
    cuts.retain(|&c| c > 0 && c < len);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for c in cuts.into_iter().chain([len]) {
        out.push(&case.bytes[start..c]);
        start = c;
    }
    out
}

/// The stream while it is encoded.
struct Stream {
    format: StreamFormat,
    decoder: PcmDecoder,
    block: Vec<i32>,
    filled: usize,
    out: Vec<u8>,
    stats: FrameStats,
}

impl Stream {
    fn new(sample_rate: u32, layout: PcmLayout, block_size: usize) -> Self {
        let format = StreamFormat {
            sample_rate,
            layout,
            block_size,
        };
        Self {
            format,
            decoder: PcmDecoder::new(layout),
            block: vec![0; block_size * layout.channels],
            filled: 0,
            out: StreamInfo::provisional(format).stream_header(),
            stats: FrameStats::default(),
        }
    }

    fn take(&mut self, mut audio: &[u8], encoder: &mut FrameEncoder, level: EncoderLevel) {
        while !audio.is_empty() {
            let filled = self.filled;
            self.filled += self.decoder.decode(&mut audio, &mut self.block[filled..]);
            if self.filled == self.block.len() {
                self.flush(encoder, level);
            }
        }
    }

    fn flush(&mut self, encoder: &mut FrameEncoder, level: EncoderLevel) {
        if self.filled == 0 {
            return;
        }
        let frame = encoder
            .encode(
                &self.format,
                level,
                self.stats.frames as u32,
                &self.block[..self.filled],
            )
            .expect("the encoder takes every accepted block");
        self.stats.record(&frame);
        self.out.extend_from_slice(&frame.bytes);
        self.filled = 0;
    }
}

/// Encodes `pieces` of `case` into a complete FLAC stream.
fn encode(case: &Case, pieces: &[&[u8]]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new();
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    let mut stream = case
        .raw
        .map(|(rate, layout)| Stream::new(rate, layout, case.block_size));
    for piece in pieces {
        let mut input: &[u8] = piece;
        if case.raw.is_some() {
            if let Some(s) = stream.as_mut() {
                s.take(input, &mut encoder, case.level);
            }
            continue;
        }
        while let Some(event) = parser.next(&mut input).expect("a valid header") {
            match event {
                WavEvent::Format(f) => {
                    let layout = PcmLayout {
                        channels: usize::from(f.channels),
                        bytes_per_sample: f.bytes_per_sample(),
                    };
                    stream = Some(Stream::new(f.sample_rate, layout, case.block_size));
                }
                WavEvent::Audio(audio) => stream.as_mut().expect("audio after the format").take(
                    audio,
                    &mut encoder,
                    case.level,
                ),
                WavEvent::DataEnd => break,
            }
        }
    }
    let mut s = stream.expect("the header arrived");
    s.flush(&mut encoder, case.level);
    let info = StreamInfo {
        format: s.format,
        min_frame_bytes: s.stats.min_frame_bytes,
        max_frame_bytes: s.stats.max_frame_bytes,
        total_samples: s.decoder.frames_decoded(),
        md5: s.decoder.md5_digest(),
    };
    s.out[STREAMINFO_OFFSET..STREAMINFO_OFFSET + STREAMINFO_BYTES]
        .copy_from_slice(&info.to_bytes());
    s.out
}

/// claxon's reading of a FLAC stream, every sample.
fn decode(flac: &[u8]) -> Vec<i32> {
    let mut reader = claxon::FlacReader::new(flac).expect("claxon reads the header");
    reader
        .samples()
        .map(|s| s.expect("claxon decodes"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_flac_as_the_whole(case in case(), split in split()) {
        let whole = encode(&case, &[&case.bytes]);
        let decoded = decode(&whole);
        prop_assert!(decoded == case.samples, "the whole input does not decode to its samples");
        let pieces = pieces(&case, &split);
        let split_flac = encode(&case, &pieces);
        prop_assert!(
            split_flac == whole,
            "{} pieces give different FLAC ({} vs {} bytes)",
            pieces.len(),
            split_flac.len(),
            whole.len()
        );
    }
}
