//! How a recording's refused write is retried: the same write again, after
//! a wait that doubles from [`FIRST_RETRY_MS`] to [`MAX_RETRY_MS`], for as
//! long as the session lives. Storage that comes back (a disk with room
//! again, an object store up again) is noticed within the longest wait.

use std::time::Duration;

/// First wait before retrying a refused write, in milliseconds.
pub const FIRST_RETRY_MS: u64 = 200;

/// Longest wait between retries, in milliseconds.
pub const MAX_RETRY_MS: u64 = 5_000;

/// Consecutive refusals of one recording's writes; see the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Retry {
    failures: u32,
}

impl Retry {
    /// A write was refused: how long to wait before trying it again.
    pub fn refused(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.min(16) - 1;
        let ms = FIRST_RETRY_MS.saturating_mul(1 << doublings);
        Duration::from_millis(ms.min(MAX_RETRY_MS))
    }

    /// A write succeeded; answers whether writes had been refused.
    pub fn succeeded(&mut self) -> bool {
        std::mem::take(&mut self.failures) > 0
    }

    /// Consecutive refusals so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_on_success() {
        let mut r = Retry::default();
        let waits: Vec<u64> = (0..8).map(|_| r.refused().as_millis() as u64).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert!(r.succeeded());
        assert!(!r.succeeded());
        assert_eq!(r.refused().as_millis(), 200);
    }
}
