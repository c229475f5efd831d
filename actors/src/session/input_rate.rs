//! The input-rate bound of live sessions: a recorded session's producers
//! may not send audio faster than `--max-input-rate` times real time,
//! beyond `--input-burst-seconds` of audio.
//!
//! A live source cannot run ahead of its clock; a client that sends hours
//! of audio in minutes through `/api/ws/audio` is using the live endpoint
//! as a bulk converter and takes encoder time from the live sessions the
//! endpoint is for (`/stream`, `/convert` and `/upload` are the bulk paths,
//! and are not bound by this).
//!
//! The clock is the session's, not the connection's: the audio a session
//! may have received is what its sample rate gives over the time since the
//! session started, times the rate, plus the burst. So a producer that
//! resumes after a gap may send the audio it buffered meanwhile as fast as
//! it likes (the allowance grew while it was away), and a client cannot
//! win a fresh burst by reconnecting. The check comes before each message
//! is accepted: everything accepted (and acknowledged) stays, and a
//! producer is refused at most one message past the bound.

use std::time::Duration;

use super::Session;
use crate::StreamError;

/// Default bound, in multiples of real time. A live source sends at 1×
/// on average over the session; twice leaves room for clocks that
/// disagree and for a client catching up after a stall, while a bulk
/// upload (tens of times real time) is refused.
pub const DEFAULT_MAX_INPUT_RATE: f64 = 2.0;

/// Default burst: seconds of audio a session may receive beyond the rate,
/// at any speed. Covers what a client buffered before the session opened
/// (a phone reconnecting after a tunnel, a recorder that started before
/// the network was up) and short clips sent whole; 60 s of CD audio is
/// 10 MB and about a tenth of a CPU-second to encode.
pub const DEFAULT_INPUT_BURST_SECONDS: u64 = 60;

/// How fast a live session's producers may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputRateLimit {
    /// Audio seconds per wall-clock second, at least 1.
    pub max_rate: f64,
    /// Audio a session may receive beyond the rate, at any speed.
    pub burst: Duration,
}

impl InputRateLimit {
    /// Samples per channel a session at `sample_rate` that started
    /// `elapsed` ago may have received.
    pub fn allowance(&self, sample_rate: u32, elapsed: Duration) -> u64 {
        let seconds = elapsed.as_secs_f64() * self.max_rate + self.burst.as_secs_f64();
        // Saturates: a float cast to an integer clamps.
        (seconds * f64::from(sample_rate)) as u64
    }

    /// `InputTooFast` if a session that started `elapsed` ago and has
    /// received `samples` per channel at `sample_rate` is past its
    /// allowance.
    pub fn check(
        &self,
        samples: u64,
        sample_rate: u32,
        elapsed: Duration,
    ) -> Result<(), StreamError> {
        if samples > self.allowance(sample_rate, elapsed) {
            return Err(StreamError::InputTooFast {
                max_rate_percent: (self.max_rate * 100.0).round() as u32,
                burst_seconds: self.burst.as_secs(),
            });
        }
        Ok(())
    }
}

impl Session {
    /// Whether the audio accepted so far keeps to the session's input-rate
    /// bound, if it has one and its format is known.
    pub(super) fn input_rate_kept(&self) -> Result<(), StreamError> {
        let (Some(limit), Some(stream)) = (self.settings.input_rate, self.stream.as_ref()) else {
            return Ok(());
        };
        limit.check(
            stream.decoder.frames_decoded(),
            stream.format.sample_rate,
            self.started_at.elapsed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_is_the_burst_plus_the_rate_over_the_sessions_time() {
        let limit = InputRateLimit {
            max_rate: 2.0,
            burst: Duration::from_secs(10),
        };
        assert_eq!(limit.allowance(16_000, Duration::ZERO), 160_000);
        assert_eq!(limit.allowance(16_000, Duration::from_secs(5)), 320_000);
        assert_eq!(
            limit.allowance(44_100, Duration::from_millis(500)),
            44_100 * 11
        );
        assert!(limit.check(160_000, 16_000, Duration::ZERO).is_ok());
        let e = limit.check(160_001, 16_000, Duration::ZERO).unwrap_err();
        assert_eq!(e.code(), "input_too_fast");
        assert_eq!(e.kind(), crate::ErrorKind::Policy);
        // An hour in, a producer that kept to real time is far inside.
        let hour = Duration::from_secs(3600);
        assert!(limit.check(3600 * 16_000, 16_000, hour).is_ok());
    }
}
