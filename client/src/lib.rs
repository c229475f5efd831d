//! flacstream-client: streams WAV files to a flacstream server's `/stream`
//! endpoint, writes the FLAC it sends back, and checks every sample of the
//! result against the input; or (`record`) records one input as a session
//! on `/api/ws/audio`, resuming after dropped connections.
//!
//! # Layout
//! - [`args`]: command-line flags, and the [`args::Plan`] they describe.
//! - [`credential`]: the API key or token, sent as `Authorization: Bearer`, never printed.
//! - [`tls`]: rustls on ring with the system's roots and `--ca-file`.
//! - [`transport`]: the TCP or TLS connection under a WebSocket.
//! - [`retry`]: backoff bounded in attempts and waiting time; `Retry-After`.
//! - [`endpoint`]: opening a WebSocket (TLS, credential, retries), and
//!   which refusals are worth another attempt.
//! - [`stdio`]: `-` for stdin or stdout.
//! - [`input`]: a WAV file read into memory, and what its header says.
//! - [`pacing`]: how the WAV is cut into messages, and when each is due
//!   with `--realtime`.
//! - [`exchange`]: one WebSocket stream: WAV out, FLAC in, then `done` or an error.
//! - [`convert`]: one file end to end: read, stream, patch STREAMINFO, write, verify.
//! - [`converted`]: what converting a file achieved ([`converted::Converted`]),
//!   shared by `convert` and `progress`.
//! - [`verify`]: decoding the output with claxon and comparing it with the input.
//! - [`record`]: `record`, one recorded session surviving dropped connections,
//!   with [`source`] (the input's audio), [`backlog`] (audio kept until
//!   acknowledged), [`session_urls`] and [`download`] (its FLAC over HTTP).
//! - [`progress`]: a progress bar per file on a terminal, plain lines otherwise.
//! - [`error`]: what can go wrong, and the exit code each maps to.

pub mod args;
pub mod backlog;
pub mod convert;
pub mod converted;
pub mod credential;
pub mod download;
pub mod endpoint;
pub mod error;
pub mod exchange;
pub mod input;
pub mod pacing;
pub mod progress;
pub mod record;
pub mod retry;
pub mod session_urls;
pub mod source;
pub mod stdio;
pub mod tls;
pub mod transport;
pub mod verify;

use futures_util::StreamExt;

use crate::args::{Args, Command, Plan, RecordArgs};
use crate::convert::convert;
use crate::converted::Converted;
use crate::download::{download, Destination};
use crate::endpoint::Endpoint;
use crate::error::{exit, ClientError};
use crate::progress::Reporter;
use crate::record::{record, Notes};
use crate::source::SampleFormat;
use crate::stdio::is_stdio;

/// Runs what `args` asks for and returns the process exit code.
///
/// Converting: [`exit::OK`] only if every file succeeded, else the highest
/// code of the files that failed (see [`error::exit`]).
pub fn run(args: &Args) -> u8 {
    if let Some(Command::Record(record)) = &args.command {
        return run_record(record);
    }
    let reporter = Reporter::new(args.quiet);
    let prepared = args.plan().and_then(|plan| {
        let endpoint = args.connect.endpoint()?;
        Ok((plan, endpoint))
    });
    let (plan, endpoint) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            reporter.error(None, &e);
            return e.exit_code();
        }
    };
    if let Some(dir) = &plan.output_dir {
        if let Err(source) = std::fs::create_dir_all(dir) {
            let e = ClientError::CreateDir {
                path: dir.clone(),
                source,
            };
            reporter.error(None, &e);
            return e.exit_code();
        }
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            reporter.error(None, &e);
            return e.exit_code();
        }
    };
    let results = runtime.block_on(convert_all(&plan, &endpoint, &reporter));
    let failed = results.iter().filter(|r| r.is_err()).count();
    reporter.summary(results.len(), failed);
    results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(ClientError::exit_code)
        .max()
        .unwrap_or(exit::OK)
}

/// `flacstream-client record`: exit code as for conversions.
fn run_record(args: &RecordArgs) -> u8 {
    let notes = Notes {
        quiet: args.quiet,
        id_to_stdout: !args.download.as_deref().is_some_and(is_stdio),
    };
    let result = args
        .connect
        .endpoint()
        .and_then(|endpoint| Ok((endpoint, runtime()?)))
        .and_then(|(endpoint, runtime)| runtime.block_on(record_and_fetch(args, &endpoint, notes)));
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("flacstream-client: record: {e}");
            e.exit_code()
        }
    }
}

/// Records, then downloads (and checks) the FLAC if asked.
async fn record_and_fetch(
    args: &RecordArgs,
    endpoint: &Endpoint,
    notes: Notes,
) -> Result<(), ClientError> {
    let recorded = record(args, endpoint, notes).await?;
    let samples = recorded
        .samples
        .map_or_else(|| "finalized".to_string(), |s| format!("{s} samples"));
    notes.say(&format!(
        "session {} closed: {samples}, {} connection(s)",
        recorded.session_id, recorded.connections
    ));
    let Some(path) = &args.download else {
        return Ok(());
    };
    let to = Destination::of(path);
    let got = download(endpoint, &recorded.audio_url, &to, |e, wait| {
        notes.say(&format!("{e}; retrying in {:.1} s", wait.as_secs_f64()))
    })
    .await?;
    // A WAV file can be read again and compared; stdin and raw input cannot
    // (raw samples would need their own decoder here).
    if args.format == SampleFormat::Wav && !is_stdio(&args.input) {
        let wav = tokio::fs::read(&args.input)
            .await
            .map_err(ClientError::Read)?;
        let checked = match (&got.memory, &got.part) {
            (Some(flac), _) => verify::verify_reader(flac.as_slice(), &wav),
            (None, Some(part)) => verify::verify(part, &wav),
            (None, None) => Ok(verify::Verified { samples: 0 }),
        };
        checked.map_err(|source| match &got.part {
            Some(part) => ClientError::Verify {
                kept: part.clone(),
                source,
            },
            None => ClientError::VerifyStdout { source },
        })?;
    }
    if let Destination::File(file) = &to {
        got.keep(file).await?;
    }
    if let Some(flac) = got.memory {
        use tokio::io::AsyncWriteExt;
        let mut stdout = tokio::io::stdout();
        let written = stdout.write_all(&flac).await.and(stdout.flush().await);
        written.map_err(|source| ClientError::Write {
            path: "stdout".into(),
            source,
        })?;
    }
    notes.say(&format!(
        "downloaded {} bytes of FLAC to {}",
        got.bytes,
        path.display()
    ));
    Ok(())
}

/// The single-threaded runtime every command runs on.
fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

/// Converts the plan's files, at most `plan.concurrency` at a time, and
/// returns their results in input order.
pub async fn convert_all(
    plan: &Plan,
    endpoint: &Endpoint,
    reporter: &Reporter,
) -> Vec<Result<Converted, ClientError>> {
    let mut results: Vec<(usize, Result<Converted, ClientError>)> =
        futures_util::stream::iter(plan.jobs.iter().enumerate())
            .map(|(i, job)| async move {
                let progress = reporter.file(&job.input);
                let result = convert(job, &plan.settings, endpoint, &progress).await;
                match &result {
                    Ok(done) => progress.finish(done),
                    Err(e) => progress.fail(e),
                }
                (i, result)
            })
            .buffer_unordered(plan.concurrency)
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
