//! Shared by the integration tests: a real server on 127.0.0.1:0 and a real
//! WebSocket client (tokio-tungstenite), plus an independent decoder check.

use std::time::Duration;

use base64::Engine;
use clap::Parser;
use flacstream::config::Config;
use flacstream::service::Service;
use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

mod http;
pub use http::*;

/// Upper bound on any one client exchange in tests.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a service on a free loopback port with extra flags.
///
/// The calling test shares the process with the other tests that start
/// services ([`gate::share`]) until its thread ends; a test that reads the
/// process-wide metrics takes it alone first ([`alone`]).
pub fn start(flags: &[&str]) -> Service {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = std::env::temp_dir().join(format!("flacstream-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    start_in(&data, flags)
}

/// [`start`] with its data directory at `data`.
///
/// With `FLACSTREAM_TEST_BACKEND=scaled` (and the servers' variables,
/// `.ci/run` sets both for a second pass of the session, recovery and HTTP
/// API tests) the service runs in scaled mode instead: a database of its own
/// on `FLACSTREAM_TEST_DATABASE_URL`'s server, and a prefix of its own under
/// `FLACSTREAM_TEST_STORAGE_URL`.
pub fn start_in(data: &std::path::Path, flags: &[&str]) -> Service {
    gate::share();
    let data = data.to_string_lossy().to_string();
    // A test that chooses its own storage keeps it.
    let scaled = if flags.contains(&"--storage-url") {
        Vec::new()
    } else {
        scaled_flags()
    };
    let mut args = vec!["flacstream", "--bind", "127.0.0.1:0", "--data-dir", &data];
    args.extend(scaled.iter().map(String::as_str));
    args.extend_from_slice(flags);
    let settings = Config::parse_from(args)
        .validate()
        .expect("valid test flags");
    Service::start(settings).expect("server starts")
}

/// Whether the in-process services run in scaled mode ([`start_in`]).
pub fn scaled_flags_in_use() -> bool {
    std::env::var("FLACSTREAM_TEST_BACKEND").as_deref() == Ok("scaled")
}

/// The flags of scaled mode when the tests run against it; see [`start_in`].
pub fn scaled_flags() -> Vec<String> {
    if !scaled_flags_in_use() {
        return Vec::new();
    }
    let (Ok(database), Ok(storage)) = (
        std::env::var("FLACSTREAM_TEST_DATABASE_URL"),
        std::env::var("FLACSTREAM_TEST_STORAGE_URL"),
    ) else {
        panic!("FLACSTREAM_TEST_BACKEND=scaled needs FLACSTREAM_TEST_DATABASE_URL and FLACSTREAM_TEST_STORAGE_URL");
    };
    // A database per service, so that lists see only this test's sessions.
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let created = std::process::Command::new("psql")
        .args([database.as_str(), "-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(created.success(), "CREATE DATABASE {name} failed");
    let (server, _) = database
        .rsplit_once('/')
        .expect("a database URL ends in /name");
    vec![
        "--database-url".into(),
        format!("{server}/{name}"),
        "--storage-url".into(),
        format!("{}/{name}", storage.trim_end_matches('/')),
    ]
}

/// Has the calling test run alone among the tests that start services, from
/// now until its thread ends: no other in-process service moves the
/// process's metrics meanwhile. Call it before [`start`].
pub fn alone() {
    gate::exclusive();
}

/// Who may run services in this process at the same time.
///
/// The `metrics` facade has one recorder per process, so every service the
/// tests start in it counts into the same counters and gauges; a test that
/// checks what its own traffic moved must have the process to itself. Tests
/// that start services hold the gate shared, a metrics test holds it
/// exclusively. A hold is kept in a thread-local and given back when the
/// test's thread ends (libtest runs each test on a thread of its own), that
/// is after the test's actix runtime has been dropped with every session on
/// it: a session left behind cannot count into the next holder's figures.
/// A test waiting for the exclusive hold keeps new shared holds back, so it
/// waits only for the tests already running.
pub mod gate {
    use std::cell::RefCell;
    use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    /// Longest any test waits for its hold: far longer than any test runs.
    const WAIT_LIMIT: Duration = Duration::from_secs(600);

    struct State {
        /// Tests holding the gate shared.
        shared: usize,
        /// Whether a test holds it exclusively.
        exclusive: bool,
        /// Tests waiting for it exclusively.
        waiting: usize,
    }

    static STATE: Mutex<State> = Mutex::new(State {
        shared: 0,
        exclusive: false,
        waiting: 0,
    });
    static CHANGED: Condvar = Condvar::new();

    /// One thread's hold, given back when dropped.
    enum Hold {
        Shared,
        Exclusive,
    }

    impl Drop for Hold {
        fn drop(&mut self) {
            let mut state = lock();
            match self {
                Hold::Shared => state.shared -= 1,
                Hold::Exclusive => state.exclusive = false,
            }
            CHANGED.notify_all();
        }
    }

    thread_local! {
        static HELD: RefCell<Option<Hold>> = const { RefCell::new(None) };
    }

    fn lock() -> MutexGuard<'static, State> {
        // A test that failed while holding the lock left the state whole.
        STATE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (on `CHANGED`) while `busy` holds, at most [`WAIT_LIMIT`];
    /// `None` if that passed.
    fn wait_while(
        mut state: MutexGuard<'static, State>,
        busy: impl Fn(&State) -> bool,
    ) -> Option<MutexGuard<'static, State>> {
        let deadline = Instant::now() + WAIT_LIMIT;
        while busy(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = CHANGED
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Some(state)
    }

    /// Holds the gate shared for the rest of the calling test (once per
    /// thread; a thread that holds it exclusively keeps that).
    pub fn share() {
        HELD.with(|held| {
            if held.borrow().is_some() {
                return;
            }
            let Some(mut state) = wait_while(lock(), |s| s.exclusive || s.waiting > 0) else {
                panic!("waited {WAIT_LIMIT:?} for a metrics test to finish");
            };
            state.shared += 1;
            drop(state);
            *held.borrow_mut() = Some(Hold::Shared);
        });
    }

    /// Holds the gate exclusively for the rest of the calling test.
    pub fn exclusive() {
        HELD.with(|held| {
            match held.borrow().as_ref() {
                Some(Hold::Exclusive) => return,
                Some(Hold::Shared) => panic!("take the process alone before starting a service"),
                None => {}
            }
            let mut state = lock();
            state.waiting += 1;
            let Some(mut state) = wait_while(state, |s| s.exclusive || s.shared > 0) else {
                lock().waiting -= 1;
                CHANGED.notify_all();
                panic!("waited {WAIT_LIMIT:?} for the other tests' services to finish");
            };
            state.waiting -= 1;
            state.exclusive = true;
            drop(state);
            *held.borrow_mut() = Some(Hold::Exclusive);
        });
    }
}

/// What a client saw on one stream.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every binary message, concatenated.
    pub flac: Vec<u8>,
    /// Binary messages received.
    pub binary_messages: usize,
    /// Binary messages that arrived before the client had sent everything.
    pub binary_before_last_send: usize,
    /// Text messages, parsed.
    pub texts: Vec<Value>,
    /// The close code, if the server closed.
    pub close: Option<u16>,
}

impl Outcome {
    /// The last text message.
    pub fn last_text(&self) -> &Value {
        self.texts.last().expect("a text message")
    }

    /// The error code of an error outcome.
    pub fn error_code(&self) -> &str {
        let t = self.last_text();
        assert_eq!(t["type"], "error", "{t}");
        assert!(t["message"].as_str().is_some_and(|m| !m.is_empty()), "{t}");
        t["code"].as_str().expect("code")
    }

    /// The FLAC with the final STREAMINFO from `done` written over bytes 8..42.
    pub fn patched_flac(&self) -> Vec<u8> {
        let done = self.last_text();
        assert_eq!(done["type"], "done", "{done}");
        let info = base64::engine::general_purpose::STANDARD
            .decode(done["streaminfo"].as_str().expect("streaminfo"))
            .expect("base64");
        assert_eq!(info.len(), 34);
        let mut flac = self.flac.clone();
        flac[8..42].copy_from_slice(&info);
        flac
    }
}

/// Streams `pieces` to `/stream?query`, then `{"type":"end"}` if `end`, and
/// reads until the server closes.
pub async fn stream(
    addr: std::net::SocketAddr,
    query: &str,
    pieces: &[&[u8]],
    end: bool,
) -> Outcome {
    stream_paced(addr, query, pieces, end, None).await
}

/// Like [`stream`], sleeping `pace` after each message, as a live source would.
pub async fn stream_paced(
    addr: std::net::SocketAddr,
    query: &str,
    pieces: &[&[u8]],
    end: bool,
    pace: Option<Duration>,
) -> Outcome {
    let mut messages: Vec<Message> = pieces.iter().map(|p| Message::binary(p.to_vec())).collect();
    if end {
        messages.push(Message::text(r#"{"type":"end"}"#));
    }
    exchange(addr, query, messages, pace).await
}

/// Sends `messages` to `/stream?query` (pausing `pace` after each) while
/// reading everything the server sends, until it closes.
pub async fn exchange(
    addr: std::net::SocketAddr,
    query: &str,
    messages: Vec<Message>,
    pace: Option<Duration>,
) -> Outcome {
    exchange_at(addr, &format!("/stream?{query}"), messages, pace).await
}

/// Like [`exchange`] on any WebSocket path (with its query).
pub async fn exchange_at(
    addr: std::net::SocketAddr,
    path: &str,
    messages: Vec<Message>,
    pace: Option<Duration>,
) -> Outcome {
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("upgrade");
    exchange_ws(ws, messages, pace).await
}

/// Like [`exchange`] on a WebSocket already open (over TLS, say).
pub async fn exchange_ws<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    messages: Vec<Message>,
    pace: Option<Duration>,
) -> Outcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let sent_all = std::sync::atomic::AtomicBool::new(false);
    let send = async {
        for message in messages {
            if tx.send(message).await.is_err() {
                break;
            }
            if let Some(pace) = pace {
                tokio::time::sleep(pace).await;
            }
        }
        sent_all.store(true, std::sync::atomic::Ordering::SeqCst);
        tx
    };
    let receive = async {
        let mut out = Outcome::default();
        while let Some(message) = rx.next().await {
            match message {
                Ok(Message::Binary(b)) => {
                    out.flac.extend_from_slice(&b);
                    out.binary_messages += 1;
                    if !sent_all.load(std::sync::atomic::Ordering::SeqCst) {
                        out.binary_before_last_send += 1;
                    }
                }
                Ok(Message::Text(t)) => {
                    out.texts.push(serde_json::from_str(&t).expect("JSON text"))
                }
                Ok(Message::Close(frame)) => {
                    out.close = frame.map(|f| u16::from(f.code));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        out
    };
    let run = async {
        let (tx, out) = tokio::join!(send, receive);
        drop(tx);
        out
    };
    tokio::time::timeout(CLIENT_TIMEOUT, run)
        .await
        .expect("stream finished in time")
}

/// Decodes with claxon (independent of flacenc) and checks every sample,
/// naming the first mismatch by sample, channel and block. Also checks the
/// STREAMINFO totals and MD5 against the input computed here.
pub fn assert_exact(flac: &[u8], expected: &[i32], channels: usize, bits: u16, block: usize) {
    let mut reader = claxon::FlacReader::new(flac).expect("claxon reads the stream");
    let info = reader.streaminfo();
    assert_eq!(info.channels as usize, channels);
    assert_eq!(info.bits_per_sample as u16, bits);
    let frames = (expected.len() / channels) as u64;
    assert_eq!(
        info.samples.unwrap_or(0),
        frames,
        "STREAMINFO total samples"
    );
    let decoded: Vec<i32> = reader.samples().map(|s| s.expect("decodes")).collect();
    if let Some(i) = decoded.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "sample {} channel {} block {}: decoded {} expected {}",
            i / channels,
            i % channels,
            i / channels / block,
            decoded[i],
            expected[i]
        );
    }
    assert_eq!(decoded.len(), expected.len(), "sample count");
    let mut md5 = Md5::new();
    for &s in expected {
        md5.update(&s.to_le_bytes()[..usize::from(bits / 8)]);
    }
    assert_eq!(
        info.md5sum,
        <[u8; 16]>::from(md5.finalize()),
        "STREAMINFO MD5"
    );
}

/// Waits (10 s at most) until the server counts `n` live streams, as
/// `GET /admin/drain` reports them.
pub async fn wait_for_streams(addr: std::net::SocketAddr, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http_json(addr, "GET", "/admin/drain").await;
        if body["streams"] == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} live streams, not {n}",
            body["streams"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (10 s at most) until `GET /admin/drain` says the server is draining.
pub async fn wait_for_draining(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http_json(addr, "GET", "/admin/drain").await;
        if body["status"] == "draining" {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "not draining: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tries an upgrade that should be refused; returns (status, body).
pub async fn refused_upgrade(addr: std::net::SocketAddr, query: &str) -> (u16, Value) {
    refused_upgrade_at(addr, &format!("/stream?{query}")).await
}

/// Like [`refused_upgrade`] on any path.
pub async fn refused_upgrade_at(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let url = format!("ws://{addr}{path}");
    match tokio_tungstenite::connect_async(&url).await {
        Ok(_) => panic!("upgrade to {url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            (
                resp.status().as_u16(),
                serde_json::from_slice(&body).expect("JSON body"),
            )
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// A client WebSocket to the server under test.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to a `/api/ws/audio` URL and reads its first message, the
/// `session` JSON; returns the socket, that message and its session id.
pub async fn connect_session(url: &str) -> (Ws, Value, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let Some(Ok(Message::Text(hello))) = ws.next().await else {
        panic!("no session message from {url}");
    };
    let hello: Value = serde_json::from_str(&hello).expect("session JSON");
    assert_eq!(hello["type"], "session", "{hello}");
    let id = hello["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    (ws, hello, id)
}
