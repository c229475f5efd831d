//! Every metric flacstream exports, in one place: its name, kind, unit, help
//! text and (for histograms) buckets.
//!
//! Code records through the `metrics` facade with these constants; the
//! service installs the Prometheus recorder, registers [`ALL`] with it and
//! serves `GET /metrics` (`flacstream::metrics`). Without an installed
//! recorder (unit tests, benches) recording is a no-op.
//!
//! Everything is recorded per message, block or frame, never per sample.
//! Gauges move by deltas (see [`GaugeDelta`]), so several servers in one
//! process (the integration tests) add up instead of overwriting each other.

use ::metrics::Unit;

/// Live streams: sessions started and not yet ended (`/stream`, `/convert`,
/// `/upload` and recorded sessions, in their resume window included). The
/// autoscaler reads this name (deploy/); do not rename it.
pub const ACTIVE_STREAMS: &str = "flacstream_active_streams";
/// Session slots in use, admitted or live: what the session cap counts.
pub const SESSIONS_ACTIVE: &str = "flacstream_sessions_active";
/// Client connections attached to sessions.
pub const CONNECTIONS_ACTIVE: &str = "flacstream_connections_active";
/// Sessions started, by [`LABEL_ENDPOINT`].
pub const STREAMS_STARTED: &str = "flacstream_streams_started_total";
/// Sessions that ended normally, by [`LABEL_REASON`].
pub const STREAMS_FINISHED: &str = "flacstream_streams_finished_total";
/// Sessions that failed, by [`LABEL_CODE`].
pub const STREAMS_FAILED: &str = "flacstream_streams_failed_total";
/// Audio bytes received from producers (WAV headers included).
pub const INPUT_BYTES: &str = "flacstream_input_bytes_total";
/// Samples per channel decoded from producers' audio.
pub const INPUT_SAMPLES: &str = "flacstream_input_samples_total";
/// FLAC bytes produced (stream headers and frames), once per stream however
/// many connections receive them.
pub const OUTPUT_BYTES: &str = "flacstream_output_bytes_total";
/// Samples per channel encoded into FLAC frames.
pub const OUTPUT_SAMPLES: &str = "flacstream_output_samples_total";
/// Time to encode one block, in seconds.
pub const ENCODE_SECONDS: &str = "flacstream_encode_seconds";
/// Time from a block's last input sample being staged to its frame being
/// queued to the session's connections, in seconds.
pub const FRAME_LATENCY_SECONDS: &str = "flacstream_frame_latency_seconds";
/// Samples (all channels) pushed into staging rings.
pub const STAGING_PUSHED: &str = "flacstream_staging_pushed_samples_total";
/// Samples (all channels) taken out of staging rings as blocks, or dropped
/// with a ring whose session ended; pushed minus popped is the occupancy.
pub const STAGING_POPPED: &str = "flacstream_staging_popped_samples_total";
/// Encoders restarted after a panic.
pub const ENCODER_RESTARTS: &str = "flacstream_encoder_restarts_total";
/// Requests and messages refused, by [`LABEL_CODE`].
pub const REJECTIONS: &str = "flacstream_rejections_total";
/// 1 once the server is draining, else 0.
pub const DRAINING: &str = "flacstream_draining";
/// Counter: durable segments written to object storage (scaled mode).
pub const SEGMENTS_WRITTEN: &str = "flacstream_segments_written_total";
/// Counter: segment writes object storage refused (each is retried).
pub const SEGMENT_WRITE_FAILURES: &str = "flacstream_segment_write_failures_total";
/// Counter: sessions this replica took over from another one.
pub const SESSIONS_TAKEN_OVER: &str = "flacstream_sessions_taken_over_total";
/// Background jobs in the queue, by kind and state: queued, running and
/// failed (from the catalog, shared by every replica; done ones are counted
/// by [`JOB_ATTEMPTS`]).
pub const JOBS: &str = "flacstream_jobs";
/// Job attempts this replica ran, by kind and outcome.
pub const JOB_ATTEMPTS: &str = "flacstream_job_attempts_total";
/// Time one job attempt took, in seconds.
pub const JOB_SECONDS: &str = "flacstream_job_seconds";
/// Always 1, labelled with the build's [`LABEL_VERSION`] and
/// [`LABEL_COMMIT`]: which build a replica runs.
pub const BUILD_INFO: &str = "flacstream_build_info";
/// Label of [`BUILD_INFO`]: the package version.
pub const LABEL_VERSION: &str = "version";
/// Label of [`BUILD_INFO`]: the git commit given at build time
/// (`FLACSTREAM_GIT_COMMIT`), else `unknown`.
pub const LABEL_COMMIT: &str = "commit";
/// Every [`LABEL_ENDPOINT`] value [`stream_started`] is given.
pub const ENDPOINTS: &[&str] = &["/stream", "/api/ws/audio", "/convert", "/upload"];
/// Label of the job metrics: the job's kind.
pub const LABEL_KIND: &str = "kind";
/// Label of [`JOBS`]: the job's state.
pub const LABEL_STATE: &str = "state";
/// Label of [`JOB_ATTEMPTS`]: `done`, `retry` or `failed`.
pub const LABEL_OUTCOME: &str = "outcome";
/// Bucket upper bounds of [`JOB_SECONDS`]: a webhook answered at once
/// (10 ms) to an hour-long recording analysed (10 min).
pub const JOB_SECONDS_BUCKETS: &[f64] = &[0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0];

