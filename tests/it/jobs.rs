//! Background jobs after a session ends: webhooks (signed, delivered at
//! least once, after a receiver that was down), the queue across a kill -9
//! (the attempt in flight is abandoned, the job runs again and is done once
//! in effect), the final analysis over a recovered recording, recompression
//! for archives (decoded and compared sample for sample) and retention.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{assert_exact, connect_session, http, http_json, http_send, start, start_in};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "a-test-secret-of-32-bytes-length";

/// What the test receiver answers.
const ANSWER_500: u8 = 0;
const ANSWER_200: u8 = 1;
/// Reads the request and never answers.
const HANG: u8 = 2;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
}

impl Delivery {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A webhook receiver on `port`, answering as `mode` says.
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    mode: Arc<AtomicU8>,
}

impl Receiver {
    async fn start(port: u16, mode: u8) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver binds");
        let got = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(AtomicU8::new(mode));
        let (g, m) = (Arc::clone(&got), Arc::clone(&mode));
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (g, m) = (Arc::clone(&g), Arc::clone(&m));
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                        .collect();
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = buf[head_end..head_end + length].to_vec();
                    let mode = m.load(Ordering::SeqCst);
                    let answered = match mode {
                        ANSWER_500 => 500,
                        ANSWER_200 => 200,
                        _ => 0,
                    };
                    g.lock().push(Delivery {
                        headers,
                        body,
                        answered,
                    });
                    if answered == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let reply = format!(
                        "HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self { got, mode }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().clone()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Checks the signature as a receiver would, written here from the
/// documented rule (HMAC-SHA256 over `<t>.<body>`), not with the service's code.
fn signature_is_valid(d: &Delivery) -> bool {
    let header = d.header("Flacstream-Signature");
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&d.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    hex == v1 && (now - t.parse::<i64>().unwrap()).abs() < 300
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

#[actix_rt::test]
async fn a_webhook_arrives_signed_once_in_effect_after_its_receiver_was_down() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let service = start(&[
        "--webhook-url",
        &url,
        "--webhook-secret",
        SECRET,
        "--webhook-allowed-networks",
        "127.0.0.0/8",
        "--job-backoff-ms",
        "200",
        "--job-backoff-max-seconds",
        "1",
        "--job-poll-ms",
        "50",
    ]);
    let (_, wav) = upload_wav(2, 3);
    let answer = http_send(service.addr, "POST", "/upload", "audio/wav", &wav).await;
    assert_eq!(answer.status, 201);
    let id = answer.json()["session_id"].as_str().unwrap().to_string();
    // Nothing listens: attempts fail and are retried.
    let jobs = jobs_when(service.addr, &id, 20, |j| {
        j["jobs"].as_array().into_iter().flatten().any(|j| {
            j["kind"] == "webhook" && j["attempt_log"].as_array().is_some_and(|a| a.len() >= 2)
        })
    })
    .await;
    let hook = job(&jobs, "webhook");
    assert_eq!(hook["state"], "queued", "{hook}");
    assert!(
        hook["attempt_log"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{hook}"
    );
    // Up, but failing once; then fine.
    let receiver = Receiver::start(port, ANSWER_500).await;
    for _ in 0..200 {
        if !receiver.deliveries().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.mode.store(ANSWER_200, Ordering::SeqCst);
    let jobs = jobs_when(service.addr, &id, 20, |j| {
        j["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["kind"] == "webhook" && j["state"] == "done")
    })
    .await;
    let hook = job(&jobs, "webhook");
    let log = hook["attempt_log"].as_array().unwrap();
    assert!(log.len() >= 4, "{hook}");
    assert_eq!(log.last().unwrap()["outcome"], "done");
    assert!(log
        .iter()
        .any(|a| a["detail"].as_str().unwrap().contains("answered 500")));
    let got = receiver.deliveries();
    assert!(got.len() >= 2, "one 500 and one 200: {got:?}");
    // The same event every time: id, type and bytes; each validly signed.
    let ids: HashSet<&str> = got
        .iter()
        .map(|d| d.header("Flacstream-Event-Id"))
        .collect();
    assert_eq!(ids.len(), 1, "{got:?}");
    assert!(got.iter().all(|d| d.body == got[0].body));
    assert!(got.iter().all(signature_is_valid), "{got:?}");
    let accepted: Vec<&Delivery> = got.iter().filter(|d| d.answered == 200).collect();
    assert_eq!(accepted.len(), 1, "delivered once: {got:?}");
    let event: Value = serde_json::from_slice(&accepted[0].body).unwrap();
    assert_eq!(event["type"], "session.ready");
    assert_eq!(event["id"], hook["id"]);
    assert_eq!(event["session"]["session_id"], id.as_str());
    assert_eq!(event["session"]["samples"], 32_000);
    assert_eq!(event["session"]["duration_ms"], 2000);
    // A tampered body does not verify.
    let mut forged = accepted[0].clone();
    forged.body[2] ^= 1;
    assert!(!signature_is_valid(&forged));
    // The other jobs of the session: its final analysis (the live one
    // already covered it).
    assert_eq!(job(&jobs, "analysis")["state"], "done", "{jobs}");
    let (_, metrics) = http(service.addr, "GET", "/metrics").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains(r#"flacstream_job_attempts_total{kind="webhook",outcome="done"} 1"#),
        "{metrics}"
    );
    service.drain().await;
}

#[actix_rt::test]
async fn loopback_and_link_local_receivers_are_refused_unless_allowed() {
    use clap::Parser;
    use flacstream::config::Config;
    // An address in the URL itself is refused at start, in any form.
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://127.0.0.1:9/x",
    ] {
        let refused = Config::parse_from([
            "flacstream",
            "--webhook-url",
            url,
            "--webhook-secret",
            SECRET,
        ])
        .validate()
        .err()
        .unwrap_or_else(|| panic!("{url} was accepted"));
        assert!(refused.to_string().contains("is refused"), "{refused}");
    }
    let allowed = Config::parse_from([
        "flacstream",
        "--webhook-url",
        "http://127.0.0.1:9/x",
        "--webhook-secret",
        SECRET,
        "--webhook-allowed-networks",
        "127.0.0.0/8",
    ])
    .validate();
    assert!(allowed.is_ok());
    let (_, wav) = upload_wav(1, 4);
    // A name is resolved at each attempt: one that resolves to loopback
    // is refused then.
    let service = start(&[
        "--webhook-url",
        "http://localhost:9/x",
        "--webhook-secret",
        SECRET,
        "--job-poll-ms",
        "50",
        "--job-max-attempts",
        "1",
    ]);
    let answer = http_send(service.addr, "POST", "/upload", "audio/wav", &wav).await;
    let id = answer.json()["session_id"].as_str().unwrap().to_string();
    let jobs = jobs_when(service.addr, &id, 20, |j| {
        j["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["kind"] == "webhook" && j["state"] == "failed")
    })
    .await;
    assert!(
        job(&jobs, "webhook")["last_error"]
            .as_str()
            .unwrap()
            .contains("refused addresses"),
        "{jobs}"
    );
    service.drain().await;
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
