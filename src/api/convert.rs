//! `POST /convert` (WAV in the request, FLAC streamed back) and `POST
//! /upload` (WAV in, stored as a recorded session).
//!
//! The upload is read to the end first, spooled to a temporary file under
//! the data directory (never held in memory; at most `MAX_UPLOAD_BYTES`), and
//! checked on the way: the WAV header (bad input is refused with the same
//! error codes as the WebSocket path, before any FLAC byte), the sample count
//! and the MD5. So the response's STREAMINFO is final from its first byte,
//! whatever the WAV header declared. Then the spooled audio is fed to a
//! session like any stream and the frames are sent as they are encoded
//! (chunked transfer encoding).

mod feed;
mod params;
mod spool;

pub use params::{
    checked_stream_params, decode_options, ConvertParams, UploadLinks, UploadParams, Uploaded,
};
pub use spool::SPOOL_DIR;

use std::sync::Arc;

use actix::{Actor, Addr};
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{post, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use flacstream_actors::activity::Activity;
use flacstream_actors::registry::{Leave, SessionId};
use flacstream_actors::session::{
    outbound_channel, Abort, Connect, ConnectionId, Delivered, Disconnect, EndReason, InputFormat,
    RecordingPolicy, Role, SessionKind, Shutdown,
};
use flacstream_actors::{Outbound, Registry, Session, SessionSettings, StreamError};
use flacstream_codec::flac::StreamInfo;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::auth::Access;
use crate::error::ApiError;
use crate::limits::client_connections::ClientSlot;
use crate::limits::session_rate::Charge;
use crate::state::AppState;
use crate::websocket::transport::next_connection_id;
use feed::feed;
use spool::{spool, Source, Spool};

/// Starts a session for `spool` (as `requested` if given), connected as a
/// producer; returns it with the connection id and its event channel.
async fn start_session(
    state: &AppState,
    requested: Option<SessionId>,
    settings: SessionSettings,
    kind: SessionKind,
    flac: bool,
    charge: Charge,
) -> Result<
    (
        SessionId,
        Addr<Session>,
        ConnectionId,
        mpsc::Receiver<Outbound>,
    ),
    ApiError,
> {
    let (id, guard) = state.admit(requested, charge).await?;
    if matches!(kind, SessionKind::Recording(_)) {
        state.claim_new_lease(id).await?;
    }
    let session = Session::new(
        id,
        settings,
        kind,
        state.pool.clone(),
        state.registry.clone(),
    )
    .start();
    let (tx, rx) = outbound_channel(&settings);
    let conn = next_connection_id();
    let connected = session
        .send(Connect {
            conn,
            role: Role::Producer,
            flac,
            metadata: false,
            tx,
        })
        .await;
    if !matches!(connected, Ok(Ok(_))) {
        session.do_send(Shutdown);
        return Err(ApiError::Unavailable("the session did not start".into()));
    }
    // From here the caller's `Hangup` gives the connection back.
    guard.disarm();
    Ok((id, session, conn, rx))
}

/// Ends the connection at the session and the registry when dropped (the
/// response finished, or the client went away mid-way).
struct Hangup {
    session: Addr<Session>,
    registry: Addr<Registry>,
    id: SessionId,
    conn: ConnectionId,
    /// When the client last took a chunk of the response.
    progress: std::sync::Arc<Activity>,
    /// The request's place in its client's connection cap.
    _client: ClientSlot,
}

impl Drop for Hangup {
    fn drop(&mut self) {
        self.session.do_send(Disconnect { conn: self.conn });
        self.registry.do_send(Leave { id: self.id });
    }
}

/// Response header of `/convert`: the source's codec (`source_codec`).
pub const SOURCE_CODEC_HEADER: &str = "Flacstream-Source-Codec";

/// Response header of `/convert`: `true` if the FLAC holds exactly the
/// source's samples, `false` for a lossy source's decode.
pub const LOSSLESS_HEADER: &str = "Flacstream-Lossless";

/// The settings of the session that encodes `spool`.
fn spool_settings(
    state: &AppState,
    spool: &Spool,
    level: Option<u8>,
    block_size: Option<usize>,
) -> SessionSettings {
    match spool.source {
        Source::Wav => state.session_settings(level, block_size, InputFormat::Wav),
        Source::Media(media) => {
            let input = InputFormat::Raw {
                layout: media.layout,
                sample_rate: media.sample_rate,
            };
            let mut settings = state.session_settings(level, block_size, input);
            settings.source = media.codec;
            settings
        }
    }
}

/// `POST /convert`: see the module docs.
#[utoipa::path(
    operation_id = "convert",
    summary = "Convert any audio to FLAC, streamed back",
    tag = "conversion",
    description = "Any audio the service reads (multipart field `file`, or the raw body) in, FLAC streamed back as it is encoded, with a final STREAMINFO from the first byte. Headers `Flacstream-Source-Codec` and `Flacstream-Lossless` say what the source was.",
    params(ConvertParams),
    request_body(content(
        (crate::api::openapi::AudioForm = "multipart/form-data"),
        (crate::api::openapi::AudioBytes = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "The FLAC", content_type = "audio/flac",
            headers(("Flacstream-Source-Codec" = String, description = "pcm, mp3, aac, alac, flac, vorbis, opus, mulaw, alaw, pcm_float"),
                    ("Flacstream-Lossless" = bool, description = "Whether the FLAC holds exactly the source's samples"))),
        crate::api::openapi::UploadRefusals,
    )
)]
#[post("/convert")]
pub async fn convert(
    access: Access,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    access.anonymous_session()?;
    let query = web::Query::<ConvertParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))?
        .into_inner();
    let params = checked_stream_params(query.level, query.block_size)?;
    let options = decode_options(query.float_to)?;
    // Counted from the first byte of the upload to the last of the FLAC.
    let client = state.enter_client(&req)?;
    let charge = state.count_new_session(access.rate_key().as_deref(), &client)?;
    let spool = spool(
        &req,
        payload,
        &state.settings,
        &state.decoding,
        params.block_size,
        FILE_FIELD,
        options,
    )
    .await?;
    let settings = spool_settings(&state, &spool, params.level, params.block_size);
    let (id, session, conn, events) =
        start_session(&state, None, settings, SessionKind::Stream, true, charge).await?;
    flacstream_actors::metrics::stream_started("/convert");
    actix_web::rt::spawn(feed(
        session.clone(),
        conn,
        spool.path.clone(),
        spool.source,
        spool.options,
        Arc::clone(&state.decoding),
    ));
    let source = settings.source;
    let header = Bytes::from(spool.info.stream_header());
    let filename = format!("{}.flac", spool.stem);
    let expected = spool.info;
    let hangup = Hangup {
        session: session.clone(),
        registry: state.registry.clone(),
        id,
        conn,
        progress: std::sync::Arc::new(Activity::new()),
        _client: client,
    };
    watch_for_stall(&hangup, state.settings.outbound_stall);
    let body = flac_body(events, header, expected, hangup, spool);
    Ok(HttpResponse::Ok()
        .content_type("audio/flac")
        .insert_header((SOURCE_CODEC_HEADER, source.as_str()))
        .insert_header((
            LOSSLESS_HEADER,
            if source.lossless() { "true" } else { "false" },
        ))
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(filename)],
        })
        .streaming(body))
}

