//! Recorded sessions of containers (`/api/ws/audio?format=flac|ogg|webm|…`):
//! decoded as they arrive, resumed at the byte the decoder took
//! (`bytes_accepted`), checked against the format they were declared as.
//! Fixtures are made at test time (`fixture::encoded`; a missing encoder
//! prints SKIPPED). Lossless sources come back sample for sample, lossy
//! ones exactly as `/convert` decodes the whole file. With PostgreSQL and
//! S3 (`.ci/run`), a producer resuming through another replica is relayed
//! to the owner, and a killed owner's session ends with its durable part.

use std::path::Path;
use std::time::Duration;

use crate::common::{assert_exact, connect_session, http, http_json, http_send, start, Ws};
use flacstream_codec::fixture::encoded::{lossy_signal, Encoding, Scratch};
use flacstream_codec::fixture::{test_signal, WavSpec};
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The next text message, within 20 s.
async fn next_text(ws: &mut Ws) -> Value {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), ws.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("no text message: {other:?}"),
        }
    }
}

/// Sends `file[from..]` in random pieces of `sizes` bytes, reading each
/// ack, whose `bytes_accepted` must be the offset in `file` after the piece;
/// returns the last ack.
async fn send_acked(
    ws: &mut Ws,
    file: &[u8],
    from: usize,
    sizes: std::ops::RangeInclusive<usize>,
    rng: &mut rand::rngs::StdRng,
) -> Value {
    let mut ack = Value::Null;
    let mut at = from;
    while at < file.len() {
        let n = rng.random_range(sizes.clone()).min(file.len() - at);
        ws.send(Message::binary(file[at..at + n].to_vec()))
            .await
            .unwrap();
        at += n;
        ack = next_text(ws).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["bytes_accepted"].as_u64(), Some(at as u64), "{ack}");
    }
    ack
}

/// Closes the session from its producer and reads its `done`.
async fn close_session(ws: &mut Ws) -> Value {
    ws.send(Message::text(
        r#"{"type":"control","action":"close_session"}"#,
    ))
    .await
    .unwrap();
    loop {
        let message = next_text(ws).await;
        if message["type"] != "ack" {
            return message;
        }
    }
}

/// Joins session `id` at `addr` as its producer; the `session` message.
async fn resume(addr: std::net::SocketAddr, id: &str) -> (Ws, Value) {
    let (ws, hello, _) = connect_session(&format!("ws://{addr}/api/ws/audio/{id}")).await;
    (ws, hello)
}

