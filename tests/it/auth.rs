//! End-to-end tests of authentication, session ownership and the Origin
//! allow-list, against a real server on 127.0.0.1:0: each credential path
//! (none, bad key, good key, token in the query, in the WebSocket protocol
//! and in the header, expired, for another session), token issuing, every
//! sessions endpoint for a non-owner, Origin refusals, and that no token
//! reaches the log.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::common::{self, assert_exact, Outcome, CLIENT_TIMEOUT};
use flacstream::auth::keys::new_key;
use flacstream_codec::fixture::{pcm_bytes, random_splits, test_signal, wav_bytes, WavSpec};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;

mod access_log;
mod origin;
mod token;

// ------------------------------------------------------------ the log

/// Every log line of the server in this test process.
struct Capture(Mutex<Vec<String>>);

/// Log targets of the test's own WebSocket client, which logs its requests
/// (and so their tokens) at trace level; the service does not use it.
const CLIENT_TARGETS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let target = record.target();
        if CLIENT_TARGETS
            .iter()
            .any(|t| target.split("::").next() == Some(t))
        {
            return;
        }
        let line = format!("{} {target} {}", record.level(), record.args());
        self.lines().push(line);
    }
    fn flush(&self) {}
}

impl Capture {
    fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A test that failed while holding it does not hide the lines.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Installs the capturing logger (once per process) at the most verbose
/// level, so every line any crate could write is seen.
fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

// ------------------------------------------------------------ the server

struct Keys {
    k1: String,
    k2: String,
    entries: String,
}

fn keys() -> Keys {
    let (k1, e1) = new_key("k1");
    let (k2, e2) = new_key("k2");
    Keys {
        k1,
        k2,
        entries: format!("{e1},{e2}"),
    }
}

/// A service with authentication on and keys k1 and k2.
fn start_with_auth(keys: &Keys, extra: &[&str]) -> flacstream::service::Service {
    captured();
    let mut flags = vec![
        "--auth",
        "--api-keys",
        &keys.entries,
        "--drain-grace-seconds",
        "1",
    ];
    flags.extend_from_slice(extra);
    common::start(&flags)
}

fn bearer(credential: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {credential}"))
}

// ------------------------------------------------------------ HTTP

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> (u16, String) {
        let code = self.json()["code"].as_str().unwrap_or_default().to_string();
        (self.status, code)
    }
}

/// One HTTP/1.1 request with extra headers (no chunked answers needed here).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(CLIENT_TIMEOUT, s.read_to_end(&mut buf)).await;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    }
}

/// `POST /api/tokens` with `credential`; returns the answer.
async fn ask_token(addr: SocketAddr, credential: Option<&str>, body: Value) -> Answer {
    let mut headers = vec![("content-type", "application/json".to_string())];
    headers.extend(credential.map(bearer));
    request(
        addr,
        "POST",
        "/api/tokens",
        &headers,
        body.to_string().as_bytes(),
    )
    .await
}

/// A token from key `key` for `body`'s scope.
async fn token(addr: SocketAddr, key: &str, body: Value) -> String {
    let answer = ask_token(addr, Some(key), body).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    answer.json()["token"].as_str().unwrap().to_string()
}

// ------------------------------------------------------------ WebSocket

type Ws = common::Ws;
type Response = tokio_tungstenite::tungstenite::handshake::client::Response;

/// Opens a WebSocket with extra headers; `Err((status, body))` if refused.
async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(Ws, Response), (u16, Value)> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(pair) => Ok(pair),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            Err((
                resp.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ))
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// A refused upgrade's status and error code.
async fn refused(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    match connect(addr, path, headers).await {
        Ok(_) => panic!("the upgrade to {path} was accepted"),
        Err((status, body)) => {
            assert_eq!(body["type"], "error", "{body}");
            (status, body["code"].as_str().unwrap().to_string())
        }
    }
}

/// Sends `messages` while reading everything until the server closes.
async fn exchange(ws: Ws, messages: Vec<Message>) -> Outcome {
    common::exchange_ws(ws, messages, None).await
}

