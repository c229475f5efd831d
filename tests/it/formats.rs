//! Audio other than WAV through `POST /convert` and `POST /upload`: each
//! container and codec made at test time from generated PCM with Debian's
//! encoders (`fixture::encoded`; a missing tool prints SKIPPED), the FLAC
//! decoded by claxon (and `flac -t` where installed). Lossless sources come
//! back sample for sample; lossy ones as ffmpeg decodes them (the gapless
//! sample count, and at least 110 dB SNR at 24 bits).

use std::path::Path;

use crate::common::{assert_exact, http, http_json, http_send, multipart, start, HttpAnswer};
use flacstream_codec::fixture::encoded::{
    ffmpeg_decode, have, lossy_signal, opusdec_decode, snr_db, Encoding, Scratch,
};
use flacstream_codec::fixture::{test_signal, WavSpec};

/// Least SNR of a lossy source's FLAC against ffmpeg's decode (measured
/// 124.7–136.3 dB; codec/tests/media.rs).
const MIN_SNR_DB: f64 = 110.0;

async fn convert(addr: std::net::SocketAddr, path: &Path) -> HttpAnswer {
    let body = std::fs::read(path).unwrap();
    http_send(addr, "POST", "/convert", "application/octet-stream", &body).await
}

/// claxon's decode: bits per sample, channels and the samples.
fn claxon_decode(flac: &[u8]) -> (u32, u32, Vec<i32>) {
    let mut reader = claxon::FlacReader::new(flac).expect("claxon reads the FLAC");
    let info = reader.streaminfo();
    let samples: Vec<i32> = reader.samples().map(|s| s.expect("decodes")).collect();
    assert_eq!(
        info.samples,
        Some(samples.len() as u64 / u64::from(info.channels)),
        "STREAMINFO total samples"
    );
    (info.bits_per_sample, info.channels, samples)
}