/// `/convert`'s FLAC of the whole file, decoded.
async fn converted(addr: std::net::SocketAddr, path: &Path) -> Vec<i32> {
    let body = std::fs::read(path).unwrap();
    let answer = http_send(addr, "POST", "/convert", "application/octet-stream", &body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    decode(&answer.body)
}

fn decode(flac: &[u8]) -> Vec<i32> {
    let mut reader = claxon::FlacReader::new(flac).expect("claxon reads the FLAC");
    reader.samples().map(|s| s.expect("decodes")).collect()
}

/// One container sent over a recorded session in random pieces; the
/// producer drops out once without waiting for its last message's ack and
/// resumes at the session's `bytes_accepted`. Returns the stored FLAC and
/// the final session JSON.
async fn record_with_a_resume(
    addr: std::net::SocketAddr,
    format: &str,
    bytes: &[u8],
    seed: u64,
) -> (Vec<u8>, Value) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let url = format!("ws://{addr}/api/ws/audio?format={format}");
    let (mut ws, hello, id) = connect_session(&url).await;
    assert_eq!(hello["bytes_accepted"], 0, "{hello}");
    let half = bytes.len() / 2;
    send_acked(&mut ws, &bytes[..half], 0, 1..=3_000, &mut rng).await;
    // One more message, then the connection is gone before its ack: the
    // session may or may not have taken it.
    let more = (half + 2_000).min(bytes.len());
    ws.send(Message::binary(bytes[half..more].to_vec()))
        .await
        .unwrap();
    drop(ws);
    let (mut ws, hello) = resume(addr, &id).await;
    assert_eq!(hello["role"], "producer", "{hello}");
    assert_eq!(hello["resumed"], true, "{hello}");
    let from = hello["bytes_accepted"].as_u64().expect("bytes_accepted") as usize;
    assert!(
        (half..=more).contains(&from),
        "resumes at {from}, sent {half}..{more}"
    );
    eprintln!(
        "container session {format}: {} bytes, resumed at {from}",
        bytes.len()
    );
    let mut rest_rng = rand::rngs::StdRng::seed_from_u64(seed + 100);
    send_acked(&mut ws, bytes, from, 1..=3_000, &mut rest_rng).await;
    let done = close_session(&mut ws).await;
    assert_eq!(done["type"], "done", "{format}: {done}");
    let (status, flac) = http(addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(status, 200);
    let (status, session) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(session["status"], "closed", "{session}");
    (flac, session)
}

#[actix_rt::test]
async fn container_sessions_resume_at_the_byte_the_decoder_took() {
    const FRAMES: usize = 60_000;
    let service = start(&[]);
    let dir = Scratch::new("it-container-sessions");
    // Lossless: exact, whatever the split and the resume.
    let samples = test_signal(FRAMES, 2, 16, 5);
    let wav = dir.wav("exact.wav", &samples, &WavSpec::pcm(2, 44_100, 16));
    for (encoding, format, stored, codec) in [
        (Encoding::Flac, "flac", "flac/flac", "flac"),
        (Encoding::OggFlac, "ogg", "ogg/flac", "flac"),
        (Encoding::Aiff, "aiff", "aiff/pcm", "pcm"),
    ] {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let (flac, session) = record_with_a_resume(service.addr, format, &bytes, 3).await;
        assert_eq!(
            (
                session["format"].as_str(),
                session["source_codec"].as_str(),
                session["lossless"].as_bool()
            ),
            (Some(stored), Some(codec), Some(true)),
            "{session}"
        );
        assert_exact(&flac, &samples, 2, 16, 4096);
    }
    // Lossy: what MediaRecorder sends (WebM/Opus), MP3, Ogg Vorbis: the
    // same PCM as the whole file's conversion, sample for sample.
    let music = dir.wav(
        "music.wav",
        &lossy_signal(FRAMES),
        &WavSpec::pcm(2, 48_000, 16),
    );
    for (encoding, format, stored) in [
        (Encoding::WebmOpus, "webm", "mkv/opus"),
        (Encoding::Mp3, "mp3", "mp3/mp3"),
        (Encoding::OggVorbis, "ogg", "ogg/vorbis"),
    ] {
        let Some(path) = encoding.make(&music, 16, &dir) else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let (flac, session) = record_with_a_resume(service.addr, format, &bytes, 4).await;
        assert_eq!(session["format"], stored, "{session}");
        assert_eq!(session["lossless"], false, "{session}");
        assert!(
            decode(&flac) == converted(service.addr, &path).await,
            "{encoding:?}: the session's decode differs from /convert's"
        );
    }
    service.drain().await;
}

#[actix_rt::test]
async fn a_container_session_is_what_it_was_declared() {
    let service = start(&[]);
    let dir = Scratch::new("it-container-declared");
    // An MP4 cannot be read front to back: refused before the upgrade.
    for format in ["m4a", "mp4"] {
        let (status, json) = crate::common::refused_upgrade_at(
            service.addr,
            &format!("/api/ws/audio?format={format}"),
        )
        .await;
        assert_eq!(
            (status, json["code"].as_str()),
            (415, Some("needs_seeking"))
        );
    }
    let (status, json) =
        crate::common::refused_upgrade_at(service.addr, "/api/ws/audio?format=opus").await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("bad_parameter"))
    );
    assert!(json["message"].as_str().unwrap().contains("webm"), "{json}");
    // Another container than declared, and garbage: the session fails with
    // the code, before any FLAC.
    let samples = test_signal(8_000, 1, 16, 9);
    let wav = dir.wav("tone.wav", &samples, &WavSpec::pcm(1, 16_000, 16));
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![(
        "ogg",
        b"this is no container at all, just text".repeat(20),
        "unrecognized_format",
    )];
    if let Some(path) = Encoding::Flac.make(&wav, 16, &dir) {
        cases.push(("mp3", std::fs::read(path).unwrap(), "format_mismatch"));
    }
    for (format, bytes, code) in cases {
        let url = format!(
            "ws://{}/api/ws/audio?format={format}&output=flac",
            service.addr
        );
        let (mut ws, _, id) = connect_session(&url).await;
        ws.send(Message::binary(bytes)).await.unwrap();
        let mut flac = 0;
        let error = loop {
            match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => flac += b.len(),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "error" {
                        break v;
                    }
                }
                other => panic!("{format}: no error: {other:?}"),
            }
        };
        assert_eq!(error["code"], code, "{format}: {error}");
        assert_eq!(flac, 0, "{format}: no FLAC before the error");
        let (_, session) =
            http_json(service.addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        assert_eq!(
            (session["status"].as_str(), session["error"].as_str()),
            (Some("failed"), Some(code)),
            "{session}"
        );
    }
    service.drain().await;
}

