use std::time::Duration;

use flacstream_codec::fixture::{pcm_bytes, random_splits, test_signal, wav_bytes, WavSpec};

use super::*;
use crate::registry::{Admit, RegistrySettings};
use crate::Registry;
use flacstream_codec::flac::{EncoderLevel, STREAMINFO_BYTES};

struct Harness {
    pool: EncoderPool,
    registry: Addr<Registry>,
}

impl Harness {
    fn start(threads: usize) -> Self {
        Self {
            pool: EncoderPool::start(threads, 64),
            registry: Registry::new(RegistrySettings {
                max_sessions: 100,
                idle_timeout: Duration::from_secs(30),
            })
            .start(),
        }
    }

    /// Streams `pieces` through a new session, as a transport would, and
    /// returns the FLAC bytes and the final event.
    async fn run(&self, pieces: &[&[u8]], end: bool) -> (Vec<u8>, Outbound) {
        let settings = SessionSettings {
            level: EncoderLevel::default(),
            block_size: Some(256),
            max_header_bytes: 1 << 20,
            max_blocks_in_flight: 2,
            input: InputFormat::Wav,
            source: flacstream_codec::media::SourceCodec::Pcm,
            max_duration: std::time::Duration::from_secs(3600),
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
        session
            .send(Connect {
                conn,
                role: Role::Producer,
                flac: true,
                metadata: false,
                tx,
            })
            .await
            .unwrap()
            .unwrap();
        let reader = async {
            let mut flac = Vec::new();
            while let Some(event) = rx.recv().await {
                match event {
                    Outbound::Flac(bytes) => {
                        flac.extend_from_slice(&bytes);
                        session.do_send(Delivered);
                    }
                    last => return (flac, last),
                }
            }
            panic!("channel closed without a final event");
        };
        let writer = async {
            for piece in pieces {
                if session
                    .send(Ingest {
                        conn,
                        bytes: Bytes::copy_from_slice(piece),
                    })
                    .await
                    .map_or(true, |r| r.is_err())
                {
                    return;
                }
            }
            if end {
                let _ = session
                    .send(EndOfInput {
                        conn,
                        reason: EndReason::Complete,
                    })
                    .await;
            }
        };
        let (out, ()) = tokio::join!(reader, writer);
        out
    }
}

fn decode(flac: &[u8], streaminfo: &[u8; STREAMINFO_BYTES]) -> Vec<i32> {
    let mut patched = flac.to_vec();
    patched[8..42].copy_from_slice(streaminfo);
    let mut reader = claxon::FlacReader::new(patched.as_slice()).unwrap();
    reader.samples().map(|s| s.unwrap()).collect()
}

#[actix_rt::test]
async fn random_splits_round_trip_exactly() {
    let h = Harness::start(2);
    let samples = test_signal(3000, 2, 16, 1);
    let wav = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &pcm_bytes(&samples, 16));
    for seed in 0..4 {
        let (flac, last) = h.run(&random_splits(&wav, 5000, seed), false).await;
        let Outbound::Done(done) = last else {
            panic!("{last:?}")
        };
        assert_eq!(done.samples, 3000);
        assert_eq!(decode(&flac, &done.streaminfo), samples);
    }
}

#[actix_rt::test]
async fn bad_header_fails_without_flac_bytes() {
    let h = Harness::start(1);
    let (flac, last) = h.run(&[b"RIFF\0\0\0\0WAVX"], true).await;
    assert!(flac.is_empty());
    let Outbound::Failed(e) = last else {
        panic!("{last:?}")
    };
    assert_eq!(e.code(), "not_wav");
}

#[cfg(feature = "fault-injection")]
#[actix_rt::test]
async fn an_encoder_panic_fails_only_its_session_and_the_worker_restarts() {
    use crate::encoder::POISON_BLOCK_PREFIX;
    let h = Harness::start(1);
    let mut poisoned = test_signal(1000, 2, 16, 5);
    poisoned[512..516].copy_from_slice(&POISON_BLOCK_PREFIX); // block 1 of 256 × 2
    let bad = wav_bytes(&WavSpec::pcm(2, 8_000, 16), &pcm_bytes(&poisoned, 16));
    let good_samples = test_signal(1000, 2, 16, 6);
    let good = wav_bytes(&WavSpec::pcm(2, 8_000, 16), &pcm_bytes(&good_samples, 16));

    let (bad_pieces, good_pieces): ([&[u8]; 1], [&[u8]; 1]) = ([&bad], [&good]);
    let (bad_out, good_out) = tokio::join!(h.run(&bad_pieces, false), h.run(&good_pieces, false));
    let Outbound::Failed(e) = bad_out.1 else {
        panic!("{:?}", bad_out.1)
    };
    assert_eq!(e, StreamError::EncoderPanicked);
    let Outbound::Done(done) = good_out.1 else {
        panic!("{:?}", good_out.1)
    };
    assert_eq!(decode(&good_out.0, &done.streaminfo), good_samples);
    assert_eq!(h.pool.stats().restarts(), 1);

    // The single worker thread still serves new sessions.
    let (flac, last) = h.run(&[&good], false).await;
    let Outbound::Done(done) = last else {
        panic!("{last:?}")
    };
    assert_eq!(decode(&flac, &done.streaminfo), good_samples);
}

/// A chosen id can be admitted again once its first admission was swept as
/// abandoned, so two sessions may start under one id. The registry keeps the
/// first: the second is stopped, and its stopping does not free the slot the
/// first one holds.
#[actix_rt::test]
async fn a_second_session_under_an_attached_id_is_stopped_and_the_first_kept() {
    use crate::registry::Lookup;
    let h = Harness::start(1);
    let settings = SessionSettings {
        level: EncoderLevel::default(),
        block_size: Some(256),
        max_header_bytes: 1 << 20,
        max_blocks_in_flight: 2,
        input: InputFormat::Wav,
        source: flacstream_codec::media::SourceCodec::Pcm,
        max_duration: std::time::Duration::from_secs(3600),
        input_rate: None,
    };
    let id = h.registry.send(Admit).await.unwrap().unwrap();
    let start = || {
        Session::new(
            id,
            settings,
            SessionKind::Stream,
            h.pool.clone(),
            h.registry.clone(),
        )
        .start()
    };
    let first = start();
    let second = start();
    for _ in 0..100 {
        if !second.connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!second.connected(), "the duplicate session was not stopped");
    // Its Release has been handled by now (it was sent before the actor stopped).
    let held = h.registry.send(Lookup::new(id)).await.unwrap();
    assert!(
        held == Some(first.clone()),
        "the registry lost the first session"
    );
    assert!(first.connected());
}
