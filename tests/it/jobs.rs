//! Background jobs after a session ends: webhooks (`webhooks`: signed,
//! delivered at least once, after a receiver that was down), the queue
//! across a kill -9 (the attempt in flight is abandoned, the job runs again
//! and is done once in effect), the final analysis over a recovered
//! recording, recompression for archives (decoded and compared sample for
//! sample) and retention.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::{assert_exact, connect_session, http, http_json, http_send, start, start_in};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use receiver::{signature_is_valid, Delivery, Receiver, ANSWER_200, HANG};

mod receiver;
mod webhooks;

const SECRET: &str = "a-test-secret-of-32-bytes-length";

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The session's jobs once `done(jobs)` holds, within `seconds`.
async fn jobs_when(
    addr: std::net::SocketAddr,
    id: &str,
    seconds: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..seconds * 10 {
        let (status, jobs) = http_json(addr, "GET", &format!("/api/jobs?session_id={id}")).await;
        if status == 200 && done(&jobs) {
            return jobs;
        }
        last = jobs;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the jobs did not get there in {seconds} s: {last}");
}

fn job<'a>(jobs: &'a Value, kind: &str) -> &'a Value {
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} job in {jobs}"))
}

fn upload_wav(seconds: usize, seed: u64) -> (Vec<i32>, Vec<u8>) {
    let samples = test_signal(16_000 * seconds, 1, 16, seed);
    let wav = wav_bytes(&WavSpec::pcm(1, 16_000, 16), &pcm_bytes(&samples, 16));
    (samples, wav)
}

/// The server binary as a child process; killed (SIGKILL) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn(data: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_flacstream"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary starts");
    let server = Server(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not listen on {port}");
}

