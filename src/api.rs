//! The endpoints, one file per endpoint or group of endpoints over one
//! resource. Each receives the state ([`crate::state::AppState`]) and the
//! checks it needs as extractors: [`crate::auth::Access`] for the caller,
//! [`session_access::SessionAccess`] for an existing session's owner.
//! [`crate::routes`] maps them to paths.
//!
//! - [`stream`]: `GET /stream`, one WAV stream to FLAC over WebSocket.
//! - [`audio_socket`]: `/api/ws/audio`, recorded sessions over WebSocket:
//!   open, resume, listen.
//! - [`sessions`]: the sessions HTTP API (get, list, close, audio, delete),
//!   and the list by user (`GET /api/users/{user_id}/sessions`).
//! - [`chunks`]: chunk metadata (`GET /api/chunks/{chunk_id}`, a session's
//!   chunks in pages).
//! - [`analysis`]: a session's loudness, silences and clipping.
//! - [`jobs`]: a session's background jobs and their attempts (the webhook
//!   delivery log), `GET /api/jobs?session_id=`.
//! - [`convert`]: `POST /convert` (any audio in, FLAC streamed back) and
//!   `POST /upload` (any audio in, stored as a recorded session).
//! - [`originals`]: the uploaded bytes kept beside the FLAC, and
//!   `GET /api/audio/sessions/{id}/original`.
//! - [`phrases`]: the user/phrase API (`/audio/user/{user_id}/phrase/…`):
//!   a user's named recordings over recorded sessions.
//! - [`tokens`]: `POST /api/tokens`, short-lived tokens for browsers.
//! - [`admin`]: `POST /admin/drain` and `GET /admin/drain`, loopback only.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`metrics`]: `GET /metrics`, Prometheus text.
//! - [`page`]: the browser page and its assets, embedded from `web/`.
//! - [`session_access`]: the extractor every endpoint under a session id
//!   starts with.
//! - [`relay`]: scaled mode: a listener on a replica that does not own its
//!   session is relayed from the owner.
//! - [`takeover`]: scaled mode: a live session another replica holds (or
//!   held) moves to this one for a resume, a listener or a close.

pub mod admin;
pub mod analysis;
pub mod asyncapi;
pub mod audio_socket;
pub mod chunks;
pub mod convert;
pub mod docs;
pub mod fallback;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod originals;
pub mod page;
pub mod phrases;
pub mod relay;
pub mod session_access;
pub mod sessions;
pub mod stream;
pub mod takeover;
pub mod tokens;
