//! `GET /stream`: the WebSocket transport of one session.
//!
//! The transport is `actix-ws` (not the deprecated `actix-web-actors`, which
//! reads without backpressure: a flooding client drove a prototype to 5.8 GiB
//! in 8 s where actix-ws stayed at 6 MiB). Two tasks serve a connection:
//! - the read loop takes one message at a time and awaits the session actor's
//!   answer before reading the next, so a client that sends faster than the
//!   encoders drain is slowed by TCP itself;
//! - the write loop sends the session's [`Outbound`] events, closing a client
//!   that leaves output unread for the stall timeout.

use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason};
use flacstream_actors::registry::Admit;
use flacstream_actors::session::{
    outbound_channel, Abort, ClientGone, Delivered, EndOfInput, Ingest,
};
use flacstream_actors::{Outbound, Session, SessionSettings, StreamError};
use flacstream_codec::flac::{EncoderLevel, MAX_BLOCK_SIZE, MAX_LEVEL, MIN_BLOCK_SIZE};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::protocol::{ClientMessage, DoneMessage};
use crate::server::AppState;

/// Time allowed for the final `done`/`error` text and the close frame to be
/// queued once the stream is over, in seconds. Short: a client that reads
/// nothing must not hold the connection open.
const FINAL_MESSAGE_TIMEOUT_SECONDS: u64 = 2;

/// Query parameters of `/stream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Compression level 0..=8.
    pub level: Option<u8>,
    /// Samples per block, [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    pub block_size: Option<usize>,
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
pub async fn stream(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = StreamParams::parse(req.query_string())?;
    let (response, ws, messages) =
        actix_ws::handle(&req, body).map_err(|_| ApiError::NotWebSocket)?;
    let id = state
        .registry
        .send(Admit)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))??;

    let settings = SessionSettings {
        level: params.level.and_then(EncoderLevel::new).unwrap_or_default(),
        block_size: params.block_size,
        max_header_bytes: state.settings.max_header_bytes,
        max_blocks_in_flight: state.settings.max_blocks_in_flight,
    };
    let (tx, rx) = outbound_channel(&settings);
    let session = Session::new(id, settings, state.pool.clone(), state.registry.clone(), tx);
    let session = session.start();
    let (finished_tx, finished_rx) = oneshot::channel();
    let max = state.settings.max_message_size_bytes;
    let messages = messages
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    actix_web::rt::spawn(write_loop(
        ws.clone(),
        rx,
        session.clone(),
        state.settings.outbound_stall,
        finished_tx,
    ));
    actix_web::rt::spawn(read_loop(ws, messages, session, max, finished_rx));
    Ok(response)
}

/// Feeds client messages to the session, one at a time.
async fn read_loop(
    mut ws: actix_ws::Session,
    mut messages: AggregatedMessageStream,
    session: Addr<Session>,
    max_message_bytes: usize,
    mut finished: oneshot::Receiver<()>,
) {
    loop {
        let message = tokio::select! {
            biased;
            _ = &mut finished => return,
            message = messages.recv() => message,
        };
        let Some(message) = message else {
            session.do_send(ClientGone);
            return;
        };
        match message {
            Ok(AggregatedMessage::Binary(bytes)) => {
                // Awaiting the answer is the backpressure: the next message
                // is read only once this one is staged.
                match session.send(Ingest { bytes }).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return,
                }
            }
            Ok(AggregatedMessage::Text(text)) => match ClientMessage::parse(&text) {
                Ok(ClientMessage::End) => session.do_send(EndOfInput),
                Err(reason) => {
                    session.do_send(Abort {
                        error: StreamError::BadMessage(reason),
                    });
                    return;
                }
            },
            Ok(AggregatedMessage::Ping(payload)) => {
                if ws.pong(&payload).await.is_err() {
                    session.do_send(ClientGone);
                    return;
                }
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => {
                session.do_send(ClientGone);
                return;
            }
            Err(actix_ws::ProtocolError::Overflow) => {
                session.do_send(Abort {
                    error: StreamError::MessageTooLarge(max_message_bytes),
                });
                return;
            }
            Err(e) => {
                session.do_send(Abort {
                    error: StreamError::BadMessage(format!("WebSocket protocol error: {e}")),
                });
                return;
            }
        }
    }
}

/// Sends the session's events to the client and closes the connection at the end.
async fn write_loop(
    mut ws: actix_ws::Session,
    mut events: mpsc::Receiver<Outbound>,
    session: Addr<Session>,
    stall: Duration,
    finished: oneshot::Sender<()>,
) {
    let final_timeout = Duration::from_secs(FINAL_MESSAGE_TIMEOUT_SECONDS);
    let (text, close) = loop {
        let Some(event) = events.recv().await else {
            // The session stopped without a final event: the client left.
            break (None, None);
        };
        match event {
            Outbound::Flac(bytes) => match tokio::time::timeout(stall, ws.binary(bytes)).await {
                Ok(Ok(())) => session.do_send(Delivered),
                Ok(Err(_closed)) => {
                    session.do_send(ClientGone);
                    break (None, None);
                }
                Err(_elapsed) => {
                    let error = ApiError::from(StreamError::SlowReader(stall.as_secs()));
                    session.do_send(Abort {
                        error: StreamError::SlowReader(stall.as_secs()),
                    });
                    break (Some(error.json()), Some(error.close_code()));
                }
            },
            Outbound::Done(summary) => {
                let code = if summary.going_away {
                    CloseCode::Away
                } else {
                    CloseCode::Normal
                };
                break (Some(DoneMessage::from(&summary).json()), Some(code));
            }
            Outbound::Failed(error) => {
                let error = ApiError::from(error);
                break (Some(error.json()), Some(error.close_code()));
            }
        }
    };
    let _ = finished.send(());
    if let Some(text) = text {
        let _ = tokio::time::timeout(final_timeout, ws.text(text)).await;
    }
    let reason = close.map(|code| CloseReason {
        code,
        description: None,
    });
    let _ = tokio::time::timeout(final_timeout, ws.close(reason)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_range_checked() {
        assert!(StreamParams::parse("").is_ok());
        assert!(StreamParams::parse("level=8&block_size=32").is_ok());
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