/// Label of [`STREAMS_STARTED`]: the route that started the session.
pub const LABEL_ENDPOINT: &str = "endpoint";
/// Label of [`STREAMS_FINISHED`]: the `done` reason, or
/// [`REASON_DISCONNECTED`].
pub const LABEL_REASON: &str = "reason";
/// Label of [`STREAMS_FAILED`] and [`REJECTIONS`]: the stable error code
/// clients see (docs/protocol.md).
pub const LABEL_CODE: &str = "code";

/// [`LABEL_REASON`] of a `/stream` or `/convert` session whose client left
/// before the end: not a failure of the service, not a `done` either.
pub const REASON_DISCONNECTED: &str = "disconnected";

/// Bucket upper bounds of [`ENCODE_SECONDS`]: 50 µs (a small block at a fast
/// level) to 50 ms (a 4096-sample 8-channel block at level 8 on a busy core).
pub const ENCODE_SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
];

/// Bucket upper bounds of [`FRAME_LATENCY_SECONDS`]: 1 ms to 1 s. The issue's
/// targets (p95 10 ms, p99 20 ms) fall on bucket bounds.
pub const FRAME_LATENCY_SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.002_5, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0];

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into buckets.
    Histogram,
}

/// One metric's definition.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name, `flacstream_` first.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Unit of its values.
    pub unit: Unit,
    /// The help text Prometheus shows.
    pub help: &'static str,
    /// Bucket upper bounds, for histograms; empty otherwise.
    pub buckets: &'static [f64],
    /// Its label names; a metric without labels is exported from the start,
    /// at 0, so that a scrape finds it before anything happened.
    pub labels: &'static [&'static str],
}

const fn metric(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
        buckets: &[],
        labels: &[],
    }
}

