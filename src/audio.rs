//! `/api/ws/audio`: recorded sessions over WebSocket.
//!
//! `GET /api/ws/audio?sample_rate=…&channels=…&format=…` opens a new session
//! (raw PCM, or `format=wav` for a WAV header first); `GET
//! /api/ws/audio/{id}` joins a live one, as the producer (resuming where the
//! session stands, the newest producer wins) or, with `role=listen`, as a
//! listener that receives the FLAC live. Every connection's first message is
//! a `session` JSON. Parameters are checked, and limits enforced, before the
//! upgrade.

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use flacstream_actors::registry::{Join, JoinError, SessionId};
use flacstream_actors::session::{
    outbound_channel, Connect, InputFormat, RecordingPolicy, Role, SessionKind, Welcome,
};
use flacstream_actors::{Session, SessionSettings};
use flacstream_codec::flac::{MAX_BLOCK_SIZE, MAX_LEVEL, MIN_BLOCK_SIZE};
use flacstream_codec::pcm::PcmLayout;
use flacstream_codec::wav::frame_header_can_state;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::server::AppState;
use crate::transport::{next_connection_id, Dialect, LeaveGuard, Link, Upgrade};

/// Longest `user_id` accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Query parameters of a new session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSessionParams {
    /// Samples per second (raw formats).
    pub sample_rate: Option<u32>,
    /// Channels, 1–8 (raw formats).
    pub channels: Option<u16>,
    /// `s16le`, `s24le`, `s32le`, `u8` or `wav`.
    pub format: Option<String>,
    /// Owner, for listing.
    pub user_id: Option<String>,
    /// Compression level 0–8.
    pub level: Option<u8>,
    /// Samples per block.
    pub block_size: Option<usize>,
    /// Record to a file (default true).
    pub record: Option<bool>,
    /// Send an ack after each binary message (default true).
    pub acks: Option<bool>,
    /// `flac` to receive the FLAC live.
    pub output: Option<String>,
}

/// Query parameters for joining a session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinParams {
    /// `produce` (default) or `listen`.
    pub role: Option<String>,
    /// Send acks (producers; default true).
    pub acks: Option<bool>,
    /// `flac` for a producer to receive the FLAC live (listeners always do).
    pub output: Option<String>,
}

fn query<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))
}

fn wants_flac(output: Option<&str>) -> Result<bool, ApiError> {
    match output {
        None => Ok(false),
        Some("flac") => Ok(true),
        Some(other) => Err(ApiError::BadParameter(format!(
            "output must be flac, got {other}"
        ))),
    }
}

impl NewSessionParams {
    /// Checks every parameter; returns the input format and encoding name.
    fn input(&self) -> Result<(InputFormat, String), ApiError> {
        let encoding = self
            .format
            .clone()
            .ok_or_else(|| ApiError::BadParameter("format is required".into()))?;
        let bytes_per_sample = match encoding.as_str() {
            "wav" => return Ok((InputFormat::Wav, encoding)),
            "u8" => 1,
            "s16le" => 2,
            "s24le" => 3,
            "s32le" => {
                return Err(ApiError::UnsupportedParameter(
                    "32-bit PCM cannot be encoded: the FLAC encoder (flacenc) stops at 24 bits"
                        .into(),
                ))
            }
            other => {
                return Err(ApiError::BadParameter(format!(
                    "format must be s16le, s24le, s32le, u8 or wav, got {other}"
                )))
            }
        };
        let sample_rate = self
            .sample_rate
            .ok_or_else(|| ApiError::BadParameter("sample_rate is required".into()))?;
        if !frame_header_can_state(sample_rate) {
            return Err(ApiError::BadParameter(format!(
                "sample_rate must be 1 to 65535 Hz, or a multiple of 10 up to 655350 Hz; got {sample_rate}"
            )));
        }
        let channels = self
            .channels
            .ok_or_else(|| ApiError::BadParameter("channels is required".into()))?;
        if !(1..=8).contains(&channels) {
            return Err(ApiError::BadParameter(format!(
                "channels must be 1 to 8, got {channels}"
            )));
        }
        let layout = PcmLayout {
            channels: usize::from(channels),
            bytes_per_sample,
        };
        Ok((
            InputFormat::Raw {
                layout,
                sample_rate,
            },
            encoding,
        ))
    }

