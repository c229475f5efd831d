//! The sessions HTTP API: look up, list, close, download and delete
//! recorded sessions.
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET | `/api/audio/sessions/{id}` | the session (live counters while live) |
//! | POST | `/api/audio/sessions/{id}/close` | finalizes a live session, then returns it |
//! | GET | `/api/audio/sessions/{id}/audio` | the FLAC (finalized, or growing while live) |
//! | GET | `/api/audio/sessions?user_id=&limit=&offset=` | a page, newest first |
//! | DELETE | `/api/audio/sessions/{id}` | removes a finished session and its file |
//!
//! With authentication on, each answers only the session's owner (anyone
//! else gets 404 `session_not_found`, as for an id that does not exist) and
//! the list shows only the caller's sessions; see [`crate::auth`].

use actix_files::NamedFile;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use flacstream_actors::registry::Lookup;
use flacstream_actors::session::Finalize;
use flacstream_actors::store::{List, Load, Remove, SessionRecord, SessionStatus};
use flacstream_codec::media::SourceCodec;
use serde::{Deserialize, Serialize};

use crate::api::session_access::SessionAccess;
use crate::api::takeover::take_over;
use crate::auth::{Access, TokenParameter};
use crate::error::ApiError;
use crate::protocol::is_decoded_encoding;
use crate::state::AppState;
use flacstream_actors::object_recordings::ObjectRecordings;
use flacstream_actors::registry::SessionId;
use futures_util::TryStreamExt;

/// Default page size of the list, and its maximum (inclusive).
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// Largest `offset` accepted (SQLite's integers are signed 64-bit).
const MAX_OFFSET: u64 = i64::MAX as u64 - MAX_PAGE as u64;

/// A session as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionJson {
    /// The session.
    pub session_id: String,
    /// `live`, `closed` or `failed`.
    #[schema(value_type = String, examples("live", "closed", "failed"))]
    pub status: &'static str,
    /// Owner.
    pub user_id: Option<String>,
    /// Input encoding: `s16le`, `s24le`, `u8` or `wav`, or for a decoded
    /// upload `container/codec` (`mp4/aac`, `ogg/vorbis`, `mp3/mp3`).
    pub format: String,
    /// What the audio was coded with before it became FLAC (`pcm`, `mp3`,
    /// `aac`, `alac`, `flac`, `vorbis`, `mulaw`, `alaw`).
    #[schema(value_type = String)]
    pub source_codec: &'static str,
    /// Whether the FLAC holds exactly the source's samples.
    pub lossless: bool,
    /// Samples per second (once known).
    pub sample_rate: Option<u32>,
    /// Channels (once known).
    pub channels: Option<u16>,
    /// Bits per sample in the FLAC (once known).
    pub bits_per_sample: Option<u16>,
    /// Compression level.
    pub level: u8,
    /// Samples per block (once known).
    pub block_size: Option<u32>,
    /// Whether it is recorded.
    pub record: bool,
    /// Binary messages received.
    pub chunk_count: u64,
    /// Samples per channel received.
    pub samples: u64,
    /// `samples / sample_rate`.
    pub duration_seconds: f64,
    /// Input bytes.
    pub bytes_in: u64,
    /// FLAC bytes.
    pub bytes_out: u64,
    /// Connections attached now (0 unless live).
    pub connections: usize,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// Milliseconds since the Unix epoch, once finished.
    pub closed_at_ms: Option<i64>,
    /// Error code of a failed session.
    pub error: Option<String>,
    /// Where the FLAC is, if recorded.
    pub audio_url: Option<String>,
    /// Loudness, silences and clipping (`GET …/analysis`), on a single
    /// session's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub analysis: Option<serde_json::Value>,
}

