//! When to try again: exponential backoff with jitter, bounded both in
//! attempts and in total time spent waiting, and the server's `Retry-After`
//! honoured when it sends one (HTTP 429 and 503, docs/protocol.md 2 and 13).
//!
//! What is worth retrying is decided where the failure is seen
//! ([`crate::endpoint`], [`crate::record`]); this module only says how long to
//! wait and when to stop.

use std::time::Duration;

use rand::Rng;

/// Attempts in all (the first included) unless `--retries` says otherwise;
/// counted since the last progress (see [`Backoff::reset`]).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;

/// Seconds the client may spend waiting between attempts, in all, unless
/// `--retry-max-wait` says otherwise (inclusive). A `Retry-After` longer
/// than what is left of it ends the retries at once.
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 120;

/// The first wait without `Retry-After`; each further one doubles.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);

/// The longest single wait without `Retry-After`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Added at random to a `Retry-After` wait (at most, inclusive), so clients
/// refused together do not all come back in the same instant.
pub const RETRY_AFTER_JITTER: Duration = Duration::from_millis(250);

/// The bounds, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1 (1: no retry).
    pub max_attempts: u32,
    /// Total wait between attempts, at most.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_wait: Duration::from_secs(DEFAULT_MAX_WAIT_SECONDS),
        }
    }
}

/// The retry state of one task (one file, one recorded session).
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    /// Failed attempts since the last reset.
    failures: u32,
    /// Time waited since the last reset.
    waited: Duration,
}

impl Backoff {
    /// A fresh state under `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            waited: Duration::ZERO,
        }
    }

    /// An attempt failed in a way worth retrying: how long to wait before
    /// the next one, or `None` when the attempts or the waiting time are
    /// used up. `retry_after` is the server's `Retry-After`, if it sent one.
    pub fn next_wait(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        self.failures += 1;
        if self.failures >= self.policy.max_attempts {
            return None;
        }
        let mut rng = rand::rng();
        let wait = match retry_after {
            Some(after) => after + rng.random_range(Duration::ZERO..=RETRY_AFTER_JITTER),
            None => {
                // 2^(failures-1) × the initial wait, capped; "equal jitter":
                // half fixed, half random, so waits still grow.
                let doubled = INITIAL_BACKOFF.saturating_mul(1 << (self.failures - 1).min(16));
                let full = doubled.min(MAX_BACKOFF);
                full / 2 + rng.random_range(Duration::ZERO..=full / 2)
            }
        };
        let left = self.policy.max_wait.saturating_sub(self.waited);
        if wait > left {
            // A Retry-After past the budget: waiting less would be refused
            // again. A backoff past it: one last, shorter wait is still useful.
            if retry_after.is_some() || left.is_zero() {
                return None;
            }
            self.waited += left;
            return Some(left);
        }
        self.waited += wait;
        Some(wait)
    }

    /// Progress was made (a connection carried audio that the server
    /// acknowledged): the bounds start again.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.waited = Duration::ZERO;
    }

    /// Attempts made so far that failed.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Time waited so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// A `Retry-After` value in delta-seconds, as the service sends it. The
/// HTTP-date form is not read (the caller falls back to its backoff).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .map(|s| Duration::from_secs(u64::from(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stop_after_the_attempts() {
        let mut b = Backoff::new(RetryPolicy {
            max_attempts: 4,
            max_wait: Duration::from_secs(100),
        });
        let waits: Vec<_> = std::iter::from_fn(|| b.next_wait(None)).collect();
        assert_eq!(waits.len(), 3, "4 attempts: 3 waits");
        for (i, w) in waits.iter().enumerate() {
            let full = INITIAL_BACKOFF * (1 << i);
            assert!(*w >= full / 2 && *w <= full, "wait {i}: {w:?}");
        }
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_wait(None).is_some());
    }

    #[test]
    fn retry_after_is_honoured_within_the_budget() {
        let mut b = Backoff::new(RetryPolicy {
            max_attempts: 10,
            max_wait: Duration::from_secs(5),
        });
        let w = b.next_wait(Some(Duration::from_secs(2))).unwrap();
        assert!(w >= Duration::from_secs(2) && w <= Duration::from_secs(2) + RETRY_AFTER_JITTER);
        // 3 s or less left: a Retry-After of 4 s cannot be honoured.
        assert_eq!(b.next_wait(Some(Duration::from_secs(4))), None);
    }

    #[test]
    fn the_total_wait_is_bounded() {
        let mut b = Backoff::new(RetryPolicy {
            max_attempts: 100,
            max_wait: Duration::from_secs(3),
        });
        let total: Duration = std::iter::from_fn(|| b.next_wait(None)).sum();
        assert_eq!(total, Duration::from_secs(3));
        assert_eq!(b.waited(), total);
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
