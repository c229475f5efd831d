//! Chunk metadata and session analysis on recorded sessions: every chunk's
//! numbers against the test's own computation (sha256 exact, sample counts
//! exact, peak and RMS within 0.01 dB), live (`metadata=chunk`) and stored
//! (`GET /api/chunks/{id}`, the session's pages); loudness and true peak
//! against ffmpeg's `ebur128` filter (0.1 LU, 0.2 dB; loudness range 1 LU) and silences against
//! its `silencedetect` (50 ms), on speech made by espeak-ng and on music.
//! A missing tool prints SKIPPED.

use std::process::Command;
use std::time::Duration;

use crate::common::{connect_session, http_json, http_send, start, Ws};
use flacstream_codec::fixture::encoded::{have, lossy_signal, Scratch};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

/// The next text message, within 20 s.
async fn next_text(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(_))) => {}
            other => panic!("no text message: {other:?}"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dbfs(v: f64, bits: u32) -> f64 {
    20.0 * (v / f64::from(1u32 << (bits - 1))).log10()
}

#[actix_rt::test]
async fn every_chunk_is_measured_live_and_stored() {
    let service = start(&[]);
    let channels = 2usize;
    let samples = test_signal(40_000, 2, 16, 31);
    let pcm = pcm_bytes(&samples, 16);
    let url = format!(
        "ws://{}/api/ws/audio?format=s16le&sample_rate=16000&channels=2&metadata=chunk&user_id=ann",
        service.addr
    );
    let (mut ws, _, id) = connect_session(&url).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let (mut at, mut acks, mut live) = (0usize, Vec::new(), Vec::new());
    let mut pieces = Vec::new();
    while at < pcm.len() {
        let n = rng.random_range(1..=9_000).min(pcm.len() - at);
        pieces.push(pcm[at..at + n].to_vec());
        ws.send(Message::binary(pcm[at..at + n].to_vec()))
            .await
            .unwrap();
        at += n;
        loop {
            let m = next_text(&mut ws).await;
            match m["type"].as_str() {
                Some("ack") => {
                    acks.push(m);
                    break;
                }
                Some("chunk") => live.push(m),
                _ => panic!("{m}"),
            }
        }
    }
    ws.send(Message::text(
        r#"{"type":"control","action":"close_session"}"#,
    ))
    .await
    .unwrap();
    loop {
        let m = next_text(&mut ws).await;
        match m["type"].as_str() {
            Some("chunk") => live.push(m),
            Some("done") => break,
            _ => {}
        }
    }
    assert_eq!(live.len(), pieces.len(), "one live message per chunk");
    // The test's own numbers: whole frames completed by each chunk.
    let frame_bytes = 2 * channels;
    let mut done_bytes = 0usize;
    for (i, (piece, chunk)) in pieces.iter().zip(&live).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(acks[i]["chunk_id"], format!("{id}.{seq}"));
        assert_eq!(chunk["chunk_id"], format!("{id}.{seq}"));
        assert_eq!(chunk["user_id"], "ann");
        assert_eq!(chunk["sha256"], hex(&Sha256::digest(piece)));
        assert_eq!(chunk["bytes"], piece.len());
        let start = done_bytes / frame_bytes;
        done_bytes += piece.len();
        let end = done_bytes / frame_bytes;
        assert_eq!(
            (chunk["start_sample"].as_u64(), chunk["samples"].as_u64()),
            (Some(start as u64), Some((end - start) as u64)),
            "{chunk}"
        );
        if end == start {
            continue;
        }
        for c in 0..channels {
            let values: Vec<f64> = samples[start * channels..end * channels]
                .iter()
                .skip(c)
                .step_by(channels)
                .map(|&s| f64::from(s))
                .collect();
            let peak = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let rms = (values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64).sqrt();
            let got = &chunk["channels"][c];
            assert!((got["peak_dbfs"].as_f64().unwrap() - dbfs(peak, 16)).abs() < 0.01);
            assert!((got["rms_dbfs"].as_f64().unwrap() - dbfs(rms, 16)).abs() < 0.01);
        }
    }
    // Stored: each by its id, and the session's pages.
    let (status, one) = http_json(service.addr, "GET", &format!("/api/chunks/{id}.3")).await;
    assert_eq!(status, 200);
    let mut expected = live[2].clone();
    expected.as_object_mut().unwrap().remove("type");
    assert_eq!(one, expected);
    let (mut after, mut stored) = (0u64, 0usize);
    loop {
        let (status, page) = http_json(
            service.addr,
            "GET",
            &format!("/api/audio/sessions/{id}/chunks?after={after}&limit=7"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        stored += page["chunks"].as_array().unwrap().len();
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(stored, pieces.len());
    let (status, json) = http_json(service.addr, "GET", &format!("/api/chunks/{id}.999")).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (404, Some("chunk_not_found"))
    );
    let (status, list) = http_json(service.addr, "GET", "/api/users/ann/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"][0]["session_id"], id.as_str());
    service.drain().await;
}

/// ffmpeg's `ebur128` (integrated, LRA, true peak in dBTP, to three
/// decimals from its frame metadata: the printed summary rounds to 0.1)
/// and `silencedetect` over `path`.
fn ffmpeg_measures(
    path: &std::path::Path,
    noise_db: f64,
    min_s: f64,
) -> (f64, f64, f64, Vec<(f64, f64)>) {
    let metadata = path.with_extension("r128.txt");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args([
            "-af",
            &format!(
                "ebur128=metadata=1:peak=true,ametadata=print:file={},\
                 silencedetect=n={noise_db}dB:d={min_s}",
                metadata.display()
            ),
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let frames = std::fs::read_to_string(&metadata).expect("ebur128 metadata");
    let last = |key: &str| -> f64 {
        frames
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in the metadata"))
            .parse()
            .unwrap()
    };
    let (mut silences, mut start) = (Vec::new(), None);
    for line in log.lines() {
        if let Some(at) = line.find("silence_start: ") {
            start = line[at + 15..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok());
        }
        if let Some(at) = line.find("silence_end: ") {
            let end: f64 = line[at + 13..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            silences.push((start.take().unwrap_or(0.0), end));
        }
    }
    (
        last("lavfi.r128.I="),
        last("lavfi.r128.LRA="),
        20.0 * last("lavfi.r128.true_peak=").log10(),
        silences,
    )
}

#[actix_rt::test]
async fn loudness_and_silences_agree_with_ffmpeg_on_speech_and_music() {
    if !have("ffmpeg") {
        eprintln!("SKIPPED analysis::loudness…: ffmpeg is not installed");
        return;
    }
    let service = start(&[]);
    let dir = Scratch::new("it-analysis");
    let mut cases: Vec<(&str, std::path::PathBuf)> = Vec::new();
    // Speech: espeak-ng's voice, sentences apart by 2 s of digital silence
    // and 1.5 s of noise at −70 dBFS (silent at −60).
    if have("espeak-ng") {
        let said = dir.path("said.wav");
        let spoken = Command::new("espeak-ng")
            .args(["-w"])
            .arg(&said)
            .arg("The recording starts now. Each pause is a silence the analysis must find.")
            .status()
            .expect("espeak-ng runs");
        assert!(spoken.success());
        let mut reader = hound::WavReader::open(&said).unwrap();
        let rate = reader.spec().sample_rate;
        let voice: Vec<i32> = reader
            .samples::<i16>()
            .map(|s| i32::from(s.unwrap()))
            .collect();
        let mut noise = 777u32;
        let mut speech = voice.clone();
        speech.extend(std::iter::repeat_n(0, rate as usize * 2));
        speech.extend(&voice);
        speech.extend((0..rate as usize * 3 / 2).map(|_| {
            noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (noise >> 16) as i32 % 10 - 5
        }));
        speech.extend(&voice);
        let path = dir.path("speech.wav");
        std::fs::write(
            &path,
            wav_bytes(&WavSpec::pcm(1, rate, 16), &pcm_bytes(&speech, 16)),
        )
        .unwrap();
        cases.push(("speech", path));
    } else {
        eprintln!("SKIPPED analysis::loudness… on speech: espeak-ng is not installed");
    }
    // Music: the fixtures' stereo signal, 12 s, with 3 s of silence inside.
    let mut music = lossy_signal(48_000 * 6);
    music.extend(std::iter::repeat_n(0, 48_000 * 3 * 2));
    music.extend(lossy_signal(48_000 * 6));
    cases.push((
        "music",
        dir.wav("music.wav", &music, &WavSpec::pcm(2, 48_000, 16)),
    ));

    for (name, path) in cases {
        let bytes = std::fs::read(&path).unwrap();
        let url = format!("ws://{}/api/ws/audio?format=wav&acks=false", service.addr);
        let (mut ws, _, id) = connect_session(&url).await;
        for piece in bytes.chunks(32_768) {
            ws.send(Message::binary(piece.to_vec())).await.unwrap();
        }
        ws.send(Message::text(
            r#"{"type":"control","action":"close_session"}"#,
        ))
        .await
        .unwrap();
        loop {
            if next_text(&mut ws).await["type"] == "done" {
                break;
            }
        }
        let mut analysis = Value::Null;
        for _ in 0..100 {
            let (_, a) = http_json(
                service.addr,
                "GET",
                &format!("/api/audio/sessions/{id}/analysis"),
            )
            .await;
            if a["complete"] == true {
                analysis = a;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(analysis["complete"], true, "{name}: {analysis}");
        let (integrated, range, peak, silences) = ffmpeg_measures(&path, -60.0, 1.0);
        let l = &analysis["loudness"];
        eprintln!(
            "analysis {name}: integrated {} (ffmpeg {integrated}) LUFS, LRA {} ({range}) LU, \
             true peak {} ({peak}) dBTP, silences {} ({silences:?})",
            l["integrated_lufs"], l["loudness_range_lu"], l["true_peak_dbtp"], analysis["silences"]
        );
        assert!(
            (l["integrated_lufs"].as_f64().unwrap() - integrated).abs() <= 0.1,
            "{name}"
        );
        // Loudness range within EBU Tech 3342's tolerance, ±1 LU (measured:
        // 4.60 against 4.63 LU on the speech, 6.60 against 6.91 on the
        // music with its 3 s gap).
        assert!(
            (l["loudness_range_lu"].as_f64().unwrap() - range).abs() <= 1.0,
            "{name}"
        );
        assert!(
            (l["true_peak_dbtp"].as_f64().unwrap() - peak).abs() <= 0.2,
            "{name}"
        );
        let ours = analysis["silences"].as_array().unwrap();
        assert_eq!(
            ours.len(),
            silences.len(),
            "{name}: {ours:?} against {silences:?}"
        );
        for (s, (start, end)) in ours.iter().zip(&silences) {
            assert!(
                (s["start_ms"].as_f64().unwrap() / 1000.0 - start).abs() <= 0.05,
                "{name}"
            );
            assert!(
                (s["end_ms"].as_f64().unwrap() / 1000.0 - end).abs() <= 0.05,
                "{name}"
            );
        }
        // The session JSON carries it too.
        let (_, session) =
            http_json(service.addr, "GET", &format!("/api/audio/sessions/{id}")).await;
        assert_eq!(session["analysis"], analysis);
    }
    service.drain().await;
}

#[actix_rt::test]
async fn an_upload_is_one_chunk() {
    let service = start(&[]);
    let samples = test_signal(30_000, 2, 16, 8);
    let wav = wav_bytes(&WavSpec::pcm(2, 22_050, 16), &pcm_bytes(&samples, 16));
    let answer = http_send(service.addr, "POST", "/upload", "audio/wav", &wav).await;
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let id = answer.json()["session_id"].as_str().unwrap().to_string();
    let mut page = Value::Null;
    for _ in 0..100 {
        let (_, p) = http_json(
            service.addr,
            "GET",
            &format!("/api/audio/sessions/{id}/chunks"),
        )
        .await;
        if p["chunks"].as_array().is_some_and(|c| !c.is_empty()) {
            page = p;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let chunks = page["chunks"].as_array().expect("the upload's chunk");
    assert_eq!(chunks.len(), 1, "{page}");
    let chunk = &chunks[0];
    assert_eq!(chunk["chunk_id"], format!("{id}.1"));
    assert_eq!(chunk["bytes"], wav.len());
    assert_eq!(chunk["sha256"], hex(&Sha256::digest(&wav)));
    assert_eq!(
        (chunk["start_sample"].as_u64(), chunk["samples"].as_u64()),
        (Some(0), Some(30_000))
    );
    let peak = samples
        .iter()
        .step_by(2)
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap();
    let got = chunk["channels"][0]["peak_dbfs"].as_f64().unwrap();
    assert!((got - dbfs(f64::from(peak), 16)).abs() < 0.01);
    service.drain().await;
}
