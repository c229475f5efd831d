//! The webhook receiver the job tests run: a bare HTTP/1.1 server on
//! loopback that records every request and answers 500, 200, or nothing, as
//! told; and the receiver's side of the signature, written from the
//! documented rule.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::SECRET;

/// What the test receiver answers.
pub const ANSWER_500: u8 = 0;
pub const ANSWER_200: u8 = 1;
/// Reads the request and never answers.
pub const HANG: u8 = 2;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answered: u16,
}

impl Delivery {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A webhook receiver on `port`, answering as `mode` says.
pub struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    pub mode: Arc<AtomicU8>,
}

impl Receiver {
    pub async fn start(port: u16, mode: u8) -> Self {
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

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().clone()
    }
}

/// Checks the signature as a receiver would, written here from the
/// documented rule (HMAC-SHA256 over `<t>.<body>`), not with the service's code.
pub fn signature_is_valid(d: &Delivery) -> bool {
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
