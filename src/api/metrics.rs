//! `GET /metrics`: the Prometheus text exposition of the process's recorder
//! ([`crate::metrics`]).

use actix_web::{web, HttpResponse};

use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// `GET /metrics`: every metric in the Prometheus text format.
pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(state.metrics.render())
}
