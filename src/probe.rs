//! `flacstream probe` and `flacstream drain`: the two HTTP clients a
//! container needs, built in so that the runtime image has no shell or curl.
//!
//! Each request is one plain HTTP/1.0 exchange over TCP with short timeouts:
//! the only servers these talk to are flacstream itself on loopback, so a
//! full HTTP client (TLS, redirects, chunked bodies) would be dead weight.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::admin::DrainStatus;
use crate::config::{DrainArgs, ProbeArgs};

/// Time allowed to connect, and then for each read or write, in milliseconds.
/// Short: a server that cannot answer a health check within this is unhealthy.
pub const REQUEST_TIMEOUT_MS: u64 = 2000;

/// Largest answer read, in bytes; status bodies are a few dozen.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Time between two looks at a drain's progress, in milliseconds.
pub const DRAIN_POLL_INTERVAL_MS: u64 = 500;

/// Exit code of `drain` when streams were still open as the wait ran out.
pub const EXIT_STILL_DRAINING: u8 = 2;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("not a plain http URL: {0}")]
    BadUrl(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer is not HTTP.
    #[error("the answer is not HTTP")]
    NotHttp,
}

/// An `http://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address, without brackets.
    pub host: String,
    /// Port (80 if the URL has none).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// Parses `http://host[:port][/path]`; IPv6 hosts go in brackets.
    pub fn parse(url: &str) -> Result<Self, ProbeError> {
        let bad = || ProbeError::BadUrl(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 80,
        };
        if host.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    fn addrs(&self) -> Result<Vec<SocketAddr>, ProbeError> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Sends one bodiless request and returns the status code and body.
pub fn request(method: &str, target: &Target) -> Result<(u16, Vec<u8>), ProbeError> {
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    let mut last = None;
    let mut stream = None;
    for addr in target.addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => return Err(ProbeError::BadUrl(target.host.clone())),
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // HTTP/1.0: the server closes after answering, so the body ends at EOF.
    let head = format!(
        "{method} {} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\nUser-Agent: flacstream\r\n\r\n",
        target.path,
        target.host_header()
    );
    stream.write_all(head.as_bytes())?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER_BYTES).read_to_end(&mut answer)?;
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> Result<(u16, Vec<u8>), ProbeError> {
    // "HTTP/1.x NNN ..."
    let status = answer
        .get(9..12)
        .filter(|_| answer.starts_with(b"HTTP/1."))
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .ok_or(ProbeError::NotHttp)?;
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |i| answer[i + 4..].to_vec());
    Ok((status, body))
}

/// `flacstream probe`: 0 if the URL answers 200, else 1 with the reason on
/// stderr.
pub fn probe(args: &ProbeArgs) -> ExitCode {
    let result = Target::parse(&args.url).and_then(|t| request("GET", &t));
    match result {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((status, _)) => {
            eprintln!("flacstream probe: {} answered {status}", args.url);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("flacstream probe: {}: {e}", args.url);
            ExitCode::FAILURE
        }
    }
}

/// `flacstream drain`: starts the drain, then waits until no stream is left,
/// the server has stopped, or `wait_seconds` pass.
pub fn drain(args: &DrainArgs) -> ExitCode {
    let target = match Target::parse(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("flacstream drain: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.wait_seconds);
    let mut status = match request("POST", &target).map(|(code, body)| (code, status_of(&body))) {
        Ok((202, Some(status))) => status,
        Ok((code, _)) => {
            eprintln!("flacstream drain: {} answered {code}", args.url);
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("flacstream drain: {}: {e}", args.url);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "flacstream drain: draining, {} streams open.",
        status.streams
    );
    while status.streams > 0 {
        if Instant::now() >= deadline {
            eprintln!(
                "flacstream drain: {} streams still open after {} s.",
                status.streams, args.wait_seconds
            );
            return ExitCode::from(EXIT_STILL_DRAINING);
        }
        std::thread::sleep(Duration::from_millis(DRAIN_POLL_INTERVAL_MS));
        status = match request("GET", &target) {
            Ok((200, body)) => match status_of(&body) {
                Some(s) => s,
                None => continue,
            },
            // The drain has ended and the server is stopping or gone.
            Ok(_) | Err(_) => break,
        };
    }
    eprintln!(
        "flacstream drain: no stream left after {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

fn status_of(body: &[u8]) -> Option<DrainStatus> {
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = Target::parse("http://127.0.0.1:8080/healthz").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/healthz")
        );
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("localhost", 80, "/")
        );
        let t = Target::parse("http://[::1]:9/readyz?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9, "/readyz?x=1")
        );
        assert_eq!(t.host_header(), "[::1]:9");
        for bad in [
            "https://x/",
            "x:80/",
            "http://:80/",
            "http://x:y/",
            "http://u@x/",
            "http://[::1/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_parse() {
        let (status, body) =
            parse_answer(b"HTTP/1.0 503 Service Unavailable\r\nA: b\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_slice()), (503, &b"{}"[..]));
        assert!(parse_answer(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_answer(b"").is_err());
    }
}
