//! Storage that refuses writes: a small filesystem filled in the middle of
//! a recorded session, in both modes (the recording file in embedded mode,
//! the segments in object storage through `file://`). The producer is told
//! `storage_unavailable`, `samples_durable` stands still, the session goes
//! on by itself once there is room again (`storage_available`), and the
//! final FLAC holds every sample sent.
//!
//! Needs to mount a tmpfs (root, or CAP_SYS_ADMIN); elsewhere it prints
//! SKIPPED and why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{assert_exact, connect_session, http, http_json, start_in};
use flacstream_codec::fixture::{pcm_bytes, test_signal};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A small tmpfs, unmounted when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(name: &str, bytes: u64) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("flacstream-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Self(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills `dir`'s filesystem until about `leave` bytes are free.
fn fill(dir: &Path, leave: usize) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    use std::io::Write;
    let mut written = 0usize;
    // tmpfs reports its exact room through a failed write.
    while f.write_all(&chunk).is_ok() {
        written += chunk.len();
    }
    drop(f);
    let keep = written.saturating_sub(leave);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(keep as u64)
        .unwrap();
    path
}

async fn filled_mid_stream(fs: &SmallFs, flags: &[&str], data: &Path) {
    let server = start_in(data, flags);
    let addr = server.addr;
    let samples = test_signal(16_000 * 30, 1, 16, 11);
    let pcm = pcm_bytes(&samples, 16);
    let url = format!("ws://{addr}/api/ws/audio?sample_rate=16000&channels=1&format=s16le");
    let (ws, _, id) = connect_session(&url).await;
    let (mut tx, mut rx) = ws.split();
    let filler = fill(&fs.0, 16 * 1024);
    let sender = actix_rt::spawn(async move {
        for piece in pcm.chunks(3_200) {
            if tx.send(Message::binary(piece.to_vec())).await.is_err() {
                panic!("the producer was cut off");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx
    });
    let mut durable = 0u64;
    let mut refused_at = None;
    let mut freed = false;
    let mut notices = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_secs(30), rx.next()).await
        else {
            panic!("the producer heard nothing for 30 s (notices: {notices:?})")
        };
        let m: Value = serde_json::from_str(&t).unwrap();
        match m["type"].as_str() {
            Some("ack") => {
                let d = m["samples_durable"].as_u64().unwrap();
                assert!(d >= durable, "samples_durable went back");
                durable = d;
                if let Some(at) = refused_at {
                    // While storage refuses, nothing more becomes durable.
                    if !freed {
                        assert_eq!(d, at, "samples_durable moved while the disk was full");
                    }
                }
            }
            Some("storage") => {
                notices.push(m["code"].as_str().unwrap().to_string());
                if m["code"] == "storage_unavailable" {
                    refused_at = Some(m["samples_durable"].as_u64().unwrap());
                    // Room again a second later: the session must go on by itself.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    std::fs::remove_file(&filler).unwrap();
                    freed = true;
                }
                if m["code"] == "storage_available" {
                    break;
                }
            }
            other => panic!("unexpected {other:?}: {m}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery: {notices:?}"
        );
    }
    assert_eq!(notices, ["storage_unavailable", "storage_available"]);
    let mut tx = sender.await.unwrap();
    tx.send(Message::text(
        r#"{"type":"control","action":"close_session"}"#,
    ))
    .await
    .unwrap();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "done" {
                break;
            }
        }
    }
    let (code, record) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(record["status"], "closed", "{record}");
    let (code, flac) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(code, 200);
    assert_exact(&flac, &samples, 1, 16, 4096);
    server.drain().await;
}

#[actix_rt::test]
async fn a_full_disk_under_the_recording_file_stalls_durability_then_recovers() {
    if crate::common::scaled_flags_in_use() {
        eprintln!("SKIPPED full_disk (files): the scaled pass has no recording files");
        return;
    }
    let Some(fs) = SmallFs::mount("fulldisk-files", 4 << 20) else {
        eprintln!("SKIPPED full_disk (files): cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = fs.0.join("data");
    filled_mid_stream(&fs, &[], &data).await;
}

#[actix_rt::test]
async fn a_full_disk_under_object_storage_stalls_durability_then_recovers() {
    let Some(fs) = SmallFs::mount("fulldisk-objects", 4 << 20) else {
        eprintln!("SKIPPED full_disk (objects): cannot mount a tmpfs here (needs root)");
        return;
    };
    let url = format!("file://{}", fs.0.join("objects").display());
    let data =
        std::env::temp_dir().join(format!("flacstream-fulldisk-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    filled_mid_stream(
        &fs,
        &["--storage-url", &url, "--durable-lag-seconds", "2"],
        &data,
    )
    .await;
}
