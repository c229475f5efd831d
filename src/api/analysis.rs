//! A recorded session's analysis (`flacstream_actors::chunk_analysis`):
//! loudness per EBU R128, silences and clipping, saved with the session's
//! progress (every 5 s while it runs) and complete once it has ended.

use actix_web::{get, web, HttpResponse};
use flacstream_actors::store::LoadAnalysis;

use crate::api::session_access::SessionAccess;
use crate::error::ApiError;
use crate::state::AppState;

/// The stored analysis of session `id`, as JSON, if any.
pub async fn load(
    state: &AppState,
    id: flacstream_actors::registry::SessionId,
) -> Result<Option<serde_json::Value>, ApiError> {
    let json = state.store.send(LoadAnalysis { id }).await??;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// `GET /api/audio/sessions/{id}/analysis`.
#[utoipa::path(
    operation_id = "getSessionAnalysis",
    summary = "Get a session's loudness, silences and clipping",
    tag = "analysis",
    description = "The session's loudness (EBU R128: integrated, range, true peak), silences and clipping; complete once the session has ended (docs/protocol.md §9.11).",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The analysis", body = Object),
        (status = 404, description = "`session_not_found`, or `no_analysis` (not measured yet)", body = crate::error::ErrorBody),
    )
)]
#[get("/api/audio/sessions/{id}/analysis")]
pub async fn get(
    mut session: SessionAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // 404 for a session that does not exist, before asking for its analysis.
    session.current(&state).await?;
    let analysis = load(&state, session.id)
        .await?
        .ok_or(ApiError::NoAnalysis)?;
    Ok(HttpResponse::Ok().json(analysis))
}
