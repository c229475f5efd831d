//! Chunking invariance through the real [`Session`] actor (property test):
//! the same WAV or raw PCM bytes sent as any sequence of [`Ingest`] messages
//! (1-byte messages, cuts inside the header and inside a sample, large
//! messages) give byte-identical FLAC and the same final STREAMINFO as one
//! message holding everything, and that FLAC decodes (claxon) to the input's
//! samples. The session runs in-process with the encoder pool, as the
//! transport drives it (benches/session.rs does the same for timing).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test, with its line"
)]

use std::time::Duration;

use actix::{Actor, Addr};
use bytes::Bytes;
use flacstream_actors::registry::{Admit, RegistrySettings};
use flacstream_actors::session::{
    outbound_channel, Connect, Delivered, EndOfInput, EndReason, Ingest, InputFormat, Role,
    SessionKind,
};
use flacstream_actors::{EncoderPool, Outbound, Registry, Session, SessionSettings};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, DataSize, WavSpec};
use flacstream_codec::flac::{EncoderLevel, STREAMINFO_BYTES, STREAMINFO_OFFSET};
use flacstream_codec::pcm::PcmLayout;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

/// Cases: each runs two sessions of up to [`MAX_FRAMES`] frames (up to tens
/// of thousands of messages); all of them take well under a second.
const CASES: u32 = 64;

/// Longest input in sample frames per channel.
const MAX_FRAMES: usize = 1500;

/// Encoder threads: the two cores of the machines this runs on, so frames
/// can come back out of order and must be put back in order.
const POOL_THREADS: usize = 2;

/// A stream and how it is set up.
#[derive(Debug, Clone)]
struct Case {
    bytes: Vec<u8>,
    /// Where the audio starts (0 for raw PCM).
    header_len: usize,
    input: InputFormat,
    samples: Vec<i32>,
    layout: PcmLayout,
    level: u8,
    block_size: usize,
    /// Blocks the session may have in flight (1 serialises the pool).
    in_flight: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1u16..=8,
        prop::sample::select(vec![8u16, 16, 24]),
        prop::sample::select(vec![8_000u32, 44_100, 96_000, 655_350]),
        0usize..=MAX_FRAMES,
        0u8..=8,
        prop::sample::select(vec![32usize, 100, 256, 4096]),
        0u8..4,
        1usize..=4,
        any::<u64>(),
    )
        .prop_map(
            |(channels, bits, rate, frames, level, block_size, header, in_flight, seed)| {
                let samples = test_signal(frames, channels, bits, seed);
                let data = pcm_bytes(&samples, bits);
                let layout = PcmLayout {
                    channels: usize::from(channels),
                    bytes_per_sample: usize::from(bits / 8),
                };
                let mut spec = WavSpec::pcm(channels, rate, bits);
                match header {
                    1 => spec.data_size = DataSize::StreamingMax,
                    2 => spec.chunks_before_data.push((*b"LIST", vec![b'x'; 7])),
                    _ => {}
                }
                let (bytes, input, header_len) = if header == 3 {
                    let input = InputFormat::Raw {
                        layout,
                        sample_rate: rate,
                    };
                    (data, input, 0)
                } else {
                    let bytes = wav_bytes(&spec, &data);
                    let pad = usize::from(spec.data_size == DataSize::Exact && data.len() % 2 == 1);
                    let header_len = bytes.len() - data.len() - pad;
                    (bytes, InputFormat::Wav, header_len)
                };
                Case {
                    bytes,
                    header_len,
                    input,
                    samples,
                    layout,
                    level,
                    block_size,
                    in_flight,
                }
            },
        )
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

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        1 => Just(Split::OneByte),
        2 => (2usize..=4096).prop_map(Split::Every),
        3 => prop::collection::vec(any::<Index>(), 2..24).prop_map(Split::Cuts),
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

/// The encoder pool and registry every case's sessions share.
struct Harness {
    pool: EncoderPool,
    registry: Addr<Registry>,
}