impl SessionJson {
    pub fn new(r: &SessionRecord, connections: usize) -> Self {
        Self {
            session_id: r.id.to_string(),
            status: r.status.as_str(),
            user_id: r.user_id.clone(),
            format: r.encoding.clone(),
            source_codec: SourceCodec::of_encoding(&r.encoding).as_str(),
            lossless: SourceCodec::of_encoding(&r.encoding).lossless(),
            sample_rate: r.sample_rate,
            channels: r.channels,
            bits_per_sample: r.bits_per_sample,
            level: r.level,
            block_size: r.block_size,
            record: r.record,
            chunk_count: r.chunk_count,
            samples: r.samples,
            duration_seconds: r
                .sample_rate
                .map_or(0.0, |rate| r.samples as f64 / f64::from(rate)),
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            connections,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            closed_at_ms: r.closed_at_ms,
            error: r.error.clone(),
            audio_url: r
                .record
                .then(|| format!("/api/audio/sessions/{}/audio", r.id)),
            analysis: None,
        }
    }
}

/// `GET /api/audio/sessions/{id}`.
#[utoipa::path(
    operation_id = "getSession",
    summary = "Get a session",
    tag = "sessions",
    description = "The session, with live counters while it is live and its analysis once measured.",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The session", body = SessionJson),
        (status = 404, description = "`session_not_found` (also for another owner's session)", body = crate::error::ErrorBody),
    )
)]
#[get("/api/audio/sessions/{id}")]
pub async fn get(
    mut session: SessionAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (record, connections) = session.current(&state).await?;
    let mut json = SessionJson::new(&record, connections);
    json.analysis = crate::api::analysis::load(&state, session.id).await?;
    Ok(HttpResponse::Ok().json(json))
}

