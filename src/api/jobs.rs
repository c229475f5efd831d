//! A session's background jobs (`crate::jobs`) with every attempt: what ran
//! after it ended, and the delivery log of its webhooks. Same ownership as
//! the session.

use actix_web::{get, web, HttpResponse};
use flacstream_actors::registry::SessionId;
use flacstream_actors::store::{Job, JobAttempt, SessionJobs};
use serde::{Deserialize, Serialize};

use crate::api::session_access::SessionAccess;
use crate::auth::{Access, TokenParameter};
use crate::error::ApiError;
use crate::state::AppState;

/// Query of `GET /api/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobParams {
    /// The session whose jobs to list (required).
    #[param(required = true, example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a")]
    pub session_id: Option<String>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<TokenParameter>,
}

/// One job as listed.
#[derive(Debug, Serialize)]
struct JobJson<'a> {
    #[serde(flatten)]
    job: &'a Job,
    attempt_log: &'a [JobAttempt],
}

/// The list.
#[derive(Debug, Serialize)]
struct JobList<'a> {
    session_id: SessionId,
    jobs: Vec<JobJson<'a>>,
}

async fn list(state: &AppState, id: SessionId) -> Result<HttpResponse, ApiError> {
    let jobs = state.store.send(SessionJobs { id }).await??;
    Ok(HttpResponse::Ok().json(JobList {
        session_id: id,
        jobs: jobs
            .iter()
            .map(|(job, attempts)| JobJson {
                job,
                attempt_log: attempts,
            })
            .collect(),
    }))
}

/// `GET /api/jobs?session_id=…`.
#[utoipa::path(
    operation_id = "listJobs",
    summary = "List a session's background jobs",
    tag = "jobs",
    description = "A session's background jobs with every attempt (the webhook delivery log); docs/protocol.md §9.12.",
    params(JobParams),
    responses(
        (status = 200, description = "The session's jobs", body = Object),
        (status = 400, description = "`bad_parameter`: no session_id", body = crate::error::ErrorBody),
        (status = 404, description = "`session_not_found` (also for an id that is no session id)", body = crate::error::ErrorBody),
    )
)]
#[get("/api/jobs")]
pub async fn by_query(
    access: Access,
    query: web::Query<JobParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = query
        .session_id
        .as_deref()
        .ok_or_else(|| ApiError::BadParameter("session_id is required".into()))?;
    let id = SessionId::parse_str(raw).map_err(|_| ApiError::SessionNotFound)?;
    let mut session = SessionAccess::check(&access, &state, id).await?;
    session.current(&state).await?;
    list(&state, id).await
}

/// `GET /api/audio/sessions/{id}/jobs`.
#[utoipa::path(
    operation_id = "listSessionJobs",
    summary = "List a session's background jobs",
    tag = "jobs",
    description = "The same list as `GET /api/jobs?session_id=`.",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The session's jobs", body = Object),
        (status = 404, description = "`session_not_found`", body = crate::error::ErrorBody),
    )
)]
#[get("/api/audio/sessions/{id}/jobs")]
pub async fn of_session(
    mut session: SessionAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    session.current(&state).await?;
    list(&state, session.id).await
}
