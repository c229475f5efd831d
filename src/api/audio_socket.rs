//! `/api/ws/audio`: recorded sessions over WebSocket.
//!
//! `GET /api/ws/audio?sample_rate=…&channels=…&format=…` opens a new session
//! (raw PCM, or `format=wav` for a WAV header first); `GET
//! /api/ws/audio/{id}` joins a live one, as the producer (resuming where the
//! session stands, the newest producer wins) or, with `role=listen`, as a
//! listener that receives the FLAC live. Every connection's first message is
//! a `session` JSON. Parameters are checked, and limits enforced, before the
//! upgrade.
//!
//! The server picks a new session's id unless the client passes its own as
//! `session_id` ([`parse_chosen_id`] says which ids it accepts). A client that
//! chooses its id can be routed by it from the first request on: a proxy that
//! hashes on the id sends the open and every later request for the session to
//! the same replica.
//!
//! With authentication on, a new session belongs to the principal that
//! opened it, and only that owner joins it ([`crate::auth`]); a
//! session-scoped token opens its own session id (the default) and joins
//! only it.

use actix::Actor;
use actix_web::{get, web, HttpRequest, HttpResponse};
use flacstream_actors::registry::{Join, JoinError, LeaveGuard, SessionId};
use flacstream_actors::session::{
    connection_channel, Connect, InputFormat, RecordingPolicy, Role, SessionKind, Welcome,
};
use flacstream_actors::store::{LeaseHolder, Load};
use flacstream_actors::{Session, SessionSettings};
use flacstream_codec::flac::{MAX_BLOCK_SIZE, MAX_LEVEL, MIN_BLOCK_SIZE};
use flacstream_codec::media::SourceCodec;
use flacstream_codec::pcm::PcmLayout;
use flacstream_codec::wav::frame_header_can_state;
use serde::{Deserialize, Serialize};

use crate::api::relay::{self, is_relayed, Relayed};
use crate::api::session_access::SessionAccess;
use crate::api::takeover::take_over;
use crate::auth::{Access, TokenParameter};
use crate::error::ApiError;
use crate::ids::{parse_chosen_id, MAX_USER_ID_BYTES};
use crate::limits::client_connections::ClientSlot;
use crate::protocol::{
    container_format, g711_law, is_decoded_encoding, raw_bytes_per_sample, CONTAINER_FORMATS,
    NEEDS_SEEKING_FORMATS,
};
use crate::state::AppState;
use crate::websocket::transport::{next_connection_id, Dialect, Link, Upgrade};
use flacstream_actors::StreamError;
use flacstream_codec::media::MediaError;

/// Query parameters of a new session.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NewSessionParams {
    /// Samples per second (raw formats).
    #[param(example = 16000)]
    pub sample_rate: Option<u32>,
    /// Channels, 1–8 (raw formats).
    #[param(minimum = 1, maximum = 8, example = 1)]
    pub channels: Option<u16>,
    /// `s16le`, `s24le`, `s32le`, `u8`, `mulaw`, `alaw`, `wav`, or a
    /// container decoded as it arrives ([`CONTAINER_FORMATS`]).
    #[param(example = "s16le")]
    pub format: Option<String>,
    /// Owner, for listing.
    #[param(example = "ann")]
    pub user_id: Option<String>,
    /// Compression level 0–8.
    #[param(minimum = 0, maximum = 8, example = 5)]
    pub level: Option<u8>,
    /// Samples per block.
    #[param(minimum = 32, maximum = 16384, example = 4096)]
    pub block_size: Option<usize>,
    /// Record to a file (default true).
    pub record: Option<bool>,
    /// Send an ack after each binary message (default true).
    pub acks: Option<bool>,
    /// `flac` to receive the FLAC live.
    pub output: Option<String>,
    /// `chunk` to receive each chunk's metadata live.
    pub metadata: Option<String>,
    /// The new session's id, chosen by the client; see [`parse_chosen_id`].
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

/// Query parameters for joining a session.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JoinParams {
    /// `produce` (default) or `listen`.
    #[param(example = "listen")]
    pub role: Option<String>,
    /// Send acks (producers; default true).
    pub acks: Option<bool>,
    /// `flac` for a producer to receive the FLAC live (listeners always do).
    pub output: Option<String>,
    /// `chunk` to receive each chunk's metadata live.
    pub metadata: Option<String>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<TokenParameter>,
}

fn query<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))
}

