//! A connection's registration with its session, undone if the request is
//! dropped before the connection's loops take it over.

use actix::Recipient;

use super::{Leave, SessionId};

/// Counts a connection out of its session at the registry when dropped,
/// unless [`LeaveGuard::disarm`]ed: covers a request dropped between
/// joining a session and starting its loops (which then own the leave).
///
/// It holds only the registry's [`Leave`] recipient, so it is the same type
/// whatever handle the registry keeps for its sessions.
pub struct LeaveGuard {
    registry: Option<Recipient<Leave>>,
    id: SessionId,
}

impl LeaveGuard {
    /// Guards a connection counted against session `id`; `registry` is the
    /// registry's address (or any recipient of [`Leave`]).
    pub fn new(registry: impl Into<Recipient<Leave>>, id: SessionId) -> Self {
        Self {
            registry: Some(registry.into()),
            id,
        }
    }

    /// The connection's loops are running and will leave themselves.
    pub fn disarm(mut self) {
        self.registry = None;
    }
}

/// Sends [`Leave`] unless disarmed.
impl Drop for LeaveGuard {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.take() {
            registry.do_send(Leave { id: self.id });
        }
    }
}
