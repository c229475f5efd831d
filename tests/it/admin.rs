//! `/admin/drain` and the container clients (`flacstream probe`,
//! `flacstream drain`), against a real server on a loopback port; the
//! clients are the built binary, run as a container would run them.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{assert_exact, http_get, http_json, start, stream, wait_for_streams};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, DataSize, WavSpec};

const BIN: &str = env!("CARGO_BIN_EXE_flacstream");

/// 16-bit stereo 44.1 kHz with a streaming header: only `end` or a drain
/// finishes it. Returns the WAV and its samples.
fn open_ended_wav() -> (Vec<u8>, Vec<i32>) {
    let mut spec = WavSpec::pcm(2, 44_100, 16);
    spec.data_size = DataSize::StreamingMax;
    let samples = test_signal(30_000, 2, 16, 61);
    (wav_bytes(&spec, &pcm_bytes(&samples, 16)), samples)
}

/// Runs the binary with `args` off the async runtime; returns its exit code.
async fn run(args: &[&str]) -> i32 {
    run_with_env(args, &[]).await
}

/// Like [`run`], with environment variables set.
async fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> i32 {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    actix_rt::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .envs(env)
            .status()
            .expect("the binary runs")
            .code()
            .expect("an exit code")
    })
    .await
    .expect("the client thread")
}

#[actix_rt::test]
async fn post_drain_from_loopback_drains_like_sigterm_and_is_idempotent() {
    let service = start(&["--drain-grace-seconds", "1"]);
    let addr = service.addr;
    let (status, body) = http_json(addr, "GET", "/admin/drain").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    let (wav, samples) = open_ended_wav();
    let pieces: [&[u8]; 1] = [&wav];
    // Everything but `end`: only the drain can finish this stream.
    let open = stream(addr, "", &pieces, false);
    let drain = async {
        wait_for_streams(addr, 1).await;
        let started = Instant::now();
        let first = http_json(addr, "POST", "/admin/drain").await;
        let ready = http_get(addr, "/readyz").await.0;
        let again = http_json(addr, "POST", "/admin/drain").await;
        let status = http_json(addr, "GET", "/admin/drain").await;
        (started, first, ready, again, status)
    };
    let (out, (started, first, ready, again, status)) = tokio::join!(open, drain);
    assert_eq!(first.0, 202, "{}", first.1);
    assert_eq!(first.1["status"], "draining");
    assert_eq!(first.1["streams"], 1);
    assert_eq!(
        ready, 503,
        "readyz turns 503 as soon as the POST is answered"
    );
    assert_eq!(again.0, 202, "a second POST is accepted too: {}", again.1);
    assert_eq!(again.1["status"], "draining");
    assert_eq!(status.1["status"], "draining");
    // The stream ran on for the grace period, then was flushed and closed.
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(out.close, Some(1001));
    assert_eq!(out.last_text()["reason"], "going_away");
    assert_exact(&out.patched_flac(), &samples, 2, 16, 4096);
    // The drain ends by stopping the server, as SIGTERM's does.
    let mut service = service;
    tokio::time::timeout(Duration::from_secs(20), service.run())
        .await
        .expect("the server stops after the drain")
        .expect("it stops cleanly");
}

#[actix_rt::test]
async fn probe_exits_0_on_200_and_1_otherwise() {
    let mut service = start(&[]);
    let addr = service.addr;
    let url = |path: &str| format!("http://{addr}{path}");
    assert_eq!(run(&["probe", "--url", &url("/healthz")]).await, 0);
    // A replica in scaled mode is ready once its first lease renewal is
    // through (a few milliseconds after the start, more on a loaded
    // machine); one node is ready at once.
    let mut ready = 1;
    for _ in 0..50 {
        ready = run(&["probe", "--url", &url("/readyz")]).await;
        if ready == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 0);
    assert_eq!(run(&["probe", "--url", &url("/no-such-page")]).await, 1);
    assert_eq!(run(&["probe", "--url", "not a url"]).await, 1);
    // The server's settings in the environment, as in a container, are no
    // conflict for the clients.
    let container_env = [
        ("FLACSTREAM_BIND", "0.0.0.0:8080"),
        ("FLACSTREAM_MAX_SESSIONS", "200"),
    ];
    assert_eq!(
        run_with_env(&["probe", "--url", &url("/healthz")], &container_env).await,
        0
    );
    // With no stream open the drain ends at once and the server stops.
    service.stopper().start_drain();
    assert_eq!(run(&["probe", "--url", &url("/readyz")]).await, 1);
    service
        .run()
        .await
        .expect("the server stops after the drain");
    assert_eq!(run(&["probe", "--url", &url("/healthz")]).await, 1);
}

#[actix_rt::test]
async fn drain_client_waits_for_open_streams_then_exits_0() {
    let service = start(&["--drain-grace-seconds", "1"]);
    let addr = service.addr;
    let (wav, _) = open_ended_wav();
    let pieces: [&[u8]; 1] = [&wav];
    let open = stream(addr, "", &pieces, false);
    let drain_url = format!("http://{addr}/admin/drain");
    let client = async {
        wait_for_streams(addr, 1).await;
        let started = Instant::now();
        let code = run(&["drain", "--url", &drain_url, "--wait-seconds", "30"]).await;
        (code, started.elapsed())
    };
    let (out, (code, took)) = tokio::join!(open, client);
    assert_eq!(code, 0);
    assert_eq!(out.close, Some(1001));
    // It waited for the stream's grace period rather than returning at once.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // A server that is gone cannot be drained.
    assert_eq!(
        run(&["drain", "--url", &drain_url, "--wait-seconds", "1"]).await,
        1
    );
}

#[actix_rt::test]
async fn drain_client_gives_up_with_2_when_streams_outlast_the_wait() {
    let service = start(&["--drain-grace-seconds", "30"]);
    let addr = service.addr;
    let (wav, _) = open_ended_wav();
    let pieces: [&[u8]; 1] = [&wav];
    let open = stream(addr, "", &pieces, false);
    let drain_url = format!("http://{addr}/admin/drain");
    let client = async {
        wait_for_streams(addr, 1).await;
        let code = run(&["drain", "--url", &drain_url, "--wait-seconds", "1"]).await;
        // Let the stream end now rather than after 30 s.
        service
            .registry
            .do_send(flacstream_actors::registry::Drain {
                grace: Duration::ZERO,
            });
        code
    };
    let (out, code) = tokio::join!(open, client);
    assert_eq!(code, 2);
    assert_eq!(out.close, Some(1001));
}
