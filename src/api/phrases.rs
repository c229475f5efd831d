//! The user/phrase API: "user U's phrase P" names one recorded session, so
//! a client (Phonon's) stores, fetches and replaces a phrase recording
//! without keeping session ids. User and phrase are labels over sessions:
//! the session's `user_id` is U, and the catalog's phrase table says which
//! session P is now.
//!
//! - `POST /audio/user/{user_id}/phrase/{phrase_id}`: multipart field
//!   `audio_file` (or the raw body), converted and stored as `/upload`
//!   stores; a re-upload replaces the phrase: the new session is named
//!   first, then the old one is deleted, so a failed re-upload leaves the
//!   old phrase as it was.
//! - `GET …/phrase/{phrase_id}`: the phrase and its session's JSON.
//! - `GET …/flac`, `GET …/original`, `GET …/m4a` (the original when it was
//!   MP4, else 406 `format_unavailable` naming what there is).
//! - `DELETE …/phrase/{phrase_id}`.
//! - `GET /audio/user/{user_id}/phrases`: the user's phrases, by name.
//!
//! Ownership and authentication are the sessions': the caller must be
//! allowed the session a phrase names, and a token for one user cannot
//! upload another's.

use actix_web::http::header;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use flacstream_actors::registry::SessionId;
use flacstream_actors::store::{
    BindPhrase, FindPhrase, ListPhrases, PhraseName, SessionRecord, UnbindPhrase,
};
use serde::{Deserialize, Serialize};

use crate::api::convert::{store_upload, UploadParams};
use crate::api::originals::{media_type, original_response};
use crate::api::session_access::SessionAccess;
use crate::api::sessions::{audio_response, remove_session, SessionJson};
use crate::auth::{Access, TokenParameter};
use crate::error::ApiError;
use crate::ids::MAX_USER_ID_BYTES;
use crate::state::AppState;

/// The multipart field a phrase upload reads its audio from (Phonon's).
pub const AUDIO_FILE_FIELD: &str = "audio_file";

/// Longest phrase id, in bytes (as a user id).
pub const MAX_PHRASE_ID_BYTES: usize = 128;

/// Default and largest page of the phrase list.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Query of a phrase upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PhraseUploadParams {
    /// Compression level 0–8.
    #[param(minimum = 0, maximum = 8, example = 5)]
    pub level: Option<u8>,
    /// Samples per block.
    #[param(minimum = 32, maximum = 16384, example = 4096)]
    pub block_size: Option<usize>,
    /// Floating-point PCM rounded to 16 or 24 bits, as on `/upload`.
    #[param(example = 24)]
    pub float_to: Option<u8>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<TokenParameter>,
}

/// A phrase as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhraseJson {
    /// The user.
    pub user_id: String,
    /// The phrase.
    pub phrase_id: String,
    /// The session that holds it.
    pub session: SessionJson,
    /// Where its audio is.
    pub links: PhraseLinks,
}

/// Links of a phrase.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhraseLinks {
    /// This phrase.
    #[serde(rename = "self")]
    pub this: String,
    /// Its FLAC.
    pub flac: String,
    /// The bytes uploaded.
    pub original: String,
}

/// The phrase a request names, scoped to the caller's API key (the
/// owner a session made now would get), after the caller's token is
/// checked against the user.
fn name_of(access: &Access, path: &web::Path<(String, String)>) -> Result<PhraseName, ApiError> {
    let (user, phrase) = labels(path)?;
    refuse_session_tokens(access)?;
    let owner = access.new_session(None, Some(user.clone()))?;
    Ok(PhraseName {
        owner: owner.owner_key.unwrap_or_default(),
        user,
        phrase,
    })
}

/// A token scoped to one session reaches that session's routes only: the
/// phrase API names sessions it may not reach (and deletes replaced ones).
fn refuse_session_tokens(access: &Access) -> Result<(), ApiError> {
    if access.principal().is_some_and(|p| p.session_id.is_some()) {
        return Err(ApiError::Forbidden(
            "a token scoped to one session cannot use the phrase API; use a user's token or a key"
                .into(),
        ));
    }
    Ok(())
}

