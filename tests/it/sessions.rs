//! End-to-end tests of recorded sessions: `/api/ws/audio`, resume, listeners,
//! limits, timers, the sessions HTTP API, and recovery after `kill -9`.

use std::time::Duration;

use crate::common::{
    self, assert_exact, connect_session, exchange_at, http, http_json, refused_upgrade_at, Outcome,
};
use flacstream_codec::fixture::{pcm_bytes, random_splits, test_signal};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A service whose drain does not wait long for sessions left open.
fn start(flags: &[&str]) -> flacstream::service::Service {
    let mut all = vec!["--drain-grace-seconds", "1"];
    all.extend_from_slice(flags);
    common::start(&all)
}

fn close_session() -> Message {
    Message::text(r#"{"type":"control","action":"close_session"}"#)
}

fn binaries(pieces: &[&[u8]]) -> Vec<Message> {
    pieces.iter().map(|p| Message::binary(p.to_vec())).collect()
}

/// The session id from an outcome's first text message.
fn session_id(out: &Outcome) -> String {
    let first = &out.texts[0];
    assert_eq!(first["type"], "session", "{first}");
    first["session_id"].as_str().unwrap().to_string()
}

fn acks(out: &Outcome) -> Vec<&Value> {
    out.texts.iter().filter(|t| t["type"] == "ack").collect()
}

/// Opens a connection, sends `messages`, waits until every binary message
/// is acknowledged, then drops the TCP connection without a close frame.
async fn send_then_vanish(
    addr: std::net::SocketAddr,
    path: &str,
    messages: Vec<Message>,
) -> Vec<Value> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let expected = messages.iter().filter(|m| m.is_binary()).count();
    let mut texts = Vec::new();
    let mut acked = 0;
    for m in messages {
        tx.send(m).await.unwrap();
    }
    while acked < expected {
        let Some(Ok(Message::Text(t))) = rx.next().await else {
            panic!("connection ended before every chunk was acknowledged");
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        acked += usize::from(v["type"] == "ack");
        texts.push(v);
    }
    drop((tx, rx));
    texts
}

async fn wait_for_status(addr: std::net::SocketAddr, id: &str, status: &str) -> Value {
    for _ in 0..100 {
        let (code, body) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        if code == 200 && body["status"] == status {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("session {id} never reached {status}");
}

/// Waits (10 s at most) until the session's `field` is `want`, as
/// `GET /api/audio/sessions/{id}` reports it.
async fn wait_for_field(addr: std::net::SocketAddr, id: &str, field: &str, want: Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        if body[field] == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session {id}: {field} is {}, not {want}",
            body[field]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_recorded_session_can_be_closed_fetched_listed_and_deleted() {
    let service = start(&[]);
    let samples = test_signal(40_000, 1, 16, 1);
    let pcm = pcm_bytes(&samples, 16);
    let mut messages = binaries(&random_splits(&pcm, 4000, 1));
    let chunks = messages.len();
    messages.push(close_session());
    let path = "/api/ws/audio?sample_rate=16000&channels=1&format=s16le&user_id=ann";
    let out = exchange_at(service.addr, path, messages, None).await;
    let id = session_id(&out);

    let acks = acks(&out);
    assert_eq!(acks.len(), chunks);
    assert_eq!(acks.last().unwrap()["chunk_count"], chunks as u64);
    let received: Vec<u64> = acks
        .iter()
        .map(|a| a["samples_received"].as_u64().unwrap())
        .collect();
    assert!(received.windows(2).all(|w| w[0] <= w[1]), "{received:?}");
    assert_eq!(*received.last().unwrap(), 40_000);
    let done = out.last_text();
    assert_eq!(done["type"], "done", "{done}");
    assert_eq!(done["reason"], "closed");
    assert_eq!(done["samples"], 40_000);
    assert_eq!(out.close, Some(1000));

    let body = wait_for_status(service.addr, &id, "closed").await;
    assert_eq!(body["samples"], 40_000);
    assert_eq!(body["user_id"], "ann");
    assert_eq!(body["format"], "s16le");
    assert_eq!(body["sample_rate"], 16_000);
    assert_eq!(body["chunk_count"], chunks as u64);
    assert_eq!(body["duration_seconds"], 2.5);

    let (status, flac) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_eq!(status, 200);
    assert_exact(&flac, &samples, 1, 16, 1024);

    let (status, page) = http_json(service.addr, "GET", "/api/audio/sessions?user_id=ann").await;
    assert_eq!(status, 200);
    assert_eq!(page["sessions"][0]["session_id"], id.as_str());
    let (_, page) = http_json(service.addr, "GET", "/api/audio/sessions?user_id=bob").await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 0);

    let (status, body) = http_json(
        service.addr,
        "POST",
        &format!("/api/audio/sessions/{id}/close"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("session_closed"))
    );
    let (status, _) = http(service.addr, "DELETE", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(status, 204);
    for (method, suffix) in [
        ("GET", ""),
        ("GET", "/audio"),
        ("POST", "/close"),
        ("DELETE", ""),
    ] {
        let (status, body) = http_json(
            service.addr,
            method,
            &format!("/api/audio/sessions/{id}{suffix}"),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("session_not_found")),
            "{method} {suffix}"
        );
    }
    service.drain().await;
}

#[actix_rt::test]
async fn a_producer_resumes_after_an_abrupt_disconnect_without_gap_or_duplicate() {
    let service = start(&[]);
    let samples = test_signal(60_000, 2, 24, 2);
    let pcm = pcm_bytes(&samples, 24);
    // The first connection ends inside a sample frame.
    let cut = 6 * 20_000 + 4;
    let first = binaries(&random_splits(&pcm[..cut], 3000, 3));
    let path = "/api/ws/audio?sample_rate=48000&channels=2&format=s24le&block_size=1024";
    let texts = send_then_vanish(service.addr, path, first).await;
    let id = texts[0]["session_id"].as_str().unwrap().to_string();

    // Reconnect; the session says where to continue.
    let resume_path = format!("/api/ws/audio/{id}");
    let (ws, hello, _) = connect_session(&format!("ws://{}{resume_path}", service.addr)).await;
    let (mut tx, mut rx) = ws.split();
    assert_eq!(hello["resumed"], true, "{hello}");
    let from = hello["samples_received"].as_u64().unwrap() as usize;
    assert_eq!(from, 20_000, "the partial sample frame is not counted");
    let rest = &pcm[from * 6..];
    for piece in random_splits(rest, 5000, 4) {
        tx.send(Message::binary(piece.to_vec())).await.unwrap();
    }
    tx.send(close_session()).await.unwrap();
    let mut done = None;
    while let Some(Ok(m)) = rx.next().await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "done" {
                done = Some(v);
            }
        }
    }
    assert_eq!(done.unwrap()["samples"], 60_000);
    wait_for_status(service.addr, &id, "closed").await;
    let (_, flac) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_exact(&flac, &samples, 2, 24, 1024);
    service.drain().await;
}

#[actix_rt::test]
async fn a_listener_receives_the_same_flac_as_the_stored_file() {
    let service = start(&[]);
    let samples = test_signal(30_000, 2, 16, 5);
    let pcm = pcm_bytes(&samples, 16);
    let (ws, _, id) = connect_session(&format!(
        "ws://{}/api/ws/audio?sample_rate=44100&channels=2&format=s16le&acks=false",
        service.addr
    ))
    .await;
    let (mut tx, mut rx) = ws.split();

    let listen_path = format!("/api/ws/audio/{id}?role=listen");
    let listener = exchange_at(service.addr, &listen_path, vec![], None);
    let producer = async {
        // The producer and the listener.
        wait_for_field(service.addr, &id, "connections", 2.into()).await;
        for piece in random_splits(&pcm, 8000, 6) {
            tx.send(Message::binary(piece.to_vec())).await.unwrap();
        }
        tx.send(close_session()).await.unwrap();
        while rx.next().await.is_some() {}
    };
    let (heard, ()) = tokio::join!(listener, producer);
    assert_eq!(heard.texts[0]["role"], "listener");
    assert_eq!(heard.close, Some(1000));
    let heard_flac = heard.patched_flac();
    assert_exact(&heard_flac, &samples, 2, 16, 4096);
    wait_for_status(service.addr, &id, "closed").await;
    let (_, stored) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_eq!(heard_flac, stored, "listener bytes equal the stored file");
    service.drain().await;
}

#[actix_rt::test]
async fn limits_and_bad_requests_are_refused_before_the_upgrade() {
    let service = start(&["--max-connections-per-session", "2"]);
    for (path, status, code) in [
        (
            "/api/ws/audio?sample_rate=16000&channels=1",
            400,
            "bad_parameter",
        ),
        (
            "/api/ws/audio?sample_rate=16000&format=s16le",
            400,
            "bad_parameter",
        ),
        (
            "/api/ws/audio?sample_rate=0&channels=1&format=s16le",
            400,
            "bad_parameter",
        ),
        (
            "/api/ws/audio?sample_rate=16000&channels=9&format=s16le",
            400,
            "bad_parameter",
        ),
        (
            "/api/ws/audio?sample_rate=16000&channels=1&format=f32le",
            400,
            "bad_parameter",
        ),
        (
            "/api/ws/audio?sample_rate=16000&channels=1&format=s32le",
            415,
            "unsupported_format",
        ),
        (
            "/api/ws/audio/00000000-0000-0000-0000-000000000000",
            404,
            "session_not_found",
        ),
        ("/api/ws/audio/not-a-uuid", 404, "session_not_found"),
    ] {
        let (got, body) = refused_upgrade_at(service.addr, path).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path}");
    }

    let url = format!(
        "ws://{}/api/ws/audio?sample_rate=8000&channels=1&format=u8",
        service.addr
    );
    let (mut producer, _, id) = connect_session(&url).await;
    let listen = format!("ws://{}/api/ws/audio/{id}?role=listen", service.addr);
    let _listener = tokio_tungstenite::connect_async(&listen).await.unwrap();
    let (status, body) =
        refused_upgrade_at(service.addr, &format!("/api/ws/audio/{id}?role=listen")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_connections"))
    );

    // A live session cannot be deleted.
    let (status, body) =
        http_json(service.addr, "DELETE", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("session_live")));
    // Closing over HTTP finalizes it; joining afterwards is a conflict.
    producer
        .send(Message::binary(vec![128u8; 800]))
        .await
        .unwrap();
    wait_for_field(service.addr, &id, "samples", 800.into()).await;
    let (status, body) = http_json(
        service.addr,
        "POST",
        &format!("/api/audio/sessions/{id}/close"),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("closed")),
        "{body}"
    );
    assert_eq!(body["samples"], 800);
    let (status, body) = refused_upgrade_at(service.addr, &format!("/api/ws/audio/{id}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("session_closed"))
    );
    service.drain().await;
}

