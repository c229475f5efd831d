//! In-process TLS end to end: a self-signed certificate made here (rcgen),
//! the service started with it on a loopback port, and real TLS clients
//! (tokio-rustls) trusting only that certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, assert_exact, exchange_ws, start, Outcome};
use flacstream::cli::probe::Client;
use flacstream::cli::ClientTls;
use flacstream::tls::TLS_RELOAD_POLL_SECONDS;
use flacstream_codec::fixture::{pcm_bytes, random_splits, test_signal, wav_bytes, WavSpec};
use futures_util::SinkExt;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

mod binary;

/// A certificate for `localhost` and 127.0.0.1 with its key, made here.
struct Pair {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn pair() -> Pair {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("rcgen makes a certificate");
    Pair {
        cert_pem: cert.pem(),
        key_pem: signing_key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// The two files the service reads, in a directory of their own.
struct Files {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("flacstream-tls-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        }
    }

    fn write(&self, pair: &Pair) {
        std::fs::write(&self.cert, &pair.cert_pem).expect("write cert");
        std::fs::write(&self.key, &pair.key_pem).expect("write key");
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            path_str(&self.cert),
            "--tls-key".into(),
            path_str(&self.key),
        ]
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

fn start_tls(files: &Files, extra: &[&str]) -> flacstream::service::Service {
    let mut flags = files.flags();
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    start(&flags)
}

/// A client configuration trusting only `cert`, offering h2 and http/1.1.
fn client_config(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.clone())
        .expect("the test certificate is a root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` for the name `localhost`, verified with `trust`.
async fn connect(
    addr: SocketAddr,
    trust: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(client_config(trust));
    let name = ServerName::try_from("localhost").expect("a DNS name");
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// The certificate the server presented on `tls`.
fn peer_certificate(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate")[0]
        .clone()
}

/// GET `path` over `tls` with HTTP/1.1 and `Connection: close`; (status, body).
async fn https_get(mut tls: TlsStream<TcpStream>, path: &str) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    match read.expect("answer in time") {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => panic!("read: {e}"),
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A WebSocket over TLS to `/stream?query`, verified with `trust`.
async fn wss(
    addr: SocketAddr,
    trust: &CertificateDer<'static>,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>> {
    let tls = connect(addr, trust).await.expect("TLS handshake");
    let url = format!("wss://localhost:{}/stream?{query}", addr.port());
    let (ws, response) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("upgrade over TLS");
    assert_eq!(response.status(), 101);
    ws
}

/// A WAV of `frames` 16-bit stereo frames and the samples it carries.
fn wav(frames: usize, seed: u64) -> (Vec<u8>, Vec<i32>) {
    let spec = WavSpec::pcm(2, 44_100, 16);
    let samples = test_signal(frames, 2, 16, seed);
    (wav_bytes(&spec, &pcm_bytes(&samples, 16)), samples)
}

fn assert_exact_outcome(out: &Outcome, samples: &[i32]) {
    assert_eq!(out.close, Some(1000), "{:?}", out.texts);
    let block = flacstream_codec::flac::default_block_size(44_100);
    assert_exact(&out.patched_flac(), samples, 2, 16, block);
}

#[actix_rt::test]
async fn https_health_and_a_wss_stream_round_trip_exactly() {
    let files = Files::new("round-trip");
    let cert = pair();
    files.write(&cert);
    let service = start_tls(&files, &[]);
    assert!(service.tls.is_some());

    // (a) HTTPS: the handshake verifies against the test certificate for
    // the name `localhost`, and ALPN settles on http/1.1 although h2 is offered.
    let tls = connect(service.addr, &cert.der)
        .await
        .expect("TLS handshake");
    assert_eq!(peer_certificate(&tls), cert.der);
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, body) = https_get(tls, "/healthz").await;
    assert_eq!(status, 200, "{body}");

    // (b) wss:// through /stream, the WAV in random pieces, the FLAC decoded
    // by claxon and compared sample for sample.
    let (wav, samples) = wav(60_000, 21);
    let ws = wss(service.addr, &cert.der, "").await;
    let messages = random_splits(&wav, 9_000, 22)
        .into_iter()
        .map(|p| Message::binary(p.to_vec()))
        .collect();
    let out = exchange_ws(ws, messages, None).await;
    assert_exact_outcome(&out, &samples);

    // (d) Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(service.addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    service.drain().await;
}

#[actix_rt::test]
async fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let files = Files::new("handshake");
    files.write(&pair());
    let service = start_tls(&files, &["--tls-handshake-timeout-seconds", "1"]);
    let mut tcp = TcpStream::connect(service.addr).await.expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the silent connection was not dropped: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "dropped after {waited:?}, not after the 1 s handshake timeout"
    );
    service.drain().await;
}

#[actix_rt::test]
async fn silent_connections_do_not_stop_a_worker_serving_handshakes() {
    let files = Files::new("silent");
    let p = pair();
    files.write(&p);
    let service = start_tls(&files, &["--http-workers", "1"]);
    // More than actix's default of 256 handshakes in progress per worker,
    // at which it stops accepting until one times out (3 s).
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(service.addr).await.expect("connect"));
    }
    let started = std::time::Instant::now();
    let tls = connect(service.addr, &p.der).await.expect("handshake");
    assert_eq!(https_get(tls, "/healthz").await.0, 200);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "/healthz took {waited:?} behind 300 silent connections"
    );
    drop(silent);
    service.drain().await;
}

#[actix_rt::test]
async fn a_reloaded_certificate_serves_new_connections_and_old_ones_go_on() {
    let files = Files::new("reload");
    let first = pair();
    files.write(&first);
    let service = start_tls(&files, &[]);
    let certs = Arc::clone(service.tls.as_ref().expect("TLS is on"));

    // A stream opened under the first certificate, half sent.
    let (wav, samples) = wav(80_000, 31);
    let half = wav.len() / 2;
    let mut old = wss(service.addr, &first.der, "").await;
    old.send(Message::binary(wav[..half].to_vec()))
        .await
        .expect("first half");

    // (c) A second certificate written to the same files and reloaded now.
    let second = pair();
    files.write(&second);
    certs.reload().expect("the second certificate loads");
    let tls = connect(service.addr, &second.der)
        .await
        .expect("a client trusting the second certificate connects");
    assert_eq!(peer_certificate(&tls), second.der);
    assert_eq!(https_get(tls, "/healthz").await.0, 200);
    assert!(
        connect(service.addr, &first.der).await.is_err(),
        "a new connection still got the first certificate"
    );

    // The old connection goes on with its session and ends exactly.
    old.send(Message::binary(wav[half..].to_vec()))
        .await
        .expect("second half on the old connection");
    let out = exchange_ws(old, Vec::new(), None).await;
    assert_exact_outcome(&out, &samples);

    // A bad PEM (by reload and by the poll) keeps the second certificate.
    std::fs::write(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let e = certs.reload().expect_err("a bad PEM must not load");
    assert!(e.to_string().contains("cert.pem"), "{e}");
    std::fs::write(&files.cert, "no PEM at all").expect("write");
    tokio::time::sleep(Duration::from_secs(TLS_RELOAD_POLL_SECONDS + 1)).await;
    let tls = connect(service.addr, &second.der)
        .await
        .expect("still served");
    assert_eq!(peer_certificate(&tls), second.der);
    drop(tls);

    // A third certificate is picked up by the file poll alone, even with
    // the key written after the certificate (the first look may see a
    // mismatch and keep the old one; the next sees both).
    let third = pair();
    files.write(&third);
    let deadline = std::time::Instant::now() + Duration::from_secs(4 * TLS_RELOAD_POLL_SECONDS + 5);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        if let Ok(tls) = connect(service.addr, &third.der).await {
            seen = Some(peer_certificate(&tls));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        seen.as_ref(),
        Some(&third.der),
        "the changed files were not reloaded"
    );
    service.drain().await;
}

#[actix_rt::test]
async fn probe_and_drain_trust_exactly_the_servers_certificate() {
    let files = Files::new("probe");
    let cert = pair();
    files.write(&cert);
    let service = start_tls(&files, &[]);
    let other = Files::new("probe-other");
    other.write(&pair());
    let url = format!("https://127.0.0.1:{}/healthz", service.addr.port());
    let ask = |url: String, cert: Option<PathBuf>| {
        tokio::task::spawn_blocking(move || {
            Client::new(&url, &ClientTls { tls_cert: cert }).and_then(|c| c.request("GET"))
        })
    };
    // The server's own certificate file: accepted on 127.0.0.1 although the
    // request names an address, not `localhost`.
    let ok = ask(url.clone(), Some(files.cert.clone()))
        .await
        .expect("join");
    assert_eq!(ok.expect("probe over https").0, 200);
    // Another certificate: refused.
    let wrong = ask(url.clone(), Some(other.cert.clone()))
        .await
        .expect("join");
    assert!(wrong.is_err(), "a different certificate was trusted");
    // https without a certificate to trust: refused before connecting.
    let none = ask(url.clone(), None).await.expect("join");
    assert!(
        none.as_ref()
            .is_err_and(|e| e.to_string().contains("--tls-cert")),
        "{none:?}"
    );
    // http:// to the TLS port: no HTTP answer.
    let plain = ask(url.replace("https://", "http://"), None)
        .await
        .expect("join");
    assert!(!matches!(plain, Ok((200, _))), "{plain:?}");
    service.drain().await;
}

#[actix_rt::test]
async fn a_tls_client_that_stops_reading_is_cut_off_after_the_stall_time() {
    use flacstream_actors::registry::Snapshot;
    use flacstream_codec::fixture::DataSize;
    let files = Files::new("slow");
    let cert = pair();
    files.write(&cert);
    let service = start_tls(&files, &["--outbound-stall-seconds", "1"]);
    // Loud 24-bit noise: FLAC as large as the input, more than the socket
    // and TLS buffers can hide.
    let mut spec = WavSpec::pcm(2, 48_000, 24);
    spec.data_size = DataSize::StreamingMax;
    let header = wav_bytes(&spec, &[]);
    let chunk = pcm_bytes(
        &test_signal(100_000, 2, 24, 70)
            .iter()
            .map(|s| (s ^ 0x5A5A5).clamp(-(1 << 23), (1 << 23) - 1))
            .collect::<Vec<_>>(),
        24,
    );
    let mut ws = wss(service.addr, &cert.der, "").await;
    ws.send(Message::binary(header)).await.expect("header");
    // Up to 120 MB without ever reading; stop when the server stops taking it.
    for _ in 0..200 {
        let send = ws.send(Message::binary(chunk.clone()));
        match tokio::time::timeout(Duration::from_secs(3), send).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    let mut sessions = usize::MAX;
    for _ in 0..100 {
        sessions = service
            .registry
            .send(Snapshot)
            .await
            .expect("registry")
            .sessions;
        if sessions == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sessions, 0, "the stalled session was not cut off");
    // The TLS connection itself must end: its TCP socket is shut down.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut ended = false;
    while std::time::Instant::now() < deadline {
        let send = ws.send(Message::binary(chunk.clone()));
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(1), send).await {
            ended = true;
            break;
        }
    }
    assert!(ended, "the server kept the stalled TLS connection open");
    drop(ws);
    service.drain().await;
}
