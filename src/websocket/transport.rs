//! The WebSocket side of one connection to a session, shared by `/stream`
//! and `/api/ws/audio`.
//!
//! The transport is `actix-ws` (not the deprecated `actix-web-actors`, which
//! reads without backpressure: a flooding client drove a prototype to 5.8 GiB
//! in 8 s where actix-ws stayed at 6 MiB). Two tasks serve a connection:
//! - the read loop takes one message at a time and awaits the session actor's
//!   answer before reading the next, so a client that sends faster than the
//!   encoders drain is slowed by TCP itself;
//! - the write loop sends the session's [`Outbound`] events, closing a client
//!   that leaves output unread for the stall timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::error::PayloadError;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseReason, MessageStream};
use flacstream_actors::registry::{Leave, SessionId};
use flacstream_actors::session::{
    Abort, ConnectionId, Delivered, Disconnect, EndOfInput, EndReason, Ingest, Role,
};
use flacstream_actors::{Outbound, Registry, Session, StreamError};
use tokio::sync::{mpsc, oneshot};

use crate::access_log::{self, SocketAccess, SocketTraffic};
use crate::error::{done_close_code, ApiError};
use crate::limits::client_connections::ClientSlot;
use crate::protocol::{AckMessage, ChunkMessage, ClientMessage, DoneMessage, StorageMessage};
use crate::request_id::RequestId;
use crate::websocket::frame_limit;
use crate::websocket::socket::PeerSocket;

/// Time allowed for the final `done`/`error` text and the close frame to be
/// queued once the stream is over, in seconds. Short: a client that reads
/// nothing must not hold the connection open.
const FINAL_MESSAGE_TIMEOUT_SECONDS: u64 = 2;

/// Longest the closing handshake waits for the client's close frame, in
/// seconds, reading and discarding its input meanwhile.
const LINGER_SECONDS: u64 = 2;

/// Longest the read loop waits, once the session refused input, for the
/// session's final `done` or `error` to be sent before it leaves anyway, in
/// seconds. Finalizing a recording is one file sync and one catalog write.
const REFUSED_INPUT_WAIT_SECONDS: u64 = 10;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A process-wide unique connection id.
pub fn next_connection_id() -> ConnectionId {
    NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed)
}

/// Which endpoint's rules the read loop follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/stream`: `{"type":"end"}` ends the stream.
    Stream,
    /// `/api/ws/audio`: also `close_session` control messages and acks.
    Audio {
        /// Send an ack after each binary message.
        acks: bool,
        /// Send each chunk's metadata (`metadata=chunk`).
        metadata: bool,
    },
}

/// One connection's plumbing, ready to run.
pub struct Link {
    /// The session.
    pub session: Addr<Session>,
    /// Its id, for the registry.
    pub session_id: SessionId,
    /// The registry, told when the connection ends.
    pub registry: Addr<Registry>,
    /// This connection.
    pub conn: ConnectionId,
    /// Producer or listener.
    pub role: Role,
    /// Endpoint rules.
    pub dialect: Dialect,
    /// Per-frame and per-message limit in bytes.
    pub max_message_bytes: usize,
    /// Slow-reader cut-off.
    pub stall: Duration,
    /// The connection's place in its client's connection cap, given back
    /// when the connection is over (after the closing handshake).
    pub client: ClientSlot,
}

/// An accepted WebSocket upgrade: the handles [`Link::spawn`] serves it with.
pub struct Upgrade {
    /// Sends to the client.
    pub ws: actix_ws::Session,
    /// What the client sends.
    pub messages: MessageStream,
    /// The client's socket, shut down when the client stops reading.
    pub socket: Option<PeerSocket>,
    /// The upgrade request, until the connection's session is known.
    pub request: HttpRequest,
    /// For the access log's line at the socket's end.
    pub access: SocketAccess,
}