#[actix_rt::test]
async fn the_newest_producer_wins_and_the_old_one_is_told() {
    let service = start(&[]);
    let url = format!(
        "ws://{}/api/ws/audio?sample_rate=8000&channels=1&format=s16le",
        service.addr
    );
    let (mut first, _, id) = connect_session(&url).await;
    let second =
        tokio_tungstenite::connect_async(format!("ws://{}/api/ws/audio/{id}", service.addr))
            .await
            .unwrap();
    let mut error = None;
    let mut close = None;
    while let Some(Ok(m)) = first.next().await {
        match m {
            Message::Text(t) => error = Some(serde_json::from_str::<Value>(&t).unwrap()),
            Message::Close(f) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(error.unwrap()["code"], "superseded");
    assert_eq!(close, Some(4001));
    drop(second);
    service.drain().await;
}

#[actix_rt::test]
async fn idle_producers_are_dropped_and_the_resume_window_finalizes() {
    let service = start(&[
        "--connection-timeout-seconds",
        "1",
        "--session-resume-seconds",
        "1",
    ]);
    let samples = test_signal(8_000, 1, 16, 7);
    let pcm = pcm_bytes(&samples, 16);
    let path = "/api/ws/audio?sample_rate=8000&channels=1&format=s16le";
    let out = exchange_at(service.addr, path, binaries(&[&pcm]), None).await;
    assert_eq!(out.error_code(), "idle_timeout");
    assert_eq!(out.close, Some(1008));
    let id = session_id(&out);
    let body = wait_for_status(service.addr, &id, "closed").await;
    assert_eq!(body["samples"], 8_000);
    let (_, flac) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_exact(&flac, &samples, 1, 16, 512);
    service.drain().await;
}

#[actix_rt::test]
async fn a_session_ends_at_its_maximum_length() {
    let service = start(&["--max-session-seconds", "1"]);
    let path = "/api/ws/audio?sample_rate=8000&channels=1&format=s16le";
    let pcm = pcm_bytes(&test_signal(4_000, 1, 16, 8), 16);
    let started = std::time::Instant::now();
    let out = exchange_at(service.addr, path, binaries(&[&pcm]), None).await;
    let done = out.last_text();
    assert_eq!(done["type"], "done", "{done}");
    assert_eq!(done["reason"], "max_session_length");
    assert_eq!(out.close, Some(1008));
    assert!(started.elapsed() >= Duration::from_millis(900));
    service.drain().await;
}

#[actix_rt::test]
async fn wav_sessions_live_flac_to_the_producer_and_unrecorded_sessions() {
    use flacstream_codec::fixture::{wav_bytes, WavSpec};
    let service = start(&[]);

    // A WAV session ends by itself when the declared data has arrived, and
    // the producer asked for the FLAC live.
    let samples = test_signal(20_000, 2, 16, 10);
    let wav = wav_bytes(&WavSpec::pcm(2, 22_050, 16), &pcm_bytes(&samples, 16));
    let path = "/api/ws/audio?format=wav&output=flac&acks=false";
    let out = exchange_at(
        service.addr,
        path,
        binaries(&random_splits(&wav, 3000, 11)),
        None,
    )
    .await;
    let id = session_id(&out);
    assert_eq!(out.last_text()["reason"], "complete");
    assert_eq!(out.close, Some(1000));
    assert!(acks(&out).is_empty(), "acks=false sends no acks");
    let live = out.patched_flac();
    assert_exact(&live, &samples, 2, 16, 2048);
    let body = wait_for_status(service.addr, &id, "closed").await;
    assert_eq!(body["format"], "wav");
    assert_eq!(body["sample_rate"], 22_050);
    let (_, stored) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_eq!(live, stored);

    // record=false keeps no file.
    let pcm = pcm_bytes(&test_signal(1_000, 1, 8, 12), 8);
    let mut messages = binaries(&[&pcm]);
    messages.push(close_session());
    let path = "/api/ws/audio?sample_rate=8000&channels=1&format=u8&record=false";
    let out = exchange_at(service.addr, path, messages, None).await;
    let id = session_id(&out);
    assert_eq!(out.last_text()["samples"], 1_000);
    wait_for_status(service.addr, &id, "closed").await;
    let (status, body) = http_json(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_recording")));
    service.drain().await;
}

#[actix_rt::test]
async fn a_producer_taking_over_mid_message_continues_a_wav_without_loss() {
    use flacstream_codec::fixture::{wav_bytes, WavSpec};
    let service = start(&[]);
    // 20 s of stereo CD audio with a declared length: the session ends by
    // itself once every declared byte has arrived.
    let samples = test_signal(882_000, 2, 16, 13);
    let wav = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &pcm_bytes(&samples, 16));
    let url = format!("ws://{}/api/ws/audio?format=wav", service.addr);
    let (first, _, id) = connect_session(&url).await;
    let (mut tx, mut rx) = first.split();
    // Half the file in large messages, sent faster than it can be staged.
    for piece in wav[..wav.len() / 2].chunks(512 * 1024) {
        tx.send(Message::binary(piece.to_vec())).await.unwrap();
    }
    // Once the first message is acknowledged the next ones are being staged.
    let Some(Ok(Message::Text(ack))) = rx.next().await else {
        panic!()
    };
    assert!(ack.contains("\"ack\""), "{ack}");

    // A second producer takes over while the first is still being staged.
    let join = format!("ws://{}/api/ws/audio/{id}?acks=false", service.addr);
    let (second, hello, _) = connect_session(&join).await;
    let (mut tx2, mut rx2) = second.split();
    let from = hello["samples_received"].as_u64().unwrap() as usize;
    assert!(from > 0 && from < 882_000, "{hello}");
    let send = async {
        for piece in wav[44 + from * 4..].chunks(256 * 1024) {
            if tx2.send(Message::binary(piece.to_vec())).await.is_err() {
                break;
            }
        }
        tx2
    };
    let receive = async {
        let mut done = None;
        while let Some(Ok(m)) = rx2.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "done" {
                    done = Some(v);
                }
            }
        }
        done
    };
    let (_tx2, done) = tokio::join!(send, receive);
    let done = done.expect("a done message");
    assert_eq!(done["reason"], "complete");
    assert_eq!(done["samples"], 882_000);
    drop((tx, rx));
    wait_for_status(service.addr, &id, "closed").await;
    let (_, flac) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_exact(&flac, &samples, 2, 16, 4096);
    service.drain().await;
}