/// `flac -t` on the FLAC, where libFLAC's tool is installed.
fn flac_test(flac: &[u8], dir: &Scratch, name: &str) {
    if !have("flac") {
        return;
    }
    let path = dir.path(&format!("{name}.out.flac"));
    std::fs::write(&path, flac).unwrap();
    let out = std::process::Command::new("flac")
        .args(["-t", "--silent"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: flac -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_source(answer: &HttpAnswer, codec: &str, lossless: bool, name: &str) {
    assert_eq!(
        answer.status,
        200,
        "{name}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.header("flacstream-source-codec"),
        Some(codec),
        "{name}"
    );
    let lossless = if lossless { "true" } else { "false" };
    assert_eq!(
        answer.header("flacstream-lossless"),
        Some(lossless),
        "{name}"
    );
}

#[actix_rt::test]
async fn lossless_sources_convert_to_exactly_their_samples() {
    let service = start(&[]);
    let dir = Scratch::new("it-formats-lossless");
    for (channels, rate, bits) in [(2u16, 44_100u32, 16u16), (1, 96_000, 24)] {
        let samples = test_signal(40_000, channels, bits, u64::from(bits));
        let wav = dir.wav(
            &format!("src-{bits}.wav"),
            &samples,
            &WavSpec::pcm(channels, rate, bits),
        );
        let block = flacstream_codec::flac::default_block_size(rate);
        for (encoding, codec) in [
            (Encoding::Flac, "flac"),
            (Encoding::OggFlac, "flac"),
            (Encoding::AlacM4a, "alac"),
            (Encoding::AlacM4aFaststart, "alac"),
            (Encoding::Aiff, "pcm"),
            (Encoding::Caf, "pcm"),
            (Encoding::MkvFlac, "flac"),
        ] {
            let Some(path) = encoding.make(&wav, bits, &dir) else {
                continue;
            };
            let name = format!("{encoding:?} {bits}-bit");
            let answer = convert(service.addr, &path).await;
            assert_source(&answer, codec, true, &name);
            assert_exact(&answer.body, &samples, usize::from(channels), bits, block);
            flac_test(&answer.body, &dir, &name);
        }
    }
    service.drain().await;
}

#[actix_rt::test]
async fn g711_converts_to_its_16_bit_expansion() {
    let service = start(&[]);
    let dir = Scratch::new("it-formats-g711");
    let samples = test_signal(24_000, 1, 16, 11);
    let wav = dir.wav("src.wav", &samples, &WavSpec::pcm(1, 8_000, 16));
    for (encoding, codec) in [(Encoding::AlawWav, "alaw"), (Encoding::MulawWav, "mulaw")] {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            return;
        };
        let expanded: Vec<i32> = ffmpeg_decode(&path)
            .iter()
            .map(|f| (f * 32_768.0).round() as i32)
            .collect();
        let answer = convert(service.addr, &path).await;
        assert_source(&answer, codec, true, codec);
        assert_exact(&answer.body, &expanded, 1, 16, 4096);
    }
    service.drain().await;
}

#[actix_rt::test]
async fn lossy_sources_convert_to_their_gapless_decode() {
    const FRAMES: usize = 100_000;
    let service = start(&[]);
    let dir = Scratch::new("it-formats-lossy");
    let wav = dir.wav(
        "src.wav",
        &lossy_signal(FRAMES),
        &WavSpec::pcm(2, 44_100, 16),
    );
    for (encoding, codec) in [
        (Encoding::Mp3, "mp3"),
        (Encoding::AacM4a, "aac"),
        (Encoding::OggVorbis, "vorbis"),
    ] {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            continue;
        };
        let name = format!("{encoding:?}");
        let answer = convert(service.addr, &path).await;
        assert_source(&answer, codec, false, &name);
        let (bits, channels, got) = claxon_decode(&answer.body);
        assert_eq!((bits, channels), (24, 2), "{name}");
        assert_eq!(got.len() / 2, FRAMES, "{name}: gapless frame count");
        let snr = snr_db(&got, 24, &ffmpeg_decode(&path));
        assert!(snr >= MIN_SNR_DB, "{name}: SNR {snr:.1} dB against ffmpeg");
        flac_test(&answer.body, &dir, &name);
    }
    service.drain().await;
}

#[actix_rt::test]
async fn opus_converts_to_libopus_decode() {
    const FRAMES: usize = 96_000;
    let service = start(&[]);
    let dir = Scratch::new("it-formats-opus");
    let wav = dir.wav(
        "src.wav",
        &lossy_signal(FRAMES),
        &WavSpec::pcm(2, 48_000, 16),
    );
    for encoding in [Encoding::OggOpus, Encoding::WebmOpus] {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            continue;
        };
        let Some(reference) = opusdec_decode(&path, &dir) else {
            return;
        };
        let name = format!("{encoding:?}");
        let answer = convert(service.addr, &path).await;
        assert_source(&answer, "opus", false, &name);
        let (bits, channels, got) = claxon_decode(&answer.body);
        assert_eq!((bits, channels), (24, 2), "{name}");
        assert_eq!(
            got.len(),
            reference.len(),
            "{name}: frames as libopus gives them"
        );
        let snr = snr_db(&got, 24, &reference);
        assert!(snr >= MIN_SNR_DB, "{name}: SNR {snr:.1} dB against libopus");
        flac_test(&answer.body, &dir, &name);
    }
    service.drain().await;
}

