//! FLAC encode throughput of [`FrameEncoder`] on one thread, per compression
//! level and block size, for 16-bit stereo music, 24-bit stereo music and
//! 16 kHz mono speech (see `audio/mod.rs` for where the audio comes from).
//!
//! One iteration encodes a whole clip block by block with one reused encoder,
//! as an encoder thread of the pool does. Throughput is in elements =
//! samples per channel, so criterion's `elem/s` is samples/s, and
//! x real time = samples/s ÷ sample rate (the rate is in every group name);
//! a table of both is printed at the end. Before a case is timed, its output
//! is decoded once with claxon and compared sample for sample.
//!
//! `cargo bench --bench encode` times it; `cargo test --bench encode` runs
//! every case once on short clips.

mod audio;
mod realtime;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use flacstream_codec::flac::{
    EncoderLevel, FrameEncoder, FrameStats, StreamFormat, StreamInfo, MAX_LEVEL, STREAMINFO_BYTES,
    STREAMINFO_OFFSET,
};

use audio::{Clip, Source};
use realtime::RealTime;

/// Block sizes (samples per channel) swept at 44.1 kHz besides the default
/// (4096 there), at [`BLOCK_SWEEP_LEVELS`].
const BLOCK_SWEEP: [usize; 2] = [1024, 2048];

/// Levels the block-size sweep runs at: the cheapest, the default, the best.
const BLOCK_SWEEP_LEVELS: [u8; 3] = [0, 5, 8];

/// Levels timed for the 24-bit music and the speech, at their default block
/// size: the ends, the cheapest with full stereo search, and the default.
const SPOT_LEVELS: [u8; 4] = [0, 2, 5, 8];

/// Samples per case. One iteration is a whole clip, 4–80 ms on a 2-core
/// x86-64 box; flat sampling with 20 samples keeps a case near its
/// measuring time.
const SAMPLES_PER_CASE: usize = 20;

/// Warm-up per case, in seconds.
const WARM_UP_SECONDS: u64 = 1;

/// Measuring time per case, in seconds: 23 cases stay within about three
/// minutes on two cores.
const MEASUREMENT_SECONDS: u64 = 5;

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut realtime = RealTime::new("one encoder on one thread");
    for source in Source::ALL {
        let clip = audio::load(source);
        let default_block = clip.format(None).block_size;
        let mut cases: Vec<(u8, usize)> = Vec::new();
        if source == Source::Music16 {
            cases.extend((0..=MAX_LEVEL).map(|level| (level, default_block)));
            for block in BLOCK_SWEEP {
                cases.extend(BLOCK_SWEEP_LEVELS.map(|level| (level, block)));
            }
        } else {
            cases.extend(SPOT_LEVELS.map(|level| (level, default_block)));
        }
        let name = format!("encode/{}", clip.label());
        let mut group = criterion.benchmark_group(&name);
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(SAMPLES_PER_CASE)
            .warm_up_time(Duration::from_secs(WARM_UP_SECONDS))
            .measurement_time(Duration::from_secs(MEASUREMENT_SECONDS))
            .throughput(Throughput::Elements(clip.frames()));
        for (level, block) in cases {
            let function = format!("level {level}");
            let parameter = format!("block {block}");
            realtime.note(&name, &function, &parameter, clip.sample_rate);
            bench_case(&mut group, &clip, level, block, &function, &parameter);
        }
        group.finish();
    }
    criterion.final_summary();
    realtime.print();
}

/// Times encoding `clip` at `level` in blocks of `block`, after checking once
/// that the result decodes exactly.
fn bench_case(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    clip: &Clip,
    level: u8,
    block: usize,
    function: &str,
    parameter: &str,
) {
    let format = clip.format(Some(block));
    let level = EncoderLevel::new(level).expect("bench levels are 0..=8");
    let mut encoder = FrameEncoder::new();
    let mut checked = false;
    group.bench_function(format!("{function}/{parameter}"), |b| {
        // Checked inside the closure so that a case filtered out on the
        // command line costs nothing.
        if !checked {
            check_round_trip(clip, &format, level);
            checked = true;
        }
        b.iter(|| {
            let per_block = format.block_size * format.layout.channels;
            let mut bytes = 0;
            for (n, samples) in clip.samples.chunks(per_block).enumerate() {
                let frame = encoder
                    .encode(&format, level, n as u32, black_box(samples))
                    .expect("benchmark audio encodes");
                bytes += frame.bytes.len();
            }
            black_box(bytes)
        });
    });
}

/// Encodes the clip once and checks that claxon decodes it exactly.
fn check_round_trip(clip: &Clip, format: &StreamFormat, level: EncoderLevel) {
    let case = format!(
        "encode/{}/level {}/block {}",
        clip.label(),
        level.get(),
        format.block_size
    );
    let flac = encode_stream(clip, format, level);
    let percent = audio::assert_decodes_to(&flac, clip, &case, format.block_size);
    eprintln!("sanity check: {case} decodes exactly; FLAC is {percent:.1}% of the PCM");
}

/// The whole clip as a FLAC stream: header with final STREAMINFO, then every
/// frame. MD5 is left zero ("unknown"): the check compares samples itself.
fn encode_stream(clip: &Clip, format: &StreamFormat, level: EncoderLevel) -> Vec<u8> {
    let mut out = StreamInfo::provisional(*format).stream_header();
    let mut stats = FrameStats::default();
    let mut encoder = FrameEncoder::new();
    let per_block = format.block_size * format.layout.channels;
    for (n, samples) in clip.samples.chunks(per_block).enumerate() {
        let frame = encoder
            .encode(format, level, n as u32, samples)
            .expect("benchmark audio encodes");
        stats.record(&frame);
        out.extend_from_slice(&frame.bytes);
    }
    let info = StreamInfo {
        format: *format,
        min_frame_bytes: stats.min_frame_bytes,
        max_frame_bytes: stats.max_frame_bytes,
        total_samples: clip.frames(),
        md5: [0; 16],
    };
    out[STREAMINFO_OFFSET..STREAMINFO_OFFSET + STREAMINFO_BYTES].copy_from_slice(&info.to_bytes());
    out
}
