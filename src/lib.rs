//! flacstream: live WAV → FLAC over WebSocket, bit-exact, on an actor pipeline.
//!
//! # Layout
//! - [`config`]: flags and environment variables (clap), validated once into
//!   [`config::Settings`].
//! - [`server`]: builds the encoder pool, the registry and the HTTP app;
//!   [`server::Service`] runs it and drains it.
//! - [`stream`]: `GET /stream`, the actix-ws transport: a read loop that
//!   awaits the session actor (backpressure) and a write loop with a
//!   slow-reader cut-off.
//! - [`protocol`]: the JSON text messages on the wire.
//! - [`error`]: [`error::ApiError`] and the one mapping of error codes to
//!   HTTP statuses and close codes.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`shutdown`]: SIGTERM/SIGINT → drain.
//!
//! The concurrency core (session, encoder pool, registry, staging) is the
//! `flacstream-actors` crate in `actors/`; WAV parsing and FLAC writing are
//! the actix-free `flacstream-codec` crate in `codec/`.

pub mod audio;
pub mod config;
pub mod error;
pub mod health;
pub mod protocol;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod storage;
pub mod stream;
pub mod transport;
