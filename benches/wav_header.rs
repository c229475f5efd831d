//! The incremental WAV header parser on realistic headers: from the first
//! byte until it reports the format (the point where audio starts), fed whole
//! and in small pieces, as a WebSocket client may split them.
//!
//! Headers: the 44-byte canonical one; ffmpeg piping (LIST/INFO, sizes
//! unknown); `WAVE_FORMAT_EXTENSIBLE` 24-bit with a LIST/INFO chunk; a
//! Broadcast Wave (bext, JUNK reserved for RF64, LIST); and the real headers
//! of the rendered bench audio when present. Throughput is in header bytes.
//! Before a case is timed its result is compared once with the format the
//! header was written with.

mod audio;

use std::hint::black_box;
use std::io::Read;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use flacstream_codec::fixture::{wav_bytes, DataSize, WavSpec};
use flacstream_codec::wav::{WavEvent, WavFormat, WavParser, DEFAULT_MAX_HEADER_BYTES};

use audio::Source;

/// Bytes per piece when fed in pieces: odd, so pieces split chunk ids, sizes
/// and the `fmt ` body at every offset.
const PIECE_BYTES: usize = 7;

/// Audio bytes after the header in each input; the parser stops at the first.
const AUDIO_TAIL_BYTES: usize = 64;

/// Most bytes read from a real file to find its header.
const REAL_HEADER_SCAN_BYTES: u64 = 64 * 1024;

/// Body of a Broadcast Wave `bext` chunk (EBU Tech 3285 v2), in bytes.
const BEXT_BYTES: usize = 602;

/// Body of the `JUNK` chunk RF64-ready writers reserve for a `ds64`, in bytes.
const RF64_JUNK_BYTES: usize = 28;

/// Samples per case: each iteration takes well under a microsecond.
const SAMPLES_PER_CASE: usize = 50;

/// Warm-up per case, in seconds.
const WARM_UP_SECONDS: u64 = 1;

/// Measuring time per case, in seconds.
const MEASUREMENT_SECONDS: u64 = 2;

/// A header to parse and what it declares.
struct Header {
    name: String,
    /// The header and [`AUDIO_TAIL_BYTES`] of audio.
    bytes: Vec<u8>,
    /// (channels, sample rate in Hz, valid bits, channel mask) it declares.
    expected: (u16, u32, u16, Option<u32>),
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let headers: Vec<Header> = synthetic_headers()
        .into_iter()
        .chain(real_headers())
        .collect();
    let mut group = criterion.benchmark_group("wav_header");
    group
        .sample_size(SAMPLES_PER_CASE)
        .warm_up_time(Duration::from_secs(WARM_UP_SECONDS))
        .measurement_time(Duration::from_secs(MEASUREMENT_SECONDS));
    for header in &headers {
        let header_len = header.bytes.len() - AUDIO_TAIL_BYTES;
        group.throughput(Throughput::Bytes(header_len as u64));
        let pieces: Vec<&[u8]> = header.bytes.chunks(PIECE_BYTES).collect();
        let mut checked = false;
        group.bench_function(format!("{}/whole", header.name), |b| {
            if !checked {
                check(header, "whole", &parse(&[&header.bytes]));
                checked = true;
            }
            b.iter(|| parse(black_box(&[&header.bytes])));
        });
        let mut checked = false;
        group.bench_function(format!("{}/{PIECE_BYTES}-byte pieces", header.name), |b| {
            if !checked {
                check(header, "pieces", &parse(&pieces));
                checked = true;
            }
            b.iter(|| parse(black_box(&pieces)));
        });
    }
    group.finish();
    criterion.final_summary();
}

/// Feeds `pieces` to a fresh parser until it reports the format.
fn parse(pieces: &[&[u8]]) -> Option<WavFormat> {
    let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
    for piece in pieces {
        let mut input = *piece;
        while let Some(event) = parser.next(&mut input).ok()? {
            if let WavEvent::Format(format) = event {
                return Some(format);
            }
        }
    }
    None
}