fn labels(path: &web::Path<(String, String)>) -> Result<(String, String), ApiError> {
    let (user, phrase) = path.as_ref();
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES {
        return Err(ApiError::BadParameter(format!(
            "user_id must be 1 to {MAX_USER_ID_BYTES} bytes"
        )));
    }
    if phrase.is_empty() || phrase.len() > MAX_PHRASE_ID_BYTES {
        return Err(ApiError::BadParameter(format!(
            "phrase_id must be 1 to {MAX_PHRASE_ID_BYTES} bytes"
        )));
    }
    Ok((user.clone(), phrase.clone()))
}

fn phrase_json(user: &str, phrase: &str, record: &SessionRecord, connections: usize) -> PhraseJson {
    let this = format!("/audio/user/{user}/phrase/{phrase}");
    PhraseJson {
        user_id: user.to_string(),
        phrase_id: phrase.to_string(),
        session: SessionJson::new(record, connections),
        links: PhraseLinks {
            flac: format!("{this}/flac"),
            original: format!("{this}/original"),
            this,
        },
    }
}

/// The record of the session `user`'s `phrase` names, if the caller may
/// see it; 404 `phrase_not_found` otherwise.
async fn find(
    access: &Access,
    state: &AppState,
    name: &PhraseName,
) -> Result<(SessionRecord, usize), ApiError> {
    let id = state
        .store
        .send(FindPhrase { name: name.clone() })
        .await??
        .ok_or(ApiError::PhraseNotFound)?;
    let mut session = SessionAccess::check(access, state, id)
        .await
        .map_err(|e| match e {
            ApiError::SessionNotFound => ApiError::PhraseNotFound,
            other => other,
        })?;
    session.current(state).await.map_err(|e| match e {
        ApiError::SessionNotFound => ApiError::PhraseNotFound,
        other => other,
    })
}

/// `POST /audio/user/{user_id}/phrase/{phrase_id}`.
#[utoipa::path(
    operation_id = "uploadPhrase",
    summary = "Store (or replace) a phrase",
    tag = "phrases",
    description = "Stores the audio (multipart field `audio_file`, or the raw body; any format the service reads) as the user's phrase, converted to FLAC as /upload does; a re-upload replaces it.",
    params(("user_id" = String, Path, description = "The user", example = "ann"), ("phrase_id" = String, Path, description = "The phrase", example = "greeting"), PhraseUploadParams),
    request_body(content(
        (crate::api::openapi::PhraseAudioForm = "multipart/form-data"),
        (crate::api::openapi::AudioBytes = "application/octet-stream"),
    )),
    responses(
        (status = 201, description = "Stored; `Location` is the phrase", body = PhraseJson),
        (status = 400, description = "`bad_parameter`, `missing_file` or `bad_upload`", body = crate::error::ErrorBody),
        (status = 413, description = "`upload_too_large` or `audio_too_long`", body = crate::error::ErrorBody),
        (status = 415, description = "`unrecognized_format`, `unsupported_codec`, `float_pcm`, `needs_seeking`…", body = crate::error::ErrorBody),
    )
)]
#[post("/audio/user/{user_id}/phrase/{phrase_id}")]
pub async fn upload(
    access: Access,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name_of(&access, &path)?;
    let params = web::Query::<PhraseUploadParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))?
        .into_inner();
    let upload = UploadParams {
        level: params.level,
        block_size: params.block_size,
        float_to: params.float_to,
        user_id: Some(name.user.clone()),
        session_id: None,
        access_token: None,
    };
    let stored = store_upload(&access, &req, payload, &state, upload, AUDIO_FILE_FIELD).await?;
    let id = SessionId::parse_str(&stored.session_id)
        .map_err(|e| ApiError::Unavailable(format!("the stored session's id: {e}")))?;
    let before = state
        .store
        .send(BindPhrase {
            name: name.clone(),
            id,
        })
        .await??;
    if let Some(old) = before.filter(|old| *old != id) {
        // The phrase names the new recording already; the old one goes,
        // if it is still this user's and the caller's (a name left by a
        // session deleted through the sessions API must not delete a
        // session that took its id since).
        let still_ours = match SessionAccess::check(&access, &state, old).await {
            Ok(mut s) => s
                .current(&state)
                .await
                .is_ok_and(|(r, _)| r.user_id.as_deref() == Some(name.user.as_str())),
            Err(_) => false,
        };
        let removed = if still_ours {
            remove_session(&state, old).await
        } else {
            Ok(())
        };
        if let Err(e) = removed {
            log::warn!(
                "Phrase {}/{}: the replaced session {old} was not deleted: {e}.",
                name.user,
                name.phrase
            );
        }
    }
    let (record, connections) = crate::api::session_access::current(&state, id).await?;
    let body = phrase_json(&name.user, &name.phrase, &record, connections);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, body.links.this.clone()))
        .json(body))
}

