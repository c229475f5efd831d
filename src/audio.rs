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

use crate::auth::TokenParameter;
use crate::client_connections::ClientSlot;
use crate::error::ApiError;
use crate::server::AppState;
use crate::transport::{next_connection_id, Dialect, LeaveGuard, Link, Upgrade};

/// Longest `user_id` accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Checks an id a client chose for a new session (`session_id` on
/// `/api/ws/audio` and `/upload`): a random (version 4, RFC 9562 variant)
/// UUID written in its canonical form, 36 characters of lowercase hex and
/// hyphens. Anything else is 400 `bad_parameter`; the nil UUID is refused
/// as it is not version 4.
///
/// Why so strict: the id is all it takes to join, listen to, download or
/// delete a session, so it must be unguessable, and a version-4 id is the
/// one kind whose bits say it was meant to be (the server cannot check the
/// randomness itself). And a proxy that routes by session hashes the id's
/// text: one spelling per id keeps the open and later requests on the same
/// key, as the server writes the id in this form everywhere.
pub fn parse_chosen_id(raw: &str) -> Result<SessionId, ApiError> {
    let id = SessionId::parse_str(raw)
        .ok()
        .filter(|id| id.hyphenated().to_string() == raw)
        .ok_or_else(|| {
            ApiError::BadParameter(
                "session_id must be a UUID in lowercase hyphenated form \
                 (xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx)"
                    .into(),
            )
        })?;
    if id.get_version() != Some(uuid::Version::Random) {
        return Err(ApiError::BadParameter(format!(
            "session_id must be a random (version 4) UUID, got version {}",
            id.get_version_num()
        )));
    }
    if id.get_variant() != uuid::Variant::RFC4122 {
        return Err(ApiError::BadParameter(
            "session_id must be a random (version 4) UUID of the standard variant: \
             its 17th hex digit is 8, 9, a or b"
                .into(),
        ));
    }
    Ok(id)
}

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
    /// The new session's id, chosen by the client; see [`parse_chosen_id`].
    pub session_id: Option<String>,
    /// A token; read by [`crate::auth`].
    #[serde(default)]
    pub access_token: Option<TokenParameter>,
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
    /// A token; read by [`crate::auth`].
    #[serde(default)]
    pub access_token: Option<TokenParameter>,
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
    let access = state.settings.auth.check(&req)?;
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
    let (response, upgrade) = Upgrade::accept(&req, body)?;
    let client = state.enter_client(&req)?;
    let charge = state.count_new_session(access.rate_key().as_deref(), &client)?;
    let (id, guard) = state.admit(owner.id, charge).await?;
    let mut settings = state.session_settings(params.level, params.block_size, input);
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
pub async fn join(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let access = state.settings.auth.check(&req)?;
    let id = SessionId::parse_str(&path).map_err(|_| ApiError::SessionNotFound)?;
    crate::sessions::authorize(&state, &access, id).await?;
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
        client,
    }
    .spawn(upgrade, rx);
    guard.disarm();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> String {
        match parse_chosen_id(raw) {
            Err(e @ ApiError::BadParameter(_)) => e.to_string(),
            other => panic!("{raw}: expected bad_parameter, got {other:?}"),
        }
    }

    #[test]
    fn a_chosen_id_is_a_canonical_random_uuid() {
        let id = SessionId::new_v4();
        assert_eq!(parse_chosen_id(&id.to_string()).unwrap(), id);
        for raw in [
            "",
            "not-a-uuid",
            // The right id in other spellings: a proxy would hash them apart.
            &id.to_string().to_uppercase(),
            &id.simple().to_string(),
            &id.braced().to_string(),
            &id.urn().to_string(),
            &format!(" {id}"),
        ] {
            assert!(refused(raw).contains("lowercase hyphenated"), "{raw}");
        }
        for raw in [
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            // Version 1 (time-based) and version 7 (time-ordered).
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "01890a5d-ac96-774b-bcce-b302099a8057",
            // Version 4 bits, but not the RFC variant.
            "89eb4845-6b3f-4d0f-0d67-63006047c756",
        ] {
            assert!(refused(raw).contains("version 4"), "{raw}");
        }
    }
}