impl Upgrade {
    /// Accepts the upgrade `req` asks for; the response must be returned to
    /// actix-web for the connection to switch protocols. A client that
    /// offers the [`crate::auth::PROTOCOL`] subprotocol gets it selected (a
    /// browser passing a token as a subprotocol must offer it too). A frame
    /// whose header declares more than `max_frame_bytes` is refused.
    pub fn accept(
        req: &HttpRequest,
        body: web::Payload,
        max_frame_bytes: usize,
    ) -> Result<(HttpResponse, Self), ApiError> {
        // Each frame's declared length is checked on its header, before
        // actix-ws buffers its payload (src/websocket/frame_limit.rs).
        let body = frame_limit::limit(req, body, max_frame_bytes);
        let (response, ws, messages) =
            actix_ws::handle_with_protocols(req, body, &[crate::auth::PROTOCOL])
                .map_err(|_| ApiError::NotWebSocket)?;
        let socket = PeerSocket::of(req);
        Ok((
            response,
            Self {
                ws,
                messages,
                socket,
                request: req.clone(),
                access: SocketAccess::of(req),
            },
        ))
    }
}

impl Link {
    /// Spawns the read and write loops for an upgraded connection.
    pub fn spawn(self, upgrade: Upgrade, events: mpsc::Receiver<Outbound>) {
        let Upgrade {
            ws,
            messages,
            socket,
            request,
            access,
        } = upgrade;
        // The upgrade's own access line is logged once its response is
        // sent, after this: it names the session too.
        access_log::note_session(&request, self.session_id.to_string());
        drop(request);
        let mut messages = messages
            .max_frame_size(self.max_message_bytes)
            .aggregate_continuations()
            .max_continuation_size(self.max_message_bytes);
        let (finished_tx, finished_rx) = oneshot::channel();
        let writer = actix_web::rt::spawn(write_loop(
            ws.clone(),
            events,
            self.session.clone(),
            self.stall,
            socket,
            finished_tx,
            Ends {
                traffic: Arc::clone(&access.traffic),
                request_id: access.request_id().cloned(),
            },
        ));
        actix_web::rt::spawn(async move {
            read_loop(&self, ws, &mut messages, finished_rx, &access.traffic).await;
            self.session.do_send(Disconnect { conn: self.conn });
            self.registry.do_send(Leave {
                id: self.session_id,
            });
            linger(&mut messages).await;
            // The write loop ends within its final-message timeouts; its
            // last bytes and close code belong in the line.
            let _ = writer.await;
            access.end(self.session_id.to_string());
        });
    }
}

