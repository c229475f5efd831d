//! The process's Prometheus recorder, for every metric in
//! [`flacstream_actors::metrics`], where their names, units, help texts and
//! buckets are defined; `GET /metrics` ([`crate::api::metrics`]) renders it.
//!
//! The recorder is `metrics-exporter-prometheus`'s, built without its own
//! HTTP listener: this service renders it on its own port. The `metrics`
//! facade takes one global recorder per process, so [`install`] builds it
//! once and every [`crate::service::Service`] in the process (the integration
//! tests start many) shares it; their counters add up.
//!
//! At install every series whose labels are known is exported at 0, the
//! build's `flacstream_build_info` at 1, and the standard `process_*`
//! metrics ([`process`]) from then on.

pub mod process;

use std::sync::OnceLock;
use std::time::Duration;

use flacstream_actors::metrics::{
    Kind, ALL, BUILD_INFO, ENDPOINTS, JOBS, JOB_ATTEMPTS, JOB_SECONDS, LABEL_CODE, LABEL_COMMIT,
    LABEL_ENDPOINT, LABEL_KIND, LABEL_OUTCOME, LABEL_REASON, LABEL_STATE, LABEL_VERSION,
    REASON_DISCONNECTED, REJECTIONS, STREAMS_FAILED, STREAMS_FINISHED, STREAMS_STARTED,
};
use flacstream_actors::session::EndReason;
use flacstream_actors::store::{JobKind, JobState};

use crate::error::ERROR_CODES;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The media type of Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded into their buckets between scrapes,
/// and the `process_*` metrics read, in seconds; bounds the memory a burst
/// of blocks holds until then, and how old a scrape's process numbers are.
const UPKEEP_INTERVAL_SECONDS: u64 = 5;

/// The git commit `flacstream_build_info` names: `FLACSTREAM_GIT_COMMIT`
/// in the build's environment (the image build can pass it), else
/// `unknown`. No build script: that would rebuild on every commit.
const GIT_COMMIT: &str = match option_env!("FLACSTREAM_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// Outcomes of a job attempt ([`JOB_ATTEMPTS`]).
const JOB_OUTCOMES: [&str; 3] = ["done", "retry", "failed"];

/// Installs the process's recorder on first use and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = ALL
                .iter()
                .filter(|m| m.kind == Kind::Histogram)
                .fold(PrometheusBuilder::new(), |builder, m| {
                    builder
                        .set_buckets_for_metric(Matcher::Full(m.name.into()), m.buckets)
                        // Buckets are constants, checked non-empty by a test.
                        .expect("histogram buckets are not empty")
                })
                .build_recorder();
            let handle = recorder.handle();
            if ::metrics::set_global_recorder(recorder).is_err() {
                log::warn!("A metrics recorder was already installed; /metrics will be empty.");
            }
            describe();
            register_known_series();
            process::install();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(UPKEEP_INTERVAL_SECONDS));
                    upkeep.run_upkeep();
                    process::record();
                });
            if let Err(e) = spawned {
                log::warn!("Metrics upkeep thread did not start: {e}.");
            }
            handle
        })
        .clone()
}

/// Registers each metric's help text and unit with the recorder, and
/// exports the unlabelled counters and gauges at 0 from the start: the
/// autoscaler needs `flacstream_active_streams` before the first stream.
fn describe() {
    for m in ALL {
        let unlabelled = m.labels.is_empty();
        match m.kind {
            Kind::Counter => {
                ::metrics::describe_counter!(m.name, m.unit, m.help);
                if unlabelled {
                    ::metrics::counter!(m.name).increment(0);
                }
            }
            Kind::Gauge => {
                ::metrics::describe_gauge!(m.name, m.unit, m.help);
                if unlabelled {
                    ::metrics::gauge!(m.name).increment(0.0);
                }
            }
            Kind::Histogram => ::metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
}

/// Exports every labelled series whose label values are known in advance
/// at 0 (counters, gauges) or empty (histograms), so that dashboards and
/// alerts (`rate()`, absence checks) see them before the first event; and
/// the build's info at 1.
fn register_known_series() {
    ::metrics::gauge!(BUILD_INFO, LABEL_VERSION => env!("CARGO_PKG_VERSION"), LABEL_COMMIT => GIT_COMMIT)
        .set(1.0);
    for endpoint in ENDPOINTS {
        ::metrics::counter!(STREAMS_STARTED, LABEL_ENDPOINT => *endpoint).increment(0);
    }
    // Every `done` reason a stream can finish with, and a client's leaving.
    let reasons = [
        EndReason::Complete.as_str(),
        EndReason::Closed.as_str(),
        EndReason::GoingAway.as_str(),
        EndReason::MaxDuration.as_str(),
        EndReason::ResumeWindowExpired.as_str(),
        REASON_DISCONNECTED,
    ];
    for reason in reasons {
        ::metrics::counter!(STREAMS_FINISHED, LABEL_REASON => reason).increment(0);
    }
    for code in ERROR_CODES {
        ::metrics::counter!(STREAMS_FAILED, LABEL_CODE => *code).increment(0);
        ::metrics::counter!(REJECTIONS, LABEL_CODE => *code).increment(0);
    }
    for kind in JobKind::ALL {
        let kind = kind.as_str();
        // Queued, running and failed are what the job runner's gauge
        // reports; done jobs are counted by the attempts.
        for state in [JobState::Queued, JobState::Running, JobState::Failed] {
            ::metrics::gauge!(JOBS, LABEL_KIND => kind, LABEL_STATE => state.as_str())
                .increment(0.0);
        }
        for outcome in JOB_OUTCOMES {
            ::metrics::counter!(JOB_ATTEMPTS, LABEL_KIND => kind, LABEL_OUTCOME => outcome)
                .increment(0);
        }
        // Registered without a sample: the exporter renders its buckets at 0.
        let _ = ::metrics::histogram!(JOB_SECONDS, LABEL_KIND => kind);
    }
    for m in ALL
        .iter()
        .filter(|m| m.kind == Kind::Histogram && m.labels.is_empty())
    {
        let _ = ::metrics::histogram!(m.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_with_buckets_and_help() {
        let handle = install();
        ::metrics::histogram!(flacstream_actors::metrics::ENCODE_SECONDS).record(0.000_3);
        ::metrics::counter!(flacstream_actors::metrics::INPUT_BYTES).increment(7);
        let text = handle.render();
        assert!(
            text.contains("flacstream_encode_seconds_bucket{le=\"0.0005\"}"),
            "{text}"
        );
        assert!(
            text.contains("# HELP flacstream_input_bytes_total"),
            "{text}"
        );
        assert!(text.contains("# TYPE flacstream_encode_seconds histogram"));
    }
}
