//! A TCP proxy in front of a server, for what a real network does to a
//! client: refuse a connection with an HTTP answer of its own (a 503 with
//! `Retry-After`, as a busy server or a load balancer sends), or cut a
//! connection after so many bytes from the client (a dropped link). Every
//! connection not given a part passes through untouched. Plain threads and
//! blocking sockets: nothing here depends on the client's runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the proxy does with one connection.
#[derive(Debug, Clone)]
pub enum Part {
    /// Reads the request head, writes these bytes, closes.
    Answer(Vec<u8>),
    /// Passes bytes both ways, but cuts both connections once this many
    /// bytes came from the client.
    CutAfter(usize),
}

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl Proxy {
    /// Proxies to `upstream`; connection `i` plays `parts[i]`, later ones pass.
    pub fn start(upstream: SocketAddr, parts: Vec<Part>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for (i, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                log.lock().unwrap().push(Instant::now());
                let part = parts.get(i).cloned();
                std::thread::spawn(move || serve(client, upstream, part));
            }
        });
        Self { addr, accepted }
    }

    /// When each connection was accepted, in order.
    pub fn accepted(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap().clone()
    }
}

/// An HTTP answer with the service's JSON error body.
pub fn http_error(status: &str, code: &str, extra_headers: &str) -> Vec<u8> {
    let body = format!(r#"{{"type":"error","code":"{code}","message":"from the test proxy"}}"#);
    format!(
        "HTTP/1.1 {status}\r\n{extra_headers}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve(mut client: TcpStream, upstream: SocketAddr, part: Option<Part>) {
    if let Some(Part::Answer(answer)) = &part {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = client.write_all(answer);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let limit = match part {
        Some(Part::CutAfter(n)) => n,
        _ => usize::MAX,
    };
    let (mut from_server, mut to_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut to_server = server;
    let mut passed = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let take = n.min(limit - passed);
        if to_server.write_all(&buf[..take]).is_err() {
            break;
        }
        passed += take;
        if passed >= limit {
            // The link goes down: both sides see their connection end.
            let _ = to_server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    }
    let _ = to_server.shutdown(Shutdown::Write);
}