/// A drain ends a recorded session that is still receiving audio: its
/// producer must get the `done` message (reason `going_away`) and close 1001,
/// not a bare close, however its last messages cross the finalization. (In
/// scaled mode: `session_moved` and 1001, a handover.)
#[actix_rt::test]
async fn a_producer_still_sending_when_the_server_drains_gets_done_and_1001() {
    for round in 0..5 {
        let service = start(&[]);
        let url = format!(
            "ws://{}/api/ws/audio?format=s16le&sample_rate=16000&channels=1&acks=false",
            service.addr
        );
        let (ws, _hello, id) = connect_session(&url).await;
        let (mut tx, mut rx) = ws.split();
        // Small chunks back to back until the server stops taking them, so
        // some arrive while the session is being finalized.
        actix_rt::spawn(async move {
            let chunk = pcm_bytes(&test_signal(32, 1, 16, round), 16);
            while tx.send(Message::binary(chunk.clone())).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let read = async {
            let (mut last_text, mut close) = (None, None);
            while let Some(message) = rx.next().await {
                match message {
                    Ok(Message::Text(text)) => last_text = Some(text.to_string()),
                    Ok(Message::Close(frame)) => {
                        close = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            (last_text, close)
        };
        let drain = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            service.drain().await;
        };
        let ((last_text, close), ()) = tokio::join!(read, drain);
        let last: Value =
            serde_json::from_str(last_text.as_deref().unwrap_or("null")).expect("JSON");
        if crate::common::scaled_flags_in_use() {
            // Scaled mode hands the session over instead: the producer is
            // told to resume elsewhere (docs/protocol.md, section 6).
            assert_eq!(
                last["code"], "session_moved",
                "round {round}, session {id}: {last}"
            );
        } else {
            assert_eq!(last["type"], "done", "round {round}, session {id}: {last}");
            assert_eq!(last["reason"], "going_away", "round {round}: {last}");
        }
        assert_eq!(close, Some(1001), "round {round}");
    }
}
