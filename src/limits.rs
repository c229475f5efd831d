//! Per-client limits: who a request comes from, how many long-lived
//! connections each address holds, how many sessions each key opens a
//! minute. Each limit is a setting with a default (`crate::config`).
//!
//! - [`client_ip`]: the client's address (the peer, or what a trusted
//!   proxy's `X-Forwarded-For` says).
//! - [`client_connections`]: long-lived connections per address
//!   (`--max-connections-per-ip`).
//! - [`session_rate`]: new sessions per minute per key
//!   (`--new-sessions-per-minute`).

pub mod client_connections;
pub mod client_ip;
pub mod session_rate;