#[actix_rt::test]
async fn an_uploaded_m4a_is_stored_with_its_codec() {
    const FRAMES: usize = 60_000;
    let service = start(&[]);
    let dir = Scratch::new("it-formats-upload");
    let wav = dir.wav(
        "src.wav",
        &lossy_signal(FRAMES),
        &WavSpec::pcm(2, 44_100, 16),
    );
    let Some(m4a) = Encoding::AacM4a.make(&wav, 16, &dir) else {
        return;
    };
    let (content_type, body) = multipart("file", "phrase.m4a", &std::fs::read(&m4a).unwrap());
    let answer = http_send(
        service.addr,
        "POST",
        "/upload?user_id=u1",
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
    let uploaded = answer.json();
    assert_eq!(uploaded["source_codec"], "aac");
    assert_eq!(uploaded["lossless"], false);
    assert_eq!(uploaded["samples"], FRAMES);
    let id = uploaded["session_id"].as_str().unwrap().to_string();
    let (status, session) =
        http_json(service.addr, "GET", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(session["format"], "mp4/aac");
    assert_eq!(session["source_codec"], "aac");
    assert_eq!(session["lossless"], false);
    assert_eq!(session["bits_per_sample"], 24);
    let (status, flac) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/audio"),
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, got) = claxon_decode(&flac);
    assert_eq!(got.len() / 2, FRAMES);
    let snr = snr_db(&got, 24, &ffmpeg_decode(&m4a));
    assert!(snr >= MIN_SNR_DB, "SNR {snr:.1} dB against ffmpeg");

    // The original comes back byte for byte, named and typed as an M4A,
    // and goes with the session.
    assert_eq!(
        uploaded["links"]["original"],
        format!("/api/audio/sessions/{id}/original")
    );
    let original = http_send(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/original"),
        "text/plain",
        b"",
    )
    .await;
    assert_eq!(original.status, 200);
    assert_eq!(original.header("content-type"), Some("audio/mp4"));
    assert!(original
        .header("content-disposition")
        .is_some_and(|d| d.contains(&format!("{id}.m4a"))));
    assert!(
        original.body == std::fs::read(&m4a).unwrap(),
        "the original's bytes"
    );
    let (status, _) = http(service.addr, "DELETE", &format!("/api/audio/sessions/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = http(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/original"),
    )
    .await;
    assert_eq!(status, 404);

    // A FLAC upload is lossless and says so.
    let samples = test_signal(20_000, 2, 16, 5);
    let src = dir.wav("exact.wav", &samples, &WavSpec::pcm(2, 44_100, 16));
    if let Some(flac) = Encoding::Flac.make(&src, 16, &dir) {
        let body = std::fs::read(&flac).unwrap();
        let answer = http_send(service.addr, "POST", "/upload", "audio/flac", &body).await;
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json()["lossless"], true);
        let id = answer.json()["session_id"].as_str().unwrap().to_string();
        let (_, stored) = http(
            service.addr,
            "GET",
            &format!("/api/audio/sessions/{id}/audio"),
        )
        .await;
        assert_exact(&stored, &samples, 2, 16, 4096);
        let (status, original) = http(
            service.addr,
            "GET",
            &format!("/api/audio/sessions/{id}/original"),
        )
        .await;
        assert_eq!((status, original == body), (200, true));
    }
    service.drain().await;
}

