//! A recorded session's analysis (`flacstream_actors::chunk_analysis`):
//! loudness per EBU R128, silences and clipping, saved with the session's
//! progress (every 5 s while it runs) and complete once it has ended.

use actix_web::{web, HttpResponse};
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
