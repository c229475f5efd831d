//! flacstream: live WAV → FLAC over WebSocket, bit-exact, on an actor pipeline.
//!
//! # Layout
//! - [`config`]: flags and environment variables (clap), validated once into
//!   [`config::Settings`].
//! - [`cpu`]: the start-up check that the CPU can run an x86-64-v3 build.
//! - [`server`]: builds the encoder pool, the registry, the store and the HTTP
//!   app; [`server::Service`] runs it, recovers sessions a crash left open,
//!   and drains on shutdown.
//! - [`stream`]: `GET /stream`, one WAV stream to FLAC.
//! - [`audio`]: `/api/ws/audio`, recorded sessions: open, resume, listen.
//! - [`convert`]: `POST /convert` (WAV in, FLAC streamed back) and
//!   `POST /upload` (WAV in, stored as a recorded session).
//! - [`sessions`]: the sessions HTTP API (get, list, close, audio, delete).
//! - [`transport`]: the actix-ws plumbing both WebSocket endpoints share: a
//!   read loop that awaits the session actor (backpressure) and a write loop
//!   with a slow-reader cut-off.
//! - [`storage`]: the SQLite session catalog, with migrations.
//! - [`protocol`]: the JSON text messages on the wire.
//! - [`error`]: [`error::ApiError`] and the one mapping of error codes to
//!   HTTP statuses and close codes.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`metrics`]: `GET /metrics` (Prometheus text) and the process's one
//!   recorder; the metric names live in `flacstream_actors::metrics`.
//! - [`auth`]: authentication (API keys, signed tokens), session
//!   ownership and the `Origin` allow-list; every guarded endpoint starts
//!   with [`auth::Auth::check`].
//! - [`tokens`]: `POST /api/tokens`, short-lived tokens for browsers.
//! - [`admin`]: `POST /admin/drain` (the drain SIGTERM starts, from a
//!   `preStop` hook) and `GET /admin/drain`, for loopback peers only.
//! - [`probe`]: the `flacstream probe` and `flacstream drain` clients, so a
//!   container image needs no shell or curl.
//! - [`page`]: the browser page (`/`, `/app.js`, `/recorder-worklet.js`,
//!   `/style.css`), embedded from `web/`.
//! - [`socket`]: each connection's TCP socket, kept so a client that stops
//!   reading can be cut off.
//! - [`frame_limit`]: refuses a WebSocket frame whose header declares more
//!   than the message limit, before any of its payload is buffered.
//! - [`shutdown`]: SIGTERM/SIGINT → drain.
//! - [`client_ip`]: who a request comes from (the peer, or what a trusted
//!   proxy's `X-Forwarded-For` says), for the per-client limits:
//!   [`client_connections`] (long-lived connections per address) and
//!   [`session_rate`] (new sessions per minute per key).
//! - [`tls`]: optional in-process TLS (`--tls-cert`/`--tls-key`), the
//!   certificate reloaded on SIGHUP or when its files change.
//!
//! The concurrency core (session, encoder pool, registry, staging) is the
//! `flacstream-actors` crate in `actors/`; WAV parsing and FLAC writing are
//! the actix-free `flacstream-codec` crate in `codec/`.

pub mod admin;
pub mod audio;
pub mod auth;
pub mod client_connections;
pub mod client_ip;
pub mod config;
pub mod convert;
pub mod cpu;
pub mod error;
pub mod frame_limit;
pub mod health;
pub mod metrics;
pub mod page;
pub mod probe;
pub mod protocol;
pub mod server;
pub mod session_rate;
pub mod sessions;
pub mod shutdown;
pub mod socket;
pub mod storage;
pub mod stream;
pub mod tls;
pub mod tokens;
pub mod transport;
