//! The binary's settings as an operator gives them: the environment names
//! (old unprefixed ones still read), the listening address's safe default
//! and its refusal, and JSON log lines (the access log's among them).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest a run of the binary is watched before the test gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// What a run of the binary printed on stderr, and whether it exited
/// (`Some(success)`) or was stopped by the test once `until` matched a line.
struct Run {
    lines: Vec<String>,
    exited: Option<bool>,
}

impl Run {
    fn has(&self, text: &str) -> bool {
        self.lines.iter().any(|l| l.contains(text))
    }
}

/// Runs the server binary with `args` and `env` (the variables these tests
/// look at removed from the inherited environment first), reading stderr
/// until it exits or a line contains `until`, then stops it.
fn run(args: &[&str], env: &[(&str, &str)], until: &str) -> Run {
    run_with(args, env, until, |_| {})
}

/// [`run`], handing each line to `on_line` as it comes.
fn run_with(
    args: &[&str],
    env: &[(&str, &str)],
    until: &str,
    mut on_line: impl FnMut(&str),
) -> Run {
    let data = std::env::temp_dir().join(format!(
        "flacstream-config-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut command = Command::new(env!("CARGO_BIN_EXE_flacstream"));
    command
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for name in [
        "FLACSTREAM_BIND",
        "FLACSTREAM_AUTH",
        "FLACSTREAM_LOG_FORMAT",
        "FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH",
        "MAX_SESSION_SECONDS",
        "FLACSTREAM_MAX_SESSION_SECONDS",
        "MAX_UPLOAD_BYTES",
        "FLACSTREAM_MAX_UPLOAD_BYTES",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("the server binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    let exited = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                on_line(&line);
                let done = line.contains(until);
                lines.push(line);
                if done {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
            // stderr closed: the process ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Some(child.wait().expect("the child is waited for").success())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no line with {until:?} in {RUN_TIMEOUT:?}: {lines:#?}");
            }
        }
    };
    let _ = std::fs::remove_dir_all(&data);
    Run { lines, exited }
}

#[test]
fn an_old_environment_name_is_read_with_a_deprecation_note() {
    let r = run(
        &["--bind", "127.0.0.1:0"],
        &[("MAX_SESSION_SECONDS", "0")],
        "Listening on",
    );
    assert_eq!(r.exited, Some(false), "{:#?}", r.lines);
    assert!(r.has("MAX_SESSION_SECONDS is deprecated"), "{:#?}", r.lines);
    assert!(r.has("rename it to FLACSTREAM_MAX_SESSION_SECONDS"));
    assert!(
        r.has("--max-session-seconds must be at least 1"),
        "{:#?}",
        r.lines
    );
}

#[test]
fn the_prefixed_name_wins_over_the_old_one() {
    let r = run(
        &["--bind", "127.0.0.1:0"],
        &[
            ("MAX_SESSION_SECONDS", "0"),
            ("FLACSTREAM_MAX_SESSION_SECONDS", "5"),
        ],
        "Listening on",
    );
    assert_eq!(r.exited, None, "it started: {:#?}", r.lines);
    assert!(r.has("MAX_SESSION_SECONDS is deprecated and ignored"));
    let r = run(
        &["--bind", "127.0.0.1:0"],
        &[
            ("MAX_SESSION_SECONDS", "5"),
            ("FLACSTREAM_MAX_SESSION_SECONDS", "0"),
        ],
        "Listening on",
    );
    assert_eq!(r.exited, Some(false), "{:#?}", r.lines);
    assert!(r.has("--max-session-seconds must be at least 1"));
}

#[test]
fn a_public_bind_without_auth_is_refused_unless_allowed() {
    let r = run(&["--bind", "0.0.0.0:0"], &[], "Listening on");
    assert_eq!(r.exited, Some(false), "{:#?}", r.lines);
    assert!(r.has("refusing to listen on 0.0.0.0:0"), "{:#?}", r.lines);
    assert!(r.has("--allow-public-without-auth"));
    let r = run(
        &["--bind", "0.0.0.0:0"],
        &[("FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH", "true")],
        "Listening on",
    );
    assert_eq!(r.exited, None, "it started: {:#?}", r.lines);
    assert!(
        r.has("WARN") && r.has("WITHOUT AUTHENTICATION"),
        "{:#?}",
        r.lines
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let r = run(
        &["--bind", "127.0.0.1:0", "--log-format", "json"],
        &[],
        "Listening on",
    );
    assert_eq!(r.exited, None, "it started: {:#?}", r.lines);
    for line in &r.lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
    }
}

#[test]
fn json_access_lines_have_their_fields_as_keys() {
    let r = run_with(
        &["--bind", "127.0.0.1:0", "--log-format", "json"],
        &[],
        "\"request_id\":\"json-access\"",
        |line| {
            let Some(rest) = line.split("Listening on ").nth(1) else {
                return;
            };
            let addr = rest.split([' ', '"']).next().unwrap();
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET /api/audio/sessions/nope?token=secret HTTP/1.1\r\nHost: x\r\n\
                 X-Request-Id: json-access\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            assert!(
                answer.contains("\"request_id\":\"json-access\""),
                "{answer}"
            );
        },
    );
    assert_eq!(r.exited, None, "{:#?}", r.lines);
    let line = r.lines.last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["target"], "flacstream::access", "{line}");
    assert_eq!(v["kind"], "http");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["route"], "/api/audio/sessions/{id}");
    assert_eq!(v["path"], "/api/audio/sessions/nope");
    assert_eq!(v["status"], 404);
    assert!(v["bytes"].as_u64().unwrap() > 0);
    assert!(v["duration_ms"].is_number());
    assert_eq!(v["client"], "127.0.0.1");
    assert_eq!(v["session_id"], "nope");
    assert!(!line.contains("secret"), "{line}");
}
