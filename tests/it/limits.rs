//! End-to-end tests of the abuse limits (README, "Bounds"): connections per
//! client address and trusted proxies, new sessions per minute, the session
//! cap on every path, the input rate of live sessions, the length of a
//! `/stream`, and the slowloris cut-offs (a request head, a WebSocket frame
//! or an upload trickled in). Each starts the real service with small
//! limits; the slow clients here are raw TCP, so they can send half a frame
//! or half a request.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{
    self, assert_exact, exchange_at, http, http_get, http_json, http_send, stream, stream_paced,
};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, DataSize, WavSpec};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

mod slow_client;

/// The service with `flags`, draining fast: sessions a test leaves open
/// (in a resume window, say) must not hold its end for the default grace.
fn start(flags: &[&str]) -> flacstream::service::Service {
    let mut all = vec!["--drain-grace-seconds", "1"];
    all.extend_from_slice(flags);
    common::start(&all)
}

/// Longest any raw exchange here may take.
const RAW_TIMEOUT: Duration = Duration::from_secs(20);

/// A raw HTTP answer, read to the end of the connection.
struct Answer {
    status: u16,
    /// The head, header names lower-cased.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn parse(buf: &[u8]) -> Self {
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(buf)));
        let head = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
        Self {
            status: head[9..12].parse().expect("status"),
            head,
            body: buf[split + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Asserts a JSON error with this status and code.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.head);
        let body = self.json();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

/// A WebSocket upgrade request for `path` with extra header lines.
fn upgrade_request(path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Tries an upgrade: the open socket (past the 101 head) or the refusal.
async fn try_upgrade(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TcpStream, Answer> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(upgrade_request(path, headers).as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the end of the head, so nothing after it is taken.
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(RAW_TIMEOUT, s.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert_eq!(n, 1, "connection closed inside the head");
        buf.push(byte[0]);
    }
    if buf.starts_with(b"HTTP/1.1 101") {
        return Ok(s);
    }
    tokio::time::timeout(RAW_TIMEOUT, s.read_to_end(&mut buf))
        .await
        .expect("body in time")
        .expect("read");
    Err(Answer::parse(&buf))
}

async fn upgrade(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> TcpStream {
    match try_upgrade(addr, path, headers).await {
        Ok(s) => s,
        Err(a) => panic!(
            "upgrade to {path} refused: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ),
    }
}

async fn refused(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    match try_upgrade(addr, path, headers).await {
        Ok(_) => panic!("upgrade to {path} was accepted"),
        Err(a) => a,
    }
}

/// Waits until the test client (127.0.0.1) has `n` connections counted.
async fn wait_for_open(service: &flacstream::service::Service, n: usize) {
    let client = flacstream::limits::client_ip::ClientIp::resolve(
        std::net::Ipv4Addr::LOCALHOST.into(),
        &Default::default(),
        &Default::default(),
    );
    for _ in 0..200 {
        if service.client_connections.open_from(client) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} connections counted, not {n}",
        service.client_connections.open_from(client)
    );
}

/// Streams `wav` to `/stream` as soon as a place is free; reads to the close.
async fn stream_when_free(addr: SocketAddr, wav: &[u8]) -> common::Outcome {
    use futures_util::{SinkExt, StreamExt};
    let url = format!("ws://{addr}/stream");
    let mut ws = None;
    for _ in 0..100 {
        if let Ok((open, _)) = tokio_tungstenite::connect_async(&url).await {
            ws = Some(open);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = ws.expect("a place came free");
    ws.send(Message::binary(wav.to_vec())).await.unwrap();
    ws.send(Message::text(r#"{"type":"end"}"#)).await.unwrap();
    let mut out = common::Outcome::default();
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Binary(b) => out.flac.extend_from_slice(&b),
            Message::Text(t) => out.texts.push(serde_json::from_str(&t).unwrap()),
            Message::Close(frame) => {
                out.close = frame.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    out
}

/// What a raw WebSocket client saw: text messages and the close code.
#[derive(Debug, Default)]
struct Frames {
    texts: Vec<Value>,
    close: Option<u16>,
    /// The server ended the TCP connection (after its close frame, or not).
    eof: bool,
}

/// Reads server frames (unmasked) until the connection ends or `limit`.
async fn read_frames(rd: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> Frames {
    let mut out = Frames::default();
    let mut buf = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        // Parse every whole frame in the buffer.
        while buf.len() >= 2 {
            let opcode = buf[0] & 0x0f;
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                127 if buf.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(n) as usize, 10)
                }
                126 | 127 => break,
                n => (usize::from(n), 2),
            };
            if buf.len() < at + len {
                break;
            }
            let payload = buf[at..at + len].to_vec();
            buf.drain(..at + len);
            match opcode {
                1 => out
                    .texts
                    .push(serde_json::from_slice(&payload).expect("JSON text")),
                8 if payload.len() >= 2 => {
                    out.close = Some(u16::from_be_bytes([payload[0], payload[1]]))
                }
                _ => {}
            }
        }
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                out.eof = true;
                return out;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return out,
        }
    }
}

/// The text of the server's `/metrics`.
async fn metrics(addr: SocketAddr) -> String {
    http_get(addr, "/metrics").await.1
}

fn small_wav(frames: usize, seed: u64) -> (Vec<u8>, Vec<i32>) {
    let samples = test_signal(frames, 1, 16, seed);
    (
        wav_bytes(&WavSpec::pcm(1, 8_000, 16), &pcm_bytes(&samples, 16)),
        samples,
    )
}

const LIVE_8K: &str = "/api/ws/audio?sample_rate=8000&channels=1&format=s16le";

/// Posts `wav` to `/convert` and `/upload`; each must be refused with
/// `status` and `code`. The answers, for further checks.
async fn uploads_refused(
    addr: std::net::SocketAddr,
    wav: &[u8],
    status: u16,
    code: &str,
) -> Vec<common::HttpAnswer> {
    let mut answers = Vec::new();
    for path in ["/convert", "/upload"] {
        let answer = http_send(addr, "POST", path, "audio/wav", wav).await;
        assert_eq!(
            (answer.status, answer.json()["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
        answers.push(answer);
    }
    answers
}

#[actix_rt::test]
async fn connections_per_client_are_capped_and_a_freed_place_is_taken_again() {
    let service = start(&["--max-connections-per-ip", "2"]);
    let addr = service.addr;
    // A WebSocket, and an upload whose body is still arriving, each hold a place.
    let ws = upgrade(addr, "/stream", &[]).await;
    let mut upload = TcpStream::connect(addr).await.unwrap();
    upload
        .write_all(
            b"POST /convert HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n\
              Content-Length: 100000\r\n\r\nRIFF",
        )
        .await
        .unwrap();
    // The upload is counted once its head is read.
    wait_for_open(&service, 2).await;
    let third = refused(addr, "/stream", &[]).await;
    third.assert_error(429, "too_many_connections_from_client");
    // Every long-lived endpoint counts against the same cap.
    refused(addr, LIVE_8K, &[])
        .await
        .assert_error(429, "too_many_connections_from_client");
    let (wav, _) = small_wav(100, 1);
    let convert = http_send(addr, "POST", "/convert", "audio/wav", &wav).await;
    assert_eq!(convert.status, 429);
    assert_eq!(convert.json()["code"], "too_many_connections_from_client");
    // Short requests are not counted.
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert!(metrics(addr)
        .await
        .contains(r#"flacstream_rejections_total{code="too_many_connections_from_client"}"#));

    // A place given back (the WebSocket ends) is taken by the next client,
    // and that connection works.
    drop(ws);
    let (wav, samples) = small_wav(3_000, 2);
    let out = stream_when_free(addr, &wav).await;
    assert_exact(&out.patched_flac(), &samples, 1, 16, 512);
    // The upload that went away gives its place back too, and an address
    // with nothing open is forgotten.
    drop(upload);
    wait_for_open(&service, 0).await;
    assert_eq!(service.client_connections.clients(), 0);
    let a = upgrade(addr, "/stream", &[]).await;
    let b = upgrade(
        addr,
        "/api/ws/audio?sample_rate=8000&channels=1&format=u8",
        &[],
    )
    .await;
    refused(addr, "/stream", &[])
        .await
        .assert_error(429, "too_many_connections_from_client");
    drop((a, b));
    service.drain().await;
}

#[actix_rt::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    // The tests connect from 127.0.0.1, trusted as a proxy here.
    let service = start(&[
        "--max-connections-per-ip",
        "1",
        "--trusted-proxies",
        "10.0.0.0/8,127.0.0.1",
    ]);
    let addr = service.addr;
    let xff = |v| [("X-Forwarded-For", v)];
    let first = upgrade(addr, "/stream", &xff("198.51.100.1")).await;
    // Another client behind the proxy has a place of its own, whatever it
    // wrote to the left of what the proxy appended.
    let second = upgrade(addr, "/stream", &xff("198.51.100.1, 198.51.100.2")).await;
    // The first client is at its cap, also through a chain of proxies
    // and with an invented address to the left.
    for chain in [
        "198.51.100.1",
        "203.0.113.7, 198.51.100.1",
        "198.51.100.1, 10.1.2.3",
    ] {
        refused(addr, "/stream", &xff(chain))
            .await
            .assert_error(429, "too_many_connections_from_client");
    }
    // The proxy's own requests (no header) count under the proxy.
    let own = upgrade(addr, "/stream", &[]).await;
    drop((first, second, own));
    service.drain().await;

    // Without trusted proxies the header is ignored: a client cannot
    // escape its cap by claiming to be someone else.
    let service = start(&["--max-connections-per-ip", "1"]);
    let addr = service.addr;
    let first = upgrade(addr, "/stream", &xff("198.51.100.1")).await;
    refused(addr, "/stream", &xff("198.51.100.2"))
        .await
        .assert_error(429, "too_many_connections_from_client");
    drop(first);
    service.drain().await;
}

#[actix_rt::test]
async fn new_sessions_past_the_rate_get_429_with_retry_after() {
    let service = start(&["--new-sessions-per-minute", "2"]);
    let addr = service.addr;
    let (wav, samples) = small_wav(1_000, 3);
    for _ in 0..2 {
        let out = stream(addr, "", &[&wav], false).await;
        assert_exact(&out.patched_flac(), &samples, 1, 16, 512);
    }
    // Two a minute: the next one is due 30 s after the first.
    let answer = refused(addr, "/stream", &[]).await;
    answer.assert_error(429, "rate_limited");
    let retry: u64 = answer
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    // Every way of starting a session counts.
    refused(addr, LIVE_8K, &[])
        .await
        .assert_error(429, "rate_limited");
    for answer in uploads_refused(addr, &wav, 429, "rate_limited").await {
        assert!(answer.header("retry-after").is_some());
    }
    assert!(metrics(addr)
        .await
        .contains(r#"flacstream_rejections_total{code="rate_limited"}"#));
    service.drain().await;
}

#[actix_rt::test]
async fn a_full_server_answers_503_on_every_new_session_path_before_any_upgrade() {
    let service = start(&["--max-sessions", "1"]);
    let addr = service.addr;
    let (ws, _, id) = common::connect_session(&format!("ws://{addr}{LIVE_8K}")).await;
    // The cap is checked before the upgrade: an HTTP 503, never a
    // WebSocket closed with 1013.
    for path in ["/stream", LIVE_8K] {
        refused(addr, path, &[])
            .await
            .assert_error(503, "server_busy");
    }
    let (wav, _) = small_wav(100, 4);
    uploads_refused(addr, &wav, 503, "server_busy").await;
    // Joining the live session is not a new session.
    let listener = upgrade(addr, &format!("/api/ws/audio/{id}?role=listen"), &[]).await;
    drop((ws, listener));
    service.drain().await;
}

#[actix_rt::test]
async fn a_session_refused_admission_does_not_spend_the_rate() {
    let service = start(&["--max-sessions", "1", "--new-sessions-per-minute", "2"]);
    let addr = service.addr;
    // One of the two sessions of the minute holds the only place.
    let held = upgrade(addr, "/stream", &[]).await;
    // Refusals the client did not cause, on every path: 503, never 429.
    for path in ["/stream", LIVE_8K, "/stream", LIVE_8K] {
        refused(addr, path, &[])
            .await
            .assert_error(503, "server_busy");
    }
    let (wav, samples) = small_wav(1_000, 6);
    uploads_refused(addr, &wav, 503, "server_busy").await;
    // The place comes free; the minute's second session is still there.
    drop(held);
    let out = stream_when_free(addr, &wav).await;
    assert_exact(&out.patched_flac(), &samples, 1, 16, 512);
    refused(addr, "/stream", &[])
        .await
        .assert_error(429, "rate_limited");
    service.drain().await;
}

#[actix_rt::test]
async fn a_producer_faster_than_real_time_is_closed_and_what_it_sent_is_kept() {
    let service = start(&["--max-input-rate", "1", "--input-burst-seconds", "1"]);
    let addr = service.addr;
    // 3 s of 8 kHz audio in 0.25 s messages, sent as fast as the server
    // takes them: the burst (1 s) and the rate (real time) allow about 1 s.
    let samples = test_signal(24_000, 1, 16, 5);
    let pcm = pcm_bytes(&samples, 16);
    let messages: Vec<Message> = pcm
        .chunks(4_000)
        .map(|c| Message::binary(c.to_vec()))
        .collect();
    let out = exchange_at(addr, LIVE_8K, messages, None).await;
    assert_eq!(out.error_code(), "input_too_fast");
    assert_eq!(out.close, Some(1008));
    let id = out.texts[0]["session_id"].as_str().unwrap().to_string();
    let kept = out
        .texts
        .iter()
        .filter(|t| t["type"] == "ack")
        .map(|t| t["samples_received"].as_u64().unwrap())
        .max()
        .expect("acks") as usize;
    assert!((8_000..16_000).contains(&kept), "kept {kept}");
    assert!(metrics(addr)
        .await
        .contains(r#"flacstream_rejections_total{code="input_too_fast"}"#));
    // Only the producer was closed: the session is live, and what it
    // accepted is the recording, exactly, once it is closed.
    let (status, body) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("live")));
    let (status, body) = http_json(addr, "POST", &format!("/api/audio/sessions/{id}/close")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["samples"], kept);
    let (status, flac) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(status, 200);
    assert_exact(&flac, &samples[..kept], 1, 16, 512);

    // A producer at real time is never cut off.
    let samples = test_signal(16_000, 1, 16, 6);
    let pcm = pcm_bytes(&samples, 16);
    let mut messages: Vec<Message> = pcm
        .chunks(4_000)
        .map(|c| Message::binary(c.to_vec()))
        .collect();
    messages.push(Message::text(
        r#"{"type":"control","action":"close_session"}"#,
    ));
    let out = exchange_at(
        addr,
        &format!("{LIVE_8K}&output=flac&acks=false"),
        messages,
        Some(Duration::from_millis(250)),
    )
    .await;
    assert_eq!(out.last_text()["reason"], "closed", "{:?}", out.texts);
    assert_exact(&out.patched_flac(), &samples, 1, 16, 512);
    service.drain().await;
}

#[actix_rt::test]
async fn a_stream_is_finished_at_the_maximum_session_length() {
    let service = start(&["--max-session-seconds", "1"]);
    // A live /stream that would go on for 3 s, and without an end in the
    // header: only the session length stops it.
    let mut spec = WavSpec::pcm(1, 8_000, 16);
    spec.data_size = DataSize::StreamingMax;
    let samples = test_signal(24_000, 1, 16, 7);
    let wav = wav_bytes(&spec, &pcm_bytes(&samples, 16));
    let pieces: Vec<&[u8]> = wav.chunks(1_600).collect();
    let started = Instant::now();
    let out = stream_paced(
        service.addr,
        "",
        &pieces,
        true,
        Some(Duration::from_millis(100)),
    )
    .await;
    let done = out.last_text();
    assert_eq!(done["type"], "done", "{done}");
    assert_eq!(done["reason"], "max_session_length");
    assert_eq!(out.close, Some(1008));
    // Everything it had received is in the FLAC, exactly.
    let kept = done["samples"].as_u64().unwrap() as usize;
    assert!((4_000..20_000).contains(&kept), "kept {kept}");
    assert_exact(&out.patched_flac(), &samples[..kept], 1, 16, 512);
    assert!(started.elapsed() >= Duration::from_millis(900));
    service.drain().await;
}