/// The closing handshake: keeps reading, and discarding, what the client
/// still sends until its close frame (or its disconnect) or
/// [`LINGER_SECONDS`]. Closing a socket with unread input makes the kernel
/// send a reset, and a reset makes the client's kernel throw away what it
/// had received but not yet read: the final `done` or `error` message.
async fn linger(messages: &mut AggregatedMessageStream) {
    let drain = async {
        while let Some(Ok(message)) = messages.recv().await {
            if let AggregatedMessage::Close(_) = message {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(LINGER_SECONDS), drain).await;
}

/// Feeds client messages to the session, one at a time.
async fn read_loop(
    link: &Link,
    mut ws: actix_ws::Session,
    messages: &mut AggregatedMessageStream,
    mut finished: oneshot::Receiver<()>,
    traffic: &SocketTraffic,
) {
    let abort = |error: StreamError| {
        link.session.do_send(Abort {
            conn: link.conn,
            error,
        })
    };
    loop {
        let message = tokio::select! {
            biased;
            _ = &mut finished => return,
            message = messages.recv() => message,
        };
        let Some(message) = message else {
            return;
        };
        match &message {
            Ok(AggregatedMessage::Binary(bytes)) => traffic.received(bytes.len()),
            Ok(AggregatedMessage::Text(text)) => traffic.received(text.len()),
            Ok(
                AggregatedMessage::Ping(_)
                | AggregatedMessage::Pong(_)
                | AggregatedMessage::Close(_),
            )
            | Err(_) => {}
        }
        match message {
            Ok(AggregatedMessage::Binary(bytes)) => {
                if link.role == Role::Listener {
                    abort(StreamError::BadMessage(
                        "a listener may not send audio".into(),
                    ));
                    continue;
                }
                // Awaiting the answer is the backpressure: the next message
                // is read only once this one is staged.
                let ingest = link.session.send(Ingest {
                    conn: link.conn,
                    bytes,
                });
                let ack = tokio::select! {
                    // The write loop gave up on this client (slow reader).
                    _ = &mut finished => return,
                    answer = ingest => match answer {
                        Ok(Ok(ack)) => ack,
                        // The session takes no more input: it is failing the
                        // stream or finishing it (a drain refuses input while
                        // the recording is finalized, before `done` exists).
                        // Its final event is on the way; leaving now would
                        // count this connection out of the session first, and
                        // the client would get a bare close instead.
                        Ok(Err(_)) => {
                            await_final_event(&mut ws, messages, &mut finished).await;
                            return;
                        }
                        Err(_) => return,
                    },
                };
                if matches!(link.dialect, Dialect::Audio { acks: true, .. }) {
                    let text = AckMessage::new(link.session_id, &ack).json();
                    traffic.sent(text.len());
                    if ws.text(text).await.is_err() {
                        return;
                    }
                }
            }
            Ok(AggregatedMessage::Text(text)) => match ClientMessage::parse(&text) {
                Ok(ClientMessage::End) => link.session.do_send(EndOfInput {
                    conn: link.conn,
                    reason: EndReason::Complete,
                }),
                Ok(ClientMessage::Control { .. }) if link.dialect != Dialect::Stream => {
                    link.session.do_send(EndOfInput {
                        conn: link.conn,
                        reason: EndReason::Closed,
                    })
                }
                // The session decides: it fails the connection, or ignores
                // the text if the input is already complete. Reading goes
                // on until the write loop says the connection is over.
                Ok(ClientMessage::Control { .. }) => abort(StreamError::BadMessage(
                    "control messages belong to /api/ws/audio".into(),
                )),
                Err(reason) => abort(StreamError::BadMessage(reason)),
            },
            Ok(AggregatedMessage::Ping(payload)) => {
                if ws.pong(&payload).await.is_err() {
                    return;
                }
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(reason)) => {
                if let Some(reason) = reason {
                    traffic.closed(reason.code.into());
                }
                return;
            }
            Err(e) if is_oversize(&e) => {
                let error = StreamError::MessageTooLarge(link.max_message_bytes);
                flacstream_actors::metrics::rejected(error.code());
                return abort(error);
            }
            Err(e) => {
                return abort(StreamError::BadMessage(format!(
                    "WebSocket protocol error: {e}"
                )));
            }
        }
    }
}

/// After the session refused input: goes on reading (discarding audio,
/// answering pings) until the write loop has sent the session's final event,
/// the client closes or leaves, or [`REFUSED_INPUT_WAIT_SECONDS`] pass.
async fn await_final_event(
    ws: &mut actix_ws::Session,
    messages: &mut AggregatedMessageStream,
    finished: &mut oneshot::Receiver<()>,
) {
    let wait = async {
        loop {
            let message = tokio::select! {
                biased;
                _ = &mut *finished => return,
                message = messages.recv() => message,
            };
            match message {
                Some(Ok(AggregatedMessage::Ping(payload))) => {
                    if ws.pong(&payload).await.is_err() {
                        return;
                    }
                }
                Some(Ok(AggregatedMessage::Binary(_)))
                | Some(Ok(AggregatedMessage::Text(_)))
                | Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => return,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(REFUSED_INPUT_WAIT_SECONDS), wait).await;
}

/// Whether a protocol error means a frame or a reassembled message was over
/// the limit. actix-ws reports an oversize frame as `Overflow` but an
/// oversize run of continuations only as an I/O error with this text, and
/// [`frame_limit`]'s refusal of an oversize header as an I/O error around it.
fn is_oversize(e: &actix_ws::ProtocolError) -> bool {
    match e {
        actix_ws::ProtocolError::Overflow => true,
        actix_ws::ProtocolError::Io(io) => {
            io.get_ref()
                .and_then(|inner| inner.downcast_ref::<PayloadError>())
                .is_some_and(frame_limit::is_refusal)
                || io.to_string().contains("maximum continuation size")
        }
        _ => false,
    }
}

/// What the write loop tells the access log, and the request id its
/// `error` message carries.
struct Ends {
    traffic: Arc<SocketTraffic>,
    request_id: Option<RequestId>,
}

/// Sends the session's events to the client and closes the connection at the end.
async fn write_loop(
    mut ws: actix_ws::Session,
    mut events: mpsc::Receiver<Outbound>,
    session: Addr<Session>,
    stall: Duration,
    socket: Option<PeerSocket>,
    finished: oneshot::Sender<()>,
    ends: Ends,
) {
    let traffic = &ends.traffic;
    let request_id = ends.request_id.as_ref().map(|id| id.as_str());
    let error_json = |error: &ApiError| error.json_for(request_id);
    let final_timeout = Duration::from_secs(FINAL_MESSAGE_TIMEOUT_SECONDS);
    let (text, close, stalled) = loop {
        let Some(event) = events.recv().await else {
            // The session dropped this connection without a final event.
            break (None, None, false);
        };
        match event {
            Outbound::Flac(bytes) => {
                let n = bytes.len();
                match tokio::time::timeout(stall, ws.binary(bytes)).await {
                    Ok(Ok(())) => {
                        traffic.sent(n);
                        session.do_send(Delivered)
                    }
                    Ok(Err(_closed)) => break (None, None, false),
                    Err(_elapsed) => {
                        let error = ApiError::from(StreamError::SlowReader(stall.as_secs()));
                        break (Some(error_json(&error)), Some(error.close_code()), true);
                    }
                }
            }
            Outbound::Done(summary) => {
                let code = done_close_code(summary.reason);
                break (Some(DoneMessage::from(&summary).json()), Some(code), false);
            }
            Outbound::Failed(error) => {
                let error = ApiError::from(error);
                break (Some(error_json(&error)), Some(error.close_code()), false);
            }
            Outbound::Chunk(chunk) => {
                let text = ChunkMessage::new(&chunk).json();
                let n = text.len();
                match tokio::time::timeout(stall, ws.text(text)).await {
                    Ok(Ok(())) => traffic.sent(n),
                    Ok(Err(_closed)) => break (None, None, false),
                    Err(_elapsed) => {
                        let error = ApiError::from(StreamError::SlowReader(stall.as_secs()));
                        break (Some(error_json(&error)), Some(error.close_code()), true);
                    }
                }
            }
            Outbound::Storage {
                available,
                samples_durable,
            } => {
                let notice = StorageMessage::new(available, samples_durable).json();
                let n = notice.len();
                match tokio::time::timeout(stall, ws.text(notice)).await {
                    Ok(Ok(())) => traffic.sent(n),
                    Ok(Err(_closed)) => break (None, None, false),
                    Err(_elapsed) => {
                        let error = ApiError::from(StreamError::SlowReader(stall.as_secs()));
                        break (Some(error_json(&error)), Some(error.close_code()), true);
                    }
                }
            }
        }
    };
    let _ = finished.send(());
    if stalled {
        // A client that reads nothing would otherwise have its input read
        // and thrown away at wire speed while the final messages are tried.
        if let Some(socket) = &socket {
            socket.stop_input();
        }
    }
    // A client that reads nothing gets one try at the error and the close
    // frame (they may still fit its buffers), then its socket is shut down:
    // the connection must not outlive the stall by more than this.
    let mut delivered = true;
    if let Some(code) = close {
        traffic.closed(code.into());
    }
    if let Some(text) = text {
        let n = text.len();
        let sent = matches!(
            tokio::time::timeout(final_timeout, ws.text(text)).await,
            Ok(Ok(()))
        );
        if sent {
            traffic.sent(n);
        }
        delivered &= sent;
    }
    let reason = close.map(|code| CloseReason {
        code,
        description: None,
    });
    delivered &= matches!(
        tokio::time::timeout(final_timeout, ws.close(reason)).await,
        Ok(Ok(()))
    );
    if stalled || !delivered {
        if let Some(socket) = socket {
            socket.cut();
        }
    }
}