/// The response body: the final header in place of the provisional one,
/// then each frame as it is encoded. The response only ends normally when
/// the session completed with exactly the samples and MD5 the header
/// promised; anything else (a failure, a drain or time limit cutting the
/// stream short, the session vanishing) ends it with an error, so the
/// client sees an incomplete transfer, never a short file that looks whole.
fn flac_body(
    events: mpsc::Receiver<Outbound>,
    header: Bytes,
    expected: StreamInfo,
    hangup: Hangup,
    spool: Spool,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    struct State {
        events: mpsc::Receiver<Outbound>,
        header: Option<Bytes>,
        expected: StreamInfo,
        hangup: Hangup,
        _spool: Spool,
    }
    let state = State {
        events,
        header: Some(header),
        expected,
        hangup,
        _spool: spool,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        let cut = |why: String| Some((Err(actix_web::error::ErrorInternalServerError(why)), None));
        let Some(event) = state.events.recv().await else {
            return cut("the conversion ended without finishing".into());
        };
        match event {
            Outbound::Flac(bytes) => {
                state.hangup.session.do_send(Delivered);
                state.hangup.progress.touch();
                let chunk = state.header.take().unwrap_or(bytes);
                Some((Ok(chunk), Some(state)))
            }
            Outbound::Done(done)
                if done.reason == EndReason::Complete
                    && done.samples == state.expected.total_samples
                    && done.md5 == state.expected.md5 =>
            {
                None
            }
            Outbound::Done(done) => {
                log::warn!(
                    "Conversion {} ended early ({}): {} of {} samples.",
                    state.hangup.id,
                    done.reason.as_str(),
                    done.samples,
                    state.expected.total_samples
                );
                cut(format!(
                    "the conversion was cut short ({})",
                    done.reason.as_str()
                ))
            }
            Outbound::Failed(e) => {
                log::warn!("Conversion {} failed mid-way: {e}.", state.hangup.id);
                cut(e.to_string())
            }
            // A conversion records nothing, so it is never told about
            // storage; an empty chunk keeps the stream going if it were.
            Outbound::Storage { .. } | Outbound::Chunk(_) => {
                Some((Ok(bytes::Bytes::new()), Some(state)))
            }
        }
    })
}

