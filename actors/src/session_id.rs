//! The id that names a session: granted by the registry, carried by the
//! session in everything it reports, and used by the service in URLs and
//! tokens.
//!
//! A leaf module because both sides of the registry and session pair use it:
//! kept in either one, the other would have to import it, and the two
//! modules would depend on each other.

/// Identifies a session.
pub type SessionId = uuid::Uuid;
