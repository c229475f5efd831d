//! Scaled mode: recordings in object storage, sessions owned by lease.
//!
//! - Always: object storage in memory (`--storage-url memory:///`), one
//!   in-process server: durable segments, the composed FLAC, the durable
//!   part of a live session, deletion.
//! - With `FLACSTREAM_TEST_DATABASE_URL` (PostgreSQL) and
//!   `FLACSTREAM_TEST_STORAGE_URL` (an S3 bucket, with the `AWS_*`
//!   variables), which `.ci/run` sets after starting both servers: two
//!   replicas as real processes sharing them; one is killed with SIGKILL
//!   mid-stream and its producer resumes through the other. Without them
//!   the test prints that it was skipped, and why.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{assert_exact, connect_session, http, http_json, start};
use flacstream_codec::fixture::{pcm_bytes, test_signal};
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Sends `pcm` from `from` in random pieces, reading each ack; returns the
/// last ack.
async fn send_acked(ws: &mut crate::common::Ws, pcm: &[u8], rng: &mut rand::rngs::StdRng) -> Value {
    let mut ack = Value::Null;
    let mut at = 0;
    while at < pcm.len() {
        let n = rng.random_range(1..=8_000).min(pcm.len() - at);
        ws.send(Message::binary(pcm[at..at + n].to_vec()))
            .await
            .unwrap();
        at += n;
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("no ack")
        };
        ack = serde_json::from_str(&text).unwrap();
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    ack
}

#[actix_rt::test]
async fn object_storage_records_composes_and_deletes_exactly() {
    let server = start(&["--storage-url", "memory:///", "--durable-lag-seconds", "2"]);
    let addr = server.addr;
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let samples = test_signal(44_100 * 6, 2, 16, 5);
    let pcm = pcm_bytes(&samples, 16);
    let url =
        format!("ws://{addr}/api/ws/audio?sample_rate=44100&channels=2&format=s16le&user_id=obj");
    let (mut ws, _, id) = connect_session(&url).await;
    let half = pcm.len() / 2 / 4 * 4;
    send_acked(&mut ws, &pcm[..half], &mut rng).await;

    // Within the lag bound the first half becomes durable, and any replica
    // can read the durable part while the session is live.
    let deadline = Instant::now() + Duration::from_secs(10);
    let durable = loop {
        ws.send(Message::binary(Vec::new())).await.unwrap();
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!()
        };
        let ack: Value = serde_json::from_str(&t).unwrap();
        let d = ack["samples_durable"].as_u64().unwrap();
        if d > 0 || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(durable > 0, "nothing became durable within 10 s");
    let (code, body) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    // `http` has undone the chunked transfer encoding.
    let mut reader = claxon::FlacReader::new(body.as_slice()).unwrap();
    let decoded: Vec<i32> = reader.samples().map(|s| s.unwrap()).collect();
    assert!(
        decoded.len() as u64 >= durable * 2,
        "{} < {durable}",
        decoded.len() / 2
    );
    assert_eq!(decoded[..], samples[..decoded.len()]);

    send_acked(&mut ws, &pcm[half..], &mut rng).await;
    let (code, closed) = http_json(addr, "POST", &format!("/api/audio/sessions/{id}/close")).await;
    assert_eq!(code, 200, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["samples"], samples.len() as u64 / 2);
    let (code, flac) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples, 2, 16, 4096);

    let (code, _) = http(addr, "DELETE", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(code, 204);
    let (code, _) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 404);
    server.drain().await;
}

