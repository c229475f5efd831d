//! `flacstream probe` and `flacstream drain`: the two HTTP clients a
//! container needs, built in so that the runtime image has no shell or curl.
//!
//! Each request is one HTTP/1.0 exchange over TCP with short timeouts: the
//! only servers these talk to are flacstream itself on loopback, so a full
//! HTTP client (redirects, chunked bodies) would be dead weight.
//!
//! A server with in-process TLS ([`crate::tls`]) is reached over https, and
//! trusted by pinning: given the server's own certificate file (`--tls-cert`,
//! or `FLACSTREAM_TLS_CERT`, which a container already has for the server),
//! the server must present exactly that certificate and prove it holds its
//! key. Its name is not checked, because a certificate for the public name
//! does not name 127.0.0.1; nor is its expiry, because the question asked is
//! whether this server answers, not whether browsers will accept it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::cli::{ClientTls, DrainArgs, ProbeArgs};
use crate::protocol::DrainStatus;

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
    /// The URL is not `http[s]://host[:port][/path]`.
    #[error("not an http or https URL: {0}")]
    BadUrl(String),
    /// An https URL without the server's certificate to trust.
    #[error("https needs --tls-cert (or FLACSTREAM_TLS_CERT): the server's certificate file")]
    NoTrust,
    /// The certificate file to trust cannot be used.
    #[error("{0}")]
    Trust(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer is not HTTP.
    #[error("the answer is not HTTP")]
    NotHttp,
}

/// An `http://` or `https://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whether the URL is `https://`.
    pub https: bool,
    /// Host name or address, without brackets.
    pub host: String,
    /// Port (80, or 443 for https, if the URL has none).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// Parses `http[s]://host[:port][/path]`; IPv6 hosts go in brackets.
    pub fn parse(url: &str) -> Result<Self, ProbeError> {
        let bad = || ProbeError::BadUrl(url.to_string());
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err(bad()),
        };
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
            None if https => 443,
            None => 80,
        };
        if host.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        Ok(Self {
            https,
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

/// One server to ask: where, and for https the TLS configuration that trusts
/// its certificate.
pub struct Client {
    /// Where requests go.
    pub target: Target,
    tls: Option<Arc<ClientConfig>>,
}

impl Client {
    /// A client for `url`; an https URL needs `trust.tls_cert` (an http URL
    /// ignores it).
    pub fn new(url: &str, trust: &ClientTls) -> Result<Self, ProbeError> {
        let target = Target::parse(url)?;
        let tls = match (target.https, &trust.tls_cert) {
            (false, _) => None,
            (true, None) => return Err(ProbeError::NoTrust),
            (true, Some(path)) => Some(Arc::new(pinned_config(path)?)),
        };
        Ok(Self { target, tls })
    }

    /// Sends one bodiless request and returns the status code and body.
    pub fn request(&self, method: &str) -> Result<(u16, Vec<u8>), ProbeError> {
        request(method, &self.target, self.tls.as_ref())
    }
}

/// A TLS client configuration that accepts only the certificates in `path`.
fn pinned_config(path: &Path) -> Result<ClientConfig, ProbeError> {
    let trust = |reason: String| ProbeError::Trust(format!("{}: {reason}", path.display()));
    let pem = std::fs::read(path).map_err(|e| trust(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| trust(e.to_string()))?;
    if certs.is_empty() {
        return Err(trust("no PEM certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        certs,
        provider: Arc::clone(&provider),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| trust(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts a server whose end-entity certificate is one of `certs` and whose
/// handshake signature verifies with that certificate's key. Name and expiry
/// are not checked: see the module doc.
#[derive(Debug)]
struct PinnedCertificate {
    certs: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.certs.iter().any(|c| c == end_entity) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Sends one bodiless request (over TLS with `tls`) and returns the status
/// code and body.
fn request(
    method: &str,
    target: &Target,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(u16, Vec<u8>), ProbeError> {
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
    let stream = match (stream, last) {
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
    let answer = match tls {
        None => exchange(stream, &head)?,
        Some(config) => {
            let name = ServerName::try_from(target.host.as_str())
                .map_err(|_| ProbeError::BadUrl(target.host.clone()))?
                .to_owned();
            let connection = ClientConnection::new(Arc::clone(config), name)
                .map_err(|e| ProbeError::Trust(e.to_string()))?;
            exchange(StreamOwned::new(connection, stream), &head)?
        }
    };
    parse_answer(&answer)
}

/// Writes the request head and reads the answer until the server closes.
fn exchange(mut stream: impl Read + Write, head: &str) -> Result<Vec<u8>, ProbeError> {
    stream.write_all(head.as_bytes())?;
    stream.flush()?;
    let mut answer = Vec::new();
    match (&mut stream)
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
    {
        Ok(_) => {}
        // A TLS server that closes without a close_notify: the answer read
        // so far is all there is.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(answer)
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
    let url = args.url();
    let result = Client::new(url, &args.tls).and_then(|c| c.request("GET"));
    match result {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((status, _)) => {
            eprintln!("flacstream probe: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("flacstream probe: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `flacstream drain`: starts the drain, then waits until no stream is left,
/// the server has stopped, or `wait_seconds` pass.
pub fn drain(args: &DrainArgs) -> ExitCode {
    let url = args.url();
    let client = match Client::new(url, &args.tls) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flacstream drain: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.wait_seconds);
    let mut status = match client
        .request("POST")
        .map(|(code, body)| (code, status_of(&body)))
    {
        Ok((202, Some(status))) => status,
        Ok((code, _)) => {
            eprintln!("flacstream drain: {url} answered {code}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("flacstream drain: {url}: {e}");
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
        status = match client.request("GET") {
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
        let t = Target::parse("https://localhost/healthz").unwrap();
        assert_eq!((t.https, t.port), (true, 443));
        assert!(!Target::parse("http://localhost").unwrap().https);
        for bad in [
            "ftp://x/",
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
