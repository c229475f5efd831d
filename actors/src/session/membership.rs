//! A session as the registry sees it: its address is the registry's
//! [`Member`], told of idle timeouts and shutdowns through its messages.

use actix::Addr;

use super::{DrainStarted, IdleTimeout, Session, Shutdown};
use crate::registry::Member;

/// The registry's two requests, as the messages the session handles.
impl Member for Addr<Session> {
    fn idle_timeout(&self, after_seconds: u64) {
        self.do_send(IdleTimeout { after_seconds });
    }

    fn shutdown(&self) {
        self.do_send(Shutdown);
    }

    fn drain_started(&self) {
        self.do_send(DrainStarted);
    }
}
