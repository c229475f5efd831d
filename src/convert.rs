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

use std::path::{Path, PathBuf};

use actix::{Actor, Addr};
use actix_multipart::Multipart;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use flacstream_actors::activity::Activity;
use flacstream_actors::registry::{Admit, Leave, Registry, SessionId};
use flacstream_actors::session::{
    outbound_channel, Abort, Connect, ConnectionId, Delivered, Disconnect, EndOfInput, EndReason,
    Ingest, InputFormat, RecordingPolicy, Role, SessionKind, Shutdown,
};
use flacstream_actors::{Outbound, Session, SessionSettings, StreamError};
use flacstream_codec::flac::{default_block_size, EncoderLevel, StreamFormat, StreamInfo};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavEvent, WavParser};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::server::AppState;
use crate::stream::StreamParams;
use crate::transport::next_connection_id;

/// Bytes of spooled audio per ingest message fed to the session: the same
/// size a well-behaved WebSocket client sends.
const FEED_CHUNK_BYTES: usize = 64 * 1024;

/// Samples decoded per step while checking an upload (bounds the scratch buffer).
const CHECK_STEP_SAMPLES: usize = 16 * 1024;

/// Where uploads are spooled, under the data directory; emptied at start.
pub const SPOOL_DIR: &str = "tmp";

/// Media types `/convert` and `/upload` take as a raw WAV body.
const WAV_MEDIA_TYPES: [&str; 5] = [
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "application/octet-stream",
];

/// A spooled upload, removed from disk when dropped.
struct Spool {
    path: PathBuf,
    /// The final STREAMINFO, from the audio itself.
    info: StreamInfo,
    /// The original file name's stem, for the download name.
    stem: String,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads WAV bytes as they arrive, checking the header and counting the
/// audio exactly as a session will.
struct Checker {
    parser: WavParser,
    decoder: Option<PcmDecoder>,
    rate: u32,
    scratch: Vec<i32>,
}

impl Checker {
    fn new(max_header_bytes: u64) -> Self {
        Self {
            parser: WavParser::new(max_header_bytes),
            decoder: None,
            rate: 0,
            scratch: vec![0; CHECK_STEP_SAMPLES],
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ApiError> {
        while let Some(event) = self.parser.next(&mut bytes).map_err(wav_error)? {
            match event {
                WavEvent::Format(f) => {
                    self.rate = f.sample_rate;
                    self.decoder = Some(PcmDecoder::new(PcmLayout {
                        channels: usize::from(f.channels),
                        bytes_per_sample: f.bytes_per_sample(),
                    }));
                }
                WavEvent::Audio(mut audio) => {
                    if let Some(decoder) = self.decoder.as_mut() {
                        while !audio.is_empty() {
                            decoder.decode(&mut audio, &mut self.scratch);
                        }
                    }
                }
                WavEvent::DataEnd => {}
            }
        }
        Ok(())
    }

    fn finish(self, block_size: Option<usize>) -> Result<StreamInfo, ApiError> {
        self.parser.finish().map_err(wav_error)?;
        let decoder = self
            .decoder
            .ok_or_else(|| wav_error(flacstream_codec::wav::WavError::TruncatedHeader))?;
        let format = StreamFormat {
            sample_rate: self.rate,
            layout: decoder.layout(),
            block_size: block_size.unwrap_or_else(|| default_block_size(self.rate)),
        };
        Ok(StreamInfo {
            format,
            min_frame_bytes: 0,
            max_frame_bytes: 0,
            total_samples: decoder.frames_decoded(),
            md5: decoder.md5_digest(),
        })
    }
}

fn wav_error(e: flacstream_codec::wav::WavError) -> ApiError {
    ApiError::Stream(e.into())
}

/// A spool file operation failed: the server's disk, not the client's upload.
fn io_error(e: std::io::Error) -> ApiError {
    ApiError::Storage(flacstream_actors::store::StoreError::File(e.to_string()))
}

/// Waits for the next piece of the upload, at most `timeout`: a client that
/// stops sending mid-upload is not waited for forever.
async fn next_chunk<T, E: std::fmt::Display>(
    stream: &mut (impl Stream<Item = Result<T, E>> + Unpin),
    timeout: std::time::Duration,
) -> Result<Option<T>, ApiError> {
    match tokio::time::timeout(timeout, stream.next()).await {
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err(ApiError::Upload(e.to_string())),
        Ok(None) => Ok(None),
        Err(_) => Err(ApiError::Stream(StreamError::IdleTimeout(
            timeout.as_secs(),
        ))),
    }
}

/// Keeps the letters, digits, `-`, `_` and `.` of an uploaded file's stem.
fn safe_stem(filename: Option<&str>) -> String {
    let stem = filename
        .map(|f| {
            Path::new(f)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
        })
        .unwrap_or("");
    let clean: String = stem
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(100)
        .collect();
    if clean.is_empty() {
        "audio".to_string()
    } else {
        clean
    }
}

/// Spools the request's WAV (raw body or multipart field `file`).
async fn spool(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    block_size: Option<usize>,
) -> Result<Spool, ApiError> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_ascii_lowercase();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.settings.max_upload_bytes) {
        return Err(ApiError::UploadTooLarge(state.settings.max_upload_bytes));
    }
    let idle = state.settings.connection_timeout;
    let dir = state.settings.data_dir.join(SPOOL_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(io_error)?;
    let path = dir.join(format!("{}.wav", SessionId::new_v4()));
    let file = tokio::fs::File::create(&path).await.map_err(io_error)?;
    let mut spool = Spool {
        path,
        info: StreamInfo::provisional(StreamFormat {
            sample_rate: 1,
            layout: PcmLayout {
                channels: 1,
                bytes_per_sample: 2,
            },
            block_size: 32,
        }),
        stem: "audio".into(),
    };
    let mut writer = SpoolWriter {
        file,
        written: 0,
        limit: state.settings.max_upload_bytes,
        checker: Checker::new(state.settings.max_header_bytes),
    };
    if media.starts_with("multipart/form-data") {
        let mut form = Multipart::new(req.headers(), payload);
        let mut found = false;
        while let Some(mut field) = next_chunk(&mut form, idle).await? {
            let is_file = !found && field.name() == Some("file");
            if is_file {
                found = true;
                spool.stem =
                    safe_stem(field.content_disposition().and_then(|cd| cd.get_filename()));
            }
            while let Some(chunk) = next_chunk(&mut field, idle).await? {
                if is_file {
                    writer.write(&chunk).await?;
                } else {
                    // Other fields are read past, not kept, but they count
                    // against the upload limit.
                    writer.count(chunk.len())?;
                }
            }
        }
        if !found {
            return Err(ApiError::MissingFile);
        }
    } else if WAV_MEDIA_TYPES.iter().any(|t| media.starts_with(t)) {
        let mut payload = payload;
        while let Some(chunk) = next_chunk(&mut payload, idle).await? {
            writer.write(&chunk).await?;
        }
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the WAV as the raw body (Content-Type audio/wav) or as the multipart/form-data field file, not {media}"
        )));
    }
    writer.file.flush().await.map_err(io_error)?;
    spool.info = writer.checker.finish(block_size)?;
    Ok(spool)
}

