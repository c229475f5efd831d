//! End-to-end tests of `/stream`: a real server on a loopback port, a real
//! WebSocket client, and claxon as the independent decoder.

use std::time::Duration;

use crate::common::{
    assert_exact, exchange, http_get, refused_upgrade, start, stream, stream_paced,
    wait_for_draining, wait_for_streams,
};
use flacstream_actors::encoder::POISON_BLOCK_PREFIX;
use flacstream_codec::fixture::{
    pcm_bytes, random_splits, test_signal, wav_bytes, DataSize, WavSpec,
};
use tokio_tungstenite::tungstenite::Message;

/// One input case: a WAV, the samples it carries, and how to stream it.
struct Case {
    name: &'static str,
    spec: WavSpec,
    samples: Vec<i32>,
    /// Extra raw bytes after the sample data (a partial sample frame).
    tail: Vec<u8>,
    /// Whether the client must send `end` (the header does not bound the data).
    needs_end: bool,
}

fn case(name: &'static str, spec: WavSpec, frames: usize, seed: u64) -> Case {
    let samples = test_signal(frames, spec.channels, spec.bits, seed);
    let needs_end = spec.data_size != DataSize::Exact;
    Case {
        name,
        spec,
        samples,
        tail: Vec::new(),
        needs_end,
    }
}

