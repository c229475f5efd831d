//! Command-line flags, and the [`Plan`] of work they describe: converting
//! files through `/stream` (the default command), or recording one input
//! as a session (`record`, [`RecordArgs`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::credential::{Credential, Secret};
use crate::endpoint::Endpoint;
use crate::error::ClientError;
use crate::retry::{RetryPolicy, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_WAIT_SECONDS};
use crate::source::SampleFormat;
use crate::stdio::is_stdio;

/// Where the server listens unless `--url` says otherwise.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8080/stream";

/// Where `record` opens its session unless `--url` says otherwise.
pub const DEFAULT_RECORD_URL: &str = "ws://127.0.0.1:8080/api/ws/audio";

/// Files converted at once unless `--jobs` says otherwise (or fewer inputs).
pub const DEFAULT_MAX_JOBS: usize = 4;

/// Bytes of audio `record` keeps until the server has acknowledged them,
/// unless `--buffer-bytes` says otherwise: 64 MiB, over 5 minutes of CD
/// audio. When it is full the client stops reading its input until acks
/// free room.
pub const DEFAULT_BUFFER_BYTES: u64 = 64 * 1024 * 1024;

/// The smallest `--buffer-bytes`: one whole message of the largest size
/// the client sends.
pub const MIN_BUFFER_BYTES: u64 = crate::pacing::MAX_MESSAGE_BYTES as u64;

/// The FLAC name an input read from stdin gets in the output directory.
pub const STDIN_NAME: &str = "stdin.flac";

const EXIT_CODES: &str = "Exit codes:
  0  every file was converted and verified
  1  usage error, or a file could not be read or written
  2  the server was unreachable, refused the stream, sent an error,
     or closed without a complete result
  3  the FLAC does not decode to exactly the input's samples
  4  the server refused the credential (HTTP 401 or 403)
When several files fail, the highest code is returned.";

/// Streams WAV files to a flacstream server and writes verified FLAC files.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flacstream-client",
    version,
    after_help = EXIT_CODES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    /// Record one input as a session on /api/ws/audio instead.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// A WAV file to convert, `-` for stdin; may be given several times.
    #[arg(short, long = "input", value_name = "FILE")]
    pub input: Vec<PathBuf>,

    /// More WAV files to convert.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Directory for the FLAC files, created if missing; each is named
    /// `<input stem>.flac`. `-`: write the FLAC to stdout (one input only).
    #[arg(short, long, value_name = "DIR", required = true)]
    pub output: Option<PathBuf>,

    /// The server's `/stream` WebSocket URL, `ws://` or `wss://`.
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// FLAC compression level, 0–8 (server default 5).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub level: Option<u8>,

    /// Samples per FLAC block, 32–16384 (server default: by sample rate).
    #[arg(long, value_name = "SAMPLES", value_parser = clap::value_parser!(u16).range(32..=16384))]
    pub block_size: Option<u16>,

    /// Send at the audio's own byte rate, as a live source would; by default
    /// as fast as the server accepts.
    #[arg(long)]
    pub realtime: bool,

    /// Files converted at once (default: the number of inputs, at most 4).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// No progress output; errors are still reported.
    #[arg(short, long)]
    pub quiet: bool,

    /// Credentials, TLS and retries.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Record one input as a session on /api/ws/audio, resuming after a
    /// dropped connection; prints the session id.
    Record(RecordArgs),
}

/// How to reach the server: credential, TLS trust, retry bounds.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// API key, sent as `Authorization: Bearer`. Never printed.
    #[arg(
        long,
        value_name = "KEY",
        env = "FLACSTREAM_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<Secret>,

    /// Token from POST /api/tokens, sent as `Authorization: Bearer`. Never printed.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLACSTREAM_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<Secret>,

    /// PEM file of a CA (or a self-signed certificate) to trust for wss://
    /// and https://, besides the system's roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Connection attempts in all, the first included (1: no retry); for
    /// `record`, counted again after each acknowledged progress.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_attempts: u32,

    /// Seconds spent waiting between attempts, in all, at most. A
    /// `Retry-After` longer than what is left ends the retries.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_WAIT_SECONDS,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub max_retry_wait: u64,
}

impl ConnectArgs {
    /// The checked credential, TLS configuration and retry bounds.
    pub fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let credential = Credential::from_flags(
            self.api_key.as_ref().map(|s| s.0.as_str()),
            self.token.as_ref().map(|s| s.0.as_str()),
        )?;
        let tls = crate::tls::client_config(self.ca_file.as_deref())?;
        let retry = RetryPolicy {
            max_attempts: self.max_attempts,
            max_wait: Duration::from_secs(self.max_retry_wait),
        };
        Ok(Endpoint::new(tls, credential, retry))
    }
}

