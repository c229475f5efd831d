//! Decode + encode throughput per source format on one thread: what
//! `/convert` does with an upload that is not WAV (`codec::media` to PCM,
//! then the frame encoder at the default level 5), beside
//! `ffmpeg -threads 1 -i <file> -c:a flac` on the same file.
//!
//! The files are made from the 16-bit music clip (`audio/mod.rs`) by the
//! encoders Debian ships (`fixture::encoded`; a missing tool skips its
//! format). Before a format is timed its decode is checked: lossless
//! formats sample for sample against the clip, lossy ones for their frame
//! count. Throughput is in samples per channel, so x real time is elem/s ÷
//! the rate in the group name (Opus decodes at 48 kHz).
//!
//! `cargo bench --bench decode` times it (and ffmpeg, three runs each, the
//! best kept); `cargo test --bench decode` runs each format once.

mod audio;
mod realtime;

use std::hint::black_box;
use std::io::Cursor;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use flacstream_codec::fixture::encoded::{Encoding, Scratch};
use flacstream_codec::flac::{default_block_size, EncoderLevel, FrameEncoder, StreamFormat};
use flacstream_codec::media::MediaDecoder;
use flacstream_codec::pcm::PcmDecoder;

use audio::Source;
use realtime::RealTime;

/// The formats timed, as users send them.
const FORMATS: [Encoding; 8] = [
    Encoding::Flac,
    Encoding::AlacM4a,
    Encoding::Aiff,
    Encoding::Mp3,
    Encoding::AacM4a,
    Encoding::OggVorbis,
    Encoding::OggOpus,
    Encoding::WebmOpus,
];

/// ffmpeg runs per format; the fastest is reported.
const FFMPEG_RUNS: usize = 3;

/// Decodes `file` and encodes it as a session would; the samples (all
/// channels) and the FLAC frame bytes produced.
fn decode_and_encode(file: &[u8]) -> (Vec<i32>, usize) {
    let mut decoder =
        MediaDecoder::open(Box::new(Cursor::new(file.to_vec()))).expect("benchmark file decodes");
    let info = decoder.info();
    let format = StreamFormat {
        sample_rate: info.sample_rate,
        layout: info.layout,
        block_size: default_block_size(info.sample_rate),
    };
    let per_block = format.block_size * info.layout.channels;
    let mut pcm = PcmDecoder::new(info.layout);
    let mut encoder = FrameEncoder::new();
    let (mut bytes, mut samples, mut block) = (Vec::new(), Vec::new(), vec![0i32; per_block]);
    let mut filled = 0;
    let (mut out, mut frame_no) = (0usize, 0u32);
    loop {
        bytes.clear();
        let more = decoder
            .next_pcm(&mut bytes)
            .expect("benchmark file decodes");
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            filled += pcm.decode(&mut rest, &mut block[filled..]);
            if filled == per_block {
                samples.extend_from_slice(&block);
                out += encode(&mut encoder, &format, frame_no, &block);
                frame_no += 1;
                filled = 0;
            }
        }
        if !more {
            break;
        }
    }
    if filled > 0 {
        samples.extend_from_slice(&block[..filled]);
        out += encode(&mut encoder, &format, frame_no, &block[..filled]);
    }
    (samples, out)
}

fn encode(encoder: &mut FrameEncoder, format: &StreamFormat, n: u32, block: &[i32]) -> usize {
    encoder
        .encode(format, EncoderLevel::default(), n, block)
        .expect("decoded audio encodes")
        .bytes
        .len()
}

/// The fastest of [`FFMPEG_RUNS`] `ffmpeg -threads 1 -i file -c:a flac`.
fn ffmpeg_seconds(file: &std::path::Path, dir: &Scratch) -> Option<f64> {
    let out = dir.path("ffmpeg-out.flac");
    (0..FFMPEG_RUNS)
        .filter_map(|_| {
            let started = Instant::now();
            let status = Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-y",
                    "-threads",
                    "1",
                    "-i",
                ])
                .arg(file)
                .args(["-c:a", "flac"])
                .arg(&out)
                .status()
                .ok()?;
            status.success().then(|| started.elapsed().as_secs_f64())
        })
        .min_by(f64::total_cmp)
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut realtime = RealTime::new("decode + encode on one thread");
    let clip = audio::load(Source::Music16);
    let dir = Scratch::new("bench-decode");
    let wav = dir.path("music-16.wav");
    std::fs::write(&wav, clip.wav()).expect("write the clip");
    let mut ffmpeg = Vec::new();
    for encoding in FORMATS {
        let Some(path) = encoding.make(&wav, clip.bits, &dir) else {
            continue;
        };
        let file = std::fs::read(&path).expect("read the encoded clip");
        let (samples, _) = decode_and_encode(&file);
        let lossless = matches!(
            encoding,
            Encoding::Flac | Encoding::AlacM4a | Encoding::Aiff
        );
        if lossless {
            assert!(samples == clip.samples, "{encoding:?}: samples differ");
        }
        let rate = MediaDecoder::open(Box::new(Cursor::new(file.clone())))
            .expect("decodes")
            .info()
            .sample_rate;
        let frames = (samples.len() / usize::from(clip.channels)) as u64;
        let group_name = format!("decode-encode {} ({rate} Hz)", clip.source.name());
        let mut group = criterion.benchmark_group(&group_name);
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(frames));
        let name = format!("{encoding:?}");
        group.bench_function(BenchmarkId::new(&name, "level 5"), |b| {
            b.iter(|| black_box(decode_and_encode(&file)))
        });
        group.finish();
        realtime.note(&group_name, &name, "level 5", rate);
        if audio::timing() {
            if let Some(seconds) = ffmpeg_seconds(&path, &dir) {
                ffmpeg.push((name, frames as f64 / f64::from(rate) / seconds));
            }
        }
    }
    criterion.final_summary();
    realtime.print();
    if !ffmpeg.is_empty() {
        println!(
            "\nffmpeg -threads 1 -i <file> -c:a flac, whole process, fastest of {FFMPEG_RUNS}:"
        );
        for (name, realtime) in ffmpeg {
            println!("  {name:<12} {realtime:>8.1} x real time");
        }
    }
}
