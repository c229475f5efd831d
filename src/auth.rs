//! Authentication, session ownership and the `Origin` allow-list.
//!
//! Off by default; `--auth` turns it on and needs at least one API key.
//!
//! - **API keys** ([`keys`]) are configured as `<key-id>:sha256:<hex>`
//!   (`--api-keys`, `--api-keys-file`; `flacstream key` makes one) and sent
//!   as `Authorization: Bearer <key>`. Only their SHA-256 is ever held.
//! - **Tokens** ([`token`]) are for browsers, which cannot set headers on a
//!   WebSocket: `POST /api/tokens` with a key returns one, HMAC-signed, valid
//!   at most [`token::MAX_TOKEN_TTL_SECONDS`] and scoped to a session id
//!   and/or a user id. It goes in `?access_token=` or a
//!   `Sec-WebSocket-Protocol` entry ([`guard`]).
//! - **Ownership** ([`principal`]): a session created with authentication on
//!   belongs to its key (and the token's user); its WebSocket joins and HTTP
//!   endpoints answer only the owner, and lists show only the caller's
//!   sessions.
//! - **Origin** ([`origin`]): a browser request from a page other than an
//!   `--allowed-origins` entry or the service's own (reached by an IP
//!   address or `localhost`: a host name could be DNS-rebound) is refused,
//!   whether authentication is on or off.
//! - **CORS** ([`cors`]): pages on an `--allowed-origins` entry may call
//!   the HTTP API with `fetch`: preflights answered, the origin echoed.
//!
//! What stays open: `/healthz`, `/readyz`, `/metrics` (keep it off the
//! public address: a NetworkPolicy or the ingress), the page and its assets.
//! `/admin/drain` answers loopback peers only, as before. No credential is
//! ever logged: the service logs no request line, header or query.

pub mod cors;
pub mod guard;
pub mod keys;
pub mod origin;
pub mod principal;
pub mod token;

pub use guard::{Auth, AuthConfigError, AuthFlags, TokenParameter, PROTOCOL};
pub use principal::{Access, NewSession, Principal};
