//! The user/phrase API (`/audio/user/{user_id}/phrase/{phrase_id}`): store,
//! fetch as FLAC, original and M4A, replace, list and delete a user's
//! phrase recordings, against a real server.

use crate::common::{assert_exact, http, http_json, http_send, multipart, start, HttpAnswer};
use flacstream_codec::fixture::encoded::{lossy_signal, Encoding, Scratch};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};

async fn get(addr: std::net::SocketAddr, path: &str) -> HttpAnswer {
    http_send(addr, "GET", path, "text/plain", b"").await
}

#[actix_rt::test]
async fn a_phrase_is_stored_fetched_replaced_listed_and_deleted() {
    let service = start(&[]);
    let dir = Scratch::new("it-phrases");
    let base = "/audio/user/u-7/phrase/hello-world";

    // An M4A phrase, as Phonon's clients send it.
    let music = dir.wav(
        "src.wav",
        &lossy_signal(48_000),
        &WavSpec::pcm(2, 44_100, 16),
    );
    let m4a = Encoding::AacM4a.make(&music, 16, &dir);
    if let Some(m4a) = &m4a {
        let bytes = std::fs::read(m4a).unwrap();
        let (content_type, body) = multipart("audio_file", "hello.m4a", &bytes);
        let answer = http_send(service.addr, "POST", base, &content_type, &body).await;
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.header("location"), Some(base));
        let phrase = answer.json();
        assert_eq!(
            (phrase["user_id"].as_str(), phrase["phrase_id"].as_str()),
            (Some("u-7"), Some("hello-world"))
        );
        assert_eq!(phrase["session"]["source_codec"], "aac");
        assert_eq!(phrase["session"]["user_id"], "u-7");
        assert_eq!(phrase["links"]["flac"], format!("{base}/flac"));
        let first = phrase["session"]["session_id"]
            .as_str()
            .unwrap()
            .to_string();

        let (status, json) = http_json(service.addr, "GET", base).await;
        assert_eq!(
            (status, json["session"]["session_id"].as_str()),
            (200, Some(first.as_str()))
        );
        let original = get(service.addr, &format!("{base}/m4a")).await;
        assert_eq!(original.status, 200);
        assert_eq!(original.header("content-type"), Some("audio/mp4"));
        assert!(original.body == bytes, "the M4A comes back as it was sent");
        let flac = get(service.addr, &format!("{base}/flac")).await;
        assert_eq!(flac.status, 200);
        let reader = claxon::FlacReader::new(&flac.body[..]).unwrap();
        assert_eq!(reader.streaminfo().samples, Some(48_000));

        // A re-upload (a WAV now, as the raw body) replaces it.
        let samples = test_signal(16_000, 1, 16, 3);
        let wav = wav_bytes(&WavSpec::pcm(1, 16_000, 16), &pcm_bytes(&samples, 16));
        let answer = http_send(service.addr, "POST", base, "audio/wav", &wav).await;
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let second = answer.json()["session"]["session_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(first, second);
        let (status, _) = http(service.addr, "GET", &format!("/api/audio/sessions/{first}")).await;
        assert_eq!(status, 404, "the replaced recording is deleted");
        let flac = get(service.addr, &format!("{base}/flac")).await;
        assert_exact(&flac.body, &samples, 1, 16, 1024);
        let (status, json) = http_json(service.addr, "GET", &format!("{base}/m4a")).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (406, Some("format_unavailable"))
        );
        let original = get(service.addr, &format!("{base}/original")).await;
        assert_eq!((original.status, original.body == wav), (200, true));
    }

    // A second phrase, and the list.
    let samples = test_signal(8_000, 1, 16, 4);
    let wav = wav_bytes(&WavSpec::pcm(1, 8_000, 16), &pcm_bytes(&samples, 16));
    let (content_type, body) = multipart("audio_file", "bye.wav", &wav);
    let answer = http_send(
        service.addr,
        "POST",
        "/audio/user/u-7/phrase/bye",
        &content_type,
        &body,
    )
    .await;
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let (status, list) = http_json(service.addr, "GET", "/audio/user/u-7/phrases").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["phrases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phrase_id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = if m4a.is_some() {
        vec!["bye", "hello-world"]
    } else {
        vec!["bye"]
    };
    assert_eq!(names, expected);
    let (status, other) = http_json(service.addr, "GET", "/audio/user/someone-else/phrases").await;
    assert_eq!(
        (status, other["phrases"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // Delete: the phrase and its session are gone.
    let session = answer.json()["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = http(service.addr, "DELETE", "/audio/user/u-7/phrase/bye").await;
    assert_eq!(status, 204);
    let (status, json) = http_json(service.addr, "GET", "/audio/user/u-7/phrase/bye").await;
    assert_eq!(
        (status, json["code"].as_str()),
        (404, Some("phrase_not_found"))
    );
    let (status, _) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{session}"),
    )
    .await;
    assert_eq!(status, 404);

    // A phrase whose session is deleted through the sessions API loses
    // its name too: no listing of a recording that is gone.
    let answer = http_send(
        service.addr,
        "POST",
        "/audio/user/u-7/phrase/gone",
        "audio/wav",
        &wav,
    )
    .await;
    assert_eq!(answer.status, 201);
    let session = answer.json()["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = http(
        service.addr,
        "DELETE",
        &format!("/api/audio/sessions/{session}"),
    )
    .await;
    assert_eq!(status, 204);
    let (status, json) = http_json(service.addr, "GET", "/audio/user/u-7/phrase/gone").await;
    assert_eq!(
        (status, json["code"].as_str()),
        (404, Some("phrase_not_found"))
    );
    let (_, list) = http_json(service.addr, "GET", "/audio/user/u-7/phrases").await;
    assert!(
        !list["phrases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["phrase_id"] == "gone"),
        "{list}"
    );

    // A form without `audio_file`.
    let (content_type, body) = multipart("file", "x.wav", &wav);
    let answer = http_send(
        service.addr,
        "POST",
        "/audio/user/u-7/phrase/x",
        &content_type,
        &body,
    )
    .await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (400, Some("missing_file"))
    );
    let (status, _) = http_json(service.addr, "GET", "/audio/user/u-7/phrase/x").await;
    assert_eq!(status, 404, "a refused upload names nothing");
    service.drain().await;
}
