//! `GET /healthz` (the process is alive) and `GET /readyz` (it accepts new
//! streams; false from the moment draining starts, and in scaled mode while
//! this replica's leases do not hold: it cannot reach the catalog, so it
//! could own no session).

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use flacstream_actors::lease_clock::LeaseClock;

use crate::drain::Draining;

/// Always 200 while the process serves HTTP.
#[utoipa::path(
    operation_id = "healthz",
    summary = "Liveness",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is alive", body = Object, example = json!({"status": "ok"})))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 while accepting work, 503 once draining or without a lease.
#[utoipa::path(
    operation_id = "readyz",
    summary = "Readiness (false while draining)",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Accepting new streams", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "Draining (`draining`), or in scaled mode without a catalog lease (`no_catalog`)", body = Object, example = json!({"status": "draining"})),
    )
)]
#[get("/readyz")]
pub async fn readyz(draining: web::Data<Draining>, lease: web::Data<LeaseClock>) -> HttpResponse {
    if draining.is_set() {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "draining" }))
    } else if !lease.valid() {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "no_catalog" }))
    } else {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    }
}
