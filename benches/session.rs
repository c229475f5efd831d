//! End to end in process: a WAV file pushed through a [`Session`] actor and
//! the [`EncoderPool`], as the WebSocket transport drives them, minus the
//! network.
//!
//! One iteration admits a session with the [`Registry`], attaches a producer
//! that takes FLAC, sends the whole file as [`Ingest`] messages of
//! [`MESSAGE_BYTES`] (acknowledging each frame with [`Delivered`], as the
//! transport does once a frame is on the socket), and waits for `done`. The
//! difference from `encode` at the same level is what parsing, staging,
//! dispatch, reordering and the actor messages cost, less what the pool's
//! parallelism gains.
//!
//! Throughput is in samples per channel, so x real time = elem/s ÷ sample
//! rate (the rate is in every group name); a table is printed at the end.
//! Before a case is timed, its output is decoded once with claxon and
//! compared sample for sample.

mod audio;
mod realtime;

use std::time::Duration;

use actix::{Actor, Addr, SystemRunner};
use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use flacstream_actors::registry::{Admit, RegistrySettings};
use flacstream_actors::session::{
    outbound_channel, Connect, Delivered, DoneSummary, Ingest, InputFormat, Role, SessionKind,
    DEFAULT_MAX_BLOCKS_IN_FLIGHT,
};
use flacstream_actors::{EncoderPool, Outbound, Registry, Session, SessionSettings};
use flacstream_codec::flac::{EncoderLevel, DEFAULT_LEVEL, STREAMINFO_BYTES, STREAMINFO_OFFSET};
use flacstream_codec::wav::DEFAULT_MAX_HEADER_BYTES;

use audio::{Clip, Source};
use realtime::RealTime;

/// Encoder threads in the pool: one per core of the two-core machines the
/// benches are written down on.
const POOL_THREADS: usize = 2;

/// Jobs the pool may hold queued or running (the service's default per thread).
const POOL_QUEUE: usize = POOL_THREADS * flacstream_actors::encoder::pool::DEFAULT_QUEUE_PER_THREAD;

/// Bytes per `Ingest`: the 64 KiB binary messages the command-line client sends.
const MESSAGE_BYTES: usize = 64 * 1024;

/// Sessions the registry admits at once; one runs at a time here.
const MAX_SESSIONS: usize = 4;

/// Idle timeout, in seconds: far longer than any one iteration.
const IDLE_TIMEOUT_SECONDS: u64 = 60;

/// Levels timed on 16-bit music besides the default: the cheapest level shows
/// the pipeline's own overhead best.
const EXTRA_MUSIC_LEVELS: [u8; 1] = [0];

/// Samples per case; one iteration is a whole clip (5–40 ms on a 2-core box).
const SAMPLES_PER_CASE: usize = 20;

/// Warm-up per case, in seconds.
const WARM_UP_SECONDS: u64 = 1;

/// Measuring time per case, in seconds.
const MEASUREMENT_SECONDS: u64 = 5;

/// What one bench iteration needs: the actix system and its actors.
struct Pipeline {
    system: SystemRunner,
    pool: EncoderPool,
    registry: Addr<Registry>,
}

impl Pipeline {
    fn start() -> Self {
        let system = actix::System::new();
        let (pool, registry) = system.block_on(async {
            let pool = EncoderPool::start(POOL_THREADS, POOL_QUEUE);
            let registry = Registry::new(RegistrySettings {
                max_sessions: MAX_SESSIONS,
                idle_timeout: Duration::from_secs(IDLE_TIMEOUT_SECONDS),
            })
            .start();
            (pool, registry)
        });
        Self {
            system,
            pool,
            registry,
        }
    }

    /// Streams `messages` through a new session; returns the FLAC bytes with
    /// the final STREAMINFO written in, and the summary.
    fn run(&self, level: EncoderLevel, messages: &[Bytes]) -> (Vec<u8>, DoneSummary) {
        self.system.block_on(stream(
            self.pool.clone(),
            self.registry.clone(),
            level,
            messages,
        ))
    }
}

