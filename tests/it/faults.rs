//! What the fault run (loadtest/fault.sh) found, kept as tests: a frame
//! header that claims gigabytes must be refused on the header, not after
//! the payload (src/frame_limit.rs), and a client cut off for not reading
//! must not have its input read and thrown away meanwhile (src/transport.rs,
//! the write loop). The clients are raw TCP so they can send what no
//! WebSocket library would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::start;
use flacstream_codec::fixture::{wav_bytes, DataSize, WavSpec};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How fast a claim over the limit must be refused: at once, not after the
/// idle timeout (30 s) as before the header check.
const REFUSAL_LIMIT: Duration = Duration::from_secs(2);

/// A masked client frame header declaring `len` payload bytes (a zero mask
/// key: legal, and it leaves the payload as it is).
fn header(opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len < 65536 {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0; 4]);
    h
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(opcode, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

/// A 16-bit stereo 44.1 kHz WAV header with the streaming sizes.
fn streaming_wav_header() -> Vec<u8> {
    let mut spec = WavSpec::pcm(2, 44_100, 16);
    spec.data_size = DataSize::StreamingMax;
    wav_bytes(&spec, &[])
}

/// Connects (with a receive buffer of `rcvbuf` bytes if given) and upgrades
/// to a WebSocket on `path`; the upgrade's head is read byte by byte, so
/// nothing after it is taken from the socket.
async fn upgraded(addr: SocketAddr, path: &str, rcvbuf: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(n) = rcvbuf {
        socket.set_recv_buffer_size(n).unwrap();
    }
    let mut tcp = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "closed during the upgrade"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// The error code and close code the server sends before its close frame,
/// or `None`s if the connection ends (or `limit` passes) first.
async fn error_and_close(tcp: &mut TcpStream, limit: Duration) -> (Option<String>, Option<u16>) {
    let mut buf = Vec::new();
    let mut error = None;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        // Parse every whole server frame (unmasked) in the buffer.
        while buf.len() >= 2 {
            let (op, short) = (buf[0] & 0x0F, (buf[1] & 0x7F) as usize);
            let (at, len) = match short {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => (
                    10,
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                ),
                126 | 127 => break,
                n => (2, n),
            };
            if buf.len() < at + len {
                break;
            }
            let payload: Vec<u8> = buf.drain(..at + len).skip(at).collect();
            match op {
                1 => {
                    let text: Value = serde_json::from_slice(&payload).unwrap();
                    if text["type"] == "error" {
                        error = text["code"].as_str().map(str::to_string);
                    }
                }
                8 => return (error, Some(u16::from_be_bytes([payload[0], payload[1]]))),
                _ => {}
            }
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (error, None),
        }
    }
}

#[actix_rt::test]
async fn a_frame_header_claiming_gigabytes_is_refused_at_once() {
    // The recorded session stays live (waiting for its producer) after the
    // refusal: no drain grace for it at the end.
    let service = start(&["--drain-grace-seconds", "0"]);
    let claims = [
        ("/stream", 1u64 << 32),
        ("/stream", (1 << 63) - 1),
        (
            "/api/ws/audio?format=s16le&sample_rate=16000&channels=1&record=false",
            1 << 32,
        ),
        // One byte over the 1 MiB limit: the header alone decides.
        ("/stream", (1 << 20) + 1),
    ];
    for (path, claim) in claims {
        let mut tcp = upgraded(service.addr, path, None).await;
        let mut bytes = header(2, claim);
        bytes.extend_from_slice(&[0; 1024]);
        tcp.write_all(&bytes).await.unwrap();
        let started = Instant::now();
        let (error, close) = error_and_close(&mut tcp, Duration::from_secs(10)).await;
        assert_eq!(
            (error.as_deref(), close),
            (Some("message_too_large"), Some(1009)),
            "{path}, {claim} bytes claimed"
        );
        assert!(
            started.elapsed() < REFUSAL_LIMIT,
            "{path}, {claim} bytes claimed: refused after {:?}",
            started.elapsed()
        );
    }
    service.drain().await;
}

#[actix_rt::test]
async fn a_client_cut_off_for_not_reading_cannot_push_input_through_meanwhile() {
    // After the stall, the server tries the error and the close frame for
    // up to 2 s each before it shuts the socket down. Its reading must stop
    // when the stall is declared: before the fix it read and discarded the
    // client's input at wire speed for those 4 s (GBs on loopback, and 100
    // such clients starved every other stream of CPU).
    let service = start(&["--outbound-stall-seconds", "1"]);
    let mut tcp = upgraded(service.addr, "/stream", Some(8192)).await;
    // Noise: FLAC frames as large as the input, so the output fills soon.
    let mut noise = vec![0u8; 64 * 1024];
    let mut x = 0x1234_5678u32;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    tcp.write_all(&frame(2, &streaming_wav_header()))
        .await
        .unwrap();
    let message = frame(2, &noise);
    let started = Instant::now();
    let mut blocked_at = None;
    let mut after_block = 0usize;
    loop {
        let t = Instant::now();
        let written = tokio::time::timeout(Duration::from_secs(10), tcp.write_all(&message)).await;
        // A write that blocked marks when the input stopped, also if it is
        // the last one: a server that never reads again after its first
        // pause leaves that write blocked until the connection ends.
        if blocked_at.is_none() && t.elapsed() > Duration::from_millis(500) {
            blocked_at = Some(t);
        }
        match written {
            Ok(Ok(())) => {}
            // Reset, or a write still stuck 10 s on: the connection is over
            // for this client either way; the time check below tells which.
            Ok(Err(_)) | Err(_) => break,
        }
        if blocked_at.is_some() {
            after_block += message.len();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never cut off");
    }
    let blocked_at = blocked_at.expect("the server stopped taking input");
    assert!(
        after_block < 64 << 20,
        "{} MiB of input taken after the server stopped reading",
        after_block >> 20
    );
    // Cut within the stall + the two 2-s tries + slack.
    assert!(
        blocked_at.elapsed() < Duration::from_secs(9),
        "cut {:?} after the input stopped",
        blocked_at.elapsed()
    );
    service.drain().await;
}