/// A replica as a real process; killed with SIGKILL when dropped.
/// A replica as a real process, killed with SIGKILL when dropped.
pub struct Replica {
    child: Child,
    pub addr: std::net::SocketAddr,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts a replica on the shared database and storage.
pub async fn replica(database: &str, storage: &str) -> Replica {
    replica_with(database, storage, &[]).await
}

async fn replica_with(database: &str, storage: &str, extra: &[&str]) -> Replica {
    let port = free_port();
    let data =
        std::env::temp_dir().join(format!("flacstream-replica-{}-{port}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_flacstream"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .args(["--lease-seconds", "4", "--durable-lag-seconds", "2"])
        .args(extra)
        .env("FLACSTREAM_DATABASE_URL", database)
        .env("FLACSTREAM_STORAGE_URL", storage)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let replica = Replica { child, addr };
    for _ in 0..150 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            drop(s);
            if http(addr, "GET", "/readyz").await.0 == 200 {
                return replica;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replica on {addr} did not become ready");
}

/// The test servers' URLs from `.ci/run`, or `None` (printed as skipped).
pub fn servers() -> Option<(String, String)> {
    match (
        std::env::var("FLACSTREAM_TEST_DATABASE_URL"),
        std::env::var("FLACSTREAM_TEST_STORAGE_URL"),
    ) {
        (Ok(db), Ok(s3)) => Some((db, s3)),
        _ => {
            eprintln!(
                "SKIPPED scaled::two_replicas…: FLACSTREAM_TEST_DATABASE_URL and \
                 FLACSTREAM_TEST_STORAGE_URL are not set (.ci/run starts PostgreSQL and an S3 \
                 server and sets them)"
            );
            None
        }
    }
}

#[actix_rt::test]
async fn two_replicas_a_kill_9_and_the_producer_resumes_on_the_other_exactly() {
    let Some((database, storage)) = servers() else {
        return;
    };
    let a = replica(&database, &storage).await;
    let b = replica(&database, &storage).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let user = format!("scaled-{}", uuid::Uuid::new_v4().simple());
    let samples = test_signal(44_100 * 10, 2, 16, 21);
    let pcm = pcm_bytes(&samples, 16);
    let frame = 4usize; // bytes per sample frame
    let url = format!(
        "ws://{}/api/ws/audio?sample_rate=44100&channels=2&format=s16le&user_id={user}",
        a.addr
    );
    let (mut ws, _, id) = connect_session(&url).await;
    // Send in real time-ish pieces until something is durable, then more.
    let mut sent = 0usize;
    let mut durable_acked = 0u64;
    while sent < pcm.len() / 2 {
        let n = (rng.random_range(1_000..20_000) / frame * frame).min(pcm.len() - sent);
        ws.send(Message::binary(pcm[sent..sent + n].to_vec()))
            .await
            .unwrap();
        sent += n;
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!()
        };
        let ack: Value = serde_json::from_str(&t).unwrap();
        durable_acked = durable_acked.max(ack["samples_durable"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while durable_acked == 0 && Instant::now() < deadline {
        ws.send(Message::binary(Vec::new())).await.unwrap();
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!()
        };
        let ack: Value = serde_json::from_str(&t).unwrap();
        durable_acked = ack["samples_durable"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(durable_acked > 0, "nothing durable");

    // SIGKILL the owner mid-stream.
    drop(a);
    let killed = Instant::now();
    drop(ws);

    // The producer resumes through the other replica.
    let join = format!("ws://{}/api/ws/audio/{id}", b.addr);
    let (mut ws, hello, _) = loop {
        match tokio_tungstenite::connect_async(&join).await {
            Ok((mut ws, _)) => {
                let Some(Ok(Message::Text(hello))) = ws.next().await else {
                    panic!()
                };
                break (ws, serde_json::from_str::<Value>(&hello).unwrap(), ());
            }
            Err(e) => {
                assert!(killed.elapsed() < Duration::from_secs(30), "no resume: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let resumed_after = killed.elapsed();
    eprintln!("scaled: resumed on the other replica {resumed_after:?} after kill -9");
    let received = hello["samples_received"].as_u64().unwrap();
    assert!(
        received >= durable_acked,
        "{received} < acked durable {durable_acked}"
    );
    assert_eq!(hello["resumed"], true);
    send_acked(&mut ws, &pcm[received as usize * frame..], &mut rng).await;
    let (code, closed) =
        http_json(b.addr, "POST", &format!("/api/audio/sessions/{id}/close")).await;
    assert_eq!(code, 200, "{closed}");
    let (code, flac) = http(b.addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples, 2, 16, 4096);
    let (code, list) = http_json(
        b.addr,
        "GET",
        &format!("/api/audio/sessions?user_id={user}"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(list["sessions"][0]["session_id"], id.as_str());
}

/// Reads a listener's messages until it closes: the FLAC bytes, the last
/// text message, and the close code.
async fn listen_all(mut ws: crate::common::Ws) -> (Vec<u8>, Value, Option<u16>) {
    let mut flac = Vec::new();
    let mut last = Value::Null;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => flac.extend_from_slice(&b),
            Ok(Some(Ok(Message::Text(t)))) => last = serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (flac, last, frame.map(|f| u16::from(f.code)))
            }
            Ok(Some(Ok(_))) => {}
            _ => return (flac, last, None),
        }
    }
}

/// Joins `id` as producer through `addr`, retrying while refused.
async fn resume_at(addr: std::net::SocketAddr, id: &str) -> (crate::common::Ws, Value) {
    let started = Instant::now();
    loop {
        match tokio_tungstenite::connect_async(format!("ws://{addr}/api/ws/audio/{id}")).await {
            Ok((mut ws, _)) => {
                let Some(Ok(Message::Text(hello))) = ws.next().await else {
                    panic!("no session message")
                };
                return (ws, serde_json::from_str(&hello).unwrap());
            }
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no resume: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

#[actix_rt::test]
async fn a_listener_is_relayed_a_live_owner_hands_over_and_a_dead_one_is_replaced() {
    let Some((database, storage)) = servers() else {
        return;
    };
    let a = replica(&database, &storage).await;
    let b = replica(&database, &storage).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let samples = test_signal(16_000 * 12, 1, 16, 3);
    let pcm = pcm_bytes(&samples, 16);
    let third = pcm.len() / 3 / 2 * 2;
    let url = format!(
        "ws://{}/api/ws/audio?sample_rate=16000&channels=1&format=s16le",
        a.addr
    );
    let (mut producer, _, id) = connect_session(&url).await;

    // A listener through the replica that does not own the session is
    // relayed from the owner: it hears the stream header and the frames.
    let (listener, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/ws/audio/{id}?role=listen", b.addr))
            .await
            .unwrap();
    let (mut listener, hello) = {
        let mut l = listener;
        let Some(Ok(Message::Text(t))) = l.next().await else {
            panic!()
        };
        (l, serde_json::from_str::<Value>(&t).unwrap())
    };
    assert_eq!(hello["role"], "listener", "{hello}");
    // Read from the start, as a live listener does: one that stops reading
    // is cut off as a slow reader, relayed or not.
    let first = tokio::time::timeout(Duration::from_secs(10), listener.next()).await;
    let Ok(Some(Ok(Message::Binary(header)))) = first else {
        panic!("no stream header: {first:?}")
    };
    assert_eq!(&header[..4], b"fLaC");
    let listening = actix_rt::spawn(listen_all(listener));
    // A live source: about 5× real time here. (A burst far faster than the
    // encoders' pace would outrun any listener's few frames of slack, and
    // the listener would be cut off as too slow, relayed or not.)
    for piece in pcm[..third].chunks(3_200) {
        send_acked(&mut producer, piece, &mut rng).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The producer's connection drops and it comes back through the other
    // replica while the owner is alive: the owner hands over.
    drop(producer);
    let asked = Instant::now();
    let (mut producer, hello) = resume_at(b.addr, &id).await;
    eprintln!(
        "scaled: handover from a live owner took {:?}",
        asked.elapsed()
    );
    let received = hello["samples_received"].as_u64().unwrap() as usize;
    assert_eq!(hello["resumed"], true);
    // The relayed listener was told the session moved.
    let (relayed, last, close) = listening.await.unwrap();
    assert!(
        relayed.len() > 4_000,
        "the relayed listener heard {} bytes",
        relayed.len()
    );
    assert_eq!(last["code"], "session_moved", "{last}");
    assert_eq!(close, Some(1001));

    send_acked(&mut producer, &pcm[received * 2..2 * third], &mut rng).await;
    let mut durable = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (durable as usize) < third / 2 + 16_000 && Instant::now() < deadline {
        producer.send(Message::binary(Vec::new())).await.unwrap();
        let Some(Ok(Message::Text(t))) = producer.next().await else {
            panic!()
        };
        durable = serde_json::from_str::<Value>(&t).unwrap()["samples_durable"]
            .as_u64()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Now the owner (b) dies; the producer resumes through a.
    drop(b);
    drop(producer);
    let killed = Instant::now();
    let (mut producer, hello) = resume_at(a.addr, &id).await;
    eprintln!(
        "scaled: resumed {:?} after kill -9 of the owner",
        killed.elapsed()
    );
    let received = hello["samples_received"].as_u64().unwrap();
    assert!(received >= durable, "{received} < {durable}");
    send_acked(&mut producer, &pcm[received as usize * 2..], &mut rng).await;
    let (code, closed) =
        http_json(a.addr, "POST", &format!("/api/audio/sessions/{id}/close")).await;
    assert_eq!(code, 200, "{closed}");
    let (code, flac) = http(a.addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples, 1, 16, 4096);
}

#[actix_rt::test]
async fn a_single_node_install_moves_into_scaled_mode_with_migrate() {
    let Some((database, storage)) = servers() else {
        return;
    };
    // A single node (SQLite + files) as a process: one session closed, one
    // left live by a kill -9.
    let data = std::env::temp_dir().join(format!("flacstream-migrate-{}", uuid::Uuid::new_v4()));
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_flacstream"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let single = Replica {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(single.addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let user = format!("migrated-{}", uuid::Uuid::new_v4().simple());
    let samples = test_signal(16_000 * 4, 2, 16, 8);
    let pcm = pcm_bytes(&samples, 16);
    let url = format!(
        "ws://{}/api/ws/audio?sample_rate=16000&channels=2&format=s16le&user_id={user}",
        single.addr
    );
    let (mut ws, _, closed_id) = connect_session(&url).await;
    send_acked(&mut ws, &pcm, &mut rng).await;
    let (code, _) = http_json(
        single.addr,
        "POST",
        &format!("/api/audio/sessions/{closed_id}/close"),
    )
    .await;
    assert_eq!(code, 200);
    // An upload kept as a phrase, with its original.
    let phrase_wav = flacstream_codec::fixture::wav_bytes(
        &flacstream_codec::fixture::WavSpec::pcm(2, 16_000, 16),
        &pcm,
    );
    let phrase_path = format!("/audio/user/{user}/phrase/greeting");
    let answer =
        crate::common::http_send(single.addr, "POST", &phrase_path, "audio/wav", &phrase_wav).await;
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let (mut ws, _, live_id) = connect_session(&url).await;
    let ack = send_acked(&mut ws, &pcm, &mut rng).await;
    let durable = ack["samples_durable"].as_u64().unwrap();
    drop(single); // SIGKILL
    drop(ws);

    let migrate = |expect: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_flacstream"))
            .args(["migrate", "--data-dir"])
            .arg(&data)
            .env("FLACSTREAM_DATABASE_URL", &database)
            .env("FLACSTREAM_STORAGE_URL", &storage)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(expect), "{stdout}");
    };
    migrate("migrated 3 sessions (3 recordings");
    // Again: nothing twice (phrase names are written over, not added).
    migrate("migrated 0 sessions (0 recordings, 0 bytes; 0 repaired first); 3 were already there; 0 originals, 1 phrase names");

    let scaled = replica(&database, &storage).await;
    let (code, flac) = http(
        scaled.addr,
        "GET",
        &format!("/api/audio/sessions/{closed_id}/audio"),
    )
    .await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples, 2, 16, 4096);
    let (code, record) = http_json(
        scaled.addr,
        "GET",
        &format!("/api/audio/sessions/{live_id}"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(record["status"], "closed", "{record}");
    assert_eq!(record["error"], "recovered_after_restart");
    let (code, flac) = http(
        scaled.addr,
        "GET",
        &format!("/api/audio/sessions/{live_id}/audio"),
    )
    .await;
    assert_eq!(code, 200);
    let mut reader = claxon::FlacReader::new(flac.as_slice()).unwrap();
    let decoded: Vec<i32> = reader.samples().map(|s| s.unwrap()).collect();
    assert!(
        decoded.len() as u64 >= durable * 2,
        "{} < {durable}",
        decoded.len() / 2
    );
    assert_eq!(decoded[..], samples[..decoded.len()]);
    let (_, list) = http_json(
        scaled.addr,
        "GET",
        &format!("/api/audio/sessions?user_id={user}"),
    )
    .await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 3, "{list}");
    // The phrase and its original came along.
    let (code, flac) = http(scaled.addr, "GET", &format!("{phrase_path}/flac")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples, 2, 16, 1024);
    let (code, original) = http(scaled.addr, "GET", &format!("{phrase_path}/original")).await;
    assert_eq!((code, original == phrase_wav), (200, true));
}

#[actix_rt::test]
async fn a_dead_owners_session_nobody_resumes_is_finalized_by_another_replica() {
    let Some((database, storage)) = servers() else {
        return;
    };
    let resume = ["--session-resume-seconds", "2"];
    let a = replica_with(&database, &storage, &resume).await;
    let b = replica_with(&database, &storage, &resume).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let samples = test_signal(16_000 * 6, 1, 16, 2);
    let pcm = pcm_bytes(&samples, 16);
    let url = format!(
        "ws://{}/api/ws/audio?sample_rate=16000&channels=1&format=s16le",
        a.addr
    );
    let (mut ws, _, id) = connect_session(&url).await;
    let mut durable = 0;
    let mut at = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while durable == 0 && Instant::now() < deadline {
        let n = 3_200.min(pcm.len() - at);
        let ack = send_acked(&mut ws, &pcm[at..at + n], &mut rng).await;
        at += n;
        durable = ack["samples_durable"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(durable > 0, "nothing became durable");
    drop(a); // SIGKILL, and no producer comes back
    drop(ws);
    let killed = Instant::now();
    let mut record = Value::Null;
    while killed.elapsed() < Duration::from_secs(40) {
        let (code, body) = http_json(b.addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        if code == 200 && body["status"] == "closed" {
            record = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "scaled: an orphan was finalized {:?} after kill -9",
        killed.elapsed()
    );
    assert_eq!(record["status"], "closed", "{record}");
    assert_eq!(record["error"], "recovered_after_restart");
    let kept = record["samples"].as_u64().unwrap();
    assert!(kept >= durable, "{kept} < durable {durable}");
    let (code, flac) = http(b.addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples[..kept as usize], 1, 16, 4096);
}
