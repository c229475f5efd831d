//! Webhooks: a signed POST to a receiver when a recording is ready or a
//! session fails, delivered by the job queue (`crate::jobs`), so at least
//! once, retried with backoff for hours and across restarts.
//!
//! - [`signature`]: what the receiver checks. The header
//!   `Flacstream-Signature: t=<unix seconds>,v1=<hex>` carries
//!   HMAC-SHA256 over `<t>.<body>` with the shared secret
//!   (`FLACSTREAM_WEBHOOK_SECRET`).
//! - [`target`]: which receivers may be reached. Loopback, link-local
//!   (cloud metadata lives there), unspecified, multicast and broadcast
//!   addresses are refused unless a network in
//!   `--webhook-allowed-networks` covers them; the check is made on the
//!   addresses the name resolves to, at each delivery, and the connection
//!   goes to those checked addresses only (no second lookup to rebind).
//! - [`delivery`]: one attempt: the POST, its timeout, what counts as
//!   delivered (any 2xx) and what is worth a retry.

pub mod delivery;
pub mod signature;
pub mod target;
