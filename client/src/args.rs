//! Command-line flags, and the [`Plan`] of work they describe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::error::ClientError;

/// Where the server listens unless `--url` says otherwise.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8080/stream";

/// Files converted at once unless `--jobs` says otherwise (or fewer inputs).
pub const DEFAULT_MAX_JOBS: usize = 4;

const EXIT_CODES: &str = "Exit codes:
  0  every file was converted and verified
  1  usage error, or a file could not be read or written
  2  the server was unreachable, refused the stream, sent an error,
     or closed without a complete result
  3  the FLAC does not decode to exactly the input's samples
When several files fail, the highest code is returned.";

/// Streams WAV files to a flacstream server and writes verified FLAC files.
#[derive(Debug, Clone, Parser)]
#[command(name = "flacstream-client", version, after_help = EXIT_CODES)]
pub struct Args {
    /// A WAV file to convert; may be given several times.
    #[arg(short, long = "input", value_name = "FILE")]
    pub input: Vec<PathBuf>,

    /// More WAV files to convert.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Directory for the FLAC files, created if missing; each is named
    /// `<input stem>.flac`.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// The server's `/stream` WebSocket URL (`ws://` only).
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
}

/// One file to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The WAV file, as given.
    pub input: PathBuf,
    /// Where its FLAC goes.
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
    /// The output directory.
    pub output_dir: PathBuf,
    /// Conversions run at once, at least 1.
    pub concurrency: usize,
    /// Shared by every job.
    pub settings: Settings,
}

impl Args {
    /// Checks the arguments and turns them into a [`Plan`]: at least one
    /// input, a `ws://` URL, and no two inputs writing the same output file.
    pub fn plan(&self) -> Result<Plan, ClientError> {
        let inputs: Vec<&PathBuf> = self.input.iter().chain(&self.files).collect();
        if inputs.is_empty() {
            return Err(ClientError::Usage(
                "no input files: give -i FILE (or FILE...); see --help".into(),
            ));
        }
        if !self.url.starts_with("ws://") {
            return Err(ClientError::Usage(format!(
                "--url {}: only ws:// URLs are supported",
                self.url
            )));
        }
        let mut seen: HashMap<PathBuf, &Path> = HashMap::new();
        let mut jobs = Vec::with_capacity(inputs.len());
        for input in inputs {
            let stem = input.file_stem().ok_or_else(|| {
                ClientError::Usage(format!("{}: not a file name", input.display()))
            })?;
            let mut name = stem.to_os_string();
            name.push(".flac");
            let output = self.output.join(name);
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
            output_dir: self.output.clone(),
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
        let tls = parse(&["a.wav", "-o", "o", "--url", "wss://h/stream"]).unwrap();
        assert!(matches!(tls.plan(), Err(ClientError::Usage(_))));
    }
}
