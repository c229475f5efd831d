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
    format!("ws://{}/stream", server_addr())
}

/// The address of the shared server of [`server_url`].
pub fn server_addr() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| start_server(&[]))
}

/// Starts a server of its own with `flags` (an explicit loopback `--bind`
/// and a temporary data dir come first) on a thread of its own, for the
/// rest of the test process; returns its address.
pub fn start_server(flags: &[String]) -> SocketAddr {
    let data = temp_dir("data").to_string_lossy().to_string();
    let flags = flags.to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut args = vec!["flacstream", "--bind", "127.0.0.1:0", "--data-dir", &data];
            args.extend(flags.iter().map(String::as_str));
            let settings = Config::parse_from(args).validate().expect("valid flags");
            let mut service = Service::start(settings).expect("server starts");
            tx.send(service.addr).expect("test is waiting");
            let _ = service.run().await;
        });
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server started")
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
    /// Everything on stdout.
    pub stdout: Vec<u8>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `flacstream-client` with `args` and waits for it.
pub fn run_client<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    run_client_with(args, &[], None)
}

/// [`run_client`] with environment variables and bytes on stdin. The
/// credential variables of the test's own environment never reach it.
pub fn run_client_with<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Run {
    use std::io::Write;
    use std::process::Stdio;
    let start = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_flacstream-client"));
    command
        .args(args)
        .env_remove("FLACSTREAM_API_KEY")
        .env_remove("FLACSTREAM_TOKEN")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the client runs");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let bytes = bytes.to_vec();
        // A thread, so a client that stops reading cannot block the test.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("the client finishes");
    Run {
        code: status.code().expect("exited, not killed"),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout,
        elapsed: start.elapsed(),
    }
}

/// Decodes `flac` with claxon and checks format, STREAMINFO total and every sample.
pub fn assert_flac_matches(flac: &Path, fixture: &Fixture) {
    let bytes = std::fs::read(flac).expect("the output exists");
    assert_flac_bytes_match(&bytes, &flac.display().to_string(), fixture);
}

/// [`assert_flac_matches`] for a FLAC in memory, named `name` in failures.
pub fn assert_flac_bytes_match(bytes: &[u8], name: &str, fixture: &Fixture) {
    let flac = Path::new(name);
    let mut reader = claxon::FlacReader::new(bytes).expect("claxon opens the output");
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