/// `flacstream-client record`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// The audio: a WAV file (its header is read here and the audio sent as
    /// raw PCM, so a resume is exact), raw audio with --format, or `-` for stdin.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,

    /// The server's `/api/ws/audio` WebSocket URL, `ws://` or `wss://`.
    #[arg(long, value_name = "URL", default_value = DEFAULT_RECORD_URL)]
    pub url: String,

    /// The input's format: `wav`, or raw interleaved samples (which need
    /// --sample-rate and --channels).
    #[arg(long, value_enum, default_value = "wav")]
    pub format: SampleFormat,

    /// Sample rate of raw input, in Hz.
    #[arg(long, value_name = "HZ", value_parser = clap::value_parser!(u32).range(1..=655_350))]
    pub sample_rate: Option<u32>,

    /// Channels of raw input, 1–8.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub channels: Option<u16>,

    /// The session's id, a random (version 4) UUID; by default the client
    /// makes one.
    #[arg(long, value_name = "UUID")]
    pub session_id: Option<String>,

    /// An owner label for the session (`user_id`).
    #[arg(long, value_name = "ID")]
    pub user_id: Option<String>,

    /// FLAC compression level, 0–8 (server default 5).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub level: Option<u8>,

    /// Samples per FLAC block, 32–16384 (server default: by sample rate).
    #[arg(long, value_name = "SAMPLES", value_parser = clap::value_parser!(u16).range(32..=16384))]
    pub block_size: Option<u16>,

    /// Once the session is closed, download its FLAC to this file (`-`:
    /// stdout). A WAV file input is then checked sample for sample.
    #[arg(long, value_name = "FILE")]
    pub download: Option<PathBuf>,

    /// Audio kept until acknowledged, in bytes; reading the input pauses
    /// while it is full.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BUFFER_BYTES,
          value_parser = clap::value_parser!(u64).range(MIN_BUFFER_BYTES..=1 << 40))]
    pub buffer_bytes: u64,

    /// Send at the audio's own rate, as a live source would (20 ms
    /// messages); by default as fast as the server accepts, which the
    /// server's input-rate limit cuts off (`input_too_fast`) past its burst.
    #[arg(long)]
    pub realtime: bool,

    /// Keep audio until the server says it is durable (`samples_durable`:
    /// on disk, fsync'd) rather than only received, to survive a server
    /// crash in scaled mode.
    #[arg(long)]
    pub keep_until_durable: bool,

    /// No progress output; errors are still reported.
    #[arg(short, long)]
    pub quiet: bool,

    /// Credentials, TLS and retries.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Checks a `ws://` or `wss://` URL's scheme.
pub fn check_ws_url(url: &str) -> Result<(), ClientError> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(())
    } else {
        Err(ClientError::Usage(format!(
            "--url {url}: only ws:// and wss:// URLs are supported"
        )))
    }
}

/// One file to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The WAV file, as given; `-`: stdin.
    pub input: PathBuf,
    /// Where its FLAC goes; `-`: stdout.
    pub output: PathBuf,
}

/// What every conversion shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The full `/stream` URL, query included.
    pub url: String,
    /// Pace sending at the audio's byte rate.
    pub realtime: bool,
}

/// The validated work: which files, where to, how many at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One job per input, in the order given.
    pub jobs: Vec<Job>,
    /// The output directory; `None` when the FLAC goes to stdout.
    pub output_dir: Option<PathBuf>,
    /// Conversions run at once, at least 1.
    pub concurrency: usize,
    /// Shared by every job.
    pub settings: Settings,
}

impl Args {
    /// Checks the arguments and turns them into a [`Plan`]: at least one
    /// input, stdin at most once, stdout for one input only, a `ws://` or
    /// `wss://` URL, and no two inputs writing the same output file.
    pub fn plan(&self) -> Result<Plan, ClientError> {
        let inputs: Vec<&PathBuf> = self.input.iter().chain(&self.files).collect();
        if inputs.is_empty() {
            return Err(ClientError::Usage(
                "no input files: give -i FILE (or FILE...); see --help".into(),
            ));
        }
        check_ws_url(&self.url)?;
        let output_dir = self
            .output
            .clone()
            .ok_or_else(|| ClientError::Usage("--output is required; see --help".into()))?;
        let to_stdout = is_stdio(&output_dir);
        if to_stdout && inputs.len() > 1 {
            return Err(ClientError::Usage(
                "-o - writes one FLAC to stdout: give exactly one input".into(),
            ));
        }
        if inputs.iter().filter(|i| is_stdio(i)).count() > 1 {
            return Err(ClientError::Usage("stdin (-) can be read only once".into()));
        }
        let mut seen: HashMap<PathBuf, &Path> = HashMap::new();
        let mut jobs = Vec::with_capacity(inputs.len());
        for input in inputs {
            if to_stdout {
                jobs.push(Job {
                    input: input.clone(),
                    output: output_dir.clone(),
                });
                continue;
            }
            let name = if is_stdio(input) {
                STDIN_NAME.into()
            } else {
                let stem = input.file_stem().ok_or_else(|| {
                    ClientError::Usage(format!("{}: not a file name", input.display()))
                })?;
                let mut name = stem.to_os_string();
                name.push(".flac");
                name
            };
            let output = output_dir.join(name);
            if let Some(first) = seen.insert(output.clone(), input) {
                return Err(ClientError::Usage(format!(
                    "{} and {} would both be written to {}",
                    first.display(),
                    input.display(),
                    output.display()
                )));
            }
            jobs.push(Job {
                input: input.clone(),
                output,
            });
        }
        let concurrency = match self.jobs {
            Some(n) => usize::from(n),
            None => jobs.len().min(DEFAULT_MAX_JOBS),
        };
        Ok(Plan {
            jobs,
            output_dir: (!to_stdout).then_some(output_dir),
            concurrency,
            settings: Settings {
                url: self.stream_url(),
                realtime: self.realtime,
            },
        })
    }