/// `POST /api/audio/sessions/{id}/close`: finalizes, then answers the final record.
#[utoipa::path(
    operation_id = "closeSession",
    summary = "Close (finalize) a live session",
    tag = "sessions",
    description = "Finalizes a live session (its producer gets `done`), then answers the final record. A session that has ended already gets 409 `session_closed`.",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The final session", body = SessionJson),
        (status = 404, description = "`session_not_found`", body = crate::error::ErrorBody),
        (status = 409, description = "`session_closed`: it has ended already", body = crate::error::ErrorBody),
        (status = 503, description = "`session_owned_elsewhere` (scaled mode; with Retry-After) or `unavailable`", body = crate::error::ErrorBody),
    )
)]
#[post("/api/audio/sessions/{id}/close")]
pub async fn close(
    session: SessionAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = session.id;
    let session = match state.registry.send(Lookup::new(id)).await? {
        Some(session) => session,
        // Scaled mode: the session moves here, then is closed here. A
        // container session is finalized where it is (or, its owner dead,
        // by the takeover): then it is closed already.
        None if state.cluster.objects.is_some() => {
            let container = live_container(&state, id).await?;
            match take_over(&state, id).await {
                Ok((session, _)) => session,
                Err(ApiError::SessionClosed) if container => {
                    // The owner finalizes it as the takeover asks; its final
                    // save (after its measures') may still be on the way.
                    return match final_record(&state, id).await? {
                        Some(record) => Ok(HttpResponse::Ok().json(SessionJson::new(&record, 0))),
                        None => Err(ApiError::SessionClosed),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        None => return Err(state.not_live(id).await),
    };
    // A session that stops while we ask is finished either way.
    if session.send(Finalize).await.is_err() {
        return Err(ApiError::SessionClosed);
    }
    // The final save is queued before the session stops; read it back.
    match final_record(&state, id).await? {
        Some(record) => Ok(HttpResponse::Ok().json(SessionJson::new(&record, 0))),
        None => Err(ApiError::Unavailable(
            "the session did not finish in time".into(),
        )),
    }
}

/// The session's record once it is no longer live, polled for up to
/// [`FINAL_SAVE_POLLS`] × [`FINAL_SAVE_POLL_MS`]; `None` if it stays live.
async fn final_record(state: &AppState, id: SessionId) -> Result<Option<SessionRecord>, ApiError> {
    for _ in 0..FINAL_SAVE_POLLS {
        let stored = state.store.send(Load { id }).await??;
        if let Some(record) = stored.filter(|r| r.status != SessionStatus::Live) {
            return Ok(Some(record));
        }
        tokio::time::sleep(std::time::Duration::from_millis(FINAL_SAVE_POLL_MS)).await;
    }
    Ok(None)
}

/// Whether session `id` is a container session that the catalog still
/// shows live: a takeover of it finalizes it instead of moving it, so a
/// close that finds it closed afterwards closed it.
async fn live_container(state: &AppState, id: SessionId) -> Result<bool, ApiError> {
    Ok(state
        .store
        .send(Load { id })
        .await??
        .is_some_and(|r| r.status == SessionStatus::Live && is_decoded_encoding(&r.encoding)))
}

/// Polls for the final catalog save after a close: up to 5 s in 50 ms steps.
const FINAL_SAVE_POLLS: u32 = 100;
const FINAL_SAVE_POLL_MS: u64 = 50;

/// `GET /api/audio/sessions/{id}/audio`: the FLAC file.
#[utoipa::path(
    operation_id = "getSessionAudio",
    summary = "Download a session's FLAC",
    tag = "sessions",
    description = "The session's FLAC: final once it has ended, growing while it is live (its STREAMINFO then has no totals).",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The FLAC", content_type = "audio/flac"),
        (status = 404, description = "`session_not_found` or `no_recording` (record=false)", body = crate::error::ErrorBody),
    )
)]
#[get("/api/audio/sessions/{id}/audio")]
pub async fn audio(
    req: HttpRequest,
    mut session: SessionAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (record, _) = session.current(&state).await?;
    audio_response(&req, &state, &record).await
}

/// A session's FLAC as a download (either mode).
pub async fn audio_response(
    req: &HttpRequest,
    state: &AppState,
    record: &SessionRecord,
) -> Result<HttpResponse, ApiError> {
    // A download lasts as long as the client takes to read it.
    let client = state.enter_client(req)?;
    let file = record
        .file
        .as_ref()
        .filter(|_| record.record)
        .ok_or(ApiError::NoRecording)?;
    if let Some(objects) = state.cluster.objects.as_ref() {
        let response = object_audio(objects, record, file).await?;
        return Ok(client.hold(response));
    }
    let named = NamedFile::open_async(state.settings.data_dir.join(file))
        .await
        .map_err(|_| ApiError::NoRecording)?
        .set_content_type(flac_mime())
        .set_content_disposition(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!("{}.flac", record.id))],
        });
    Ok(client.hold(named.into_response(req)))
}

/// A recording in object storage: the finished FLAC object, or, while the
/// session is live, its durable part (what any replica can read).
async fn object_audio(
    objects: &ObjectRecordings,
    record: &SessionRecord,
    key: &str,
) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::Ok();
    response
        .content_type(flac_mime())
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!("{}.flac", record.id))],
        });
    if record.status == SessionStatus::Live {
        let stream = objects
            .live_stream(record.id)
            .await?
            .ok_or(ApiError::NoRecording)?;
        return Ok(response.streaming(stream.map_err(ApiError::from)));
    }
    let (size, stream) = objects.read(key).await?.ok_or(ApiError::NoRecording)?;
    response.no_chunking(size);
    Ok(response.streaming(stream.map_err(ApiError::from)))
}

/// `audio/flac` (not among `mime`'s constants).
fn flac_mime() -> actix_web::mime::Mime {
    "audio/flac"
        .parse()
        .expect("a constant, well-formed media type")
}

/// Query of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this owner's sessions.
    #[param(example = "ann")]
    pub user_id: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<u32>,
    /// Sessions to skip.
    #[param(example = 0)]
    pub offset: Option<u64>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<TokenParameter>,
}

/// A page of sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    /// Newest first.
    pub sessions: Vec<SessionJson>,
    /// The offset of the next page, if there may be one.
    pub next_offset: Option<u64>,
}

