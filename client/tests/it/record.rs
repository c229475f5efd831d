//! `record` end to end: a session whose connection is cut mid-stream (by a
//! proxy, as a dropped link would) resumes where the server says, and the
//! recording, downloaded over HTTP, decodes (claxon) to exactly the input.

use crate::common::{assert_flac_matches, fixture, run_client, server_addr, temp_dir};
use crate::proxy::{Part, Proxy};
use flacstream_codec::fixture::WavSpec;

#[test]
fn a_connection_cut_mid_stream_resumes_and_the_recording_is_exact() {
    cut_and_resume("record-cut", &[]);
}

#[test]
fn with_the_smallest_buffer_reading_waits_for_acks_and_a_cut_still_resumes() {
    // 64 KiB: the input is read as acks free room, and what was sent past
    // the last ack when the link went down is still held.
    cut_and_resume("record-cut-small", &["--buffer-bytes", "65536"]);
}

#[test]
fn kept_until_durable_a_cut_still_resumes_exactly() {
    cut_and_resume("record-cut-durable", &["--keep-until-durable"]);
}

/// Records 3 s of 16-bit stereo at 16 kHz (192,000 bytes of audio) through
/// a proxy that cuts the first connection after about half of them.
fn cut_and_resume(name: &str, extra: &[&str]) {
    let dir = temp_dir(name);
    let f = fixture(&dir, "take.wav", WavSpec::pcm(2, 16_000, 16), 48_000, 51);
    let proxy = Proxy::start(server_addr(), vec![Part::CutAfter(100_000)]);
    let url = format!("ws://{}/api/ws/audio", proxy.addr);
    let flac = dir.join("take.flac");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "record".as_ref(),
        f.path.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "--block-size".as_ref(),
        "1024".as_ref(),
        "--download".as_ref(),
        flac.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let run = run_client(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stdout = String::from_utf8(run.stdout.clone()).unwrap();
    let id = stdout.trim();
    assert_eq!(id.len(), 36, "the session id on stdout: {stdout:?}");
    assert!(
        run.stderr.contains("reconnecting") && run.stderr.contains("resumed at sample"),
        "{}",
        run.stderr
    );
    assert!(proxy.accepted().len() >= 2, "{}", run.stderr);
    assert_flac_matches(&flac, &f);
    assert!(!dir.join("take.flac.part").exists());
}

#[test]
fn a_session_id_that_is_not_a_v4_uuid_is_a_usage_error() {
    let dir = temp_dir("record-bad-id");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(1, 8_000, 16), 100, 52);
    let run = run_client(&[
        "record".as_ref(),
        f.path.as_os_str(),
        "--session-id".as_ref(),
        "not-a-uuid".as_ref(),
        "--url".as_ref(),
        "ws://127.0.0.1:9/api/ws/audio".as_ref(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--session-id"), "{}", run.stderr);
}

#[test]
fn realtime_sends_no_faster_than_the_audio_and_the_recording_is_exact() {
    // One second of 16-bit mono at 8 kHz: paced, it cannot take less.
    let dir = temp_dir("record-realtime");
    let f = fixture(&dir, "second.wav", WavSpec::pcm(1, 8_000, 16), 8_000, 53);
    let url = format!("ws://{}/api/ws/audio", server_addr());
    let flac = dir.join("second.flac");
    let run = run_client(&[
        "record".as_ref(),
        f.path.as_os_str(),
        "--realtime".as_ref(),
        "--url".as_ref(),
        url.as_ref(),
        "--download".as_ref(),
        flac.as_os_str(),
        "-q".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "", "--quiet prints nothing on success");
    assert!(
        run.elapsed >= std::time::Duration::from_millis(950),
        "1 s of audio sent in {:?}",
        run.elapsed
    );
    assert_flac_matches(&flac, &f);
}