/// Every metric, for the service to describe and to set buckets from.
pub const ALL: &[Metric] = &[
    Metric {
        labels: &[LABEL_VERSION, LABEL_COMMIT],
        ..metric(
            BUILD_INFO,
            Kind::Gauge,
            Unit::Count,
            "Always 1: the version and commit of this build.",
        )
    },
    metric(
        SEGMENTS_WRITTEN,
        Kind::Counter,
        Unit::Count,
        "Durable segments written to object storage (scaled mode).",
    ),
    metric(
        SEGMENT_WRITE_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Segment writes object storage refused; each is retried.",
    ),
    metric(
        SESSIONS_TAKEN_OVER,
        Kind::Counter,
        Unit::Count,
        "Sessions this replica took over from another one (scaled mode).",
    ),
    metric(
        ACTIVE_STREAMS,
        Kind::Gauge,
        Unit::Count,
        "Live streams: sessions started and not yet ended.",
    ),
    metric(
        SESSIONS_ACTIVE,
        Kind::Gauge,
        Unit::Count,
        "Session slots in use, admitted or live (what the session cap counts).",
    ),
    metric(
        CONNECTIONS_ACTIVE,
        Kind::Gauge,
        Unit::Count,
        "Client connections attached to sessions.",
    ),
    Metric {
        labels: &[LABEL_ENDPOINT],
        ..metric(
            STREAMS_STARTED,
            Kind::Counter,
            Unit::Count,
            "Sessions started, by endpoint.",
        )
    },
    Metric {
        labels: &[LABEL_REASON],
        ..metric(
            STREAMS_FINISHED,
            Kind::Counter,
            Unit::Count,
            "Sessions ended normally, by done reason (or disconnected).",
        )
    },
    Metric {
        labels: &[LABEL_CODE],
        ..metric(
            STREAMS_FAILED,
            Kind::Counter,
            Unit::Count,
            "Sessions failed, by error code.",
        )
    },
    metric(
        INPUT_BYTES,
        Kind::Counter,
        Unit::Bytes,
        "Audio bytes received from producers.",
    ),
    metric(
        INPUT_SAMPLES,
        Kind::Counter,
        Unit::Count,
        "Samples per channel decoded from producers' audio.",
    ),
    metric(
        OUTPUT_BYTES,
        Kind::Counter,
        Unit::Bytes,
        "FLAC bytes produced, once per stream.",
    ),
    metric(
        OUTPUT_SAMPLES,
        Kind::Counter,
        Unit::Count,
        "Samples per channel encoded into FLAC frames.",
    ),
    Metric {
        buckets: ENCODE_SECONDS_BUCKETS,
        ..metric(
            ENCODE_SECONDS,
            Kind::Histogram,
            Unit::Seconds,
            "Time to encode one block.",
        )
    },
    Metric {
        buckets: FRAME_LATENCY_SECONDS_BUCKETS,
        ..metric(
            FRAME_LATENCY_SECONDS,
            Kind::Histogram,
            Unit::Seconds,
            "Time from a block's last input sample staged to its frame queued to the client.",
        )
    },
    metric(
        STAGING_PUSHED,
        Kind::Counter,
        Unit::Count,
        "Samples (all channels) pushed into staging rings.",
    ),
    metric(
        STAGING_POPPED,
        Kind::Counter,
        Unit::Count,
        "Samples (all channels) popped from staging rings or dropped with their session.",
    ),
    metric(
        ENCODER_RESTARTS,
        Kind::Counter,
        Unit::Count,
        "Encoders restarted after a panic.",
    ),
    Metric {
        labels: &[LABEL_CODE],
        ..metric(
            REJECTIONS,
            Kind::Counter,
            Unit::Count,
            "Requests and messages refused, by error code.",
        )
    },
    metric(
        DRAINING,
        Kind::Gauge,
        Unit::Count,
        "1 once the server is draining, else 0.",
    ),
    Metric {
        labels: &[LABEL_KIND, LABEL_STATE],
        ..metric(
            JOBS,
            Kind::Gauge,
            Unit::Count,
            "Background jobs queued, running and failed, by kind (every replica's).",
        )
    },
    Metric {
        labels: &[LABEL_KIND, LABEL_OUTCOME],
        ..metric(
            JOB_ATTEMPTS,
            Kind::Counter,
            Unit::Count,
            "Job attempts run here, by kind and outcome (done, retry, failed).",
        )
    },
    Metric {
        labels: &[LABEL_KIND],
        buckets: JOB_SECONDS_BUCKETS,
        ..metric(
            JOB_SECONDS,
            Kind::Histogram,
            Unit::Seconds,
            "Time one job attempt took.",
        )
    },
];

/// Counts one session start at `endpoint` (the route, e.g. `/stream`).
pub fn stream_started(endpoint: &'static str) {
    ::metrics::counter!(STREAMS_STARTED, LABEL_ENDPOINT => endpoint).increment(1);
}

/// Counts one refusal with the client-facing error `code`.
pub fn rejected(code: &'static str) {
    ::metrics::counter!(REJECTIONS, LABEL_CODE => code).increment(1);
}

/// Keeps a gauge equal to an owner's own count by publishing only changes.
/// Each owner adds its share, so owners in the same process sum up; on drop
/// its share is taken back.
#[derive(Debug)]
pub struct GaugeDelta {
    name: &'static str,
    published: i64,
}

impl GaugeDelta {
    /// Publishes nothing yet (a share of 0).
    pub const fn new(name: &'static str) -> Self {
        Self { name, published: 0 }
    }

    /// Makes this owner's share `value`.
    pub fn set(&mut self, value: usize) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        let delta = value - self.published;
        if delta != 0 {
            ::metrics::gauge!(self.name).increment(delta as f64);
            self.published = value;
        }
    }
}

impl Drop for GaugeDelta {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_histograms_have_buckets() {
        let mut names: Vec<_> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "duplicate metric names");
        for m in ALL {
            assert!(m.name.starts_with("flacstream_"), "{}", m.name);
            assert!(!m.help.is_empty(), "{}", m.name);
            assert_eq!(
                m.name.ends_with("_total"),
                m.kind == Kind::Counter,
                "{}",
                m.name
            );
            assert_eq!(
                !m.buckets.is_empty(),
                m.kind == Kind::Histogram,
                "{}",
                m.name
            );
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
        }
    }
}
