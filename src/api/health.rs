//! `GET /healthz` (the process is alive) and `GET /readyz` (it accepts new
//! streams; false from the moment draining starts).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::drain::Draining;

/// Always 200 while the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 while accepting work, 503 once draining.
pub async fn readyz(draining: web::Data<Draining>) -> HttpResponse {
    if draining.is_set() {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "draining" }))
    } else {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    }
}