/// `GET /api/audio/sessions`.
#[utoipa::path(
    operation_id = "listSessions",
    summary = "List sessions",
    tag = "sessions",
    description = "The caller's sessions, newest first, a page at a time (`next_offset` is the next page's offset).",
    params(ListParams),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 400, description = "`bad_parameter`", body = crate::error::ErrorBody),
    )
)]
#[get("/api/audio/sessions")]
pub async fn list(
    access: Access,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = web::Query::<ListParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))?;
    page(&access, &state, params.into_inner()).await
}

/// `GET /api/users/{user_id}/sessions`: the list of one user's sessions
/// (the lookup by user), as `GET /api/audio/sessions?user_id=…`.
#[utoipa::path(
    operation_id = "listUserSessions",
    summary = "List one user's sessions",
    tag = "sessions",
    description = "One user's sessions, as `GET /api/audio/sessions?user_id=`; a `user_id` in the query must equal the path's.",
    params(
        ("user_id" = String, Path, description = "The owner's user id", example = "ann"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 50)", minimum = 1, maximum = 500, example = 50),
        ("offset" = Option<u64>, Query, description = "Sessions to skip", example = 0),
        crate::api::openapi::TokenQuery,
    ),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 400, description = "`bad_parameter`", body = crate::error::ErrorBody),
    )
)]
#[get("/api/users/{user_id}/sessions")]
pub async fn list_by_user(
    access: Access,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut params = web::Query::<ListParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))?
        .into_inner();
    if params
        .user_id
        .as_deref()
        .is_some_and(|u| u != path.as_str())
    {
        return Err(ApiError::BadParameter(
            "user_id is in the path; the query may not name another".into(),
        ));
    }
    params.user_id = Some(path.into_inner());
    page(&access, &state, params).await
}

async fn page(
    access: &Access,
    state: &AppState,
    params: ListParams,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadParameter(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::BadParameter(format!(
            "offset must be at most {MAX_OFFSET}"
        )));
    }
    let (owner_key, user_id) = access.list_filter(params.user_id.clone())?;
    let records = state
        .store
        .send(List {
            owner_key,
            user_id,
            limit,
            offset,
        })
        .await??;
    let full = records.len() as u32 == limit;
    Ok(HttpResponse::Ok().json(SessionPage {
        sessions: records.iter().map(|r| SessionJson::new(r, 0)).collect(),
        next_offset: full.then_some(offset + u64::from(limit)),
    }))
}

/// `DELETE /api/audio/sessions/{id}`: only finished sessions.
#[utoipa::path(
    operation_id = "deleteSession",
    summary = "Delete a finished session",
    tag = "sessions",
    description = "Removes a finished session: its FLAC, its kept original, its metadata.",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), crate::api::openapi::TokenQuery),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`session_not_found`", body = crate::error::ErrorBody),
        (status = 409, description = "`session_live`: close it first", body = crate::error::ErrorBody),
    )
)]
#[delete("/api/audio/sessions/{id}")]
pub async fn delete(
    session: SessionAccess,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    remove_session(&state, session.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes a finished session: its recording, its kept original, its row.
pub async fn remove_session(
    state: &AppState,
    id: flacstream_actors::registry::SessionId,
) -> Result<(), ApiError> {
    if state.registry.send(Lookup::new(id)).await?.is_some() {
        return Err(ApiError::SessionLive);
    }
    let record = state
        .store
        .send(Load { id })
        .await??
        .ok_or(ApiError::SessionNotFound)?;
    if record.status == SessionStatus::Live {
        return Err(ApiError::SessionLive);
    }
    crate::api::originals::forget(state, id).await?;
    if let Some(objects) = state.cluster.objects.as_ref() {
        objects.delete(id, record.file.as_deref()).await?;
        state.store.send(Remove { id, file: None }).await??;
        return Ok(());
    }
    let file = record.file.map(|f| state.settings.data_dir.join(f));
    state.store.send(Remove { id, file }).await??;
    Ok(())
}
