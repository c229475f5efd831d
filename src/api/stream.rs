//! `GET /stream`: convert one WAV stream to FLAC over a WebSocket; the
//! session ends with the connection. The connection plumbing (backpressure,
//! slow-reader cut-off) is [`crate::websocket::transport`].

use actix::Actor;
use actix_web::{get, web, HttpRequest, HttpResponse};
use flacstream_actors::session::{outbound_channel, Connect, InputFormat, Role, SessionKind};
use flacstream_actors::Session;
use flacstream_codec::flac::{MAX_BLOCK_SIZE, MAX_LEVEL, MIN_BLOCK_SIZE};
use serde::Deserialize;

use crate::auth::{Access, TokenParameter};
use crate::error::ApiError;
use crate::state::AppState;
use crate::websocket::transport::{next_connection_id, Dialect, Link, Upgrade};

/// Query parameters of `/stream`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Compression level 0..=8.
    #[param(minimum = 0, maximum = 8, example = 5)]
    pub level: Option<u8>,
    /// Samples per block, [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    #[param(minimum = 32, maximum = 16384, example = 4096)]
    pub block_size: Option<usize>,
    /// A token; read by [`crate::auth`].
    #[allow(
        dead_code,
        reason = "accepted here so the query parses; auth::Access reads it"
    )]
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub access_token: Option<TokenParameter>,
}

impl StreamParams {
    /// Parses and range-checks the query string.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let params: Self = serde_urlencoded_query(query)?;
        if let Some(level) = params.level {
            if level > MAX_LEVEL {
                return Err(ApiError::BadParameter(format!(
                    "level must be 0 to {MAX_LEVEL}, got {level}"
                )));
            }
        }
        if let Some(block) = params.block_size {
            if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block) {
                return Err(ApiError::BadParameter(format!(
                    "block_size must be {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE} samples, got {block}"
                )));
            }
        }
        Ok(params)
    }
}

fn serde_urlencoded_query<T: for<'de> Deserialize<'de>>(query: &str) -> Result<T, ApiError> {
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadParameter(format!("bad query parameters: {e}")))
}

/// Upgrades to a WebSocket stream; see the module docs.
#[utoipa::path(
    operation_id = "stream",
    summary = "Convert one stream to FLAC over a WebSocket",
    tag = "streaming",
    description = "A WebSocket: audio in (WAV, or any container the service reads), FLAC frames out as they are encoded; the session ends with the connection (AsyncAPI channel `stream`, docs/protocol.md §1-8).",
    params(StreamParams),
    responses(crate::api::openapi::UpgradeResponses,)
)]
#[get("/stream")]
pub async fn stream(
    access: Access,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    access.anonymous_session()?;
    let params = StreamParams::parse(req.query_string())?;
    let (response, upgrade) = Upgrade::accept(&req, body, state.settings.max_message_size_bytes)?;
    let client = state.enter_client(&req)?;
    let charge = state.count_new_session(access.rate_key().as_deref(), &client)?;
    let (id, guard) = state.admit(None, charge).await?;
    let settings = state.session_settings(params.level, params.block_size, InputFormat::Wav);
    let session = Session::new(
        id,
        settings,
        SessionKind::Stream,
        state.pool.clone(),
        state.registry.clone(),
    )
    .start();
    flacstream_actors::metrics::stream_started("/stream");
    let (tx, rx) = outbound_channel(&settings);
    let conn = next_connection_id();
    let connect = Connect {
        conn,
        role: Role::Producer,
        flac: true,
        metadata: false,
        tx,
    };
    match session.send(connect).await {
        Ok(Ok(_welcome)) => {}
        _ => return Err(ApiError::Unavailable("the session did not start".into())),
    }
    Link {
        session,
        session_id: id,
        registry: state.registry.clone(),
        conn,
        role: Role::Producer,
        dialect: Dialect::Stream,
        max_message_bytes: state.settings.max_message_size_bytes,
        stall: state.settings.outbound_stall,
        client,
    }
    .spawn(upgrade, rx);
    guard.disarm();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_range_checked() {
        assert!(StreamParams::parse("").is_ok());
        assert!(StreamParams::parse("level=8&block_size=32").is_ok());
        assert!(StreamParams::parse("level=8&access_token=fst1_x").is_ok());
        for bad in [
            "level=9",
            "level=-1",
            "level=x",
            "block_size=31",
            "block_size=16385",
            "foo=1",
        ] {
            let e = StreamParams::parse(bad).unwrap_err();
            assert_eq!(e.code(), "bad_parameter", "{bad}");
        }
    }
}
