//! Chunk metadata (`flacstream_actors::chunk_analysis`): one chunk by its
//! id, and a session's chunks in pages. Same ownership as the session.

use actix_web::{get, web, HttpResponse};
use flacstream_actors::chunk_analysis::parse_chunk_id;
use flacstream_actors::store::{ListChunks, LoadChunk};
use serde::Deserialize;

use crate::api::session_access::SessionAccess;
use crate::auth::{Access, TokenParameter};
use crate::error::ApiError;
use crate::state::AppState;

/// Chunks in one page by default.
const DEFAULT_CHUNK_PAGE: u32 = 100;

/// Chunks in one page at most: a page of metadata stays under ~1 MiB.
const MAX_CHUNK_PAGE: u32 = 1000;

/// Query of a session's chunks.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChunkPageParams {
    /// Chunks after this number (`seq`), 0 for the first page.
    #[param(example = 0)]
    pub after: Option<u64>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<TokenParameter>,
}

/// `GET /api/chunks/{chunk_id}`.
#[utoipa::path(
    operation_id = "getChunk",
    summary = "Get one chunk's metadata",
    tag = "analysis",
    description = "One chunk's metadata (level, peak, silence, clipping; docs/protocol.md §9.11).",
    params(("chunk_id" = String, Path, description = "`<session id>:<seq>`", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a:1"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The chunk", body = Object),
        (status = 404, description = "`chunk_not_found` or `session_not_found`", body = crate::error::ErrorBody),
    )
)]
#[get("/api/chunks/{chunk_id}")]
pub async fn get(
    access: Access,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, seq) = parse_chunk_id(&path).ok_or(ApiError::ChunkNotFound)?;
    SessionAccess::check(&access, &state, id).await?;
    let json = state
        .store
        .send(LoadChunk { id, seq })
        .await??
        .ok_or(ApiError::ChunkNotFound)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}

/// `GET /api/audio/sessions/{id}/chunks?after=N&limit=M`: in order, with
/// `next_after` for the next page (null on the last).
#[utoipa::path(
    operation_id = "listSessionChunks",
    summary = "List a session's chunk metadata",
    tag = "analysis",
    description = "A session's chunks in order, a page at a time; `next_after` is the `after` of the next page (null on the last).",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), ChunkPageParams),
    responses(
        (status = 200, description = "A page of chunks", body = Object),
        (status = 400, description = "`bad_parameter`", body = crate::error::ErrorBody),
        (status = 404, description = "`session_not_found`", body = crate::error::ErrorBody),
    )
)]
#[get("/api/audio/sessions/{id}/chunks")]
pub async fn list(
    session: SessionAccess,
    query: web::Query<ChunkPageParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_CHUNK_PAGE);
    if !(1..=MAX_CHUNK_PAGE).contains(&limit) {
        return Err(ApiError::BadParameter(format!(
            "limit must be 1 to {MAX_CHUNK_PAGE}"
        )));
    }
    let after = query.after.unwrap_or(0);
    let rows = state
        .store
        .send(ListChunks {
            id: session.id,
            after,
            limit,
        })
        .await??;
    let chunks: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    let next_after = (chunks.len() as u32 == limit)
        .then(|| chunks.last().and_then(|c| c["seq"].as_u64()))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "session_id": session.id.to_string(),
        "chunks": chunks,
        "next_after": next_after,
    })))
}
