//! The drain: stop taking streams, let open ones finish within a grace
//! period, flush and close the rest, stop the server. SIGTERM
//! ([`crate::shutdown`]) and `POST /admin/drain` both start it through a
//! [`Stopper`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use flacstream_actors::metrics::DRAINING;
use flacstream_actors::registry::Drain;
use flacstream_actors::Registry;

/// Extra time, beyond the grace period and the stall timeout, that a drain
/// waits for sessions to flush before stopping regardless, in seconds. A
/// drain therefore ends at most grace + stall + this after it starts.
pub const DRAIN_FLUSH_MARGIN_SECONDS: u64 = 5;

/// Whether a drain has started. Set once, by the [`Stopper`]; read by
/// `/readyz` and `/admin/drain`, which take this rather than the whole state.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// True from the moment a drain starts.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets it; true for the one caller that set it first.
    fn set(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }
}

/// Drains and stops a [`crate::service::Service`] from anywhere.
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    registry: Addr<Registry>,
    draining: Draining,
    grace: Duration,
    deadline: Duration,
}

impl Stopper {
    /// A stopper for the server behind `handle`: a drain lets open streams
    /// run for `grace`, and stops the server `deadline` after it starts
    /// whatever is still open.
    pub fn new(
        handle: ServerHandle,
        registry: Addr<Registry>,
        draining: Draining,
        grace: Duration,
        deadline: Duration,
    ) -> Self {
        Self {
            handle,
            registry,
            draining,
            grace,
            deadline,
        }
    }

    /// Stops taking streams (`/readyz` turns 503, new streams get 503
    /// `draining`), lets open streams run for the grace period, then flushes
    /// and closes the rest with 1001, and stops the server. A drain already
    /// under way is not started again: this returns at once.
    pub async fn drain(&self) {
        if self.begin() {
            self.finish().await;
        }
    }

    /// Starts the drain in the background and returns at once, `/readyz`
    /// already answering 503; false if a drain was already under way.
    pub fn start_drain(&self) -> bool {
        if !self.begin() {
            return false;
        }
        let stopper = self.clone();
        actix_web::rt::spawn(async move { stopper.finish().await });
        true
    }

    /// Marks the service draining; true for the one caller that started it.
    fn begin(&self) -> bool {
        metrics::gauge!(DRAINING).set(1.0);
        self.draining.set()
    }

    async fn finish(&self) {
        log::info!("Draining: no new streams; {:?} grace.", self.grace);
        let drained = self.registry.send(Drain { grace: self.grace });
        if tokio::time::timeout(self.deadline, drained).await.is_err() {
            log::warn!("Drain deadline passed with streams still open; stopping anyway.");
        }
        self.handle.stop(true).await;
    }
}
