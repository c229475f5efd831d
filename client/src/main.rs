//! `flacstream-client`: see the crate's README.md and `--help`.

use std::process::ExitCode;

use clap::Parser;
use flacstream_client::{args::Args, error::exit};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // clap's own exit code for usage errors is 2, which here means
            // "the server refused"; usage errors are 1.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE_OR_IO
            } else {
                exit::OK
            });
        }
    };
    ExitCode::from(flacstream_client::run(&args))
}