fn cases() -> Vec<Case> {
    let mut list = vec![
        case(
            "16-bit stereo 44.1k",
            WavSpec::pcm(2, 44_100, 16),
            20_000,
            1,
        ),
        case("8-bit mono 8k", WavSpec::pcm(1, 8_000, 8), 5_000, 2),
        case("24-bit stereo 96k", WavSpec::pcm(2, 96_000, 24), 20_000, 3),
        case("16-bit mono 192k", WavSpec::pcm(1, 192_000, 16), 40_000, 4),
        case("16-bit 8ch 22.05k", WavSpec::pcm(8, 22_050, 16), 3_000, 5),
        case("16-bit mono 1 Hz", WavSpec::pcm(1, 1, 16), 70, 6),
        case("empty data chunk", WavSpec::pcm(2, 44_100, 16), 0, 7),
    ];
    let mut ext = WavSpec::pcm(6, 48_000, 24);
    ext.extensible_mask = Some(0x0003_0C01); // unusual mask libFLAC's CLI refuses
    list.push(case("24-bit 6ch extensible", ext, 6_000, 8));
    let mut chunks = WavSpec::pcm(2, 32_000, 16);
    chunks.chunks_before_data = vec![
        (*b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00".to_vec()),
        (*b"JUNK", vec![0; 27]),
        (*b"fact", 1000u32.to_le_bytes().to_vec()),
        (*b"smpl", vec![9; 37]),
    ];
    chunks.chunks_after_data = vec![(*b"LIST", vec![1; 11])];
    list.push(case("extra chunks", chunks, 3_001, 9));
    for (name, size) in [
        ("streaming 0xFFFFFFFF", DataSize::StreamingMax),
        ("streaming 0", DataSize::StreamingZero),
        ("shorter than declared", DataSize::Overstated(1 << 30)),
    ] {
        let mut spec = WavSpec::pcm(2, 48_000, 16);
        spec.data_size = size;
        list.push(case(name, spec, 9_000, 10));
    }
    let mut partial = case(
        "trailing partial frame",
        WavSpec::pcm(2, 44_100, 24),
        5_000,
        11,
    );
    partial.spec.data_size = DataSize::StreamingMax;
    partial.needs_end = true;
    partial.tail = vec![1, 2, 3, 4];
    list.push(partial);
    list
}

fn wav_of(c: &Case) -> Vec<u8> {
    let mut data = pcm_bytes(&c.samples, c.spec.bits);
    data.extend_from_slice(&c.tail);
    wav_bytes(&c.spec, &data)
}

#[actix_rt::test]
async fn every_input_shape_round_trips_exactly_under_random_splits() {
    let service = start(&[]);
    for c in cases() {
        let wav = wav_of(&c);
        for (seed, max_piece) in [(1u64, 1usize), (2, 7), (3, 4096), (4, 65_536)] {
            if max_piece == 1 && wav.len() > 20_000 {
                continue; // one byte per message: keep to the small files
            }
            let pieces = random_splits(&wav, max_piece, seed);
            let out = stream(service.addr, "", &pieces, c.needs_end).await;
            assert_eq!(out.close, Some(1000), "{}: {:?}", c.name, out.texts);
            let done = out.last_text().clone();
            let channels = usize::from(c.spec.channels);
            assert_eq!(
                done["samples"],
                (c.samples.len() / channels) as u64,
                "{}",
                c.name
            );
            assert_eq!(done["dropped_bytes"], c.tail.len(), "{}", c.name);
            assert_eq!(&out.flac[..4], b"fLaC");
            let block = flacstream_codec::flac::default_block_size(c.spec.sample_rate);
            assert_exact(
                &out.patched_flac(),
                &c.samples,
                channels,
                c.spec.bits,
                block,
            );
        }
    }
    service.drain().await;
}

#[actix_rt::test]
async fn levels_and_block_sizes_are_honoured() {
    let service = start(&[]);
    let c = case("stereo", WavSpec::pcm(2, 44_100, 16), 10_000, 12);
    let wav = wav_of(&c);
    for query in [
        "level=0",
        "level=8&block_size=1152",
        "block_size=32",
        "level=3&block_size=16384",
    ] {
        let out = stream(service.addr, query, &random_splits(&wav, 9000, 5), false).await;
        assert_eq!(out.close, Some(1000), "{query}: {:?}", out.texts);
        let block = query
            .split("block_size=")
            .nth(1)
            .map_or(4096, |b| b.parse().unwrap());
        // frames = ceil(samples / block): the block size really was used.
        let frames = 10_000usize.div_ceil(block) as u64;
        assert_eq!(out.last_text()["frames"], frames, "{query}");
        assert_exact(&out.patched_flac(), &c.samples, 2, 16, block);
    }
    // The level really changes the encoding: level 8 beats level 0 on a tonal signal.
    let bytes_at = |level: u8| {
        let pieces = [wav.as_slice()];
        async move {
            let out = stream(service.addr, &format!("level={level}"), &pieces, false).await;
            out.last_text()["bytes_out"].as_u64().unwrap()
        }
    };
    let (fast, small) = (bytes_at(0).await, bytes_at(8).await);
    assert!(small < fast, "level 8 gave {small} bytes, level 0 {fast}");
    service.drain().await;
}

#[actix_rt::test]
async fn frames_come_back_while_the_client_is_still_sending() {
    let service = start(&[]);
    let c = case("long", WavSpec::pcm(2, 44_100, 16), 441_000, 13);
    let wav = wav_of(&c);
    // 20 ms messages sent at 20 times real time, like a fast live source.
    let pieces: Vec<&[u8]> = wav.chunks(3528).collect();
    let out = stream_paced(
        service.addr,
        "",
        &pieces,
        false,
        Some(Duration::from_millis(1)),
    )
    .await;
    assert_eq!(out.close, Some(1000));
    assert!(
        out.binary_before_last_send > 10,
        "only {} of {} binary messages arrived before the last send",
        out.binary_before_last_send,
        out.binary_messages
    );
    assert_exact(&out.patched_flac(), &c.samples, 2, 16, 4096);
    service.drain().await;
}

#[actix_rt::test]
async fn bad_headers_get_their_code_and_close_code_and_no_flac() {
    let service = start(&[]);
    let stereo = WavSpec::pcm(2, 44_100, 16);
    let fmt = flacstream_codec::fixture::fmt_body(&stereo);
    let with_fmt = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut f = fmt.clone();
        edit(&mut f);
        flacstream_codec::fixture::wav_with_fmt(&stereo, &f, &[0; 64])
    };
    let cases: Vec<(&str, Vec<u8>, bool, &str, u16)> = vec![
        (
            // Not a WAV's first bytes: decoded as another container, and
            // no container begins like this.
            "garbage",
            b"hello world, not a wav".to_vec(),
            true,
            "unrecognized_format",
            1003,
        ),
        (
            "riff but not wave",
            b"RIFF\x10\0\0\0AVI LIST\0\0\0\0".to_vec(),
            true,
            "not_wav",
            1007,
        ),
        (
            "float",
            with_fmt(&|f| f[0] = 3),
            false,
            "unsupported_format",
            1003,
        ),
        (
            "a-law",
            with_fmt(&|f| f[0] = 6),
            false,
            "unsupported_format",
            1003,
        ),
        (
            "32-bit",
            with_fmt(&|f| {
                f[12] = 8;
                f[14] = 32;
            }),
            false,
            "unsupported_bit_depth",
            1003,
        ),
        (
            "9 channels",
            with_fmt(&|f| {
                f[2] = 9;
                f[12] = 18;
            }),
            false,
            "too_many_channels",
            1003,
        ),
        (
            "zero channels",
            with_fmt(&|f| f[2] = 0),
            false,
            "zero_channels",
            1007,
        ),
        (
            "zero rate",
            with_fmt(&|f| f[4..8].fill(0)),
            false,
            "zero_sample_rate",
            1007,
        ),
        (
            "bad block align",
            with_fmt(&|f| f[12] = 3),
            false,
            "bad_block_align",
            1007,
        ),
        (
            "truncated",
            wav_bytes(&stereo, &[])[..30].to_vec(),
            true,
            "truncated_header",
            1007,
        ),
        (
            "data before fmt",
            b"RIFF\x24\0\0\0WAVEdata\x04\0\0\0\0\0\0\0".to_vec(),
            false,
            "data_before_fmt",
            1007,
        ),
        (
            "absurd fmt size",
            b"RIFF\xff\xff\xff\xffWAVEfmt \xf0\xff\xff\xff".to_vec(),
            false,
            "bad_fmt_size",
            1007,
        ),
    ];
    for (name, bytes, end, code, close) in cases {
        let pieces = random_splits(&bytes, 5, 1);
        let out = stream(service.addr, "", &pieces, end).await;
        assert_eq!(out.error_code(), code, "{name}");
        assert_eq!(out.close, Some(close), "{name}");
        assert_eq!(
            out.binary_messages, 0,
            "{name}: no FLAC for a rejected header"
        );
    }
    service.drain().await;
}