/// Cuts off a `/convert` client that stops reading the response for the
/// stall time: its session fails with `slow_reader`, which frees its slot
/// and its encoder work (actix-web has no write timeout of its own).
fn watch_for_stall(hangup: &Hangup, stall: std::time::Duration) {
    let progress = std::sync::Arc::clone(&hangup.progress);
    let session = hangup.session.clone();
    let conn = hangup.conn;
    actix_web::rt::spawn(async move {
        let tick = std::time::Duration::from_secs(1).min(stall);
        loop {
            tokio::time::sleep(tick).await;
            if !session.connected() {
                return;
            }
            if progress.idle_for() >= stall {
                session.do_send(Abort {
                    conn,
                    error: StreamError::SlowReader(stall.as_secs()),
                });
                return;
            }
        }
    });
}

/// `POST /upload`: converts and stores the upload as a recorded session.
#[utoipa::path(
    operation_id = "upload",
    summary = "Convert and store any audio as a recorded session",
    tag = "conversion",
    description = "Any audio the service reads (multipart field `file`, or the raw body), converted and stored as a recorded session; answered once it is stored. Lossless sources are kept sample for sample; `lossless` says which case it was.",
    params(UploadParams),
    request_body(content(
        (crate::api::openapi::AudioForm = "multipart/form-data"),
        (crate::api::openapi::AudioBytes = "application/octet-stream"),
    )),
    responses(
        (status = 201, description = "Stored; `Location` is the session", body = Uploaded),
        crate::api::openapi::UploadRefusals,
        (status = 409, description = "`session_exists`: the chosen session_id is taken", body = crate::error::ErrorBody),
    )
)]
#[post("/upload")]
pub async fn upload(
    access: Access,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = web::Query::<UploadParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))?
        .into_inner();
    let body = store_upload(&access, &req, payload, &state, params, FILE_FIELD).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, body.links.session.clone()))
        .json(body))
}

/// The multipart field `/convert` and `/upload` read the audio from.
pub const FILE_FIELD: &str = "file";

