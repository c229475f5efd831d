//! `GET /metrics`: the Prometheus text exposition of the process's recorder
//! ([`crate::metrics`]).

use actix_web::{get, web, HttpResponse};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::metrics::CONTENT_TYPE;

/// `GET /metrics`: every metric in the Prometheus text format.
#[utoipa::path(
    operation_id = "metrics",
    summary = "Prometheus metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text exposition 0.0.4", content_type = "text/plain"))
)]
#[get("/metrics")]
pub async fn scrape(recorder: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(recorder.render())
}
