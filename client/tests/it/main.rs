//! The client's integration tests, as one test binary:
//!
//! - [`cli`]: the real `flacstream-client` binary against a real server:
//!   round trips, `--realtime` pacing and exit codes.
//! - [`verify`]: the verifier on a FLAC made by the real client and server.
//! - [`tls_auth`]: `wss://` with a private CA, API keys and tokens, refusals.
//! - [`retry`]: `Retry-After` honoured, permanent refusals not retried.
//! - [`stdio`]: `-` for stdin and stdout.
//! - [`record`]: a recorded session cut mid-stream, resumed, exact.
//! - [`proxy`]: a TCP proxy that refuses or cuts connections.
//! - [`common`]: the shared server, WAV fixtures and a way to run the binary.
//!
//! One binary rather than one per file because linking dominates the build:
//! each test binary links the client, the whole service (the server they run
//! in-process) and their dependencies again. The tests share one process and
//! so one server ([`common::server_url`]).
//! Run one module with `cargo test -p flacstream-client --test it -- cli::`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test, with its line"
)]

mod common;

mod proxy;

mod cli;
mod record;
mod retry;
mod stdio;
mod tls_auth;
mod verify;
