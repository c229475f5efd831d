//! `kill -9` in the middle of a recorded session: the file left behind is a
//! valid FLAC holding at least every durably acknowledged sample, and a
//! restart repairs and finalizes it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{assert_exact, connect_session, http, http_json};
use flacstream_codec::fixture::{pcm_bytes, test_signal};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The server binary as a child process; killed (SIGKILL) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn spawn(data: &std::path::Path, port: u16) -> Server {
    spawn_with(data, port, &[]).await
}

async fn spawn_with(data: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_flacstream"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary starts");
    let server = Server(child);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not listen on {addr}");
}

#[actix_rt::test]
async fn kill_9_leaves_a_valid_flac_and_a_restart_finalizes_it() {
    let data = std::env::temp_dir().join(format!("flacstream-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = spawn(&data, port).await;

    let samples = test_signal(160_000, 1, 16, 9);
    let pcm = std::sync::Arc::new(pcm_bytes(&samples, 16));
    let url = format!("ws://{addr}/api/ws/audio?sample_rate=16000&channels=1&format=s16le");
    let (ws, _, id) = connect_session(&url).await;
    let (mut tx, mut rx) = ws.split();
    // Keep sending 100 ms messages; once 3 s are durable, kill the server
    // while it is still receiving and writing.
    let mut durable = 0;
    let mut sent = 0;
    for piece in pcm.chunks(3200) {
        tx.send(Message::binary(piece.to_vec())).await.unwrap();
        sent += piece.len();
        let Some(Ok(Message::Text(ack))) = rx.next().await else {
            panic!()
        };
        durable = serde_json::from_str::<Value>(&ack).unwrap()["samples_durable"]
            .as_u64()
            .unwrap();
        if durable >= 48_000 {
            break;
        }
    }
    assert!(durable >= 48_000, "only {durable} samples became durable");
    let rest = std::sync::Arc::clone(&pcm);
    let sender = actix_rt::spawn(async move {
        for piece in rest[sent..].chunks(3200) {
            if tx.send(Message::binary(piece.to_vec())).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.0.kill().unwrap(); // SIGKILL: no drain, no finalize
    server.0.wait().unwrap();
    let _ = sender.await;
    drop(rx);

    // What is on disk right now decodes up to its last whole frame, and holds
    // at least everything acknowledged as durable.
    let file = data.join(format!("recordings/{id}.flac"));
    let bytes = std::fs::read(&file).unwrap();
    let mut reader = claxon::FlacReader::new(bytes.as_slice()).unwrap();
    let mut on_disk = Vec::new();
    for sample in reader.samples() {
        match sample {
            Ok(s) => on_disk.push(s),
            Err(_) => break, // a frame torn by the kill
        }
    }
    assert!(
        on_disk.len() as u64 >= durable,
        "{} < {durable}",
        on_disk.len()
    );
    let whole = on_disk.len().min(samples.len());
    assert_eq!(on_disk[..whole], samples[..whole]);

    // A restart repairs and finalizes the session from its own frames.
    let _server = spawn(&data, port).await;
    let mut status = Value::Null;
    for _ in 0..100 {
        let (code, body) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        if code == 200 && body["status"] == "closed" {
            status = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "closed", "{status}");
    assert_eq!(status["samples"], on_disk.len() as u64);
    let (code, flac) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples[..on_disk.len()], 1, 16, 1024);
    let _ = std::fs::remove_dir_all(&data);
}

/// The same with the recording in object storage (a directory through the
/// object-store interface, SQLite as the catalog): a restart composes what
/// was durable into the final FLAC.
#[actix_rt::test]
async fn kill_9_with_object_storage_and_a_restart_composes_the_durable_part() {
    let root = std::env::temp_dir().join(format!("flacstream-kill9-obj-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    let storage = format!("file://{}", root.join("objects").display());
    let flags = [
        "--storage-url",
        storage.as_str(),
        "--durable-lag-seconds",
        "2",
    ];
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = spawn_with(&data, port, &flags).await;
    let samples = test_signal(16_000 * 8, 1, 16, 4);
    let pcm = pcm_bytes(&samples, 16);
    let url = format!("ws://{addr}/api/ws/audio?sample_rate=16000&channels=1&format=s16le");
    let (mut ws, _, id) = connect_session(&url).await;
    let mut durable = 0;
    for piece in pcm.chunks(3200) {
        ws.send(Message::binary(piece.to_vec())).await.unwrap();
        let Some(Ok(Message::Text(ack))) = ws.next().await else {
            panic!()
        };
        durable = serde_json::from_str::<Value>(&ack).unwrap()["samples_durable"]
            .as_u64()
            .unwrap();
        if durable > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(durable > 0, "nothing became durable");
    drop(server); // SIGKILL
    drop(ws);
    let _server = spawn_with(&data, port, &flags).await;
    let mut status = Value::Null;
    for _ in 0..100 {
        let (code, body) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        if code == 200 && body["status"] == "closed" {
            status = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "closed", "{status}");
    assert_eq!(status["error"], "recovered_after_restart");
    let kept = status["samples"].as_u64().unwrap();
    assert!(kept >= durable, "{kept} < durable {durable}");
    let (code, flac) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples[..kept as usize], 1, 16, 4096);
    let _ = std::fs::remove_dir_all(&root);
}
