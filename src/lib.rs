//! flacstream: live WAV → FLAC over WebSocket, bit-exact, on an actor pipeline.
//!
//! # Layout
//! Folders are layers; a module imports only modules listed below it here
//! (`tests/it/layout.rs` checks that no two import each other, at every
//! level). ARCHITECTURE.md tells how one audio chunk travels through them.
//!
//! Top, the process:
//! - [`cli`]: the command line: serve, or the `probe`, `drain` and `key`
//!   clients ([`cli::probe`]) a container needs instead of a shell.
//! - [`service`]: assembles the actors, the state and the HTTP server, runs
//!   it, recovers sessions a crash left open.
//! - [`shutdown`]: SIGTERM/SIGINT → drain.
//! - [`cpu`]: the start-up check that the CPU can run an x86-64-v3 build.
//! - [`logging`]: the log output, text or one JSON object per line.
//!
//! The HTTP surface:
//! - [`routes`]: the route table, the one place that names the endpoints.
//! - [`api`]: the endpoints, one file per resource.
//! - [`state`]: [`state::AppState`], what every endpoint shares, and the
//!   admission steps they share.
//! - [`drain`]: [`drain::Stopper`], the drain SIGTERM and `/admin/drain`
//!   start.
//! - [`access_log`]: the middleware logging one line per request, and the
//!   line a WebSocket logs at its end.
//! - [`request_id`]: the middleware giving each request its id, returned
//!   in `X-Request-Id` and in error bodies.
//!
//! Below the endpoints:
//! - [`jobs`]: background jobs from the catalog's queue, on any replica:
//!   the final analysis, recompression for archives, webhook delivery,
//!   retention.
//! - [`webhook`]: a webhook's signature, its receiver's address checks
//!   (SSRF) and one delivery attempt.
//! - [`websocket`]: the actix-ws read and write loops, the frame-size limit
//!   and the per-connection socket.
//! - [`auth`]: API keys, signed tokens, ownership and the `Origin`
//!   allow-list; [`auth::Access`] is the extractor every guarded endpoint
//!   takes.
//! - [`limits`]: per-client limits: the client's address, its connection
//!   cap, its key's new-session rate.
//! - [`config`]: the server's flags and environment, validated once into
//!   [`config::Settings`].
//! - [`catalog`]: the session catalog's backends (SQLite).
//! - [`tls`]: optional in-process TLS, the certificate reloaded on SIGHUP or
//!   when its files change.
//! - [`metrics`]: the process's one Prometheus recorder; the metric names
//!   live in `flacstream_actors::metrics`.
//!
//! Leaves:
//! - [`error`]: [`error::ApiError`] and the one mapping of error codes to
//!   HTTP statuses and close codes.
//! - [`protocol`]: the JSON messages on the wire.
//! - [`ids`]: the ids a client chooses, and their limits.
//!
//! The concurrency core (session, encoder pool, registry, staging, store) is
//! the `flacstream-actors` crate in `actors/`; WAV parsing and FLAC writing
//! are the actix-free `flacstream-codec` crate in `codec/`.

pub mod access_log;
pub(crate) mod api;
pub mod auth;
pub(crate) mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod cpu;
pub mod drain;
pub mod error;
pub(crate) mod ids;
pub mod jobs;
pub mod limits;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod protocol;
pub mod request_id;
pub mod routes;
pub mod service;
pub mod shutdown;
pub(crate) mod state;
pub mod storage;
pub mod tls;
pub mod webhook;
pub mod websocket;