struct SpoolWriter {
    file: tokio::fs::File,
    written: u64,
    limit: u64,
    checker: Checker,
}

impl SpoolWriter {
    fn count(&mut self, n: usize) -> Result<(), ApiError> {
        self.written += n as u64;
        if self.written > self.limit {
            return Err(ApiError::UploadTooLarge(self.limit));
        }
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.count(chunk.len())?;
        self.checker.feed(chunk)?;
        self.file.write_all(chunk).await.map_err(io_error)
    }
}

/// Feeds a spooled WAV to a session as its producer, then says `end`.
async fn feed(session: Addr<Session>, conn: ConnectionId, path: PathBuf) {
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return;
    };
    let mut buf = vec![0u8; FEED_CHUNK_BYTES];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                session.do_send(Abort {
                    conn,
                    error: StreamError::Storage(format!("reading the spooled upload: {e}")),
                });
                return;
            }
        };
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        match session.send(Ingest { conn, bytes }).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
    }
    session.do_send(EndOfInput {
        conn,
        reason: EndReason::Complete,
    });
}

/// Starts a session for `spool`, connected as a producer; returns it with
/// the connection id and its event channel.
async fn start_session(
    state: &AppState,
    settings: SessionSettings,
    kind: SessionKind,
    flac: bool,
) -> Result<
    (
        SessionId,
        Addr<Session>,
        ConnectionId,
        mpsc::Receiver<Outbound>,
    ),
    ApiError,
> {
    let id = state
        .registry
        .send(Admit)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))??;
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
            tx,
        })
        .await;
    if !matches!(connected, Ok(Ok(_))) {
        session.do_send(Shutdown);
        state.registry.do_send(Leave { id });
        return Err(ApiError::Unavailable("the session did not start".into()));
    }
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
}

impl Drop for Hangup {
    fn drop(&mut self) {
        self.session.do_send(Disconnect { conn: self.conn });
        self.registry.do_send(Leave { id: self.id });
    }
}

