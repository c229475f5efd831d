//! Replays the committed corpus through both checks, without libFuzzer, so
//! `cargo test --manifest-path fuzz/Cargo.toml` works on a stable toolchain
//! and every crash once found stays fixed. Also checks that each seed is what
//! its name says: `seed-refuse-*` refused with no FLAC, other seeds accepted.

use std::fs;
use std::path::{Path, PathBuf};

use flacstream_fuzz::ingest::{ingest, Refused};
use flacstream_fuzz::plan::IngestPlan;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{target}: only {} inputs", files.len());
    files
}

#[test]
fn wav_header_corpus_passes() {
    for (name, data) in corpus("wav_header") {
        eprintln!("wav_header/{name}");
        flacstream_fuzz::header::check(&data);
    }
}

#[test]
fn segment_corpus_passes() {
    for (name, data) in corpus("segment") {
        eprintln!("segment/{name}");
        flacstream_fuzz::segment::check(&data);
    }
}

#[test]
fn ingest_corpus_passes_and_seeds_do_what_they_say() {
    let mut accepted = 0;
    let mut refused = 0;
    for (name, data) in corpus("ingest") {
        eprintln!("ingest/{name}");
        flacstream_fuzz::ingest::check(&data);
        if !name.starts_with("seed-") {
            continue;
        }
        let (plan, payload) = IngestPlan::parse(&data).expect("a seed has a valid prefix");
        let result = ingest(&plan, payload);
        if name.starts_with("seed-refuse-") {
            assert!(
                matches!(result, Err(Refused::Header(_) | Refused::NoHeader(_))),
                "{name}: {result:?}"
            );
            refused += 1;
        } else {
            let encoded = result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(encoded.flac.len() >= 42, "{name}");
            accepted += 1;
        }
    }
    assert!(
        accepted >= 20 && refused >= 20,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn media_corpus_passes() {
    flacstream_fuzz::media::quiet_symphonia_panics();
    for (name, data) in corpus("media") {
        eprintln!("media/{name}");
        flacstream_fuzz::media::check(&data);
    }
}
