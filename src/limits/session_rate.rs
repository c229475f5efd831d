//! New sessions per minute per key (`--new-sessions-per-minute`): a
//! client that opens sessions faster gets 429 `rate_limited` with a
//! `Retry-After` header, before the upgrade or the upload.
//!
//! Every session costs a slot, an actor and, when recorded, a catalog row
//! and a file; a client opening and dropping them in a loop costs the
//! server far more than it costs the client. The sessions counted are the
//! new ones (`/stream`, `/api/ws/audio` opens, `/convert`, `/upload`), not a
//! producer resuming or a listener joining, which the per-session and
//! per-client connection caps bound.
//!
//! The limiter is GCRA, the token bucket kept as one timestamp per key:
//! the "theoretical arrival time" of the key's next session. A bucket holds
//! one minute's allowance and refills evenly over the minute, so a client
//! may open up to the whole allowance at once and then one every
//! 60 s / allowance. A key whose timestamp has passed is exactly a fresh
//! key, so such entries are dropped at each sweep: the map holds only keys
//! seen within the last minute, and never more than [`MAX_TRACKED_KEYS`].
//!
//! Why not the `governor` crate: its keyed limiter is the same GCRA, but its
//! store has no size bound of its own (only a `retain_recent` to call), and
//! it brings a clock crate and a concurrent map for a check that runs once
//! per new session, not per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::ApiError;
use crate::limits::client_ip::ClientIp;

/// Default new sessions per minute per key, also the burst: two a second
/// on average, 120 at once. A person starts a few a minute; a batch client
/// converting many short files through `/stream` can reach this, and should
/// be given its own key (with authentication on) or a higher limit.
pub const DEFAULT_NEW_SESSIONS_PER_MINUTE: u32 = 120;

/// Most keys tracked at once. Past this (more distinct clients opening
/// sessions within one minute than any one pod serves), new keys are let
/// through untracked rather than refused: refusing would let a spread-out
/// attack lock every newcomer out. About 64 bytes each: 4 MiB at most.
pub const MAX_TRACKED_KEYS: usize = 65_536;

/// The map is swept once it holds this many keys, then each time it has
/// doubled since the last sweep (but at [`MAX_TRACKED_KEYS`] at the latest,
/// else a sweep that left more than half of them would never be followed by
/// another): the cost of sweeping stays proportional to the insertions.
const FIRST_SWEEP_AT: usize = 1024;

/// Least time between two sweeps of a full map, in milliseconds. Full of
/// live keys, every new key would otherwise sweep all [`MAX_TRACKED_KEYS`]
/// under the lock; keys expire at most a minute after their last session,
/// so a sweep a second is soon enough to start tracking again.
const FULL_SWEEP_INTERVAL_MS: u64 = 1000;

/// What new sessions are counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An authenticated caller's rate key: the key id, or `<key id>:<user
    /// id>` for a token that names a user (`Principal::rate_key`).
    Principal(String),
    /// The client's address ([`ClientIp::limit_key`]) when there is no
    /// principal.
    Client(IpAddr),
}

impl RateKey {
    /// The one place the key is chosen: the principal's rate key when the
    /// request is authenticated (`Access::rate_key`, `None` with
    /// authentication off), else the client's address. So clients behind
    /// one NAT with their own keys are limited apart, and without
    /// authentication each address is.
    pub fn choose(principal: Option<&str>, client: ClientIp) -> Self {
        match principal {
            Some(key) => Self::Principal(key.to_string()),
            None => Self::Client(client.limit_key()),
        }
    }
}

/// A new session counted under its key by [`SessionRate::charge`], to give
/// back with [`SessionRate::refund`] if the session is then refused
/// admission (server full, draining, its id taken): a refusal the client
/// did not cause must not spend its allowance.
#[derive(Debug)]
#[must_use = "a session refused admission gives its charge back"]
pub struct Charge {
    key: RateKey,
}

/// Keyed new-session limiter; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct SessionRate {
    per_minute: u32,
    /// Time one session costs: 60 s / `per_minute`.
    interval: Duration,
    /// How far ahead of now a key's arrival time may run: the burst less one.
    tolerance: Duration,
    buckets: Arc<Mutex<Buckets>>,
}

