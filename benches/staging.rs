//! The PCM staging ring: how fast samples pass through it.
//!
//! - `in session`: [`Staging`] as a session uses it, on one thread: decode
//!   PCM bytes into the ring while there is room, pop every whole block,
//!   repeat, then flush the tail. This includes the PCM decoder and its
//!   running MD5 (for STREAMINFO), which cost more than the ring itself: it
//!   is what a session pays per input byte before encoding.
//! - `across threads`: the same `ringbuf` ring (same element type, capacity
//!   [`STAGING_BLOCKS`] blocks) split into its producer and consumer, pushing
//!   on one thread and popping whole blocks on another, which is what the
//!   lock-free ring alone costs when its two ends are on different cores.
//!   [`Staging`] keeps both ends inside one actor, so this case uses the ring
//!   type directly.
//!
//! Throughput is in bytes of 16-bit stereo PCM (the `music-16` clip), the
//! unit a client sends. Before a case is timed its output is compared with
//! the input once.

mod audio;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use flacstream_actors::staging::{Staging, STAGING_BLOCKS};
use flacstream_codec::pcm::PcmDecoder;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::HeapRb;

use audio::{Clip, Source};

/// Samples the producer pushes per call across threads: a session's decode
/// step (`DECODE_STEP_SAMPLES` in `actors/src/staging.rs`).
const PUSH_SAMPLES: usize = 8192;

/// Samples per channel in a block: the default at 44.1 kHz.
const BLOCK_SIZE: usize = 4096;

/// Samples per case; one iteration moves a whole clip (milliseconds).
const SAMPLES_PER_CASE: usize = 20;

/// Warm-up per case, in seconds.
const WARM_UP_SECONDS: u64 = 1;

/// Measuring time per case, in seconds.
const MEASUREMENT_SECONDS: u64 = 3;

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let clip = audio::load(Source::Music16);
    let pcm = clip.pcm();
    let mut group = criterion.benchmark_group(format!("staging/{}", clip.label()));
    group
        .sample_size(SAMPLES_PER_CASE)
        .warm_up_time(Duration::from_secs(WARM_UP_SECONDS))
        .measurement_time(Duration::from_secs(MEASUREMENT_SECONDS))
        .throughput(Throughput::Bytes(pcm.len() as u64));

    let mut checked = false;
    group.bench_function(format!("in session/block {BLOCK_SIZE}"), |b| {
        if !checked {
            let mut out = Vec::with_capacity(clip.samples.len());
            in_session(&clip, &pcm, |block| out.extend_from_slice(block));
            assert_same("in session", &out, &clip.samples);
            checked = true;
        }
        b.iter(|| {
            let mut sum = 0i64;
            in_session(&clip, black_box(&pcm), |block| sum += i64::from(block[0]));
            black_box(sum)
        });
    });

    let mut checked = false;
    group.bench_function(format!("across threads/block {BLOCK_SIZE}"), |b| {
        if !checked {
            let mut out = Vec::with_capacity(clip.samples.len());
            across_threads(&clip, |block| out.extend_from_slice(block));
            assert_same("across threads", &out, &clip.samples);
            checked = true;
        }
        b.iter(|| {
            let mut sum = 0i64;
            across_threads(&clip, |block| sum += i64::from(block[0]));
            black_box(sum)
        });
    });
    group.finish();
    criterion.final_summary();
}

/// Stages `pcm` and hands every block (the last one short) to `sink`, the
/// way a session does.
fn in_session(clip: &Clip, pcm: &[u8], mut sink: impl FnMut(&[i32])) {
    let mut decoder = PcmDecoder::new(clip.layout());
    let mut staging = Staging::new(BLOCK_SIZE, usize::from(clip.channels));
    let mut input = pcm;
    while !input.is_empty() {
        staging.stage(&mut decoder, &mut input);
        while let Some(block) = staging.pop_block(false) {
            sink(&block);
        }
    }
    if let Some(block) = staging.pop_block(true) {
        sink(&block);
    }
}

/// Pushes the clip's samples on a second thread and pops whole blocks (the
/// last one short) on this one, handing each to `sink`. Either end yields
/// its core while the ring is full or empty, as a loaded server would want.
fn across_threads(clip: &Clip, mut sink: impl FnMut(&[i32])) {
    let block_samples = BLOCK_SIZE * usize::from(clip.channels);
    let (mut producer, mut consumer) = HeapRb::<i32>::new(block_samples * STAGING_BLOCKS).split();
    let total = clip.samples.len();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for chunk in clip.samples.chunks(PUSH_SAMPLES) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let pushed = producer.push_slice(rest);
                    rest = &rest[pushed..];
                    if pushed == 0 {
                        std::thread::yield_now();
                    }
                }
            }
        });
        let mut block = vec![0; block_samples];
        let mut popped = 0;
        while popped < total {
            let want = block_samples.min(total - popped);
            if consumer.occupied_len() < want {
                std::thread::yield_now();
                continue;
            }
            let n = consumer.pop_slice(&mut block[..want]);
            sink(&block[..n]);
            popped += n;
        }
    });
}

fn assert_same(case: &str, out: &[i32], expected: &[i32]) {
    if let Some(i) = out.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "sanity check: staging/{case}: sample {i} came out as {} instead of {}",
            out[i], expected[i]
        );
    }
    assert_eq!(
        out.len(),
        expected.len(),
        "sanity check: staging/{case}: samples out"
    );
    eprintln!("sanity check: staging/{case} passes every sample through in order");
}
