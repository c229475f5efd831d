//! `POST /convert` and `POST /upload` against a real server.

use crate::common::{self, assert_exact, http, http_send, multipart, start};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, DataSize, WavSpec};

#[actix_rt::test]
async fn a_raw_wav_body_comes_back_as_an_exact_flac_with_final_totals() {
    let service = start(&[]);
    for (spec, frames) in [
        (WavSpec::pcm(2, 44_100, 16), 100_000),
        (WavSpec::pcm(1, 8_000, 8), 9_999),
        (
            WavSpec {
                data_size: DataSize::StreamingMax,
                ..WavSpec::pcm(6, 48_000, 24)
            },
            20_000,
        ),
    ] {
        let samples = test_signal(frames, spec.channels, spec.bits, frames as u64);
        let wav = wav_bytes(&spec, &pcm_bytes(&samples, spec.bits));
        let answer = http_send(service.addr, "POST", "/convert?level=3", "audio/wav", &wav).await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.header("content-type"), Some("audio/flac"));
        assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
        assert!(answer
            .header("content-disposition")
            .unwrap()
            .contains("audio.flac"));
        // STREAMINFO is final as sent, even for a streaming-size WAV header.
        let block = flacstream_codec::flac::default_block_size(spec.sample_rate);
        assert_exact(
            &answer.body,
            &samples,
            usize::from(spec.channels),
            spec.bits,
            block,
        );
    }
    service.drain().await;
}

#[actix_rt::test]
async fn a_multipart_upload_is_converted_and_named_after_the_file() {
    let service = start(&[]);
    let samples = test_signal(30_000, 2, 24, 3);
    let wav = wav_bytes(&WavSpec::pcm(2, 96_000, 24), &pcm_bytes(&samples, 24));
    let (content_type, body) = multipart("file", "My Song (live).wav", &wav);
    let answer = http_send(service.addr, "POST", "/convert", &content_type, &body).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let disposition = answer.header("content-disposition").unwrap();
    assert!(disposition.contains("MySonglive.flac"), "{disposition}");
    assert_exact(&answer.body, &samples, 2, 24, 8192);

    let (content_type, body) = multipart("attachment", "x.wav", &wav);
    let answer = http_send(service.addr, "POST", "/convert", &content_type, &body).await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (400, Some("missing_file"))
    );
    service.drain().await;
}

#[actix_rt::test]
async fn bad_uploads_get_the_websocket_error_codes_as_http_statuses() {
    let service = start(&["--max-upload-bytes", "100000"]);
    let stereo = WavSpec::pcm(2, 44_100, 16);
    let mut float_fmt = flacstream_codec::fixture::fmt_body(&stereo);
    float_fmt[0] = 3;
    let float = flacstream_codec::fixture::wav_with_fmt(&stereo, &float_fmt, &[0; 64]);
    let big = wav_bytes(&stereo, &vec![0; 200_000]);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "garbage",
            "audio/wav",
            b"definitely not a wav".to_vec(),
            415,
            "unrecognized_format",
        ),
        ("float", "audio/wav", float, 415, "unsupported_format"),
        (
            "truncated",
            "audio/wav",
            wav_bytes(&stereo, &[])[..30].to_vec(),
            400,
            "truncated_header",
        ),
        ("too big", "audio/wav", big, 413, "upload_too_large"),
        (
            "wrong type",
            "text/plain",
            b"RIFF".to_vec(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (name, content_type, body, status, code) in cases {
        let answer = http_send(service.addr, "POST", "/convert", content_type, &body).await;
        assert_eq!(answer.status, status, "{name}");
        let json = answer.json();
        assert_eq!(json["code"], code, "{name}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let answer = http_send(service.addr, "POST", "/convert?level=12", "audio/wav", b"").await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (400, Some("bad_parameter"))
    );
    service.drain().await;
}

#[actix_rt::test]
async fn an_upload_is_stored_as_a_recorded_session() {
    let service = start(&[]);
    let samples = test_signal(50_000, 1, 16, 4);
    let wav = wav_bytes(&WavSpec::pcm(1, 16_000, 16), &pcm_bytes(&samples, 16));
    let answer = http_send(
        service.addr,
        "POST",
        "/upload?user_id=uploader",
        "audio/wav",
        &wav,
    )
    .await;
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let json = answer.json();
    assert_eq!(json["samples"], 50_000);
    let audio = json["links"]["audio"].as_str().unwrap();
    assert_eq!(answer.header("location"), json["links"]["session"].as_str());
    let (status, flac) = http(service.addr, "GET", audio).await;
    assert_eq!(status, 200);
    assert_exact(&flac, &samples, 1, 16, 1024);
    let (_, page) =
        common::http_json(service.addr, "GET", "/api/audio/sessions?user_id=uploader").await;
    assert_eq!(page["sessions"][0]["session_id"], json["session_id"]);
    assert_eq!(page["sessions"][0]["status"], "closed");
    service.drain().await;
}

#[actix_rt::test]
async fn every_multipart_byte_counts_against_the_upload_limit() {
    let service = start(&["--max-upload-bytes", "50000"]);
    let wav = wav_bytes(&WavSpec::pcm(1, 8_000, 16), &[0; 1000]);
    // A small file behind a large extra field.
    let (content_type, mut body) = multipart("file", "a.wav", &wav);
    let filler = format!(
        "--flacstream-test-boundary-7d1c\r\nContent-Disposition: form-data; name=\"pad\"\r\n\r\n{}\r\n",
        "x".repeat(60_000)
    );
    body.splice(0..0, filler.into_bytes());
    let answer = http_send(service.addr, "POST", "/convert", &content_type, &body).await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (413, Some("upload_too_large"))
    );
    service.drain().await;
}

#[actix_rt::test]
async fn a_convert_client_that_stops_reading_is_cut_off() {
    use flacstream_actors::registry::Snapshot;
    use tokio::io::AsyncWriteExt;
    let service = start(&["--outbound-stall-seconds", "1"]);
    // 24-bit noise: the FLAC is as large as the WAV, far more than socket buffers.
    let samples: Vec<i32> = test_signal(2_000_000, 2, 24, 9)
        .iter()
        .map(|s| (s ^ 0x5A5A5).clamp(-(1 << 23), (1 << 23) - 1))
        .collect();
    let wav = wav_bytes(&WavSpec::pcm(2, 48_000, 24), &pcm_bytes(&samples, 24));
    let mut socket = tokio::net::TcpStream::connect(service.addr).await.unwrap();
    let head = format!(
        "POST /convert HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\n\r\n",
        wav.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&wav).await.unwrap();
    // Never read the response. First the upload is spooled and a session
    // starts encoding; then, with nobody reading, it must be cut off.
    let mut started = false;
    for _ in 0..150 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if service.registry.send(Snapshot).await.unwrap().sessions == 1 {
            started = true;
            break;
        }
    }
    assert!(started, "the conversion never started");
    let mut sessions = usize::MAX;
    for _ in 0..150 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sessions = service.registry.send(Snapshot).await.unwrap().sessions;
        if sessions == 0 {
            break;
        }
    }
    assert_eq!(
        sessions, 0,
        "the stalled conversion still holds its session"
    );
    // And the connection itself ends: reading now drains what was queued,
    // then finds the end (or a reset), instead of hanging.
    let mut sink = vec![0u8; 1 << 20];
    let ended = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut socket, &mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server kept the stalled connection open");
    drop(socket);
    service.drain().await;
}