#[derive(Debug)]
struct Buckets {
    /// Each key's theoretical arrival time.
    next: HashMap<RateKey, Instant>,
    sweep_at: usize,
    /// When the map was last swept, for [`FULL_SWEEP_INTERVAL_MS`].
    swept: Option<Instant>,
}

impl SessionRate {
    /// `per_minute` new sessions per key, at least 1.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        let interval = Duration::from_secs(60) / per_minute;
        Self {
            per_minute,
            interval,
            tolerance: interval * (per_minute - 1),
            buckets: Arc::new(Mutex::new(Buckets {
                next: HashMap::new(),
                sweep_at: FIRST_SWEEP_AT,
                swept: None,
            })),
        }
    }

    /// Counts a new session under `key`, or refuses it with 429
    /// `rate_limited` saying when the next one will be let in.
    pub fn check(&self, key: RateKey) -> Result<(), ApiError> {
        self.check_at(key, Instant::now())
    }

    /// [`check`](Self::check), keeping what was counted so that it can be
    /// given back.
    pub fn charge(&self, key: RateKey) -> Result<Charge, ApiError> {
        self.check(key.clone())?;
        Ok(Charge { key })
    }

    /// Gives back a session [`charge`](Self::charge) counted: its key's next
    /// arrival time moves one interval earlier. At most back to a fresh
    /// key's allowance, since a time in the past counts as now.
    pub fn refund(&self, charge: Charge) {
        let mut buckets = self.buckets.lock();
        // Not there: it passed untracked, or a sweep found it paid for.
        if let Some(next) = buckets.next.get_mut(&charge.key) {
            if let Some(earlier) = next.checked_sub(self.interval) {
                *next = earlier;
            }
        }
    }

    fn check_at(&self, key: RateKey, now: Instant) -> Result<(), ApiError> {
        let mut buckets = self.buckets.lock();
        let full_sweep_due = buckets.swept.is_none_or(|at| {
            now.saturating_duration_since(at) >= Duration::from_millis(FULL_SWEEP_INTERVAL_MS)
        });
        if buckets.next.len() >= buckets.sweep_at
            && (buckets.next.len() < MAX_TRACKED_KEYS || full_sweep_due)
        {
            buckets.next.retain(|_, next| *next > now);
            buckets.sweep_at = (buckets.next.len() * 2).clamp(FIRST_SWEEP_AT, MAX_TRACKED_KEYS);
            buckets.swept = Some(now);
        }
        let tracked = buckets.next.len();
        let next = match buckets.next.get(&key) {
            Some(next) => (*next).max(now),
            None if tracked >= MAX_TRACKED_KEYS => {
                log::warn!("Session rate: {tracked} keys tracked; letting a new one through.");
                return Ok(());
            }
            None => now,
        };
        let ahead = next - now;
        if ahead > self.tolerance {
            let wait = ahead - self.tolerance;
            return Err(ApiError::RateLimited {
                per_minute: self.per_minute,
                retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            });
        }
        buckets.next.insert(key, next + self.interval);
        Ok(())
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().next.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> RateKey {
        RateKey::Client(IpAddr::from(n.to_be_bytes()))
    }

    fn retry_after(e: ApiError) -> u64 {
        match e {
            ApiError::RateLimited {
                retry_after_seconds,
                ..
            } => retry_after_seconds,
            other => panic!("expected rate_limited, got {other:?}"),
        }
    }

    #[test]
    fn a_minutes_allowance_at_once_then_one_per_interval() {
        let rate = SessionRate::new(6); // one per 10 s
        let t0 = Instant::now();
        for _ in 0..6 {
            rate.check_at(key(1), t0).unwrap();
        }
        let refused = rate.check_at(key(1), t0).unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(retry_after(refused), 10);
        // Another key has its own allowance.
        rate.check_at(key(2), t0).unwrap();
        // Retry-After is exact: one second early is still refused.
        let early = rate.check_at(key(1), t0 + Duration::from_secs(9));
        assert_eq!(retry_after(early.unwrap_err()), 1);
        rate.check_at(key(1), t0 + Duration::from_secs(10)).unwrap();
        assert!(rate.check_at(key(1), t0 + Duration::from_secs(10)).is_err());
        // After a quiet minute the whole allowance is back, not more.
        let later = t0 + Duration::from_secs(200);
        for _ in 0..6 {
            rate.check_at(key(1), later).unwrap();
        }
        assert!(rate.check_at(key(1), later).is_err());
    }

    #[test]
    fn a_refunded_charge_is_as_if_it_never_was() {
        let rate = SessionRate::new(2);
        let first = rate.charge(key(1)).unwrap();
        let second = rate.charge(key(1)).unwrap();
        assert!(rate.charge(key(1)).is_err());
        rate.refund(second);
        let again = rate.charge(key(1)).unwrap();
        assert!(rate.charge(key(1)).is_err());
        // Refunds give back no more than a fresh key's allowance.
        rate.refund(first);
        rate.refund(again);
        rate.refund(Charge { key: key(1) });
        assert!(rate.charge(key(1)).is_ok() && rate.charge(key(1)).is_ok());
        assert!(rate.charge(key(1)).is_err());
    }

    #[test]
    fn the_key_is_the_principal_when_there_is_one() {
        let client = ClientIp::resolve(
            "192.0.2.1".parse().unwrap(),
            &actix_web::http::header::HeaderMap::new(),
            &crate::limits::client_ip::TrustedProxies::default(),
        );
        assert_eq!(
            RateKey::choose(Some("k1"), client),
            RateKey::Principal("k1".into())
        );
        assert_eq!(
            RateKey::choose(None, client),
            RateKey::Client(client.limit_key())
        );
    }

    #[test]
    fn keys_whose_time_has_passed_are_swept_and_the_map_is_bounded() {
        let rate = SessionRate::new(60);
        let t0 = Instant::now();
        for n in 0..FIRST_SWEEP_AT as u32 {
            rate.check_at(key(n), t0).unwrap();
        }
        assert_eq!(rate.tracked(), FIRST_SWEEP_AT);
        // One second on, each of those keys' single session is paid for.
        rate.check_at(key(u32::MAX), t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(rate.tracked(), 1);
        // At the bound, new keys pass untracked; tracked ones stay limited.
        let full = SessionRate::new(1);
        for n in 0..MAX_TRACKED_KEYS as u32 {
            full.check_at(key(n), t0).unwrap();
        }
        assert_eq!(full.tracked(), MAX_TRACKED_KEYS);
        full.check_at(key(u32::MAX), t0).unwrap();
        assert_eq!(full.tracked(), MAX_TRACKED_KEYS);
        assert!(full.check_at(key(7), t0).is_err());
    }

    #[test]
    fn the_limiter_stays_on_after_a_burst_of_keys_expires() {
        let rate = SessionRate::new(30); // one per 2 s, burst 30
        let t0 = Instant::now();
        for n in 0..MAX_TRACKED_KEYS as u32 {
            rate.check_at(key(n), t0).unwrap();
        }
        // One more while they are all live: the map is full and is swept,
        // which drops nothing; that sweep must not be the last one.
        let t1 = t0 + Duration::from_millis(FULL_SWEEP_INTERVAL_MS + 100);
        rate.check_at(key(u32::MAX), t1).unwrap();
        assert_eq!(rate.tracked(), MAX_TRACKED_KEYS);
        // Every tracked key has expired; a new key must be limited again.
        let t2 = t0 + Duration::from_millis(2 * FULL_SWEEP_INTERVAL_MS + 500);
        let admitted = (0..200)
            .filter(|_| rate.check_at(key(u32::MAX - 1), t2).is_ok())
            .count();
        assert_eq!(admitted, 30, "tracked {}", rate.tracked());
        // A full map of live keys is swept at most once per interval.
        let full = SessionRate::new(1);
        for n in 0..MAX_TRACKED_KEYS as u32 {
            full.check_at(key(n), t0).unwrap();
        }
        full.check_at(key(u32::MAX), t1).unwrap();
        let swept = full.buckets.lock().swept;
        assert_eq!(swept, Some(t1));
        full.check_at(key(u32::MAX - 1), t1 + Duration::from_millis(500))
            .unwrap();
        assert_eq!(full.buckets.lock().swept, swept);
    }
}