fn check(header: &Header, feed: &str, parsed: &Option<WavFormat>) {
    let Some(f) = parsed else {
        panic!(
            "sanity check: wav_header/{}/{feed}: no format found",
            header.name
        );
    };
    assert_eq!(
        (f.channels, f.sample_rate, f.valid_bits, f.channel_mask),
        header.expected,
        "sanity check: wav_header/{}/{feed}: (channels, rate, bits, mask)",
        header.name
    );
}

fn synthetic_headers() -> Vec<Header> {
    let tail = [0u8; AUDIO_TAIL_BYTES];
    let info = |fields: &[(&[u8; 4], &str)]| {
        let mut body = b"INFO".to_vec();
        for (id, text) in fields {
            let mut text = text.as_bytes().to_vec();
            text.push(0);
            body.extend_from_slice(*id);
            body.extend_from_slice(&(text.len() as u32).to_le_bytes());
            if text.len() % 2 == 1 {
                text.push(0);
            }
            body.extend_from_slice(&text);
        }
        body
    };
    let header = |name: &str, spec: WavSpec, bits: u16| Header {
        name: name.to_string(),
        expected: (spec.channels, spec.sample_rate, bits, spec.extensible_mask),
        bytes: wav_bytes(&spec, &tail),
    };

    let plain = WavSpec::pcm(2, 44_100, 16);

    let mut ffmpeg = WavSpec::pcm(2, 48_000, 16);
    ffmpeg.chunks_before_data = vec![(*b"LIST", info(&[(b"ISFT", "Lavf61.7.100")]))];
    ffmpeg.data_size = DataSize::StreamingMax;

    let mut extensible = WavSpec::pcm(2, 48_000, 24);
    extensible.extensible_mask = Some(0x3);
    extensible.chunks_before_data = vec![(
        *b"LIST",
        info(&[
            (b"INAM", "Nocturne in E-flat major"),
            (b"IART", "flacstream bench"),
            (b"ISFT", "Lavf61.7.100"),
        ]),
    )];

    let mut bwf = WavSpec::pcm(2, 48_000, 24);
    let mut bext = vec![0u8; BEXT_BYTES];
    bext[..24].copy_from_slice(b"flacstream bench capture");
    bwf.chunks_before_data = vec![
        (*b"bext", bext),
        (*b"JUNK", vec![0; RF64_JUNK_BYTES]),
        (
            *b"LIST",
            info(&[(b"ICRD", "2024-05-01"), (b"ISFT", "Reaper")]),
        ),
    ];

    vec![
        header("canonical 16-bit stereo", plain, 16),
        header("ffmpeg pipe LIST", ffmpeg, 16),
        header("extensible 24-bit LIST", extensible, 24),
        header("broadcast wave bext JUNK LIST", bwf, 24),
    ]
}

/// The headers of the rendered bench audio, as their writers made them.
fn real_headers() -> Vec<Header> {
    let mut out = Vec::new();
    for source in Source::ALL {
        let path = audio::path(source);
        let Ok(file) = std::fs::File::open(&path) else {
            continue; // `audio` already says when the rendered audio is absent
        };
        let mut bytes = Vec::new();
        let read = file.take(REAL_HEADER_SCAN_BYTES).read_to_end(&mut bytes);
        let spec = hound::WavReader::open(&path).map(|r| r.spec());
        let (Ok(_), Ok(spec)) = (read, spec) else {
            panic!("sanity check: cannot read the header of {}", path.display());
        };
        // Where the audio starts: the input the parser has left once it
        // reports the format.
        let mut parser = WavParser::new(DEFAULT_MAX_HEADER_BYTES);
        let mut input = bytes.as_slice();
        let mut mask = None;
        while let Ok(Some(event)) = parser.next(&mut input) {
            if let WavEvent::Format(format) = event {
                mask = format.channel_mask;
                break;
            }
        }
        let header_len = bytes.len() - input.len();
        bytes.truncate(header_len + AUDIO_TAIL_BYTES);
        out.push(Header {
            name: format!("{} file", source.name()),
            bytes,
            expected: (spec.channels, spec.sample_rate, spec.bits_per_sample, mask),
        });
    }
    out
}