fn settings(state: &AppState, level: Option<u8>, block_size: Option<usize>) -> SessionSettings {
    SessionSettings {
        level: level.and_then(EncoderLevel::new).unwrap_or_default(),
        block_size,
        max_header_bytes: state.settings.max_header_bytes,
        max_blocks_in_flight: state.settings.max_blocks_in_flight,
        input: InputFormat::Wav,
    }
}

/// `POST /convert`: see the module docs.
pub async fn convert(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = StreamParams::parse(req.query_string())?;
    let spool = spool(&req, payload, &state, params.block_size).await?;
    let settings = settings(&state, params.level, params.block_size);
    let (id, session, conn, events) =
        start_session(&state, settings, SessionKind::Stream, true).await?;
    actix_web::rt::spawn(feed(session.clone(), conn, spool.path.clone()));
    let header = Bytes::from(spool.info.stream_header());
    let filename = format!("{}.flac", spool.stem);
    let expected = spool.info;
    let hangup = Hangup {
        session: session.clone(),
        registry: state.registry.clone(),
        id,
        conn,
        progress: std::sync::Arc::new(Activity::new()),
    };
    watch_for_stall(&hangup, state.settings.outbound_stall);
    let body = flac_body(events, header, expected, hangup, spool);
    Ok(HttpResponse::Ok()
        .content_type("audio/flac")
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

/// Query parameters of `/upload`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// Compression level 0–8.
    pub level: Option<u8>,
    /// Samples per block.
    pub block_size: Option<usize>,
    /// Owner, for listing.
    pub user_id: Option<String>,
}

/// The answer to `/upload`.
#[derive(Debug, Serialize)]
pub struct Uploaded {
    /// The new session.
    pub session_id: String,
    /// Samples per channel stored.
    pub samples: u64,
    /// MD5 of the audio.
    pub md5: String,
    /// Where to find it.
    pub links: UploadLinks,
}

/// Links to an uploaded session.
#[derive(Debug, Serialize)]
pub struct UploadLinks {
    /// The session's metadata.
    pub session: String,
    /// Its FLAC.
    pub audio: String,
}

/// `POST /upload`: converts and stores the upload as a recorded session.
pub async fn upload(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = web::Query::<UploadParams>::from_query(req.query_string())
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))?
        .into_inner();
    let probe = StreamParams::parse(&format!(
        "{}{}",
        params
            .level
            .map_or(String::new(), |l| format!("level={l}&")),
        params
            .block_size
            .map_or(String::new(), |b| format!("block_size={b}"))
    ))?;
    if params
        .user_id
        .as_ref()
        .is_some_and(|u| u.is_empty() || u.len() > crate::audio::MAX_USER_ID_BYTES)
    {
        return Err(ApiError::BadParameter(format!(
            "user_id must be 1 to {} bytes",
            crate::audio::MAX_USER_ID_BYTES
        )));
    }
    let spool = spool(&req, payload, &state, probe.block_size).await?;
    let settings = settings(&state, probe.level, probe.block_size);
    let policy = RecordingPolicy {
        store: state.store.clone(),
        data_dir: state.settings.data_dir.clone(),
        record: true,
        resume_window: state.settings.session_resume,
        max_duration: state.settings.max_session,
        user_id: params.user_id,
        encoding: "wav".into(),
    };
    let kind = SessionKind::Recording(Box::new(policy));
    let (id, session, conn, mut events) = start_session(&state, settings, kind, false).await?;
    let _hangup = Hangup {
        session: session.clone(),
        registry: state.registry.clone(),
        id,
        conn,
        progress: std::sync::Arc::new(Activity::new()),
    };
    actix_web::rt::spawn(feed(session, conn, spool.path.clone()));
    loop {
        match events.recv().await {
            Some(Outbound::Flac(_)) => {}
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
            Some(Outbound::Done(done)) => {
                let body = Uploaded {
                    session_id: id.to_string(),
                    samples: done.samples,
                    md5: done.md5.iter().map(|b| format!("{b:02x}")).collect(),
                    links: UploadLinks {
                        session: format!("/api/audio/sessions/{id}"),
                        audio: format!("/api/audio/sessions/{id}/audio"),
                    },
                };
                return Ok(HttpResponse::Created()
                    .insert_header((header::LOCATION, body.links.session.clone()))
                    .json(body));
            }
            Some(Outbound::Failed(e)) => return Err(ApiError::Stream(e)),
            None => return Err(ApiError::Unavailable("the session ended early".into())),
        }
    }
}