    /// `--url` with `level` and `block_size` appended as query parameters.
    pub fn stream_url(&self) -> String {
        let mut url = self.url.clone();
        let params = [
            self.level.map(|l| format!("level={l}")),
            self.block_size.map(|b| format!("block_size={b}")),
        ];
        for param in params.into_iter().flatten() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&param);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("flacstream-client").chain(args.iter().copied()))
    }

    #[test]
    fn inputs_from_flags_and_positionals_in_order() {
        let args = parse(&["-i", "a.wav", "--input", "dir/b.wav", "c.wav", "-o", "out"]).unwrap();
        let plan = args.plan().unwrap();
        let outputs: Vec<_> = plan.jobs.iter().map(|j| j.output.clone()).collect();
        assert_eq!(
            outputs,
            [
                PathBuf::from("out/a.flac"),
                "out/b.flac".into(),
                "out/c.flac".into()
            ]
        );
        let dotted = parse(&["take.2.wav", "-o", "o"]).unwrap().plan().unwrap();
        assert_eq!(dotted.jobs[0].output, PathBuf::from("o/take.2.flac"));
        assert_eq!(plan.concurrency, 3);
        assert_eq!(plan.settings.url, DEFAULT_URL);
    }

    #[test]
    fn jobs_default_is_capped_at_four() {
        let many = ["1.wav", "2.wav", "3.wav", "4.wav", "5.wav", "-o", "o"];
        assert_eq!(parse(&many).unwrap().plan().unwrap().concurrency, 4);
        let one = parse(&["1.wav", "2.wav", "-o", "o", "--jobs", "1"]).unwrap();
        assert_eq!(one.plan().unwrap().concurrency, 1);
    }

    #[test]
    fn query_parameters_are_appended() {
        let args = parse(&["a.wav", "-o", "o", "--level", "8", "--block-size", "1024"]).unwrap();
        assert_eq!(
            args.plan().unwrap().settings.url,
            "ws://127.0.0.1:8080/stream?level=8&block_size=1024"
        );
        let args = parse(&[
            "a.wav",
            "-o",
            "o",
            "--url",
            "ws://h:1/stream?x=1",
            "--level",
            "0",
        ])
        .unwrap();
        assert_eq!(args.stream_url(), "ws://h:1/stream?x=1&level=0");
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["a.wav", "-o", "o", "--level", "9"]).is_err());
        assert!(parse(&["a.wav", "-o", "o", "--block-size", "16"]).is_err());
        assert!(parse(&["a.wav", "-o", "o", "--jobs", "0"]).is_err());
        assert!(parse(&["a.wav"]).is_err());
        let none = parse(&["-o", "o"]).unwrap();
        assert!(matches!(none.plan(), Err(ClientError::Usage(_))));
        let clash = parse(&["x/a.wav", "y/a.wav", "-o", "o"]).unwrap();
        assert!(matches!(clash.plan(), Err(ClientError::Usage(_))));
        let http = parse(&["a.wav", "-o", "o", "--url", "http://h/stream"]).unwrap();
        assert!(matches!(http.plan(), Err(ClientError::Usage(_))));
        let tls = parse(&["a.wav", "-o", "o", "--url", "wss://h/stream"]).unwrap();
        assert!(tls.plan().is_ok());
    }

    #[test]
    fn stdin_and_stdout() {
        let plan = parse(&["-", "-o", "-"]).unwrap().plan().unwrap();
        assert_eq!(plan.output_dir, None);
        assert_eq!(plan.jobs[0].output, PathBuf::from("-"));
        let plan = parse(&["-", "a.wav", "-o", "o"]).unwrap().plan().unwrap();
        assert_eq!(plan.jobs[0].output, PathBuf::from("o/stdin.flac"));
        assert!(parse(&["a.wav", "b.wav", "-o", "-"])
            .unwrap()
            .plan()
            .is_err());
        assert!(parse(&["-", "-i", "-", "-o", "o"]).unwrap().plan().is_err());
    }

    #[test]
    fn record_is_a_subcommand_with_its_own_flags() {
        let args = parse(&[
            "record",
            "-",
            "--format",
            "s16le",
            "--sample-rate",
            "8000",
            "--channels",
            "1",
            "--api-key",
            "k",
        ])
        .unwrap();
        match args.command {
            Some(Command::Record(r)) => {
                assert_eq!(r.url, DEFAULT_RECORD_URL);
                assert!(is_stdio(&r.input));
                assert_eq!(r.connect.max_attempts, DEFAULT_MAX_ATTEMPTS);
                assert!(!format!("{r:?}").contains("\"k\""));
            }
            other => panic!("{other:?}"),
        }
    }
}
