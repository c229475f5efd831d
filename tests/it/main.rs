//! The service's integration tests, as one test binary: every module runs a
//! real server (in-process, or the built binary) and real clients.
//!
//! - [`api_contract`]: the routes against the OpenAPI document; JSON 404
//!   and 405; the embedded docs.
//! - [`cors`]: CORS for `--allowed-origins`.
//! - [`analysis`]: chunk metadata and session analysis, against the test's
//!   own numbers and ffmpeg's `ebur128` and `silencedetect`.
//! - [`admin`]: `/admin/drain` and the container clients (`probe`, `drain`).
//! - [`auth`]: keys, tokens, session ownership, the Origin allow-list, and
//!   that no credential reaches the log.
//! - [`chosen_ids`]: sessions whose client chose the id.
//! - [`config`]: the binary's environment names, listening address and
//!   JSON logs.
//! - [`container_sessions`]: recorded sessions of containers (`format=webm`,
//!   `ogg`, `flac`, `mp3` …), resumed at a byte offset, relayed when scaled.
//! - [`convert`]: `POST /convert` and `POST /upload`.
//! - [`faults`]: what the fault run (loadtest/fault.sh) found.
//! - [`formats`]: MP3, AAC, ALAC, FLAC, Vorbis, AIFF, CAF and G.711 through
//!   `/convert` and `/upload`.
//! - [`limits`]: the abuse limits and slowloris cut-offs.
//! - [`phrases`]: the user/phrase API over recorded sessions.
//! - [`metrics`]: `GET /metrics` moves by what the clients did.
//! - [`recovery`]: `kill -9` mid-session, then a restart.
//! - [`sessions`]: recorded sessions, resume, listeners and their API.
//! - [`stream`]: `/stream`, checked sample for sample.
//! - [`tls`]: in-process TLS, certificate reloads and the binary over https.
//! - [`layout`]: the house rules: no import circles in any crate, no
//!   drawer folders.
//! - [`common`]: the server, clients and decoder checks they share.
//!
//! One binary rather than one per file because linking dominates the build:
//! each test binary links the whole service and its dependencies again, and
//! eleven of them took most of a fresh `cargo test --workspace` on two cores.
//! Its tests share one process, so [`common::start`] and [`common::alone`]
//! keep the metrics tests apart from every other in-process server (the
//! `metrics` recorder is one per process); `auth` installs the process's
//! logger. Run one module with `cargo test -p flacstream --test it -- auth::`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test, with its line"
)]

mod common;

mod admin;
mod analysis;
mod api_contract;
mod auth;
mod chosen_ids;
mod config;
mod container_sessions;
mod convert;
mod cors;
mod faults;
mod formats;
mod full_disk;
mod jobs;
mod layout;
mod limits;
mod metrics;
mod phrases;
mod recovery;
mod scaled;
mod sessions;
mod stream;
mod tls;
