//! A lock-free "last activity" clock shared by a session and the registry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// tokio's clock is the system's monotonic clock (`std::time::Instant`)
// unless a test pauses it: then the registry's idle sweep can be tested on
// paused time, without waiting 30 real seconds.
use tokio::time::Instant;

/// When a session last received audio, readable from any thread without a lock.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last [`Activity::touch`].
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// A clock that was touched now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Records activity now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last activity.
    pub fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}