#[actix_rt::test]
async fn jobs_claimed_when_their_replica_is_killed_run_again_and_are_done_once_in_effect() {
    let data = std::env::temp_dir().join(format!("flacstream-jobs-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (hook_port, port) = (free_port(), free_port());
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let url = format!("http://127.0.0.1:{hook_port}/hook");
    let flags = [
        "--webhook-url",
        &url,
        "--webhook-secret",
        SECRET,
        "--webhook-allowed-networks",
        "127.0.0.0/8",
        "--webhook-timeout-seconds",
        "600",
        "--job-lease-seconds",
        "2",
        "--job-poll-ms",
        "50",
    ];
    // The receiver takes the first attempt and never answers.
    let receiver = Receiver::start(hook_port, HANG).await;
    let mut server = spawn(&data, port, &flags).await;
    let (_, wav) = upload_wav(2, 5);
    let answer = http_send(addr, "POST", "/upload", "audio/wav", &wav).await;
    assert_eq!(answer.status, 201);
    let uploaded = answer.json()["session_id"].as_str().unwrap().to_string();
    // A live session too, killed with the server: recovered at restart,
    // its analysis is then made from the recording.
    let samples = test_signal(64_000, 1, 16, 6);
    let pcm = pcm_bytes(&samples, 16);
    let ws_url = format!("ws://{addr}/api/ws/audio?sample_rate=16000&channels=1&format=s16le");
    let (mut ws, _, live) = connect_session(&ws_url).await;
    let mut durable = 0;
    for piece in pcm.chunks(3200) {
        ws.send(Message::binary(piece.to_vec())).await.unwrap();
        let Some(Ok(Message::Text(ack))) = ws.next().await else {
            panic!()
        };
        durable = serde_json::from_str::<Value>(&ack).unwrap()["samples_durable"]
            .as_u64()
            .unwrap();
        if durable >= 32_000 {
            break;
        }
    }
    assert!(durable >= 32_000);
    for _ in 0..100 {
        if !receiver.deliveries().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.deliveries().len(), 1, "the attempt in flight");
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(ws);
    receiver.mode.store(ANSWER_200, Ordering::SeqCst);
    let server = spawn(&data, port, &flags).await;
    let jobs = jobs_when(addr, &uploaded, 30, |j| {
        j["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["kind"] == "webhook" && j["state"] == "done")
    })
    .await;
    let hook = job(&jobs, "webhook");
    let log = hook["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{hook}");
    assert_eq!(log[0]["outcome"], Value::Null, "abandoned: {hook}");
    assert_eq!(log[1]["outcome"], "done");
    assert_ne!(log[0]["worker"], log[1]["worker"]);
    // The receiver saw the event twice (once unanswered), accepted once.
    let got = receiver.deliveries();
    let of_upload: Vec<&Delivery> = got
        .iter()
        .filter(|d| d.header("Flacstream-Event-Id") == hook["id"].as_str().unwrap())
        .collect();
    assert_eq!(of_upload.len(), 2, "{got:?}");
    assert_eq!(
        of_upload.iter().filter(|d| d.answered == 200).count(),
        1,
        "{got:?}"
    );
    assert!(of_upload.iter().all(|d| signature_is_valid(d)));
    // The live session: recovered, measured from its recording, notified.
    let jobs = jobs_when(addr, &live, 30, |j| {
        j["jobs"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|j| j["state"] == "done"))
    })
    .await;
    let analysis_job = job(&jobs, "analysis");
    assert!(
        analysis_job["result"]
            .as_str()
            .unwrap()
            .contains("from the recording"),
        "{analysis_job}"
    );
    let (_, session) = http_json(addr, "GET", &format!("/api/audio/sessions/{live}")).await;
    let (_, analysis) =
        http_json(addr, "GET", &format!("/api/audio/sessions/{live}/analysis")).await;
    assert_eq!(analysis["complete"], true);
    assert_eq!(analysis["source"], "recording", "{analysis}");
    assert_eq!(analysis["samples"], session["samples"], "{analysis}");
    assert!(analysis["samples"].as_u64().unwrap() >= durable);
    assert!(analysis["loudness"]["integrated_lufs"].as_f64().is_some());
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[actix_rt::test]
async fn archives_are_recompressed_atomically_to_the_same_samples() {
    let service = start(&["--archive-level", "8", "--job-poll-ms", "50"]);
    let samples = test_signal(96_000, 2, 16, 11);
    let wav = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &pcm_bytes(&samples, 16));
    let answer = http_send(service.addr, "POST", "/upload?level=0", "audio/wav", &wav).await;
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let id = answer.json()["session_id"].as_str().unwrap().to_string();
    let jobs = jobs_when(service.addr, &id, 60, |j| {
        j["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["kind"] == "recompress" && j["state"] == "done")
    })
    .await;
    let result = job(&jobs, "recompress")["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(result.starts_with("level 0 to 8"), "{result}");
    let (_, session) = http_json(service.addr, "GET", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(session["level"], 8, "{session}");
    let (status, flac) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(session["bytes_out"], flac.len(), "{session}");
    assert_exact(&flac, &samples, 2, 16, 4096);
    if flacstream_codec::fixture::encoded::have("flac") {
        let path = std::env::temp_dir().join(format!("flacstream-archive-{id}.flac"));
        std::fs::write(&path, &flac).unwrap();
        let ok = Command::new("flac")
            .args(["-t", "-s"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(ok.success(), "flac -t");
        let _ = std::fs::remove_file(&path);
    } else {
        println!("SKIPPED: flac -t (no flac on PATH)");
    }
    service.drain().await;
}

#[actix_rt::test]
async fn retention_deletes_recordings_past_their_age_and_keeps_the_rest() {
    let data = std::env::temp_dir().join(format!("flacstream-retention-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    if crate::common::scaled_flags_in_use() {
        println!("SKIPPED in scaled mode: the test ages rows in the SQLite catalog");
        return;
    }
    let service = start_in(
        &data,
        &[
            "--retention-days",
            "30",
            "--retention-check-seconds",
            "1",
            "--job-poll-ms",
            "50",
        ],
    );
    let (_, wav) = upload_wav(1, 7);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let answer = http_send(service.addr, "POST", "/upload", "audio/wav", &wav).await;
        assert_eq!(answer.status, 201);
        ids.push(answer.json()["session_id"].as_str().unwrap().to_string());
    }
    // The first ended 31 days ago, as far as the catalog knows.
    let db = rusqlite::Connection::open(data.join("flacstream.sqlite3")).unwrap();
    let month = 31 * 86_400_000i64;
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE sessions SET closed_at_ms = closed_at_ms - ?1 WHERE id = ?2",
        rusqlite::params![month, ids[0]],
    )
    .unwrap();
    let (old, kept) = (&ids[0], &ids[1]);
    let mut status = 0;
    for _ in 0..100 {
        status = http_json(service.addr, "GET", &format!("/api/audio/sessions/{old}"))
            .await
            .0;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "the old session is deleted");
    assert!(!data.join(format!("recordings/{old}.flac")).exists());
    assert!(!data.join(format!("originals/{old}")).exists());
    let (status, _) = http_json(service.addr, "GET", &format!("/api/audio/sessions/{kept}")).await;
    assert_eq!(status, 200, "the recent one stays");
    let (status, _) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{kept}/audio"),
    )
    .await;
    assert_eq!(status, 200);
    service.drain().await;
    let _ = std::fs::remove_dir_all(&data);
}
