//! The bytes a client uploaded, kept beside the FLAC (`--keep-originals`,
//! on by default): `GET /api/audio/sessions/{id}/original` gives them back
//! with their media type, and deleting the session deletes them.
//!
//! Where they live: with object storage, the object `originals/<id>` under
//! the recordings' prefix (any replica serves it); else the file
//! `<data dir>/originals/<id>`, renamed from the upload's spool (same file
//! system, so nothing is copied). Their media type and name come from the
//! session's `format` (`mp4/aac` → `audio/mp4`, `.m4a`), so nothing about
//! them is stored twice.

use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{get, HttpRequest, HttpResponse};
use flacstream_actors::object_recordings::ObjectRecordings;
use flacstream_actors::registry::SessionId;
use flacstream_actors::store::{SessionRecord, StoreError};
use futures_util::TryStreamExt;

use crate::api::session_access::SessionAccess;
use crate::error::ApiError;
use crate::state::AppState;

/// The object key of a session's original, relative to the prefix.
fn object_key(id: SessionId) -> String {
    ObjectRecordings::original_key(id)
}

/// The same relative path under the data directory (one node).
fn file_path(state: &AppState, id: SessionId) -> PathBuf {
    state.settings.data_dir.join(object_key(id))
}

/// A session `format` as the original's media type and file extension.
pub fn media_type(format: &str) -> (&'static str, &'static str) {
    let (container, codec) = format.split_once('/').unwrap_or((format, ""));
    match (container, codec) {
        ("mp4", "aac") => ("audio/mp4", "m4a"),
        ("mp4", _) => ("audio/mp4", "m4a"),
        ("mp3", _) => ("audio/mpeg", "mp3"),
        ("adts", _) => ("audio/aac", "aac"),
        ("ogg", "opus") => ("audio/ogg", "opus"),
        ("ogg", _) => ("audio/ogg", "ogg"),
        ("mkv", "opus" | "vorbis") => ("audio/webm", "webm"),
        ("mkv", _) => ("audio/x-matroska", "mka"),
        ("flac", _) => ("audio/flac", "flac"),
        ("aiff", _) => ("audio/aiff", "aiff"),
        ("caf", _) => ("audio/x-caf", "caf"),
        ("wav", _) => ("audio/wav", "wav"),
        _ => ("application/octet-stream", "bin"),
    }
}

/// Keeps the upload at `spool` as session `id`'s original.
pub async fn keep(state: &AppState, id: SessionId, spool: &Path) -> Result<(), ApiError> {
    if let Some(objects) = state.cluster.objects.as_ref() {
        objects.put_file(&object_key(id), spool).await?;
        return Ok(());
    }
    let path = file_path(state, id);
    let io = |e: std::io::Error| ApiError::Storage(StoreError::File(e.to_string()));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    tokio::fs::rename(spool, &path).await.map_err(io)?;
    // The rename is durable once the directory entry is.
    if let Some(dir) = path.parent() {
        let dir = dir.to_path_buf();
        actix_web::web::block(move || std::fs::File::open(dir)?.sync_all())
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
            .map_err(io)?;
    }
    Ok(())
}

/// Deletes session `id`'s original, if it has one.
pub async fn forget(state: &AppState, id: SessionId) -> Result<(), ApiError> {
    if let Some(objects) = state.cluster.objects.as_ref() {
        objects.delete_object(&object_key(id)).await?;
        return Ok(());
    }
    match tokio::fs::remove_file(file_path(state, id)).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ApiError::Storage(StoreError::File(e.to_string())))
        }
        _ => Ok(()),
    }
}

/// `GET /api/audio/sessions/{id}/original`.
#[utoipa::path(
    operation_id = "getSessionOriginal",
    summary = "Download a session's uploaded original",
    tag = "sessions",
    description = "The bytes uploaded to /upload (or a container recorded session), with their media type; kept with `--keep-originals`.",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), crate::api::openapi::TokenQuery),
    responses(
        (status = 200, description = "The original, with its media type", content_type = "audio/*"),
        (status = 404, description = "`session_not_found` or `no_original`", body = crate::error::ErrorBody),
    )
)]
#[get("/api/audio/sessions/{id}/original")]
pub async fn original(
    req: HttpRequest,
    mut session: SessionAccess,
    state: actix_web::web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (record, _) = session.current(&state).await?;
    original_response(&req, &state, &record).await
}

/// A session's kept original as a download (either mode).
pub async fn original_response(
    req: &HttpRequest,
    state: &AppState,
    record: &SessionRecord,
) -> Result<HttpResponse, ApiError> {
    let client = state.enter_client(req)?;
    let (mime, extension) = media_type(&record.encoding);
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(format!(
            "{}.{extension}",
            record.id
        ))],
    };
    if let Some(objects) = state.cluster.objects.as_ref() {
        return Ok(client.hold(object_original(objects, record.id, mime, disposition).await?));
    }
    let named = NamedFile::open_async(file_path(state, record.id))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::NoOriginal,
            // A disk that fails is the server's problem, not a 404.
            _ => ApiError::Storage(StoreError::File(e.to_string())),
        })?
        .set_content_type(
            mime.parse()
                .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM),
        )
        .set_content_disposition(disposition);
    Ok(client.hold(named.into_response(req)))
}

async fn object_original(
    objects: &ObjectRecordings,
    id: SessionId,
    mime: &str,
    disposition: ContentDisposition,
) -> Result<HttpResponse, ApiError> {
    let (size, stream) = objects
        .read(&object_key(id))
        .await?
        .ok_or(ApiError::NoOriginal)?;
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header(disposition)
        .no_chunking(size)
        .streaming(stream.map_err(ApiError::from)))
}

#[cfg(test)]
mod tests {
    use super::media_type;

    #[test]
    fn formats_name_their_media_types() {
        assert_eq!(media_type("mp4/aac"), ("audio/mp4", "m4a"));
        assert_eq!(media_type("mkv/opus"), ("audio/webm", "webm"));
        assert_eq!(media_type("ogg/opus"), ("audio/ogg", "opus"));
        assert_eq!(media_type("wav"), ("audio/wav", "wav"));
        assert_eq!(media_type("s16le").0, "application/octet-stream");
    }
}