    fn check(&self) -> Result<(), ApiError> {
        if self.level.is_some_and(|l| l > MAX_LEVEL) {
            return Err(ApiError::BadParameter(format!(
                "level must be 0 to {MAX_LEVEL}"
            )));
        }
        if let Some(block) = self.block_size {
            if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block) {
                return Err(ApiError::BadParameter(format!(
                    "block_size must be {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE} samples, got {block}"
                )));
            }
        }
        if self
            .user_id
            .as_ref()
            .is_some_and(|u| u.is_empty() || u.len() > MAX_USER_ID_BYTES)
        {
            return Err(ApiError::BadParameter(format!(
                "user_id must be 1 to {MAX_USER_ID_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// The first message on every `/api/ws/audio` connection.
#[derive(Debug, Serialize)]
pub struct SessionMessage {
    /// Always `"session"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The session.
    pub session_id: String,
    /// `producer` or `listener`.
    pub role: &'static str,
    /// True when the session already had audio: a producer resumes at `samples_received`.
    pub resumed: bool,
    /// Samples per channel accepted so far.
    pub samples_received: u64,
    /// Samples per channel synced to the recording.
    pub samples_durable: u64,
    /// Binary messages taken so far.
    pub chunk_count: u64,
    /// Connections attached, this one included.
    pub connections: usize,
}

impl SessionMessage {
    fn new(id: SessionId, role: Role, w: &Welcome) -> Self {
        Self {
            kind: "session",
            session_id: id.to_string(),
            role: match role {
                Role::Producer => "producer",
                Role::Listener => "listener",
            },
            resumed: w.resumed,
            samples_received: w.samples_received,
            samples_durable: w.samples_durable,
            chunk_count: w.chunk_count,
            connections: w.connections,
        }
    }
}

/// Opens a new recorded session; see the module docs.
pub async fn open(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params: NewSessionParams = query(&req)?;
    params.check()?;
    let (input, encoding) = params.input()?;
    let flac = wants_flac(params.output.as_deref())?;
    let (response, upgrade) = Upgrade::accept(&req, body)?;
    let (id, guard) = state.admit().await?;
    let settings = state.session_settings(params.level, params.block_size, input);
    let policy = RecordingPolicy {
        store: state.store.clone(),
        data_dir: state.settings.data_dir.clone(),
        record: params.record.unwrap_or(true),
        resume_window: state.settings.session_resume,
        max_duration: state.settings.max_session,
        user_id: params.user_id.clone(),
        encoding,
    };
    let session = Session::new(
        id,
        settings,
        SessionKind::Recording(Box::new(policy)),
        state.pool.clone(),
        state.registry.clone(),
    )
    .start();
    flacstream_actors::metrics::stream_started("/api/ws/audio");
    let dialect = Dialect::Audio {
        acks: params.acks.unwrap_or(true),
    };
    attach(
        &state,
        id,
        guard,
        session,
        Role::Producer,
        flac,
        dialect,
        &settings,
        upgrade,
    )
    .await?;
    Ok(response)
}

/// Joins a live session as producer or listener; see the module docs.
pub async fn join(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = SessionId::parse_str(&path).map_err(|_| ApiError::SessionNotFound)?;
    let params: JoinParams = query(&req)?;
    let role = match params.role.as_deref() {
        None | Some("produce") | Some("producer") => Role::Producer,
        Some("listen") | Some("listener") => Role::Listener,
        Some(other) => {
            return Err(ApiError::BadParameter(format!(
                "role must be produce or listen, got {other}"
            )))
        }
    };
    let flac = role == Role::Listener || wants_flac(params.output.as_deref())?;
    let joined = state
        .registry
        .send(Join {
            id,
            max_connections: state.settings.max_connections_per_session,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let session = match joined {
        Ok(session) => session,
        Err(JoinError::TooMany(n)) => return Err(ApiError::TooManyConnections(n)),
        Err(JoinError::NotLive) => return Err(state.not_live(id).await),
    };
    let guard = LeaveGuard::new(state.registry.clone(), id);
    let (response, upgrade) = Upgrade::accept(&req, body)?;
    // Only the outbound channel's size is taken from these.
    let settings = state.session_settings(None, None, InputFormat::Wav);
    let dialect = Dialect::Audio {
        acks: params.acks.unwrap_or(true),
    };
    attach(
        &state, id, guard, session, role, flac, dialect, &settings, upgrade,
    )
    .await?;
    Ok(response)
}

/// Connects to the session, sends the `session` message, starts the loops.
#[allow(clippy::too_many_arguments)]
async fn attach(
    state: &AppState,
    id: SessionId,
    guard: LeaveGuard,
    session: actix::Addr<Session>,
    role: Role,
    flac: bool,
    dialect: Dialect,
    settings: &SessionSettings,
    mut upgrade: Upgrade,
) -> Result<(), ApiError> {
    let (tx, rx) = outbound_channel(settings);
    let conn = next_connection_id();
    let welcome = session
        .send(Connect {
            conn,
            role,
            flac,
            tx,
        })
        .await;
    let Ok(Ok(welcome)) = welcome else {
        return Err(ApiError::SessionClosed);
    };
    let hello = serde_json::to_string(&SessionMessage::new(id, role, &welcome)).unwrap_or_default();
    // The channel behind `ws` is empty at this point, so this cannot wait.
    let _ = upgrade.ws.text(hello).await;
    Link {
        session,
        session_id: id,
        registry: state.registry.clone(),
        conn,
        role,
        dialect,
        max_message_bytes: state.settings.max_message_size_bytes,
        stall: state.settings.outbound_stall,
    }
    .spawn(upgrade, rx);
    guard.disarm();
    Ok(())
}