fn wants_metadata(metadata: Option<&str>) -> Result<bool, ApiError> {
    match metadata {
        None => Ok(false),
        Some("chunk") => Ok(true),
        Some(other) => Err(ApiError::BadParameter(format!(
            "metadata must be chunk, got {other}"
        ))),
    }
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
        let law = g711_law(&encoding);
        if let Some(expected) = container_format(&encoding) {
            return Ok((InputFormat::Container { expected }, encoding));
        }
        if NEEDS_SEEKING_FORMATS.contains(&encoding.as_str()) {
            return Err(ApiError::Stream(StreamError::Media(
                MediaError::NeedsSeeking,
            )));
        }
        let bytes_per_sample = match (encoding.as_str(), raw_bytes_per_sample(&encoding)) {
            ("wav", _) => return Ok((InputFormat::Wav, encoding)),
            (_, Some(bytes)) => bytes,
            _ if law.is_some() => 1,
            ("s32le", None) => {
                return Err(ApiError::UnsupportedParameter(
                    "32-bit PCM cannot be encoded: the FLAC encoder (flacenc) stops at 24 bits"
                        .into(),
                ))
            }
            (other, None) => {
                return Err(ApiError::BadParameter(format!(
                    "format must be s16le, s24le, u8, mulaw, alaw, wav, or a container \
                     ({}), got {other}",
                    CONTAINER_FORMATS.map(|(name, _)| name).join(", ")
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
        if let Some(law) = law {
            let input = InputFormat::G711 {
                law,
                channels: usize::from(channels),
                sample_rate,
            };
            return Ok((input, encoding));
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
    /// A container session's bytes taken by its decoder: a resuming
    /// producer sends on from this byte. Absent for PCM sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_accepted: Option<u64>,
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
            bytes_accepted: w.bytes_accepted,
            chunk_count: w.chunk_count,
            connections: w.connections,
        }
    }
}

/// Opens a new recorded session; see the module docs.
#[utoipa::path(
    operation_id = "openAudioSession",
    summary = "Open a recorded session over a WebSocket",
    tag = "streaming",
    description = "A WebSocket that opens a recorded session: audio in with acks (`samples_durable`, `bytes_accepted`), optionally FLAC and chunk metadata out; the session outlives the connection and resumes (AsyncAPI channel `audioSession`, docs/protocol.md §9).",
    params(NewSessionParams),
    responses(
        crate::api::openapi::UpgradeResponses,
        (status = 409, description = "`session_exists`: the chosen session_id is taken", body = crate::error::ErrorBody),
        (status = 415, description = "`unsupported_format` or `needs_seeking` (MP4 cannot be read as it arrives)", body = crate::error::ErrorBody),
    )
)]
#[get("/api/ws/audio")]
pub async fn open(
    access: Access,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params: NewSessionParams = query(&req)?;
    params.check()?;
    let (input, encoding) = params.input()?;
    let flac = wants_flac(params.output.as_deref())?;
    let requested = params
        .session_id
        .as_deref()
        .map(parse_chosen_id)
        .transpose()?;
    let owner = access.new_session(requested, params.user_id.clone())?;
    let (response, upgrade) = Upgrade::accept(&req, body, state.settings.max_message_size_bytes)?;
    let client = state.enter_client(&req)?;
    let charge = state.count_new_session(access.rate_key().as_deref(), &client)?;
    if state.cluster.shared_catalog && !lease_holds(&state).await {
        return Err(ApiError::Unavailable(
            "this replica cannot reach the catalog to own sessions".into(),
        ));
    }
    let (id, guard) = state.admit(owner.id, charge).await?;
    state.claim_new_lease(id).await?;
    let mut settings = state.session_settings(params.level, params.block_size, input);
    settings.source = SourceCodec::of_encoding(&encoding);
    // A live source: its producers may not outrun real time.
    settings.input_rate = Some(state.settings.input_rate);
    let policy = RecordingPolicy {
        store: state.store.clone(),
        data_dir: state.settings.data_dir.clone(),
        record: params.record.unwrap_or(true),
        resume_window: state.settings.session_resume,
        user_id: owner.user_id,
        owner_key: owner.owner_key,
        encoding,
        objects: state.cluster.sink(),
        takeover: None,
        analysis: Some(state.analysis.clone()),
        whole_upload: None,
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
        metadata: wants_metadata(params.metadata.as_deref())?,
    };
    attach(
        &state,
        id,
        (guard, client),
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
#[utoipa::path(
    operation_id = "joinAudioSession",
    summary = "Resume or listen to a live session over a WebSocket",
    tag = "streaming",
    description = "A WebSocket that joins a live session: its producer resuming (role=produce) or a listener receiving its FLAC (role=listen) (AsyncAPI channel `audioSessionJoin`, docs/protocol.md §9.5).",
    params(("id" = String, Path, description = "The session id (a UUID, or the id its client chose)", example = "0b5e3c1a-8d2f-4b7e-9c6a-1f2e3d4c5b6a"), JoinParams),
    responses(
        crate::api::openapi::UpgradeResponses,
        (status = 404, description = "`session_not_found`", body = crate::error::ErrorBody),
        (status = 409, description = "`session_closed`", body = crate::error::ErrorBody),
    )
)]
#[get("/api/ws/audio/{id}")]
pub async fn join(
    session: SessionAccess,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = session.id;
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
    let client = state.enter_client(&req)?;
    let joined = state
        .registry
        .send(Join::new(id, state.settings.max_connections_per_session))
        .await?;
    let (session, guard) = match joined {
        Ok(session) => (session, LeaveGuard::new(state.registry.clone(), id)),
        Err(JoinError::TooMany(n)) => return Err(ApiError::TooManyConnections(n)),
        Err(JoinError::NotLive) => {
            // Not here. In scaled mode a listener is relayed from a live
            // owner; a producer (or a listener of a dead owner's session)
            // moves the session here.
            if let Some(relayed) = relayed_role(&state, &req, id, role).await? {
                let holder = state.store.send(LeaseHolder { id }).await??;
                if let Some(owner) = holder.filter(|o| *o != state.cluster.replica) {
                    return relay::join(relayed, &req, body, &state, id, &owner, client).await;
                }
            }
            take_over(&state, id).await?
        }
    };
    let (response, upgrade) = Upgrade::accept(&req, body, state.settings.max_message_size_bytes)?;
    // Only the outbound channel's size is taken from these.
    let settings = state.session_settings(None, None, InputFormat::Wav);
    let dialect = Dialect::Audio {
        acks: params.acks.unwrap_or(true),
        metadata: wants_metadata(params.metadata.as_deref())?,
    };
    attach(
        &state,
        id,
        (guard, client),
        session,
        role,
        flac,
        dialect,
        &settings,
        upgrade,
    )
    .await?;
    Ok(response)
}

/// Whether a join that reached a replica not running the session is
/// relayed to its owner, and as whom: in scaled mode a listener always, a
/// producer only of a container session (its decoder cannot move; any
/// other session moves here instead). A relayed request is never relayed
/// again.
async fn relayed_role(
    state: &AppState,
    req: &HttpRequest,
    id: SessionId,
    role: Role,
) -> Result<Option<Relayed>, ApiError> {
    if !state.cluster.shared_catalog || is_relayed(req) {
        return Ok(None);
    }
    if role == Role::Listener {
        return Ok(Some(Relayed::Listener));
    }
    // A session opened a moment ago may not be in the catalog yet: its
    // owner (if the lease names one) knows it.
    let record = state.store.send(Load { id }).await??;
    Ok(match record {
        Some(r) if !is_decoded_encoding(&r.encoding) => None,
        _ => Some(Relayed::Producer),
    })
}

/// Longest a new session waits for this replica's leases to hold, in
/// milliseconds: the first renewal runs as the service starts, so only a
/// request in the first moments (or while the database is away) waits.
const LEASE_WAIT_MS: u64 = 2_000;

/// Whether this replica's leases hold, waiting up to [`LEASE_WAIT_MS`].
async fn lease_holds(state: &AppState) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LEASE_WAIT_MS);
    while !state.cluster.lease.valid() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    true
}

/// Connects to the session, sends the `session` message, starts the loops,
/// which take over the connection's places (`guards`): in its session and
/// in its client's connection cap.
#[allow(clippy::too_many_arguments)]
async fn attach(
    state: &AppState,
    id: SessionId,
    (guard, client): (LeaveGuard, ClientSlot),
    session: actix::Addr<Session>,
    role: Role,
    flac: bool,
    dialect: Dialect,
    settings: &SessionSettings,
    mut upgrade: Upgrade,
) -> Result<(), ApiError> {
    let metadata = matches!(dialect, Dialect::Audio { metadata: true, .. });
    let (tx, rx) = connection_channel(
        role,
        settings,
        state.settings.listener_queue_frames,
        metadata,
    );
    let conn = next_connection_id();
    let welcome = session
        .send(Connect {
            conn,
            role,
            flac,
            metadata,
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
        client,
    }
    .spawn(upgrade, rx);
    guard.disarm();
    Ok(())
}
