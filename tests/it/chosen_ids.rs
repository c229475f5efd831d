//! Sessions whose client chose the id: `GET /api/ws/audio?session_id=…` and
//! `POST /upload?session_id=…` (docs/protocol.md 9.1, 11). The id must be
//! free: not held by a live session, nor by a stored one.

use std::time::Duration;

use crate::common::{self, connect_session, http_json, http_send, refused_upgrade_at};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const OPEN: &str = "/api/ws/audio?sample_rate=8000&channels=1&format=u8";

fn start() -> flacstream::service::Service {
    common::start(&["--drain-grace-seconds", "1"])
}

fn open_path(id: &str) -> String {
    format!("{OPEN}&session_id={id}")
}

/// Reads text messages until one of type `kind`.
async fn next_of(ws: &mut common::Ws, kind: &str) -> Value {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
    panic!("the connection ended before a {kind} message");
}

/// Waits until the registry holds no session, so that a refusal can only
/// come from the catalog.
async fn wait_until_no_session_is_live(addr: std::net::SocketAddr) {
    for _ in 0..100 {
        let (_, body) = http_json(addr, "GET", "/admin/drain").await;
        if body["streams"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sessions stayed live");
}

async fn assert_refused(addr: std::net::SocketAddr, path: &str, status: u16, code: &str) {
    let (got, body) = refused_upgrade_at(addr, path).await;
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path}");
}

#[actix_rt::test]
async fn a_chosen_id_names_the_session_until_it_is_deleted() {
    let service = start();
    let addr = service.addr;
    let id = Uuid::new_v4().to_string();

    let (mut producer, hello, got) =
        connect_session(&format!("ws://{addr}{}", open_path(&id))).await;
    assert_eq!(got, id);
    assert_eq!(hello["resumed"], false, "{hello}");
    producer
        .send(Message::binary(vec![128u8; 800]))
        .await
        .unwrap();
    assert_eq!(
        next_of(&mut producer, "ack").await["session_id"],
        id.as_str()
    );
    let (status, body) = http_json(addr, "GET", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("live")),
        "{body}"
    );

    // Taken while live, before any upgrade.
    assert_refused(addr, &open_path(&id), 409, "session_exists").await;

    // The producer leaves; it resumes by the same id.
    drop(producer);
    let join = format!("ws://{addr}/api/ws/audio/{id}");
    let (mut producer, hello, got) = connect_session(&join).await;
    assert_eq!(got, id);
    assert_eq!(hello["resumed"], true, "{hello}");
    assert_eq!(hello["samples_received"], 800, "{hello}");
    producer
        .send(Message::text(
            r#"{"type":"control","action":"close_session"}"#,
        ))
        .await
        .unwrap();
    let done = next_of(&mut producer, "done").await;
    assert_eq!(
        (done["session_id"].as_str(), done["samples"].as_u64()),
        (Some(id.as_str()), Some(800))
    );
    drop(producer);

    // Finished and stored: still taken, now by the catalog alone.
    wait_until_no_session_is_live(addr).await;
    assert_refused(addr, &open_path(&id), 409, "session_exists").await;

    // Deleting the session frees its id.
    let (status, _) = http_json(addr, "DELETE", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(status, 204);
    let (_ws, _, got) = connect_session(&format!("ws://{addr}{}", open_path(&id))).await;
    assert_eq!(got, id);
    service.drain().await;
}

#[actix_rt::test]
async fn malformed_or_non_random_ids_are_bad_parameters() {
    let service = start();
    let id = Uuid::new_v4();
    for bad in [
        "not-a-uuid".to_string(),
        String::new(),
        id.to_string().to_uppercase(),
        id.simple().to_string(),
        Uuid::nil().to_string(),
        // Version 1.
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8".to_string(),
    ] {
        assert_refused(service.addr, &open_path(&bad), 400, "bad_parameter").await;
        let answer = http_send(
            service.addr,
            "POST",
            &format!("/upload?session_id={bad}"),
            "audio/wav",
            &[],
        )
        .await;
        assert_eq!(answer.json()["code"], "bad_parameter", "{bad}");
        assert_eq!(answer.status, 400, "{bad}");
    }
    service.drain().await;
}

#[actix_rt::test]
async fn of_concurrent_opens_with_one_id_exactly_one_succeeds() {
    const OPENS: usize = 8;
    let service = start();
    let id = Uuid::new_v4().to_string();
    let url = format!("ws://{}{}", service.addr, open_path(&id));
    let attempts = (0..OPENS).map(|_| tokio_tungstenite::connect_async(url.as_str()));
    let results = futures_util::future::join_all(attempts).await;
    let mut opened = Vec::new();
    for result in results {
        match result {
            Ok((ws, _)) => opened.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body: Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(
                    (resp.status().as_u16(), body["code"].as_str()),
                    (409, Some("session_exists"))
                );
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(opened.len(), 1, "opens granted");
    let hello = next_of(&mut opened[0], "session").await;
    assert_eq!(hello["session_id"], id.as_str());
    service.drain().await;
}

#[actix_rt::test]
async fn an_upload_is_stored_under_its_chosen_id() {
    let service = start();
    let addr = service.addr;
    let samples = test_signal(20_000, 1, 16, 5);
    let wav = wav_bytes(&WavSpec::pcm(1, 16_000, 16), &pcm_bytes(&samples, 16));
    let id = Uuid::new_v4().to_string();
    let upload = format!("/upload?session_id={id}");

    let answer = http_send(addr, "POST", &upload, "audio/wav", &wav).await;
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["session_id"], id.as_str());
    let location = format!("/api/audio/sessions/{id}");
    assert_eq!(answer.header("location"), Some(location.as_str()));
    let (status, body) = http_json(addr, "GET", &location).await;
    assert_eq!(
        (status, body["samples"].as_u64()),
        (200, Some(20_000)),
        "{body}"
    );

    // Stored: taken for uploads and opens alike.
    let again = http_send(addr, "POST", &upload, "audio/wav", &wav).await;
    assert_eq!(
        (again.status, again.json()["code"].clone()),
        (409, "session_exists".into())
    );
    assert_refused(addr, &open_path(&id), 409, "session_exists").await;

    // A live session's id is refused before the upload is read.
    let live = Uuid::new_v4().to_string();
    let (_ws, _, _) = connect_session(&format!("ws://{addr}{}", open_path(&live))).await;
    let answer = http_send(
        addr,
        "POST",
        &format!("/upload?session_id={live}"),
        "audio/wav",
        &wav,
    )
    .await;
    assert_eq!(
        (answer.status, answer.json()["code"].clone()),
        (409, "session_exists".into())
    );
    service.drain().await;
}
