//! Retries against refusals a proxy makes up: a 503 with `Retry-After: 1`
//! is waited out (at least the second it asks for) and the stream then goes
//! through; a `Retry-After` longer than `--max-retry-wait` ends the retries
//! at once; a 400 is never retried.

use std::time::Duration;

use crate::common::{assert_flac_matches, fixture, run_client, server_addr, temp_dir};
use crate::proxy::{http_error, Part, Proxy};
use flacstream_codec::fixture::WavSpec;

#[test]
fn a_503_with_retry_after_is_waited_out_then_the_stream_goes_through() {
    let proxy = Proxy::start(
        server_addr(),
        vec![Part::Answer(http_error(
            "503 Service Unavailable",
            "server_busy",
            "Retry-After: 1\r\n",
        ))],
    );
    let dir = temp_dir("retry-after");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(2, 8_000, 16), 4_000, 21);
    let out = dir.join("out");
    let url = format!("ws://{}/stream", proxy.addr);
    let run = run_client(&[
        f.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_flac_matches(&out.join("a.flac"), &f);
    let accepted = proxy.accepted();
    assert_eq!(accepted.len(), 2, "one refusal, one stream: {}", run.stderr);
    assert!(
        accepted[1] - accepted[0] >= Duration::from_secs(1),
        "the retry came {:?} after the refusal, before Retry-After's 1 s",
        accepted[1] - accepted[0]
    );
    assert!(
        run.stderr.contains("server_busy") && run.stderr.contains("retrying in 1."),
        "{}",
        run.stderr
    );
}

#[test]
fn a_retry_after_past_the_wait_budget_and_a_400_are_not_retried() {
    let long = http_error(
        "429 Too Many Requests",
        "rate_limited",
        "Retry-After: 600\r\n",
    );
    let bad = http_error("400 Bad Request", "bad_parameter", "");
    let dir = temp_dir("no-retry");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(1, 8_000, 16), 100, 22);
    for (answer, code) in [(long, "rate_limited"), (bad, "bad_parameter")] {
        let proxy = Proxy::start(server_addr(), vec![Part::Answer(answer.clone()); 3]);
        let url = format!("ws://{}/stream", proxy.addr);
        let run = run_client(&[
            f.path.as_os_str(),
            "-o".as_ref(),
            dir.join("out").as_os_str(),
            "--url".as_ref(),
            url.as_ref(),
            "--max-retry-wait".as_ref(),
            "5".as_ref(),
        ]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(code), "{}", run.stderr);
        assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
        assert_eq!(proxy.accepted().len(), 1, "{code}: one attempt only");
    }
}

#[test]
fn record_waits_out_a_503_before_opening_its_session() {
    let proxy = Proxy::start(
        server_addr(),
        vec![Part::Answer(http_error(
            "503 Service Unavailable",
            "server_busy",
            "Retry-After: 1\r\n",
        ))],
    );
    let dir = temp_dir("record-retry-after");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(1, 16_000, 16), 8_000, 23);
    let flac = dir.join("a.flac");
    let url = format!("ws://{}/api/ws/audio", proxy.addr);
    let run = run_client(&[
        "record".as_ref(),
        f.path.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "--download".as_ref(),
        flac.as_os_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_flac_matches(&flac, &f);
    let accepted = proxy.accepted();
    assert!(accepted.len() >= 2, "{}", run.stderr);
    assert!(accepted[1] - accepted[0] >= Duration::from_secs(1));
}