impl Harness {
    fn start() -> Self {
        Self {
            pool: EncoderPool::start(POOL_THREADS, 64),
            registry: Registry::new(RegistrySettings {
                max_sessions: 16,
                idle_timeout: Duration::from_secs(60),
            })
            .start(),
        }
    }

    /// Streams `pieces` through a new session, then `end`; returns the FLAC
    /// bytes as sent and the final STREAMINFO.
    async fn run(&self, case: &Case, pieces: &[&[u8]]) -> (Vec<u8>, [u8; STREAMINFO_BYTES]) {
        let settings = SessionSettings {
            level: EncoderLevel::new(case.level).expect("0..=8 is a level"),
            block_size: Some(case.block_size),
            max_header_bytes: 1 << 20,
            max_blocks_in_flight: case.in_flight,
            input: case.input,
            source: flacstream_codec::media::SourceCodec::Pcm,
            max_duration: Duration::from_secs(3600),
            input_rate: None,
        };
        let id = self.registry.send(Admit).await.unwrap().unwrap();
        let (tx, mut rx) = outbound_channel(&settings);
        let session = Session::new(
            id,
            settings,
            SessionKind::Stream,
            self.pool.clone(),
            self.registry.clone(),
        )
        .start();
        let conn = 1;
        let connect = Connect {
            conn,
            role: Role::Producer,
            flac: true,
            metadata: false,
            tx,
        };
        session.send(connect).await.unwrap().unwrap();
        let reader = async {
            let mut flac = Vec::new();
            while let Some(event) = rx.recv().await {
                match event {
                    Outbound::Flac(bytes) => {
                        flac.extend_from_slice(&bytes);
                        session.do_send(Delivered);
                    }
                    Outbound::Done(done) => return (flac, done.streaminfo),
                    Outbound::Failed(e) => panic!("the session failed: {e}"),
                    Outbound::Storage { .. } | Outbound::Chunk(_) => {
                        panic!("a stream records and measures nothing")
                    }
                }
            }
            panic!("the session ended without done");
        };
        let writer = async {
            for piece in pieces {
                let bytes = Bytes::copy_from_slice(piece);
                let sent = session.send(Ingest { conn, bytes }).await;
                if !matches!(sent, Ok(Ok(_))) {
                    // The data chunk was complete and the session has ended.
                    return;
                }
            }
            let end = EndOfInput {
                conn,
                reason: EndReason::Complete,
            };
            let _ = session.send(end).await;
        };
        let (out, ()) = tokio::join!(reader, writer);
        out
    }
}

/// claxon's reading of `flac` with `streaminfo` written over the first one.
fn decode(flac: &[u8], streaminfo: &[u8; STREAMINFO_BYTES]) -> Vec<i32> {
    let mut patched = flac.to_vec();
    patched[STREAMINFO_OFFSET..STREAMINFO_OFFSET + STREAMINFO_BYTES].copy_from_slice(streaminfo);
    let mut reader = claxon::FlacReader::new(patched.as_slice()).expect("claxon reads the header");
    reader
        .samples()
        .map(|s| s.expect("claxon decodes"))
        .collect()
}

#[test]
fn any_split_gives_the_same_flac_through_a_session() {
    let system = actix_rt::System::new();
    let harness = system.block_on(async { Harness::start() });
    let config = Config {
        cases: CASES,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&(case(), split()), |(case, split)| {
        let run = |pieces: &[&[u8]]| system.block_on(harness.run(&case, pieces));
        let (whole, whole_info) = run(&[&case.bytes]);
        prop_assert!(
            decode(&whole, &whole_info) == case.samples,
            "the whole input does not decode to its samples"
        );
        let pieces = pieces(&case, &split);
        let (split_flac, split_info) = run(&pieces);
        prop_assert!(
            split_flac == whole,
            "{} messages give different FLAC ({} vs {} bytes)",
            pieces.len(),
            split_flac.len(),
            whole.len()
        );
        prop_assert_eq!(split_info, whole_info);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
