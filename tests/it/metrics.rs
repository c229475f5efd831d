//! `GET /metrics` against a real server: counters move by what the clients
//! did. The metrics recorder is one per process and the other tests' servers
//! count into it too, so each test here first takes the process alone
//! ([`crate::common::alone`]: no other test runs a service until it ends) and
//! compares scrapes from before and after, so it sees only its own traffic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{alone, http_get, http_json, http_send, refused_upgrade, start, stream};
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, DataSize, WavSpec};

/// Longest a gauge may take to catch up (the registry publishes its gauges
/// at each idle sweep, every 500 ms).
const GAUGE_WAIT: Duration = Duration::from_secs(5);

/// A scrape of `/metrics`.
struct Scrape(String);

impl Scrape {
    async fn take(addr: SocketAddr) -> Self {
        let (status, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        Self(body)
    }

    /// The value of the series `series` (name and labels exactly as
    /// rendered), 0 if it has not appeared yet.
    fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().expect("a number"))
    }

    /// How much `series` moved since `before`.
    fn delta(&self, before: &Scrape, series: &str) -> f64 {
        self.value(series) - before.value(series)
    }
}

/// Polls until `series` is `want` or [`GAUGE_WAIT`] passes; returns the
/// last value.
async fn wait_for(addr: SocketAddr, series: &str, want: f64) -> f64 {
    let deadline = Instant::now() + GAUGE_WAIT;
    loop {
        let value = Scrape::take(addr).await.value(series);
        if value == want || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_stream_moves_every_counter_by_what_it_carried() {
    alone();
    let service = start(&[]);
    let addr = service.addr;
    let frames = 20_000;
    let block = 1024;
    let samples = test_signal(frames, 2, 16, 7);
    let wav = wav_bytes(&WavSpec::pcm(2, 44_100, 16), &pcm_bytes(&samples, 16));
    let before = Scrape::take(addr).await;
    let pieces: Vec<&[u8]> = wav.chunks(3000).collect();
    let out = stream(addr, &format!("block_size={block}"), &pieces, false).await;
    assert_eq!(out.last_text()["type"], "done", "{:?}", out.texts);
    let after = Scrape::take(addr).await;

    let blocks = frames.div_ceil(block) as f64;
    let delta = |series: &str| after.delta(&before, series);
    assert_eq!(
        delta(r#"flacstream_streams_started_total{endpoint="/stream"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"flacstream_streams_finished_total{reason="complete"}"#),
        1.0
    );
    assert_eq!(delta("flacstream_input_bytes_total"), wav.len() as f64);
    assert_eq!(delta("flacstream_input_samples_total"), frames as f64);
    assert_eq!(delta("flacstream_output_samples_total"), frames as f64);
    assert_eq!(
        delta("flacstream_output_bytes_total"),
        out.flac.len() as f64
    );
    assert_eq!(
        delta("flacstream_staging_pushed_samples_total"),
        (frames * 2) as f64
    );
    assert_eq!(
        delta("flacstream_staging_popped_samples_total"),
        (frames * 2) as f64
    );
    assert!(delta("flacstream_encode_seconds_count") >= blocks);
    assert!(delta("flacstream_encode_seconds_sum") > 0.0);
    assert_eq!(delta("flacstream_frame_latency_seconds_count"), blocks);
    // Histograms have buckets (not quantiles), and the +Inf bucket holds all.
    assert_eq!(
        delta(r#"flacstream_frame_latency_seconds_bucket{le="+Inf"}"#),
        blocks
    );
    assert!(after
        .0
        .contains(r#"flacstream_encode_seconds_bucket{le="0.00005"}"#));
    assert!(
        after
            .0
            .contains("# HELP flacstream_active_streams Live streams"),
        "{}",
        after.0
    );
    assert_eq!(after.value("flacstream_draining"), 0.0);

    let answer = http_send(addr, "GET", "/metrics", "text/plain", b"").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}

#[actix_rt::test]
async fn refusals_and_failures_are_counted_by_code() {
    alone();
    let service = start(&[]);
    let addr = service.addr;
    let before = Scrape::take(addr).await;

    let (status, body) = refused_upgrade(addr, "level=99").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "bad_parameter");
    let bad: &[u8] = b"RIFX\x24\x00\x00\x00WAVEfmt ";
    let out = stream(addr, "", &[bad], true).await;
    let code = out.error_code().to_string();

    let after = Scrape::take(addr).await;
    let delta = |series: &str| after.delta(&before, series);
    assert_eq!(
        delta(r#"flacstream_rejections_total{code="bad_parameter"}"#),
        1.0
    );
    assert_eq!(
        delta(&format!(
            r#"flacstream_streams_failed_total{{code="{code}"}}"#
        )),
        1.0
    );
    // The refused upgrade started no session; the bad header did.
    assert_eq!(
        delta(r#"flacstream_streams_started_total{endpoint="/stream"}"#),
        1.0
    );
}

#[actix_rt::test]
async fn live_streams_are_gauged_and_a_drain_shows() {
    alone();
    let service = start(&["--drain-grace-seconds", "1"]);
    let addr = service.addr;
    // Sessions of earlier tests may take a sweep to be uncounted.
    let idle = wait_for(addr, "flacstream_active_streams", 0.0).await;
    assert_eq!(idle, 0.0, "no stream is live before this one");
    let mut spec = WavSpec::pcm(2, 44_100, 16);
    spec.data_size = DataSize::StreamingMax;
    let wav = wav_bytes(&spec, &pcm_bytes(&test_signal(10_000, 2, 16, 3), 16));
    let pieces: [&[u8]; 1] = [&wav];
    // No `end`: the stream stays live until the drain closes it.
    let open = stream(addr, "", &pieces, false);
    let watch = async {
        let live = wait_for(addr, "flacstream_active_streams", 1.0).await;
        let sessions = Scrape::take(addr).await.value("flacstream_sessions_active");
        let connections = Scrape::take(addr)
            .await
            .value("flacstream_connections_active");
        let (status, _) = http_json(addr, "POST", "/admin/drain").await;
        assert_eq!(status, 202);
        let draining = Scrape::take(addr).await.value("flacstream_draining");
        let ready = http_get(addr, "/readyz").await.0;
        (live, sessions, connections, draining, ready)
    };
    let (out, (live, sessions, connections, draining, ready)) = tokio::join!(open, watch);
    assert_eq!(live, 1.0, "the open stream is gauged");
    assert!(sessions >= 1.0 && connections >= 1.0);
    assert_eq!(draining, 1.0);
    assert_eq!(ready, 503, "readyz turns 503 as soon as draining starts");
    assert_eq!(out.last_text()["reason"], "going_away");
}

#[actix_rt::test]
async fn a_fresh_server_lists_every_metric_before_anything_happened() {
    // The binary, not an in-process server: this process's recorder has
    // seen the other tests' traffic.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = std::env::temp_dir().join(format!("flacstream-fresh-{}-{port}", std::process::id()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flacstream"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server binary starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            drop(s);
            break Scrape::take(addr).await.0;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);

    let has_series = |name: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{', '_']))
    };
    for m in flacstream_actors::metrics::ALL {
        assert!(has_series(m.name), "{} is missing:\n{text}", m.name);
    }
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(has_series(name), "{name} is missing:\n{text}");
    }
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        text.lines().any(|l| l.starts_with("flacstream_build_info{")
            && l.contains(&version)
            && l.contains("commit=\"")
            && l.ends_with("} 1")),
        "{text}"
    );
    // Labelled series with known labels are there at 0 already.
    for series in [
        "flacstream_rejections_total{code=\"rate_limited\"} 0",
        "flacstream_streams_failed_total{code=\"bad_message\"} 0",
        "flacstream_streams_started_total{endpoint=\"/stream\"} 0",
        "flacstream_streams_finished_total{reason=\"complete\"} 0",
        "flacstream_encode_seconds_count 0",
    ] {
        assert!(text.contains(series), "{series} is missing:\n{text}");
    }
}