/// Scaled mode, two replicas: the producer of a WebM/Opus session opened on
/// one resumes through the other and is relayed to the owner (the decoder
/// stays where it is); a close through the other replica finalizes it at
/// the owner. A second session's owner is killed with SIGKILL: a resume
/// then finds it finalized with every sample that was durable.
#[actix_rt::test]
async fn scaled_a_container_producer_is_relayed_and_a_dead_owners_session_ends() {
    let Some((database, storage)) = crate::scaled::servers() else {
        return;
    };
    let dir = Scratch::new("it-container-scaled");
    let music = dir.wav(
        "music.wav",
        &lossy_signal(96_000),
        &WavSpec::pcm(2, 48_000, 16),
    );
    let Some(path) = Encoding::WebmOpus.make(&music, 16, &dir) else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let a = crate::scaled::replica(&database, &storage).await;
    let b = crate::scaled::replica(&database, &storage).await;
    let whole = converted(a.addr, &path).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);

    // Opened on a, resumed through b: relayed to a.
    let url = format!("ws://{}/api/ws/audio?format=webm", a.addr);
    let (mut ws, _, id) = connect_session(&url).await;
    let half = bytes.len() / 2;
    send_acked(&mut ws, &bytes[..half], 0, 1..=4_000, &mut rng).await;
    drop(ws);
    let (mut ws, hello) = resume(b.addr, &id).await;
    assert_eq!(hello["resumed"], true, "{hello}");
    let from = hello["bytes_accepted"].as_u64().unwrap() as usize;
    assert_eq!(from, half, "{hello}");
    send_acked(&mut ws, &bytes, from, 1..=4_000, &mut rng).await;
    drop(ws);
    let (status, closed) =
        http_json(b.addr, "POST", &format!("/api/audio/sessions/{id}/close")).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["status"], "closed", "{closed}");
    let (status, flac) = http(b.addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(status, 200);
    assert!(
        decode(&flac) == whole,
        "relayed: the decode differs from /convert's"
    );

    // A FLAC session resumed through b with its live FLAC (output=flac)
    // and messages over 64 KiB: the relay passes them whole, and reads the
    // owner's frames while it sends.
    let samples = test_signal(48_000 * 3, 2, 16, 17);
    let wav = dir.wav("exact.wav", &samples, &WavSpec::pcm(2, 48_000, 16));
    if let Some(flac_path) = Encoding::Flac.make(&wav, 16, &dir) {
        let source = std::fs::read(&flac_path).unwrap();
        let url = format!("ws://{}/api/ws/audio?format=flac", a.addr);
        let (mut ws, _, id) = connect_session(&url).await;
        let third = source.len() / 3;
        send_acked(&mut ws, &source[..third], 0, 1..=4_000, &mut rng).await;
        drop(ws);
        let (mut ws, hello, _) =
            connect_session(&format!("ws://{}/api/ws/audio/{id}?output=flac", b.addr)).await;
        assert_eq!(hello["bytes_accepted"].as_u64(), Some(third as u64));
        send_acked(&mut ws, &source, third, 70_000..=150_000, &mut rng).await;
        let done = close_session(&mut ws).await;
        assert_eq!(done["type"], "done", "{done}");
        let (status, flac) = http(b.addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
        assert_eq!(status, 200);
        assert_exact(&flac, &samples, 2, 16, 4096);
    }

    // Owned by a, which dies: the session ends with its durable part.
    let url = format!("ws://{}/api/ws/audio?format=webm", a.addr);
    let (mut ws, _, id) = connect_session(&url).await;
    let mut ack = send_acked(&mut ws, &bytes[..half], 0, 1..=4_000, &mut rng).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while ack["samples_durable"].as_u64().unwrap_or(0) == 0 && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ws.send(Message::binary(Vec::new())).await.unwrap();
        ack = next_text(&mut ws).await;
    }
    let durable = ack["samples_durable"].as_u64().unwrap() as usize;
    assert!(durable > 0, "nothing became durable: {ack}");
    drop(a);
    drop(ws);
    let url = format!("ws://{}/api/ws/audio/{id}", b.addr);
    // Until the dead owner's lease runs out the relay cannot reach it
    // (503, retry); then the session is finalized and the resume refused.
    let started = std::time::Instant::now();
    let refused = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status().as_u16() == 503
                    && started.elapsed() < Duration::from_secs(30) =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => break response,
            Ok(_) => panic!("a dead owner's container session was resumed"),
            Err(e) => panic!("{e}"),
        }
    };
    let status = refused.status().as_u16();
    let body: Value = serde_json::from_slice(refused.body().as_deref().unwrap_or_default())
        .unwrap_or(Value::Null);
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("session_closed")),
        "{body}"
    );
    let (_, session) = http_json(b.addr, "GET", &format!("/api/audio/sessions/{id}")).await;
    assert_ne!(session["status"], "live", "{session}");
    let (status, flac) = http(b.addr, "GET", &format!("/api/audio/sessions/{id}/audio")).await;
    assert_eq!(status, 200);
    let kept = decode(&flac);
    assert!(
        kept.len() >= durable * 2,
        "{} < {durable} frames",
        kept.len() / 2
    );
    assert!(
        kept[..] == whole[..kept.len()],
        "the durable part is the decode's start"
    );
}