/// `GET /audio/user/{user_id}/phrase/{phrase_id}`.
#[utoipa::path(
    operation_id = "getPhrase",
    summary = "Get a phrase",
    tag = "phrases",
    params(("user_id" = String, Path, description = "The user", example = "ann"), ("phrase_id" = String, Path, description = "The phrase", example = "greeting"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The phrase and its session", body = PhraseJson),
        (status = 404, description = "`phrase_not_found`", body = crate::error::ErrorBody),
    )
)]
#[get("/audio/user/{user_id}/phrase/{phrase_id}")]
pub async fn get(
    access: Access,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name_of(&access, &path)?;
    let (record, connections) = find(&access, &state, &name).await?;
    Ok(HttpResponse::Ok().json(phrase_json(&name.user, &name.phrase, &record, connections)))
}

/// `GET …/phrase/{phrase_id}/flac`.
#[utoipa::path(
    operation_id = "getPhraseFlac",
    summary = "Download a phrase's FLAC",
    tag = "phrases",
    params(("user_id" = String, Path, description = "The user", example = "ann"), ("phrase_id" = String, Path, description = "The phrase", example = "greeting"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The phrase's FLAC", content_type = "audio/flac"),
        (status = 404, description = "`phrase_not_found`", body = crate::error::ErrorBody),
    )
)]
#[get("/audio/user/{user_id}/phrase/{phrase_id}/flac")]
pub async fn flac(
    access: Access,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name_of(&access, &path)?;
    let (record, _) = find(&access, &state, &name).await?;
    audio_response(&req, &state, &record).await
}

