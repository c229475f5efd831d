//! The delay before a job's next attempt: doubling from the first delay
//! up to the longest, with "equal jitter" (half fixed, half random) so the
//! jobs of one outage do not all come back at the same moment.

use std::time::Duration;

use rand::Rng;

/// The delay after attempt `attempt` (1 for the first) failed.
pub fn delay(attempt: u32, first: Duration, longest: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let full = first
        .saturating_mul(1u32 << doublings.min(31))
        .min(longest)
        .max(Duration::from_millis(1));
    let half = full / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    half + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_longest() {
        let (first, longest) = (Duration::from_secs(10), Duration::from_secs(3600));
        for attempt in 1..=40 {
            let full = (first * 2u32.pow((attempt - 1).min(20))).min(longest);
            for _ in 0..20 {
                let d = delay(attempt, first, longest);
                assert!(
                    d >= full / 2 && d <= full + Duration::from_millis(1),
                    "{attempt}: {d:?}"
                );
            }
        }
    }
}
