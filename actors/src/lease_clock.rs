//! How long this replica may still act as the owner of its sessions.
//!
//! In scaled mode a replica owns a session through a lease row in the
//! catalog, renewed for all its sessions at once. A replica that cannot
//! renew (the database is unreachable, or it is partitioned from it) must
//! stop extending its sessions before another replica may take them over:
//! the renewal sets [`LeaseClock`] to "valid until the renewal's start plus
//! the lease minus a margin", and a session writes a durable segment only
//! while the clock is valid. Together with create-only segment writes
//! ([`crate::object_recordings`]) that keeps one writer per session without
//! any consensus of our own: the database's row and the object store's
//! conditional put decide.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The lease validity shared by a replica's sessions; see the module docs.
#[derive(Debug)]
pub struct LeaseClock {
    origin: Instant,
    /// Milliseconds after `origin` until which the leases hold; 0: never.
    valid_until_ms: AtomicU64,
}

impl Default for LeaseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl LeaseClock {
    /// A clock that is not valid until the first [`LeaseClock::renewed`].
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            valid_until_ms: AtomicU64::new(0),
        }
    }

    /// A clock that is always valid (one node: nobody else can take over).
    pub fn always() -> Self {
        let clock = Self::new();
        clock.valid_until_ms.store(u64::MAX, Ordering::Release);
        clock
    }

    /// A renewal that was sent at `sent_at` succeeded: the leases hold for
    /// `valid_for` after it (the lease minus the safety margin).
    pub fn renewed(&self, sent_at: Instant, valid_for: Duration) {
        let until = sent_at.saturating_duration_since(self.origin) + valid_for;
        self.valid_until_ms
            .fetch_max(until.as_millis() as u64, Ordering::AcqRel);
    }

    /// Whether the leases still hold now.
    pub fn valid(&self) -> bool {
        let now = self.origin.elapsed().as_millis() as u64;
        now < self.valid_until_ms.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_holds_only_until_its_renewal_runs_out() {
        let clock = LeaseClock::new();
        assert!(!clock.valid());
        clock.renewed(Instant::now(), Duration::from_millis(60));
        assert!(clock.valid());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!clock.valid());
        // An older renewal answered late never shortens a newer one.
        clock.renewed(Instant::now(), Duration::from_secs(60));
        clock.renewed(
            Instant::now() - Duration::from_secs(50),
            Duration::from_secs(1),
        );
        assert!(clock.valid());
        assert!(LeaseClock::always().valid());
    }
}