async fn stream(
    pool: EncoderPool,
    registry: Addr<Registry>,
    level: EncoderLevel,
    messages: &[Bytes],
) -> (Vec<u8>, DoneSummary) {
    let settings = SessionSettings {
        level,
        block_size: None,
        max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        max_blocks_in_flight: DEFAULT_MAX_BLOCKS_IN_FLIGHT,
        input: InputFormat::Wav,
        source: flacstream_codec::media::SourceCodec::Pcm,
        max_duration: std::time::Duration::from_secs(3600),
        input_rate: None,
    };
    let id = registry
        .send(Admit)
        .await
        .expect("registry runs")
        .expect("registry admits the session");
    let (tx, mut rx) = outbound_channel(&settings);
    let session = Session::new(id, settings, SessionKind::Stream, pool, registry).start();
    let conn = 1;
    session
        .send(Connect {
            conn,
            role: Role::Producer,
            flac: true,
            metadata: false,
            tx,
        })
        .await
        .expect("session runs")
        .expect("session takes its producer");
    let reader = async {
        let mut flac = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                Outbound::Flac(bytes) => {
                    flac.extend_from_slice(&bytes);
                    session.do_send(Delivered);
                }
                Outbound::Done(done) => return (flac, done),
                Outbound::Failed(e) => panic!("session failed: {e}"),
                Outbound::Chunk(_) => panic!("the bench measures nothing"),
                Outbound::Storage { available, .. } => {
                    panic!("the bench records nothing, yet storage changed ({available})")
                }
            }
        }
        panic!("session closed its channel without done");
    };
    let writer = async {
        for bytes in messages {
            session
                .send(Ingest {
                    conn,
                    bytes: bytes.clone(),
                })
                .await
                .expect("session runs")
                .expect("session takes the audio");
        }
    };
    let ((mut flac, done), ()) = tokio::join!(reader, writer);
    flac[STREAMINFO_OFFSET..STREAMINFO_OFFSET + STREAMINFO_BYTES].copy_from_slice(&done.streaminfo);
    (flac, done)
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut realtime = RealTime::new("the session's thread and the encoder pool");
    let pipeline = Pipeline::start();
    for source in Source::ALL {
        let clip = audio::load(source);
        let wav = Bytes::from(clip.wav());
        let messages: Vec<Bytes> = (0..wav.len())
            .step_by(MESSAGE_BYTES)
            .map(|start| wav.slice(start..(start + MESSAGE_BYTES).min(wav.len())))
            .collect();
        let mut levels = vec![DEFAULT_LEVEL];
        if source == Source::Music16 {
            levels.extend(EXTRA_MUSIC_LEVELS);
        }
        let name = format!("session/{}", clip.label());
        let mut group = criterion.benchmark_group(&name);
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(SAMPLES_PER_CASE)
            .warm_up_time(Duration::from_secs(WARM_UP_SECONDS))
            .measurement_time(Duration::from_secs(MEASUREMENT_SECONDS))
            .throughput(Throughput::Elements(clip.frames()));
        for level in levels {
            let level = EncoderLevel::new(level).expect("bench levels are 0..=8");
            let function = format!("level {}", level.get());
            let parameter = format!("{POOL_THREADS} encoder threads");
            realtime.note(&name, &function, &parameter, clip.sample_rate);
            let mut checked = false;
            group.bench_function(format!("{function}/{parameter}"), |b| {
                if !checked {
                    check_round_trip(&clip, &pipeline.run(level, &messages));
                    checked = true;
                }
                b.iter(|| pipeline.run(level, &messages));
            });
        }
        group.finish();
    }
    criterion.final_summary();
    realtime.print();
}

/// Checks a session's summary, and that claxon decodes its output exactly.
fn check_round_trip(clip: &Clip, (flac, done): &(Vec<u8>, DoneSummary)) {
    let case = format!("session/{}", clip.label());
    assert_eq!(
        done.samples,
        clip.frames(),
        "sanity check: {case}: samples per channel in done"
    );
    let block_size = clip.format(None).block_size;
    let percent = audio::assert_decodes_to(flac, clip, &case, block_size);
    eprintln!(
        "sanity check: {case} decodes exactly ({} frames; FLAC is {percent:.1}% of the PCM)",
        done.frames
    );
}
