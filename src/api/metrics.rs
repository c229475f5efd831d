//! `GET /metrics`: the Prometheus text exposition of the process's recorder
//! ([`crate::metrics`]).

use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics::CONTENT_TYPE;

/// `GET /metrics`: every metric in the Prometheus text format.
pub async fn scrape(recorder: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(recorder.render())
}
