//! Scaled mode: a listener whose request reaches a replica that does not
//! own the session is relayed from the owner; so is the producer of a
//! container session (`format=ogg`, …), whose decoder cannot move.
//!
//! A producer's resume moves the session ([`crate::api::takeover`]). A
//! listener must not: behind a round-robin balancer the producer and its
//! listeners land on different replicas, and moving the session to each
//! new listener would cut the producer off every time. So this replica
//! opens the same WebSocket to the owner (its address is in the lease row)
//! and passes the owner's messages through: frames, the `session` message,
//! `done` or `error`, and the close. The client's credentials go along as
//! they came (query, `Authorization`, subprotocol), and its address as
//! `X-Forwarded-For`, which the owner believes when this replica is within
//! its `--trusted-proxies`. A relayed producer's messages go the other way
//! too, in order, each sent once the connection to the owner took the one
//! before (TCP's backpressure, so the owner's), under the same message size
//! limit as a direct connection.
//!
//! Costs (docs/scaling.md): one more hop for the listener's frames, one
//! connection between replicas per relayed listener. Backpressure holds
//! end to end: this replica reads from the owner only as fast as its
//! client takes the frames, and a client that stalls is cut off after the
//! outbound stall time, here and then at the owner.
//!
//! A relayed request carries [`RELAYED_HEADER`]; a replica never relays a
//! relayed request again, so no loop can form.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as UpstreamCode;
use tokio_tungstenite::tungstenite::Message;

use crate::error::ApiError;
use crate::limits::client_connections::ClientSlot;
use crate::state::AppState;
use crate::websocket::transport::Upgrade;
use flacstream_actors::registry::SessionId;

/// Marks a request relayed from another replica.
pub const RELAYED_HEADER: &str = "x-flacstream-relayed";

/// Longest the connection to the owner may take to open, in seconds.
const CONNECT_TIMEOUT_SECONDS: u64 = 5;

/// Headers that carry the client's credentials, passed on as they came.
const PASSED_HEADERS: [&str; 2] = ["authorization", "sec-websocket-protocol"];

/// Whether `req` was relayed by another replica.
pub fn is_relayed(req: &HttpRequest) -> bool {
    req.headers().contains_key(RELAYED_HEADER)
}

/// The owner's base URL from its lease owner id (`{advertised}#{random}`).
fn owner_url(owner: &str) -> Option<String> {
    let base = owner.split('#').next()?;
    let ws = base
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .or_else(|| {
            base.strip_prefix("https://")
                .map(|rest| format!("wss://{rest}"))
        })?;
    Some(ws.trim_end_matches('/').to_string())
}

/// Who is relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// A listener: only the owner's messages pass.
    Listener,
    /// A container session's producer: its messages pass to the owner too.
    Producer,
}

/// Relays a listener, or a container session's producer, to `owner`; see
/// the module docs.
pub async fn join(
    relayed: Relayed,
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    id: SessionId,
    owner: &str,
    client: ClientSlot,
) -> Result<HttpResponse, ApiError> {
    let base = owner_url(owner).ok_or_else(|| {
        ApiError::Unavailable(format!("the owner's address {owner} is not usable"))
    })?;
    let url = format!("{base}/api/ws/audio/{id}?{}", req.query_string());
    let mut request = url
        .into_client_request()
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    for name in PASSED_HEADERS {
        if let Some(value) = req.headers().get(name) {
            if let Ok(value) = value.to_str().unwrap_or_default().parse() {
                request.headers_mut().insert(name, value);
            }
        }
    }
    request
        .headers_mut()
        .insert(RELAYED_HEADER, http_value("1"));
    if let Some(peer) = req.peer_addr() {
        let forwarded = match req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(chain) => format!("{chain}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(value) = forwarded.parse() {
            request.headers_mut().insert("x-forwarded-for", value);
        }
    }
    let connected = tokio::time::timeout(
        Duration::from_secs(CONNECT_TIMEOUT_SECONDS),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| ApiError::Unavailable("the session's owner did not answer in time".into()))?;
    let upstream = match connected {
        Ok((upstream, _)) => upstream,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            // The owner refused (the session ended, or the caller may not):
            // its status and JSON body go to the client as they are.
            let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
                .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
            let body = response.into_body().unwrap_or_default();
            return Ok(HttpResponse::build(status)
                .content_type("application/json")
                .body(body));
        }
        Err(e) => {
            return Err(ApiError::Unavailable(format!(
                "cannot reach the session's owner: {e}"
            )))
        }
    };
    let (response, upgrade) = Upgrade::accept(req, body, state.settings.max_message_size_bytes)?;
    actix_web::rt::spawn(pipe(
        relayed,
        upgrade,
        upstream,
        client,
        state.settings.outbound_stall,
        state.settings.max_message_size_bytes,
    ));
    Ok(response)
}

