//! flacstream-client: streams WAV files to a flacstream server's `/stream`
//! endpoint, writes the FLAC it sends back, and checks every sample of the
//! result against the input.
//!
//! # Layout
//! - [`args`]: command-line flags, and the [`args::Plan`] they describe.
//! - [`input`]: a WAV file read into memory, and what its header says.
//! - [`pacing`]: how the WAV is cut into messages, and when each is due
//!   with `--realtime`.
//! - [`exchange`]: one WebSocket stream: WAV out, FLAC in, then `done` or an error.
//! - [`convert`]: one file end to end: read, stream, patch STREAMINFO, write, verify.
//! - [`converted`]: what converting a file achieved ([`converted::Converted`]),
//!   shared by `convert` and `progress`.
//! - [`verify`]: decoding the output with claxon and comparing it with the input.
//! - [`progress`]: a progress bar per file on a terminal, plain lines otherwise.
//! - [`error`]: what can go wrong, and the exit code each maps to.

pub mod args;
pub mod convert;
pub mod converted;
pub mod error;
pub mod exchange;
pub mod input;
pub mod pacing;
pub mod progress;
pub mod verify;

use futures_util::StreamExt;

use crate::args::{Args, Plan};
use crate::convert::convert;
use crate::converted::Converted;
use crate::error::{exit, ClientError};
use crate::progress::Reporter;

/// Converts every input `args` names and returns the process exit code:
/// [`exit::OK`] only if every file succeeded, else the highest code of the
/// files that failed (see [`error::exit`]).
pub fn run(args: &Args) -> u8 {
    let reporter = Reporter::new(args.quiet);
    let plan = match args.plan() {
        Ok(plan) => plan,
        Err(e) => {
            reporter.error(None, &e);
            return e.exit_code();
        }
    };
    if let Err(source) = std::fs::create_dir_all(&plan.output_dir) {
        let e = ClientError::CreateDir {
            path: plan.output_dir.clone(),
            source,
        };
        reporter.error(None, &e);
        return e.exit_code();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            reporter.error(None, &ClientError::Runtime(e));
            return exit::USAGE_OR_IO;
        }
    };
    let results = runtime.block_on(convert_all(&plan, &reporter));
    let failed = results.iter().filter(|r| r.is_err()).count();
    reporter.summary(results.len(), failed);
    results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(ClientError::exit_code)
        .max()
        .unwrap_or(exit::OK)
}

/// Converts the plan's files, at most `plan.concurrency` at a time, and
/// returns their results in input order.
pub async fn convert_all(plan: &Plan, reporter: &Reporter) -> Vec<Result<Converted, ClientError>> {
    let mut results: Vec<(usize, Result<Converted, ClientError>)> =
        futures_util::stream::iter(plan.jobs.iter().enumerate())
            .map(|(i, job)| async move {
                let progress = reporter.file(&job.input);
                let result = convert(job, &plan.settings, &progress).await;
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