#[actix_rt::test]
async fn protocol_misuse_and_limits_are_refused_cleanly() {
    let service = start(&["--max-message-size-bytes", "4096"]);
    let wav = wav_bytes(&WavSpec::pcm(1, 8_000, 16), &[0; 10_000]);

    let out = stream(service.addr, "", &[&wav], false).await;
    assert_eq!(out.error_code(), "message_too_large");
    assert_eq!(out.close, Some(1009));

    // The same limit holds for a message reassembled from small fragments.
    let fragments = vec![
        Message::Frame(
            tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
                wav[..3000].to_vec(),
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Binary,
                ),
                false,
            ),
        ),
        Message::Frame(
            tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
                wav[3000..6000].to_vec(),
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Continue,
                ),
                true,
            ),
        ),
    ];
    let out = exchange(service.addr, "", fragments, None).await;
    assert_eq!(out.error_code(), "message_too_large");
    assert_eq!(out.close, Some(1009));

    let bad_text = vec![Message::text(r#"{"type":"pause"}"#)];
    let out = exchange(service.addr, "", bad_text, None).await;
    assert_eq!(out.error_code(), "bad_message");
    assert_eq!(out.close, Some(1008));

    for query in ["level=9", "block_size=7", "level=abc", "unknown=1"] {
        let (status, body) = refused_upgrade(service.addr, query).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["code"], "bad_parameter", "{query}");
    }
    // Stray text after a complete upload does not spoil it.
    let c = case("complete", WavSpec::pcm(1, 8_000, 16), 1_500, 15);
    let messages = vec![Message::binary(wav_of(&c)), Message::text("hello")];
    let out = exchange(service.addr, "", messages, None).await;
    assert_eq!(out.close, Some(1000), "{:?}", out.texts);
    assert_exact(&out.patched_flac(), &c.samples, 1, 16, 512);

    let (status, body) = http_get(service.addr, "/stream").await;
    assert_eq!(status, 400);
    assert!(body.contains("not_websocket"), "{body}");

    // Other sessions are unaffected by all of the above.
    let c = case("after", WavSpec::pcm(1, 8_000, 16), 1_000, 14);
    let out = stream(service.addr, "", &[&wav_of(&c)], false).await;
    assert_exact(&out.patched_flac(), &c.samples, 1, 16, 512);
    service.drain().await;
}