/// Converts and stores an upload (raw body, or multipart field `field`) as
/// a recorded session; answers what `/upload` does once it is finalized
/// (and its original kept, with `--keep-originals`).
pub async fn store_upload(
    access: &Access,
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    params: UploadParams,
    field: &'static str,
) -> Result<Uploaded, ApiError> {
    let probe = checked_stream_params(params.level, params.block_size)?;
    let options = decode_options(params.float_to)?;
    if params
        .user_id
        .as_ref()
        .is_some_and(|u| u.is_empty() || u.len() > crate::ids::MAX_USER_ID_BYTES)
    {
        return Err(ApiError::BadParameter(format!(
            "user_id must be 1 to {} bytes",
            crate::ids::MAX_USER_ID_BYTES
        )));
    }
    let requested = params
        .session_id
        .as_deref()
        .map(crate::ids::parse_chosen_id)
        .transpose()?;
    let owner = access.new_session(requested, params.user_id)?;
    let requested = owner.id;
    if let Some(id) = requested {
        state.check_unused(id).await?;
    }
    let client = state.enter_client(req)?;
    let charge = state.count_new_session(access.rate_key().as_deref(), &client)?;
    let spool = spool(
        req,
        payload,
        &state.settings,
        &state.decoding,
        probe.block_size,
        field,
        options,
    )
    .await?;
    let settings = spool_settings(state, &spool, probe.level, probe.block_size);
    let encoding = match spool.source {
        Source::Wav => "wav".to_string(),
        Source::Media(m) => format!("{}/{}", m.container, m.codec.as_str()),
    };
    let policy = RecordingPolicy {
        store: state.store.clone(),
        data_dir: state.settings.data_dir.clone(),
        record: true,
        resume_window: state.settings.session_resume,
        user_id: owner.user_id,
        owner_key: owner.owner_key,
        encoding,
        objects: state.cluster.sink(),
        takeover: None,
        analysis: Some(state.analysis.clone()),
        whole_upload: Some(flacstream_actors::chunk_analysis::WholeUpload {
            bytes: spool.received.0,
            sha256: spool.received.1,
        }),
    };
    let kind = SessionKind::Recording(Box::new(policy));
    let (id, session, conn, mut events) =
        start_session(state, requested, settings, kind, false, charge).await?;
    flacstream_actors::metrics::stream_started("/upload");
    let _hangup = Hangup {
        session: session.clone(),
        registry: state.registry.clone(),
        id,
        conn,
        progress: std::sync::Arc::new(Activity::new()),
        _client: client,
    };
    actix_web::rt::spawn(feed(
        session,
        conn,
        spool.path.clone(),
        spool.source,
        spool.options,
        Arc::clone(&state.decoding),
    ));
    let expected = spool.info;
    loop {
        match events.recv().await {
            Some(Outbound::Flac(_) | Outbound::Storage { .. } | Outbound::Chunk(_)) => {}
            Some(Outbound::Done(done)) if done.reason != EndReason::Complete => {
                return Err(match done.reason {
                    EndReason::GoingAway => {
                        ApiError::Draining(flacstream_actors::registry::AdmitError::Draining)
                    }
                    _ => ApiError::Unavailable(format!(
                        "the upload was cut short ({})",
                        done.reason.as_str()
                    )),
                });
            }
            Some(Outbound::Done(done))
                if done.samples != expected.total_samples || done.md5 != expected.md5 =>
            {
                log::error!(
                    "Upload {id} stored {} samples, {} expected: the second decode differs from the check.",
                    done.samples,
                    expected.total_samples
                );
                discard_upload(state, &_hangup.session, id).await;
                return Err(ApiError::Unavailable(
                    "the upload was not stored exactly as checked".into(),
                ));
            }
            Some(Outbound::Done(done)) => {
                if state.settings.keep_originals {
                    if let Err(e) = crate::api::originals::keep(state, id, &spool.path).await {
                        discard_upload(state, &_hangup.session, id).await;
                        return Err(e);
                    }
                }
                let body = Uploaded {
                    session_id: id.to_string(),
                    samples: done.samples,
                    md5: done.md5.iter().map(|b| format!("{b:02x}")).collect(),
                    source_codec: done.source.as_str(),
                    lossless: done.source.lossless(),
                    links: UploadLinks {
                        session: format!("/api/audio/sessions/{id}"),
                        audio: format!("/api/audio/sessions/{id}/audio"),
                        original: state
                            .settings
                            .keep_originals
                            .then(|| format!("/api/audio/sessions/{id}/original")),
                    },
                };
                return Ok(body);
            }
            Some(Outbound::Failed(e)) => {
                discard_upload(state, &_hangup.session, id).await;
                return Err(ApiError::Stream(e));
            }
            None => {
                discard_upload(state, &_hangup.session, id).await;
                return Err(ApiError::Unavailable("the session ended early".into()));
            }
        }
    }
}

/// An upload that failed after its session began is not left behind as a
/// stored recording the client was told did not happen: the session is
/// ended, then deleted with its files (a few seconds at most; a drain that
/// cuts an upload short keeps what was stored, as documented, and does not
/// come here).
async fn discard_upload(state: &AppState, session: &Addr<Session>, id: SessionId) {
    /// Polls for the session to be finished before it can be deleted.
    const DISCARD_POLLS: u32 = 50;
    const DISCARD_POLL_MS: u64 = 100;
    let _ = session.send(flacstream_actors::session::Finalize).await;
    for _ in 0..DISCARD_POLLS {
        match crate::api::sessions::remove_session(state, id).await {
            Err(ApiError::SessionLive) => {
                tokio::time::sleep(std::time::Duration::from_millis(DISCARD_POLL_MS)).await
            }
            Err(ApiError::SessionNotFound) | Ok(()) => return,
            Err(e) => {
                log::warn!("Upload {id} failed and its session could not be deleted: {e}.");
                return;
            }
        }
    }
    log::warn!("Upload {id} failed and its session was still live after 5 s; it stays.");
}