/// `GET …/phrase/{phrase_id}/original`.
#[utoipa::path(
    operation_id = "getPhraseOriginal",
    summary = "Download a phrase's uploaded original",
    tag = "phrases",
    params(("user_id" = String, Path, description = "The user", example = "ann"), ("phrase_id" = String, Path, description = "The phrase", example = "greeting"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The bytes uploaded, with their media type", content_type = "audio/*"),
        (status = 404, description = "`phrase_not_found` or `no_original`", body = crate::error::ErrorBody),
    )
)]
#[get("/audio/user/{user_id}/phrase/{phrase_id}/original")]
pub async fn original(
    access: Access,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name_of(&access, &path)?;
    let (record, _) = find(&access, &state, &name).await?;
    original_response(&req, &state, &record).await
}

/// `GET …/phrase/{phrase_id}/m4a`: the original when it was MP4/M4A.
#[utoipa::path(
    operation_id = "getPhraseM4a",
    summary = "Download a phrase's original M4A",
    tag = "phrases",
    params(("user_id" = String, Path, description = "The user", example = "ann"), ("phrase_id" = String, Path, description = "The phrase", example = "greeting"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The original M4A", content_type = "audio/mp4"),
        (status = 404, description = "`phrase_not_found`", body = crate::error::ErrorBody),
        (status = 406, description = "`format_unavailable`: the phrase was uploaded in another format", body = crate::error::ErrorBody),
    )
)]
#[get("/audio/user/{user_id}/phrase/{phrase_id}/m4a")]
pub async fn m4a(
    access: Access,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name_of(&access, &path)?;
    let (record, _) = find(&access, &state, &name).await?;
    let (mime, extension) = media_type(&record.encoding);
    if extension != "m4a" {
        return Err(ApiError::FormatUnavailable(format!(
            "this phrase was uploaded as {mime}, not M4A; available: flac (…/flac) and the \
             original {extension} (…/original)"
        )));
    }
    original_response(&req, &state, &record).await
}

/// `DELETE /audio/user/{user_id}/phrase/{phrase_id}`.
#[utoipa::path(
    operation_id = "deletePhrase",
    summary = "Delete a phrase",
    tag = "phrases",
    description = "Deletes the phrase and the session that holds it.",
    params(("user_id" = String, Path, description = "The user", example = "ann"), ("phrase_id" = String, Path, description = "The phrase", example = "greeting"), crate::api::openapi::TokenQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`phrase_not_found`", body = crate::error::ErrorBody),
    )
)]
#[delete("/audio/user/{user_id}/phrase/{phrase_id}")]
pub async fn delete(
    access: Access,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = name_of(&access, &path)?;
    let (record, _) = find(&access, &state, &name).await?;
    if !state
        .store
        .send(UnbindPhrase {
            name,
            id: record.id,
        })
        .await??
    {
        // A re-upload named another session meanwhile: that one stays.
        return Err(ApiError::PhraseNotFound);
    }
    remove_session(&state, record.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Query of the phrase list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PhraseListParams {
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    pub limit: Option<u32>,
    /// Entries to skip.
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

/// One entry of the phrase list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhraseEntry {
    /// The phrase.
    pub phrase_id: String,
    /// Its session.
    pub session_id: String,
    /// Its page.
    pub url: String,
}

/// A page of phrases.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhrasePage {
    /// By phrase name.
    pub phrases: Vec<PhraseEntry>,
    /// The offset of the next page, if there may be one.
    pub next_offset: Option<u64>,
}

/// `GET /audio/user/{user_id}/phrases`.
#[utoipa::path(
    operation_id = "listPhrases",
    summary = "List a user's phrases",
    tag = "phrases",
    description = "The user's phrases, by name, a page at a time.",
    params(("user_id" = String, Path, description = "The user", example = "ann"), PhraseListParams),
    responses(
        (status = 200, description = "A page of phrases", body = PhrasePage),
        (status = 400, description = "`bad_parameter`", body = crate::error::ErrorBody),
    )
)]
#[get("/audio/user/{user_id}/phrases")]
pub async fn list(
    access: Access,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user = path.into_inner();
    let params = web::Query::<PhraseListParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadParameter(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > i64::MAX as u64 - u64::from(MAX_PAGE) {
        return Err(ApiError::BadParameter("offset is too large".into()));
    }
    refuse_session_tokens(&access)?;
    if user.is_empty() || user.len() > MAX_USER_ID_BYTES {
        return Err(ApiError::BadParameter(format!(
            "user_id must be 1 to {MAX_USER_ID_BYTES} bytes"
        )));
    }
    // The caller's own phrases only: its key's, for a user its token allows.
    let owner = access.new_session(None, Some(user.clone()))?;
    let entries = state
        .store
        .send(ListPhrases {
            owner: owner.owner_key.unwrap_or_default(),
            user: user.clone(),
            limit,
            offset,
        })
        .await??;
    let full = entries.len() as u32 == limit;
    Ok(HttpResponse::Ok().json(PhrasePage {
        phrases: entries
            .into_iter()
            .map(|(phrase, id)| PhraseEntry {
                url: format!("/audio/user/{user}/phrase/{phrase}"),
                phrase_id: phrase,
                session_id: id.to_string(),
            })
            .collect(),
        next_offset: full.then_some(offset + u64::from(limit)),
    }))
}