#[actix_rt::test]
async fn thirty_two_concurrent_sessions_are_all_exact() {
    let service = start(&[]);
    let inputs: Vec<Case> = (0..32)
        .map(|i| {
            let (channels, bits, rate) = [
                (2, 16, 44_100),
                (1, 24, 16_000),
                (2, 8, 22_050),
                (4, 16, 48_000),
            ][i % 4];
            case(
                "concurrent",
                WavSpec::pcm(channels, rate, bits),
                12_000 + i * 37,
                i as u64,
            )
        })
        .collect();
    let wavs: Vec<Vec<u8>> = inputs.iter().map(wav_of).collect();
    let pieces: Vec<Vec<&[u8]>> = wavs
        .iter()
        .enumerate()
        .map(|(i, w)| random_splits(w, 8192, i as u64))
        .collect();
    let runs = pieces.iter().map(|p| stream(service.addr, "", p, false));
    let outs = futures_util::future::join_all(runs).await;
    for (c, out) in inputs.iter().zip(outs) {
        assert_eq!(out.close, Some(1000), "{:?}", out.texts);
        let block = flacstream_codec::flac::default_block_size(c.spec.sample_rate);
        assert_exact(
            &out.patched_flac(),
            &c.samples,
            usize::from(c.spec.channels),
            c.spec.bits,
            block,
        );
    }
    service.drain().await;
}

#[actix_rt::test]
async fn an_encoder_panic_fails_only_its_stream_and_the_worker_restarts() {
    let service = start(&["--encoder-threads", "1"]);
    let mut poisoned = case("poisoned", WavSpec::pcm(2, 44_100, 16), 20_000, 20);
    // The first samples of block 2 (4096 frames × 2 channels per block).
    poisoned.samples[2 * 4096 * 2..2 * 4096 * 2 + 4].copy_from_slice(&POISON_BLOCK_PREFIX);
    let good: Vec<Case> = (0..8)
        .map(|i| case("good", WavSpec::pcm(2, 44_100, 16), 20_000, 30 + i))
        .collect();
    let bad_wav = wav_of(&poisoned);
    let good_wavs: Vec<Vec<u8>> = good.iter().map(wav_of).collect();
    let bad_pieces = random_splits(&bad_wav, 8192, 1);
    let good_pieces: Vec<Vec<&[u8]>> = good_wavs
        .iter()
        .map(|w| random_splits(w, 8192, 2))
        .collect();
    let bad_run = stream(service.addr, "", &bad_pieces, false);
    let good_runs = futures_util::future::join_all(
        good_pieces
            .iter()
            .map(|p| stream(service.addr, "", p, false)),
    );
    let (bad, goods) = tokio::join!(bad_run, good_runs);

    assert_eq!(bad.error_code(), "internal");
    assert_eq!(bad.close, Some(1011));
    for (c, out) in good.iter().zip(goods) {
        assert_exact(&out.patched_flac(), &c.samples, 2, 16, 4096);
    }
    assert_eq!(service.pool.stats().restarts(), 1);

    // The restarted worker (the only one) serves new streams.
    let c = case("after", WavSpec::pcm(2, 44_100, 16), 10_000, 40);
    let out = stream(service.addr, "", &[&wav_of(&c)], false).await;
    assert_exact(&out.patched_flac(), &c.samples, 2, 16, 4096);
    service.drain().await;
}

#[actix_rt::test]
async fn an_idle_stream_is_closed_with_1008() {
    let service = start(&["--connection-timeout-seconds", "1"]);
    let mut spec = WavSpec::pcm(1, 8_000, 16);
    spec.data_size = DataSize::StreamingMax;
    let header = wav_bytes(&spec, &[]);
    let started = std::time::Instant::now();
    // Header only, then silence: no end, no more audio.
    let out = stream(service.addr, "", &[&header], false).await;
    assert_eq!(out.error_code(), "idle_timeout");
    assert_eq!(out.close, Some(1008));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    service.drain().await;
}