fn http_value(s: &'static str) -> tokio_tungstenite::tungstenite::http::HeaderValue {
    tokio_tungstenite::tungstenite::http::HeaderValue::from_static(s)
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Passes the owner's messages to the client, and a relayed producer's to
/// the owner, until either side closes. The two directions run side by
/// side: a producer whose upstream send waits (the owner's backpressure)
/// still reads its FLAC and acks, so neither side waits on the other.
async fn pipe(
    relayed: Relayed,
    down: Upgrade,
    upstream: Upstream,
    _client: ClientSlot,
    stall: Duration,
    max_message_bytes: usize,
) {
    let (mut up_tx, mut up_rx) = upstream.split();
    let Upgrade { ws, messages, .. } = down;
    // The limits a direct connection has (`Link::spawn`): a relayed client
    // sends what it could send to the owner.
    let mut messages = messages
        .max_frame_size(max_message_bytes)
        .aggregate_continuations()
        .max_continuation_size(max_message_bytes);
    let mut to_client = ws.clone();
    let owner_to_client = async {
        loop {
            let sent = match up_rx.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    tokio::time::timeout(stall, to_client.binary(bytes)).await
                }
                Some(Ok(Message::Text(text))) => {
                    tokio::time::timeout(stall, to_client.text(text.to_string())).await
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ended::OwnerClosed(frame.map(|f| CloseReason {
                        code: CloseCode::from(u16::from(f.code)),
                        description: Some(f.reason.to_string()),
                    }))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ended::OwnerGone,
            };
            if !matches!(sent, Ok(Ok(()))) {
                // The client stopped reading (or left): the owner's own
                // stall cut-off ends its side.
                return Ended::ClientGone;
            }
        }
    };
    let mut pongs = ws.clone();
    let client_to_owner = async {
        loop {
            let forward = match messages.next().await {
                Some(Ok(actix_ws::AggregatedMessage::Ping(p))) => {
                    let _ = pongs.pong(&p).await;
                    continue;
                }
                Some(Ok(actix_ws::AggregatedMessage::Binary(bytes)))
                    if relayed == Relayed::Producer =>
                {
                    Message::Binary(bytes)
                }
                Some(Ok(actix_ws::AggregatedMessage::Text(text)))
                    if relayed == Relayed::Producer =>
                {
                    Message::text(text.to_string())
                }
                Some(Ok(actix_ws::AggregatedMessage::Close(_))) | None => return Ended::ClientGone,
                // Over the message size, or a protocol error: as a direct
                // connection, the client is told and cut off.
                Some(Err(_)) => return Ended::ClientBroke,
                // A listener sends nothing else that matters.
                Some(Ok(_)) => continue,
            };
            match tokio::time::timeout(stall, up_tx.send(forward)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Ended::OwnerGone,
                // The owner took nothing for the stall time: as a slow
                // reader, the client is cut off.
                Err(_) => return Ended::ClientBroke,
            }
        }
    };
    let ended = tokio::select! {
        ended = owner_to_client => ended,
        ended = client_to_owner => ended,
    };
    let owner_ended = matches!(ended, Ended::OwnerClosed(_) | Ended::OwnerGone);
    let reason = match ended {
        Ended::OwnerClosed(reason) => reason,
        Ended::OwnerGone => Some(CloseReason {
            code: CloseCode::Away,
            description: Some("the session's owner went away; reconnect".into()),
        }),
        Ended::ClientGone => None,
        Ended::ClientBroke => Some(CloseReason {
            code: CloseCode::Size,
            description: Some("message too large or not taken by the session's owner".into()),
        }),
    };
    if !owner_ended {
        let _ = up_tx
            .send(Message::Close(Some(
                tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: UpstreamCode::Normal,
                    reason: "".into(),
                },
            )))
            .await;
    }
    let _ = ws.close(reason).await;
}

/// Why a relay ended.
enum Ended {
    /// The owner closed, with this reason: passed on to the client.
    OwnerClosed(Option<CloseReason>),
    /// The connection to the owner broke.
    OwnerGone,
    /// The client closed or stopped reading.
    ClientGone,
    /// The client sent what the relay cannot pass on.
    ClientBroke,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_id_gives_its_websocket_address() {
        assert_eq!(
            owner_url("http://10.0.0.7:8080#ab12").as_deref(),
            Some("ws://10.0.0.7:8080")
        );
        assert_eq!(
            owner_url("https://pod.example/#x").as_deref(),
            Some("wss://pod.example")
        );
        assert_eq!(owner_url("10.0.0.7:8080#x"), None);
    }
}
