//! `GET /healthz` (the process is alive) and `GET /readyz` (it accepts new
//! streams; false from the moment draining starts).

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// Always 200 while the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 while accepting work, 503 once draining.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(Ordering::SeqCst) {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "draining" }))
    } else {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    }
}