/// A short WAV and its samples (stereo, 16-bit, 44.1 kHz).
fn wav() -> (Vec<u8>, Vec<i32>) {
    let samples = test_signal(11_025, 2, 16, 3);
    let wav = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &pcm_bytes(&samples, 16));
    (wav, samples)
}

/// Streams the WAV over an accepted `/stream` connection and checks the
/// FLAC sample for sample.
async fn stream_exactly(ws: Ws) {
    let (wav, samples) = wav();
    let mut messages: Vec<Message> = random_splits(&wav, 8000, 5)
        .into_iter()
        .map(|p| Message::binary(p.to_vec()))
        .collect();
    messages.push(Message::text(r#"{"type":"end"}"#));
    let out = exchange(ws, messages).await;
    assert_eq!(out.close, Some(1000), "{:?}", out.texts);
    assert_exact(&out.patched_flac(), &samples, 2, 16, 4096);
}

const OPEN: &str = "/api/ws/audio?sample_rate=16000&channels=1&format=s16le";

/// Records a short session over an accepted `/api/ws/audio` connection and
/// closes it; returns its id and samples.
async fn record(ws: Ws) -> (String, Vec<i32>) {
    let samples = test_signal(16_000, 1, 16, 9);
    let pcm = pcm_bytes(&samples, 16);
    let mut messages: Vec<Message> = random_splits(&pcm, 5000, 2)
        .into_iter()
        .map(|p| Message::binary(p.to_vec()))
        .collect();
    messages.push(Message::text(
        r#"{"type":"control","action":"close_session"}"#,
    ));
    let out = exchange(ws, messages).await;
    assert_eq!(out.texts[0]["type"], "session", "{:?}", out.texts);
    assert_eq!(out.last_text()["reason"], "closed", "{:?}", out.texts);
    let id = out.texts[0]["session_id"].as_str().unwrap().to_string();
    (id, samples)
}

/// The session's FLAC, checked sample for sample.
async fn download_exactly(addr: SocketAddr, id: &str, key: &str, samples: &[i32]) {
    let path = format!("/api/audio/sessions/{id}/audio");
    let answer = request(addr, "GET", &path, &[bearer(key)], b"").await;
    assert_eq!(answer.status, 200);
    assert_exact(&answer.body, samples, 1, 16, 1024);
}

// ------------------------------------------------------------ the tests

#[actix_rt::test]
async fn no_key_and_a_bad_key_are_refused_before_the_upgrade_and_a_good_key_streams() {
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let addr = service.addr;

    for path in ["/stream", OPEN] {
        assert_eq!(refused(addr, path, &[]).await, (401, "unauthorized".into()));
        let (bad, _) = new_key("k1"); // right id, unknown secret
        assert_eq!(
            refused(addr, path, &[bearer(&bad)]).await,
            (401, "unauthorized".into())
        );
    }
    // Plain HTTP says which scheme it wants.
    let answer = request(addr, "GET", "/api/audio/sessions", &[], b"").await;
    assert_eq!(answer.code(), (401, "unauthorized".into()));
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    let (wav, _) = wav();
    for path in ["/convert", "/upload"] {
        let answer = request(addr, "POST", path, &[], &wav).await;
        assert_eq!(answer.code(), (401, "unauthorized".into()), "{path}");
    }

    let (ws, _) = connect(addr, "/stream", &[bearer(&keys.k1)]).await.unwrap();
    stream_exactly(ws).await;
    let headers = [bearer(&keys.k2), ("content-type", "audio/wav".into())];
    let answer = request(addr, "POST", "/convert", &headers, &wav).await;
    assert_eq!(answer.status, 200);
    // The scheme name is case-insensitive (RFC 9110, 11.1).
    for scheme in ["bearer", "BEARER"] {
        let auth = ("authorization", format!("{scheme} {}", keys.k1));
        let answer = request(addr, "GET", "/api/audio/sessions", &[auth], b"").await;
        assert_eq!(answer.status, 200, "{scheme}");
    }

    // What stays open with authentication on.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/app.js",
        "/admin/drain",
    ] {
        let answer = request(addr, "GET", path, &[], b"").await;
        // A scaled replica's /readyz is 503 until its first lease renewal:
        // open either way (no 401).
        let open = answer.status == 200 || (path == "/readyz" && answer.status == 503);
        assert!(open, "{path}: {}", answer.status);
    }
    service.drain().await;
}

#[actix_rt::test]
async fn only_the_owner_reaches_a_session() {
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let addr = service.addr;
    let not_found = (404, "session_not_found".to_string());

    // Live: k1's open session, k2 can neither join nor close it.
    let path = format!("{OPEN}&user_id=bob");
    let (ws, _) = connect(addr, &path, &[bearer(&keys.k1)]).await.unwrap();
    let (mut ws, live_id) = {
        let mut ws = ws;
        let Some(Ok(Message::Text(hello))) = ws.next().await else {
            panic!("no session message");
        };
        let hello: Value = serde_json::from_str(&hello).unwrap();
        (ws, hello["session_id"].as_str().unwrap().to_string())
    };
    let join = format!("/api/ws/audio/{live_id}?role=listen");
    assert_eq!(refused(addr, &join, &[bearer(&keys.k2)]).await, not_found);
    let close = format!("/api/audio/sessions/{live_id}/close");
    let answer = request(addr, "POST", &close, &[bearer(&keys.k2)], b"").await;
    assert_eq!(answer.code(), not_found);
    // A token of k1 for another user is no owner either.
    let ann = token(addr, &keys.k1, json!({"user_id": "ann"})).await;
    assert_eq!(refused(addr, &join, &[bearer(&ann)]).await, not_found);
    // The owner joins as a listener.
    let (listener, _) = connect(addr, &join, &[bearer(&keys.k1)]).await.unwrap();
    drop(listener);
    ws.send(Message::text(
        r#"{"type":"control","action":"close_session"}"#,
    ))
    .await
    .unwrap();
    while let Some(Ok(m)) = ws.next().await {
        if m.is_close() {
            break;
        }
    }

    // Stored: k1's finished session, hidden from k2 everywhere.
    let (ws, _) = connect(addr, OPEN, &[bearer(&keys.k1)]).await.unwrap();
    let (id, samples) = record(ws).await;
    for (method, path) in [
        ("GET", format!("/api/audio/sessions/{id}")),
        ("GET", format!("/api/audio/sessions/{id}/audio")),
        ("POST", format!("/api/audio/sessions/{id}/close")),
        ("DELETE", format!("/api/audio/sessions/{id}")),
    ] {
        for intruder in [&keys.k2, &ann] {
            let answer = request(addr, method, &path, &[bearer(intruder)], b"").await;
            assert_eq!(answer.code(), not_found, "{method} {path}");
        }
    }
    let join = format!("/api/ws/audio/{id}");
    assert_eq!(refused(addr, &join, &[bearer(&keys.k2)]).await, not_found);
    let listed = |answer: Answer| -> Vec<String> {
        assert_eq!(answer.status, 200);
        answer.json()["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect()
    };
    let list = "/api/audio/sessions";
    let k2_sees = listed(request(addr, "GET", list, &[bearer(&keys.k2)], b"").await);
    assert!(k2_sees.is_empty(), "{k2_sees:?}");
    let k1_sees = listed(request(addr, "GET", list, &[bearer(&keys.k1)], b"").await);
    assert_eq!(k1_sees.len(), 2);
    assert!(k1_sees.contains(&id) && k1_sees.contains(&live_id));
    let ann_sees = listed(request(addr, "GET", list, &[bearer(&ann)], b"").await);
    assert!(ann_sees.is_empty(), "{ann_sees:?}");
    let bob = token(addr, &keys.k1, json!({"user_id": "bob"})).await;
    let bob_sees = listed(request(addr, "GET", list, &[bearer(&bob)], b"").await);
    assert_eq!(bob_sees, vec![live_id.clone()]);
    // Another user_id than the token's own is forbidden.
    let path = format!("{list}?user_id=ann");
    let answer = request(addr, "GET", &path, &[bearer(&bob)], b"").await;
    assert_eq!(answer.code(), (403, "forbidden".into()));

    // The owner gets, downloads and deletes.
    download_exactly(addr, &id, &keys.k1, &samples).await;
    let path = format!("/api/audio/sessions/{id}");
    let answer = request(addr, "DELETE", &path, &[bearer(&keys.k1)], b"").await;
    assert_eq!(answer.status, 204);
    service.drain().await;
}

#[actix_rt::test]
async fn a_taken_chosen_id_is_refused_whoever_owns_it() {
    // Chosen ids are one namespace: k2 learns that an id it already knows
    // is taken (409), and nothing else; reading it is 404 as for no id.
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let addr = service.addr;
    let (ws, _) = connect(addr, OPEN, &[bearer(&keys.k1)]).await.unwrap();
    let (id, _) = record(ws).await;
    let path = format!("/api/audio/sessions/{id}");
    let answer = request(addr, "GET", &path, &[bearer(&keys.k2)], b"").await;
    assert_eq!(answer.code(), (404, "session_not_found".into()));
    let taken = (409, "session_exists".to_string());
    let open = format!("{OPEN}&session_id={id}");
    assert_eq!(refused(addr, &open, &[bearer(&keys.k2)]).await, taken);
    let upload = format!("/upload?session_id={id}");
    let answer = request(addr, "POST", &upload, &[bearer(&keys.k2)], b"").await;
    assert_eq!(answer.code(), taken);
    service.drain().await;
}

#[actix_rt::test]
async fn no_token_or_key_reaches_the_log() {
    let log = captured();
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let addr = service.addr;
    // Long enough for the checks below on a loaded machine; the expiry is
    // checked with a token of its own.
    let good = token(addr, &keys.k1, json!({"user_id": "ann", "ttl_seconds": 60})).await;
    let scoped = token(
        addr,
        &keys.k1,
        json!({"session_id": uuid::Uuid::new_v4().to_string()}),
    )
    .await;

    // Accepted, refused for parameters, for scope and for expiry; in the
    // query, the protocol and the header.
    let (ws, _) = connect(addr, &format!("/stream?access_token={good}"), &[])
        .await
        .unwrap();
    stream_exactly(ws).await;
    let path = format!("/stream?level=99&access_token={good}");
    assert_eq!(refused(addr, &path, &[]).await.1, "bad_parameter");
    let path = format!("{OPEN}&format=nope&access_token={good}");
    assert_eq!(refused(addr, &path, &[]).await.1, "bad_parameter");
    let path = format!("/stream?access_token={scoped}");
    assert_eq!(refused(addr, &path, &[]).await.1, "forbidden");
    let protocol = (
        "sec-websocket-protocol",
        format!("flacstream.v1, flacstream.token.{good}"),
    );
    let (ws, _) = connect(addr, "/stream", &[protocol]).await.unwrap();
    drop(ws);
    let path = "/api/audio/sessions?limit=0";
    assert_eq!(
        request(addr, "GET", path, &[bearer(&keys.k1)], b"")
            .await
            .status,
        400
    );
    let short = token(addr, &keys.k1, json!({"user_id": "ann", "ttl_seconds": 1})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let path = format!("/stream?access_token={short}");
    assert_eq!(refused(addr, &path, &[]).await.1, "unauthorized");
    assert_eq!(
        refused(addr, "/stream", &[bearer(&short)]).await.1,
        "unauthorized"
    );
    service.drain().await;

    let lines = log.lines().clone();
    assert!(
        lines.iter().any(|l| l.contains("Listening on")),
        "the capture sees the server's log"
    );
    for secret in [&good, &short, &scoped, &keys.k1, &keys.k2] {
        // The token's signed body, too: a log that cut the prefix off.
        let body = &secret[5..];
        for line in lines.iter() {
            assert!(!line.contains(body), "a credential was logged: {line}");
        }
    }
}

#[actix_rt::test]
async fn the_new_session_rate_counts_per_key_and_user_with_authentication_on() {
    let keys = keys();
    let service = start_with_auth(&keys, &["--new-sessions-per-minute", "2"]);
    let addr = service.addr;
    let open = |credential: String| async move {
        connect(addr, "/stream", &[bearer(&credential)])
            .await
            .map(drop)
    };
    let limited = Err((429, "rate_limited".to_string()));
    let code = |r: Result<(), (u16, Value)>| {
        r.map_err(|(status, body)| {
            (
                status,
                body["code"].as_str().unwrap_or_default().to_string(),
            )
        })
    };
    // All from one address. One user of k1 spends its own allowance only:
    // the key's other users and the key itself keep theirs.
    let ann = token(addr, &keys.k1, json!({"user_id": "ann"})).await;
    let bob = token(addr, &keys.k1, json!({"user_id": "bob"})).await;
    for _ in 0..2 {
        assert_eq!(code(open(ann.clone()).await), Ok(()));
    }
    assert_eq!(code(open(ann.clone()).await), limited);
    assert_eq!(code(open(bob.clone()).await), Ok(()));
    // The key itself counts per key, apart from other keys.
    for _ in 0..2 {
        assert_eq!(code(open(keys.k1.clone()).await), Ok(()));
    }
    assert_eq!(code(open(keys.k1.clone()).await), limited);
    assert_eq!(code(open(keys.k2.clone()).await), Ok(()));
    service.drain().await;
}

#[test]
fn the_key_subcommand_prints_a_key_its_entry_admits() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flacstream"))
        .args(["key", "--id", "ops-1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.rsplit(' ').next().unwrap().to_string())
            .unwrap()
    };
    let (key, entry) = (field("key"), field("entry"));
    assert!(entry.starts_with("ops-1:sha256:"), "{text}");
    let mut keys = flacstream::auth::keys::ApiKeys::default();
    keys.add("test", [(1, entry.as_str())]).unwrap();
    assert_eq!(keys.identify(&key), Some("ops-1"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_flacstream"))
        .args(["key", "--id", "no spaces"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[actix_rt::test]
async fn phrases_are_per_key_and_only_the_owner_reaches_them() {
    let keys = keys();
    let service = start_with_auth(&keys, &[]);
    let (wav, samples) = wav();
    let path = "/audio/user/shared-user/phrase/greeting";
    let with = |key: &str| vec![bearer(key), ("content-type", "audio/wav".to_string())];
    // No credential: refused.
    let answer = request(service.addr, "POST", path, &[], &wav).await;
    assert_eq!(answer.status, 401);
    // k1 and k2 each store "shared-user"'s "greeting": two phrases, apart.
    let a = request(service.addr, "POST", path, &with(&keys.k1), &wav).await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let b = request(service.addr, "POST", path, &with(&keys.k2), &wav).await;
    assert_eq!(b.status, 201, "{}", String::from_utf8_lossy(&b.body));
    let a_id = a.json()["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b_id = b.json()["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(a_id, b_id, "k2's upload did not replace k1's phrase");
    for (key, id) in [(&keys.k1, &a_id), (&keys.k2, &b_id)] {
        let got = request(service.addr, "GET", path, &[bearer(key)], b"").await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.json()["session"]["session_id"].as_str(),
            Some(id.as_str())
        );
        let flac = request(
            service.addr,
            "GET",
            &format!("{path}/flac"),
            &[bearer(key)],
            b"",
        )
        .await;
        assert_eq!(flac.status, 200);
        assert_exact(&flac.body, &samples, 2, 16, 4096);
    }
    // k2 deletes its own; k1's stays.
    let deleted = request(service.addr, "DELETE", path, &[bearer(&keys.k2)], b"").await;
    assert_eq!(deleted.status, 204);
    let gone = request(service.addr, "GET", path, &[bearer(&keys.k2)], b"").await;
    assert_eq!(gone.code(), (404, "phrase_not_found".to_string()));
    let kept = request(service.addr, "GET", path, &[bearer(&keys.k1)], b"").await;
    assert_eq!(kept.status, 200);
    service.drain().await;
}
