//! Shared by the client's integration tests: one real flacstream server per
//! test process (in-process, on its own actix System thread), WAV fixtures
//! on disk, and a way to run the real `flacstream-client` binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::Parser;
use flacstream::config::Config;
use flacstream::service::Service;
use flacstream_codec::fixture::{pcm_bytes, test_signal, wav_bytes, WavSpec};

/// A fresh, empty directory under Cargo's scratch space for tests.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "flacstream-client-{}-{n}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The `/stream` URL of a server shared by every test in this process,
/// started on first use (127.0.0.1:0, temporary data dir).
pub fn server_url() -> String {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    let addr = ADDR.get_or_init(|| {
        let data = temp_dir("data").to_string_lossy().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let args = ["flacstream", "--bind", "127.0.0.1:0", "--data-dir", &data];
                let settings = Config::parse_from(args).validate().expect("valid flags");
                let mut service = Service::start(settings).expect("server starts");
                tx.send(service.addr).expect("test is waiting");
                let _ = service.run().await;
            });
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("server started")
    });
    format!("ws://{addr}/stream")
}

/// A WAV fixture written to disk, with the samples it holds.
pub struct Fixture {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub spec: WavSpec,
    /// Interleaved samples (signed, also for 8-bit).
    pub samples: Vec<i32>,
}

/// Writes `dir/name` holding `frames` sample frames of test signal.
pub fn fixture(dir: &Path, name: &str, spec: WavSpec, frames: usize, seed: u64) -> Fixture {
    let samples = test_signal(frames, spec.channels, spec.bits, seed);
    let path = dir.join(name);
    std::fs::write(&path, wav_bytes(&spec, &pcm_bytes(&samples, spec.bits))).expect("write wav");
    Fixture {
        path,
        spec,
        samples,
    }
}

/// What one run of the binary did.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Everything on stderr.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `flacstream-client` with `args` and waits for it.
pub fn run_client<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let start = Instant::now();
    let Output { status, stderr, .. } = Command::new(env!("CARGO_BIN_EXE_flacstream-client"))
        .args(args)
        .output()
        .expect("the client runs");
    Run {
        code: status.code().expect("exited, not killed"),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Decodes `flac` with claxon and checks format, STREAMINFO total and every sample.
pub fn assert_flac_matches(flac: &Path, fixture: &Fixture) {
    let mut reader = claxon::FlacReader::open(flac).expect("claxon opens the output");
    let info = reader.streaminfo();
    let channels = usize::from(fixture.spec.channels);
    assert_eq!(info.channels as usize, channels, "{}", flac.display());
    assert_eq!(info.bits_per_sample, u32::from(fixture.spec.bits));
    assert_eq!(info.sample_rate, fixture.spec.sample_rate);
    assert_eq!(
        info.samples,
        Some((fixture.samples.len() / channels) as u64),
        "STREAMINFO total samples of {}",
        flac.display()
    );
    let decoded: Vec<i32> = reader.samples().map(|s| s.expect("decodes")).collect();
    assert_eq!(decoded.len(), fixture.samples.len(), "{}", flac.display());
    if let Some(i) = decoded
        .iter()
        .zip(&fixture.samples)
        .position(|(a, b)| a != b)
    {
        panic!(
            "{}: sample {i}: decoded {} expected {}",
            flac.display(),
            decoded[i],
            fixture.samples[i]
        );
    }
}
