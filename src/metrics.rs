//! The process's Prometheus recorder, for every metric in
//! [`flacstream_actors::metrics`], where their names, units, help texts and
//! buckets are defined; `GET /metrics` ([`crate::api::metrics`]) renders it.
//!
//! The recorder is `metrics-exporter-prometheus`'s, built without its own
//! HTTP listener: this service renders it on its own port. The `metrics`
//! facade takes one global recorder per process, so [`install`] builds it
//! once and every [`crate::service::Service`] in the process (the integration
//! tests start many) shares it; their counters add up.

use std::sync::OnceLock;
use std::time::Duration;

use flacstream_actors::metrics::{Kind, ALL};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The media type of Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded into their buckets between scrapes,
/// in seconds; bounds the memory a burst of blocks holds until then.
const UPKEEP_INTERVAL_SECONDS: u64 = 5;

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
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(UPKEEP_INTERVAL_SECONDS));
                    upkeep.run_upkeep();
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
