//! `-`: a WAV on stdin and the FLAC on stdout, for conversions and for
//! `record` (raw PCM from stdin, the recording's FLAC to stdout).

use crate::common::{
    assert_flac_bytes_match, fixture, run_client_with, server_addr, server_url, temp_dir,
};
use flacstream_codec::fixture::{pcm_bytes, WavSpec};

#[test]
fn a_wav_on_stdin_comes_back_as_flac_on_stdout() {
    let url = server_url();
    let dir = temp_dir("stdio");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(2, 22_050, 24), 10_000, 41);
    let wav = std::fs::read(&f.path).unwrap();
    let run = run_client_with(&["-", "-o", "-", "--url", &url], &[], Some(&wav));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_flac_bytes_match(&run.stdout, "stdout", &f);
}

#[test]
fn record_takes_raw_pcm_on_stdin_and_downloads_to_stdout() {
    let url = format!("ws://{}/api/ws/audio", server_addr());
    let dir = temp_dir("record-stdio");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(1, 8_000, 16), 12_000, 42);
    let raw = pcm_bytes(&f.samples, 16);
    let args = [
        "record",
        "-",
        "--format",
        "s16le",
        "--sample-rate",
        "8000",
        "--channels",
        "1",
        "--url",
        &url,
        "--download",
        "-",
    ];
    let run = run_client_with(&args, &[], Some(&raw));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_flac_bytes_match(&run.stdout, "stdout", &f);
    assert!(
        run.stderr.contains("flacstream-client: session "),
        "the id goes to stderr when stdout carries the FLAC: {}",
        run.stderr
    );
}
