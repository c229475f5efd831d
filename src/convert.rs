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
use flacstream_actors::registry::{Admit, Leave, Registry, SessionId};
use flacstream_actors::session::{
    outbound_channel, Connect, ConnectionId, Delivered, Disconnect, EndOfInput, EndReason, Ingest,
    InputFormat, RecordingPolicy, Role, SessionKind,
};
use flacstream_actors::{Outbound, Session, SessionSettings};
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

fn io_error(e: std::io::Error) -> ApiError {
    ApiError::Upload(e.to_string())
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
    let dir = state.settings.data_dir.join("tmp");
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
        while let Some(field) = form.next().await {
            let mut field = field.map_err(|e| ApiError::Upload(e.to_string()))?;
            if found || field.name() != Some("file") {
                // Other fields are read past, not kept.
                while let Some(chunk) = field.next().await {
                    chunk.map_err(|e| ApiError::Upload(e.to_string()))?;
                }
                continue;
            }
            found = true;
            spool.stem = safe_stem(field.content_disposition().and_then(|cd| cd.get_filename()));
            while let Some(chunk) = field.next().await {
                writer
                    .write(&chunk.map_err(|e| ApiError::Upload(e.to_string()))?)
                    .await?;
            }
        }
        if !found {
            return Err(ApiError::MissingFile);
        }
    } else if WAV_MEDIA_TYPES.iter().any(|t| media.starts_with(t)) {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            writer
                .write(&chunk.map_err(|e| ApiError::Upload(e.to_string()))?)
                .await?;
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
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(ApiError::UploadTooLarge(self.limit));
        }
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
            Ok(0) | Err(_) => break,
            Ok(n) => n,
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
    let body = flac_body(
        events,
        header,
        Hangup {
            session: session.clone(),
            registry: state.registry.clone(),
            id,
            conn,
        },
        spool,
    );
    Ok(HttpResponse::Ok()
        .content_type("audio/flac")
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(filename)],
        })
        .streaming(body))
}

/// The response body: the final header in place of the provisional one,
/// then each frame as it is encoded. A stream that fails after the header
/// ends the response early (the client sees a cut-off transfer).
fn flac_body(
    events: mpsc::Receiver<Outbound>,
    header: Bytes,
    hangup: Hangup,
    spool: Spool,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    struct State {
        events: mpsc::Receiver<Outbound>,
        header: Option<Bytes>,
        hangup: Hangup,
        _spool: Spool,
    }
    let state = State {
        events,
        header: Some(header),
        hangup,
        _spool: spool,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.events.recv().await? {
            Outbound::Flac(bytes) => {
                state.hangup.session.do_send(Delivered);
                let chunk = state.header.take().unwrap_or(bytes);
                Some((Ok(chunk), Some(state)))
            }
            Outbound::Done(_) => None,
            Outbound::Failed(e) => {
                log::warn!("Conversion {} failed mid-way: {e}.", state.hangup.id);
                let error = actix_web::error::ErrorInternalServerError(e.to_string());
                Some((Err(error), None))
            }
        }
    })
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
    };
    actix_web::rt::spawn(feed(session, conn, spool.path.clone()));
    loop {
        match events.recv().await {
            Some(Outbound::Flac(_)) => {}
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