#[actix_rt::test]
async fn originals_are_not_kept_when_turned_off() {
    let service = start(&["--keep-originals", "false"]);
    let samples = test_signal(8_000, 1, 16, 2);
    let wav = flacstream_codec::fixture::wav_bytes(
        &WavSpec::pcm(1, 16_000, 16),
        &flacstream_codec::fixture::pcm_bytes(&samples, 16),
    );
    let answer = http_send(service.addr, "POST", "/upload", "audio/wav", &wav).await;
    assert_eq!(answer.status, 201);
    assert!(answer.json()["links"].get("original").is_none());
    let id = answer.json()["session_id"].as_str().unwrap().to_string();
    let (status, body) = http_json(
        service.addr,
        "GET",
        &format!("/api/audio/sessions/{id}/original"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_original")));
    service.drain().await;
}

#[actix_rt::test]
async fn undecodable_uploads_get_a_code_before_any_flac() {
    let service = start(&["--max-session-seconds", "1"]);
    let dir = Scratch::new("it-formats-bad");
    let mut cases: Vec<(String, Vec<u8>, u16, &str)> = vec![(
        "garbage".into(),
        b"definitely not audio, not even close".to_vec(),
        415,
        "unrecognized_format",
    )];
    if have("ffmpeg") {
        let wav = dir.wav(
            "src.wav",
            &lossy_signal(88_200),
            &WavSpec::pcm(2, 44_100, 16),
        );
        let float = dir.path("float.aiff");
        let video = dir.path("video.mp4");
        for (args, out) in [
            (
                vec!["-i", wav.to_str().unwrap(), "-c:a", "pcm_f32be"],
                &float,
            ),
            (
                vec![
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=duration=1:size=64x64:rate=10",
                    "-c:v",
                    "mpeg4",
                ],
                &video,
            ),
        ] {
            let status = std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y"])
                .args(&args)
                .arg(out)
                .status()
                .unwrap();
            assert!(status.success());
        }
        cases.push((
            "float".into(),
            std::fs::read(&float).unwrap(),
            415,
            "float_pcm",
        ));
        cases.push((
            "video".into(),
            std::fs::read(&video).unwrap(),
            415,
            "no_audio_track",
        ));
        if let Some(flac) = Encoding::Flac.make(&wav, 16, &dir) {
            let bytes = std::fs::read(&flac).unwrap();
            cases.push((
                "truncated".into(),
                bytes[..bytes.len() / 2].to_vec(),
                400,
                "",
            ));
            // Two seconds of audio against a one-second session bound.
            cases.push(("too long".into(), bytes, 413, "audio_too_long"));
        }
    }
    for (name, body, status, code) in cases {
        let answer = http_send(
            service.addr,
            "POST",
            "/convert",
            "application/octet-stream",
            &body,
        )
        .await;
        assert_eq!(
            answer.status,
            status,
            "{name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let json = answer.json();
        if code.is_empty() {
            let code = json["code"].as_str().unwrap();
            assert!(
                ["truncated_audio", "corrupt_audio"].contains(&code),
                "{name}: {json}"
            );
        } else {
            assert_eq!(json["code"], code, "{name}: {json}");
        }
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    service.drain().await;
}

#[actix_rt::test]
async fn g711_sessions_record_their_expansion_under_any_split() {
    use flacstream_codec::fixture::random_splits;
    use flacstream_codec::g711::Law;
    use tokio_tungstenite::tungstenite::Message;
    let service = start(&[]);
    // Every code, several times over, in a pseudo-random order.
    let codes: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (format, law, channels) in [("mulaw", Law::Mulaw, 1usize), ("alaw", Law::Alaw, 2)] {
        let path = format!(
            "/api/ws/audio?format={format}&sample_rate=8000&channels={channels}&acks=false&output=flac"
        );
        let mut messages: Vec<Message> = random_splits(&codes, 997, 7)
            .into_iter()
            .map(|p| Message::binary(p.to_vec()))
            .collect();
        messages.push(Message::text(
            r#"{"type":"control","action":"close_session"}"#,
        ));
        let out = crate::common::exchange_at(service.addr, &path, messages, None).await;
        let done = out.last_text();
        assert_eq!(done["type"], "done", "{done}");
        assert_eq!(done["source_codec"], format);
        assert_eq!(done["lossless"], true);
        assert_eq!(done["bits_per_sample"], 16);
        let expanded: Vec<i32> = codes
            .iter()
            .map(|c| i32::from(law.expand_one(*c)))
            .collect();
        assert_exact(&out.patched_flac(), &expanded, channels, 16, 4096);
        let id = done["session_id"].as_str().unwrap();
        let (status, session) =
            http_json(service.addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            (session["format"].as_str(), session["lossless"].as_bool()),
            (Some(format), Some(true))
        );
    }
    service.drain().await;
}

#[actix_rt::test]
async fn float_pcm_is_refused_unless_its_rounding_is_asked_for() {
    use flacstream_codec::fixture::{fmt_body, wav_with_fmt};
    let service = start(&[]);
    // Whole steps of 2^-23 and 2^-15, full scale at both ends, and values
    // between steps.
    let floats: Vec<f32> = (0..20_000)
        .map(|i| match i % 5 {
            0 => 1.0,
            1 => -1.0,
            2 => (i as f32 * 0.01).sin() * 0.5,
            3 => 0.25 + 1.0 / 8_388_608.0,
            _ => -0.123_456_7,
        })
        .collect();
    let spec = WavSpec::pcm(2, 48_000, 16);
    let mut fmt = fmt_body(&spec);
    fmt[0] = 3; // WAVE_FORMAT_IEEE_FLOAT
    fmt[14] = 32; // bits per sample
    fmt[12] = 8; // block align: 2 channels × 4 bytes
    fmt[8..12].copy_from_slice(&(48_000u32 * 8).to_le_bytes());
    let data: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    let wav = wav_with_fmt(&spec, &fmt, &data);

    let refused = http_send(service.addr, "POST", "/convert", "audio/wav", &wav).await;
    assert_eq!(
        (refused.status, refused.json()["code"].as_str()),
        (415, Some("unsupported_format"))
    );
    let bad = http_send(
        service.addr,
        "POST",
        "/convert?float_to=20",
        "audio/wav",
        &wav,
    )
    .await;
    assert_eq!(
        (bad.status, bad.json()["code"].as_str()),
        (400, Some("bad_parameter"))
    );

    for (bits, scale) in [(24u32, 8_388_608.0f64), (16, 32_768.0)] {
        let answer = http_send(
            service.addr,
            "POST",
            &format!("/convert?float_to={bits}"),
            "audio/wav",
            &wav,
        )
        .await;
        assert_source(&answer, "pcm_float", false, &format!("float to {bits}"));
        let expected: Vec<i32> = floats
            .iter()
            .map(|f| (f64::from(*f) * scale).round().clamp(-scale, scale - 1.0) as i32)
            .collect();
        assert_exact(&answer.body, &expected, 2, bits as u16, 4096);
    }
    service.drain().await;
}

#[actix_rt::test]
async fn stream_decodes_other_containers_as_they_arrive() {
    use flacstream_codec::fixture::random_splits;
    const FRAMES: usize = 40_000;
    let service = start(&[]);
    let dir = Scratch::new("it-formats-stream");
    // Lossless: FLAC (native and in Ogg) and AIFF, exact under any split.
    let samples = test_signal(FRAMES, 2, 16, 21);
    let wav = dir.wav("exact.wav", &samples, &WavSpec::pcm(2, 44_100, 16));
    for (encoding, codec) in [
        (Encoding::Flac, "flac"),
        (Encoding::OggFlac, "flac"),
        (Encoding::Aiff, "pcm"),
        (Encoding::MkvFlac, "flac"),
    ] {
        let Some(path) = encoding.make(&wav, 16, &dir) else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        for seed in [1, 2] {
            let pieces = random_splits(&bytes, 3000, seed);
            let out = crate::common::stream(service.addr, "", &pieces, true).await;
            let done = out.last_text();
            assert_eq!(done["type"], "done", "{encoding:?}: {done}");
            assert_eq!(
                (done["source_codec"].as_str(), done["lossless"].as_bool()),
                (Some(codec), Some(true))
            );
            assert_eq!(out.close, Some(1000));
            assert_exact(&out.patched_flac(), &samples, 2, 16, 4096);
        }
    }
    // Lossy: MP3, Ogg Vorbis, WebM Vorbis, Ogg and WebM Opus, as their
    // decode (the same as /convert's, which the tests above compare with
    // ffmpeg's and libopus's).
    let music = dir.wav(
        "music.wav",
        &lossy_signal(FRAMES),
        &WavSpec::pcm(2, 48_000, 16),
    );
    for (encoding, codec) in [
        (Encoding::Mp3, "mp3"),
        (Encoding::OggVorbis, "vorbis"),
        (Encoding::WebmVorbis, "vorbis"),
        (Encoding::OggOpus, "opus"),
        (Encoding::WebmOpus, "opus"),
        (Encoding::AacAdts, "aac"),
    ] {
        let Some(path) = encoding.make(&music, 16, &dir) else {
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let whole = convert(service.addr, &path).await;
        assert_source(&whole, codec, false, &format!("{encoding:?}"));
        let pieces = random_splits(&bytes, 2000, 9);
        let out = crate::common::stream(service.addr, "", &pieces, true).await;
        let done = out.last_text();
        assert_eq!(done["type"], "done", "{encoding:?}: {done}");
        assert_eq!(
            (done["source_codec"].as_str(), done["lossless"].as_bool()),
            (Some(codec), Some(false))
        );
        // The same PCM as the whole file's conversion, sample for sample.
        let (_, _, streamed) = claxon_decode(&out.patched_flac());
        let (_, _, converted) = claxon_decode(&whole.body);
        assert!(
            streamed == converted,
            "{encoding:?}: streamed and converted decodes differ"
        );
    }
    // An M4A cannot be decoded as it arrives; garbage is no container.
    if let Some(m4a) = Encoding::AacM4a.make(&music, 16, &dir) {
        let bytes = std::fs::read(&m4a).unwrap();
        let out = crate::common::stream(service.addr, "", &[&bytes], true).await;
        assert_eq!(out.error_code(), "needs_seeking");
        assert_eq!(out.close, Some(1003));
        assert!(out.flac.is_empty(), "no FLAC before the error");
    }
    service.drain().await;
}
