//! The real `flacstream-client` binary against a real in-process server:
//! exact round trips, `--realtime` pacing, and exit codes.

use std::time::Duration;

use crate::common::{assert_flac_matches, fixture, run_client, server_url, temp_dir};
use flacstream_codec::fixture::{fmt_body, wav_with_fmt, DataSize, WavSpec};

#[test]
fn several_files_round_trip_exactly_with_two_jobs() {
    let url = server_url();
    let dir = temp_dir("round-trip");
    let out = dir.join("out");
    let mut streaming = WavSpec::pcm(2, 22_050, 16);
    streaming.data_size = DataSize::StreamingMax; // a header hound refuses
    let files = [
        fixture(&dir, "stereo16.wav", WavSpec::pcm(2, 44_100, 16), 30_000, 1),
        fixture(&dir, "deep24.wav", WavSpec::pcm(2, 48_000, 24), 20_000, 2),
        fixture(&dir, "mono8.wav", WavSpec::pcm(1, 8_000, 8), 9_000, 3),
        fixture(&dir, "piped.wav", streaming, 12_345, 4),
    ];
    let run = run_client(&[
        "-i".as_ref(),
        files[0].path.as_os_str(),
        "--input".as_ref(),
        files[1].path.as_os_str(),
        files[2].path.as_os_str(),
        files[3].path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--jobs".as_ref(),
        "2".as_ref(),
        "--url".as_ref(),
        url.as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for f in &files {
        let stem = f.path.file_stem().unwrap();
        let flac = out.join(stem).with_extension("flac");
        assert_flac_matches(&flac, f);
        assert!(!flac.with_extension("flac.part").exists());
        let name = f.path.display().to_string();
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with(&name) && l.contains("ok ->")),
            "a success line for {name}: {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("4 of 4 files converted"),
        "{}",
        run.stderr
    );
}

#[test]
fn level_and_block_size_reach_the_server() {
    let url = server_url();
    let dir = temp_dir("params");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(1, 16_000, 16), 5_000, 9);
    let out = dir.join("out");
    let args = [
        f.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "--level".as_ref(),
        "0".as_ref(),
        "--block-size".as_ref(),
        "256".as_ref(),
        "--quiet".as_ref(),
    ];
    let run = run_client(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "", "--quiet prints nothing on success");
    let flac = out.join("a.flac");
    assert_flac_matches(&flac, &f);
    let reader = claxon::FlacReader::open(&flac).unwrap();
    assert_eq!(reader.streaminfo().max_block_size, 256);
}

#[test]
fn realtime_paces_at_the_audio_rate() {
    let url = server_url();
    let dir = temp_dir("realtime");
    // Exactly one second of 16-bit stereo at 16 kHz.
    let f = fixture(&dir, "second.wav", WavSpec::pcm(2, 16_000, 16), 16_000, 5);
    let out = dir.join("out");
    let base = [
        f.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "-q".as_ref(),
    ];
    let fast = run_client(&base);
    assert_eq!(fast.code, 0, "{}", fast.stderr);
    let mut paced_args = base.to_vec();
    paced_args.push("--realtime".as_ref());
    let paced = run_client(&paced_args);
    assert_eq!(paced.code, 0, "{}", paced.stderr);
    assert_flac_matches(&out.join("second.flac"), &f);
    assert!(
        paced.elapsed >= Duration::from_millis(900) && paced.elapsed <= Duration::from_secs(3),
        "--realtime took {:?}",
        paced.elapsed
    );
    assert!(
        fast.elapsed < Duration::from_millis(900) && fast.elapsed * 2 < paced.elapsed,
        "without --realtime {:?}, with {:?}",
        fast.elapsed,
        paced.elapsed
    );
}

#[test]
fn missing_input_exits_1_naming_the_file() {
    let dir = temp_dir("missing");
    let missing = dir.join("nope.wav");
    // No server is needed: the file fails before connecting.
    let run = run_client(&[
        missing.as_os_str(),
        "-o".as_ref(),
        dir.join("out").as_os_str(),
        "--url".as_ref(),
        "ws://127.0.0.1:9/stream".as_ref(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_1() {
    let run = run_client(&["a.wav", "-o", "out", "--level", "9"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let run = run_client(&["-o", "out"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no input files"), "{}", run.stderr);
    let run = run_client(&["--help"]);
    assert_eq!(run.code, 0);
}

#[test]
fn unreachable_server_exits_2() {
    let dir = temp_dir("unreachable");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(1, 8_000, 16), 100, 6);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }; // dropped: nothing listens there now
    let url = format!("ws://{closed}/stream");
    let run = run_client(&[
        f.path.as_os_str(),
        "-o".as_ref(),
        dir.join("out").as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
        "--max-attempts".as_ref(),
        "2".as_ref(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("a.wav"), "{}", run.stderr);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert!(
        run.stderr.contains("retrying in") && run.stderr.contains("gave up after 2 attempts"),
        "a refused connection is retried, within --max-attempts: {}",
        run.stderr
    );
}

#[test]
fn server_error_exits_2_with_its_code_and_leaves_no_output() {
    let url = server_url();
    let dir = temp_dir("float");
    let spec = WavSpec::pcm(2, 44_100, 16);
    let mut fmt = fmt_body(&spec);
    fmt[0] = 3; // WAVE_FORMAT_IEEE_FLOAT
    let float = dir.join("float.wav");
    std::fs::write(&float, wav_with_fmt(&spec, &fmt, &[0; 64])).unwrap();
    let good = fixture(&dir, "good.wav", WavSpec::pcm(1, 8_000, 16), 800, 7);
    let out = dir.join("out");
    let run = run_client(&[
        float.as_os_str(),
        good.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("float.wav") && l.contains("unsupported_format"))
        .unwrap_or_else(|| panic!("an error line for float.wav: {}", run.stderr));
    assert!(line.contains("close 1003"), "{line}");
    assert!(!out.join("float.flac").exists());
    assert!(!out.join("float.flac.part").exists());
    assert_flac_matches(&out.join("good.flac"), &good);
}
