//! What measuring a recorded session costs on top of encoding it: the
//! chunk metadata (SHA-256, per-channel levels) and the live analysis (EBU
//! R128 loudness with true peak, silences) of `chunk_analysis::Analyzer`,
//! fed 100 ms chunks as a live producer sends them, against encoding the
//! same clip at level 5 (the service's default) on one thread.
//!
//! The printed table gives each as x real time and the analysis as a
//! percentage of the encoding (the target: under 20 % for CD audio,
//! under 10 % for 16 kHz speech). `cargo bench --bench analysis` times it;
//! `cargo test --bench analysis` runs each case once on short clips.

mod audio;
mod realtime;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use flacstream_actors::chunk_analysis::{AnalysisSettings, Analyzer, Work};
use flacstream_codec::flac::{EncoderLevel, FrameEncoder};

use audio::{Clip, Source};
use realtime::RealTime;

/// A live producer's message: 100 ms of audio.
const CHUNK_MS: u32 = 100;

/// Samples per case (one iteration is a whole clip).
const SAMPLES_PER_CASE: usize = 20;

fn settings() -> AnalysisSettings {
    AnalysisSettings {
        threads: Arc::new(tokio::sync::Semaphore::new(1)),
        chunk_silence_dbfs: -60.0,
        silence_threshold_dbfs: -60.0,
        silence_min_ms: 1000,
    }
}

/// The work a session queues for `clip` sent in 100 ms messages.
fn work(clip: &Clip) -> Vec<Work> {
    let pcm = clip.pcm();
    let step = (clip.sample_rate * CHUNK_MS / 1000) as usize * clip.layout().block_align();
    let mut work = vec![Work::Format {
        sample_rate: clip.sample_rate,
        layout: clip.layout(),
    }];
    for (n, piece) in pcm.chunks(step).enumerate() {
        let bytes = Bytes::copy_from_slice(piece);
        work.push(Work::Pcm(bytes.clone()));
        work.push(Work::Chunk {
            seq: n as u64 + 1,
            bytes,
            received_at_ms: 0,
            whole: None,
        });
    }
    work
}

fn analyze(clip: &Clip, work: &[Work]) -> usize {
    let mut analyzer = Analyzer::new("bench".into(), None, settings());
    let chunks = analyzer.run(work.to_vec());
    black_box(analyzer.summary(true));
    assert_eq!(chunks.iter().map(|c| c.samples).sum::<u64>(), clip.frames());
    chunks.len()
}

fn encode(clip: &Clip, encoder: &mut FrameEncoder) -> usize {
    let format = clip.format(None);
    let level = EncoderLevel::new(5).expect("5 is a level");
    let per_block = format.block_size * format.layout.channels;
    clip.samples
        .chunks(per_block)
        .enumerate()
        .map(|(n, s)| {
            encoder
                .encode(&format, level, n as u32, black_box(s))
                .expect("bench audio encodes")
                .bytes
                .len()
        })
        .sum()
}

/// Median wall time of `runs` runs of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut realtime = RealTime::new("one thread");
    let mut ratios = Vec::new();
    for source in Source::ALL {
        let clip = audio::load(source);
        let work = work(&clip);
        let name = format!("analysis/{}", clip.label());
        let mut group = criterion.benchmark_group(&name);
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(SAMPLES_PER_CASE)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .throughput(Throughput::Elements(clip.frames()));
        realtime.note(&name, "measure", "100 ms chunks", clip.sample_rate);
        group.bench_function("measure/100 ms chunks", |b| {
            b.iter(|| analyze(&clip, &work))
        });
        let mut encoder = FrameEncoder::new();
        realtime.note(&name, "encode", "level 5", clip.sample_rate);
        group.bench_function("encode/level 5", |b| b.iter(|| encode(&clip, &mut encoder)));
        group.finish();
        let measured = median(5, || {
            analyze(&clip, &work);
        });
        let encoded = median(5, || {
            encode(&clip, &mut encoder);
        });
        ratios.push((clip.label(), measured, encoded));
    }
    criterion.final_summary();
    realtime.print();
    println!("\nmeasuring as a share of encoding at level 5 (median of 5 runs):");
    for (label, measured, encoded) in ratios {
        println!(
            "  {label}: {:.1} % ({measured:?} against {encoded:?})",
            100.0 * measured.as_secs_f64() / encoded.as_secs_f64()
        );
    }
}