#[actix_rt::test]
async fn the_session_cap_answers_503_before_the_upgrade() {
    let service = start(&["--max-sessions", "2"]);
    let url = format!("ws://{}/stream", service.addr);
    let a = tokio_tungstenite::connect_async(&url).await.unwrap();
    let b = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (status, body) = refused_upgrade(service.addr, "").await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "server_busy");
    drop((a, b));
    // Slots come back when sessions end.
    let c = case("after", WavSpec::pcm(1, 8_000, 16), 1_000, 50);
    let wav = wav_of(&c);
    let mut out = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let url = format!("ws://{}/stream", service.addr);
        if tokio_tungstenite::connect_async(&url).await.is_ok() {
            out = Some(stream(service.addr, "", &[&wav], false).await);
            break;
        }
    }
    assert_exact(
        &out.expect("a slot freed up").patched_flac(),
        &c.samples,
        1,
        16,
        512,
    );
    service.drain().await;
}

#[actix_rt::test]
async fn draining_flushes_open_streams_with_1001_and_refuses_new_ones() {
    let service = start(&["--drain-grace-seconds", "1"]);
    // Ready at once; in scaled mode once the first lease renewal is in.
    let mut status = 0;
    for _ in 0..40 {
        status = http_get(service.addr, "/readyz").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
    let mut spec = WavSpec::pcm(2, 44_100, 16);
    spec.data_size = DataSize::StreamingMax;
    let c = case("open", spec, 30_000, 60);
    let wav = wav_of(&c);
    // Send everything but never `end`: only the drain can finish this stream.
    let pieces: [&[u8]; 1] = [&wav];
    let open = stream(service.addr, "", &pieces, false);
    let stopper = service.stopper();
    let drain = async {
        wait_for_streams(service.addr, 1).await;
        let drain = actix_rt::spawn(async move { stopper.drain().await });
        wait_for_draining(service.addr).await;
        let ready = http_get(service.addr, "/readyz").await.0;
        let refused = refused_upgrade(service.addr, "").await;
        drain.await.unwrap();
        (ready, refused)
    };
    let (out, (ready, refused)) = tokio::join!(open, drain);
    assert_eq!(ready, 503);
    assert_eq!(refused.0, 503);
    assert_eq!(refused.1["code"], "draining");
    assert_eq!(out.close, Some(1001));
    assert_eq!(out.last_text()["going_away"], true);
    assert_exact(&out.patched_flac(), &c.samples, 2, 16, 4096);
}

#[actix_rt::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_stall_time() {
    use flacstream_actors::registry::Snapshot;
    use futures_util::SinkExt;
    let service = start(&["--outbound-stall-seconds", "1"]);
    // Loud 24-bit noise: FLAC output as large as the input, more than the
    // loopback socket buffers can hide.
    let mut spec = WavSpec::pcm(2, 48_000, 24);
    spec.data_size = DataSize::StreamingMax;
    let header = wav_bytes(&spec, &[]);
    let chunk = pcm_bytes(
        &test_signal(100_000, 2, 24, 70)
            .iter()
            .map(|s| s ^ 0x5A5A5)
            .map(|s| s.clamp(-(1 << 23), (1 << 23) - 1))
            .collect::<Vec<_>>(),
        24,
    );
    let url = format!("ws://{}/stream", service.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::binary(header))
        .await
        .unwrap();
    // Send up to 120 MB without ever reading; stop when the server stops taking it.
    let flood = async {
        for _ in 0..200 {
            let send = ws.send(tokio_tungstenite::tungstenite::Message::binary(
                chunk.clone(),
            ));
            match tokio::time::timeout(Duration::from_secs(3), send).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    };
    flood.await;
    let mut sessions = usize::MAX;
    for _ in 0..100 {
        sessions = service.registry.send(Snapshot).await.unwrap().sessions;
        if sessions == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sessions, 0, "the stalled session was not cut off");
    // The connection itself must end: a server that stops the session but
    // keeps reading (and discarding) the client's input lets one client
    // push gigabytes through it for as long as it likes.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut ended = false;
    while std::time::Instant::now() < deadline {
        let send = ws.send(tokio_tungstenite::tungstenite::Message::binary(
            chunk.clone(),
        ));
        // A send that only times out means the server is not reading (yet).
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(1), send).await {
            ended = true;
            break;
        }
    }
    assert!(ended, "the server kept the stalled connection open");
    drop(ws);
    service.drain().await;
}
