//! Connections joining and leaving a session, and what they can ask of it.

use actix::{ActorContext, Handler, Message, MessageResponse};
use tokio::sync::mpsc;

use super::fanout::{Connection, ConnectionId, Role};
use super::{Outbound, Session, SessionClosed, SessionKind};
use crate::metrics::{LABEL_REASON, REASON_DISCONNECTED, STREAMS_FINISHED};
use crate::store::{SessionRecord, SessionStatus};
use crate::StreamError;

impl Session {
    /// Detaches a connection of a recorded session (telling it `error`, if
    /// any). A departing producer's unstaged input is dropped; the last
    /// connection to leave arms the resume window.
    pub(super) fn remove_connection(
        &mut self,
        conn: ConnectionId,
        error: Option<StreamError>,
        ctx: &mut actix::Context<Self>,
    ) {
        let was_producer = self.fanout.is_producer(conn);
        let removed = match error {
            Some(error) => self.fanout.fail(conn, error),
            None => self.fanout.detach(conn).is_some(),
        };
        if !removed || self.finished {
            return;
        }
        if was_producer && self.ending.is_none() {
            self.drop_producer_input();
        }
        self.arm_resume_window(ctx);
    }
}

/// Attach a connection to the session.
#[derive(Message)]
#[rtype(result = "Result<Welcome, SessionClosed>")]
pub struct Connect {
    /// The connection's id (unique within the process).
    pub conn: ConnectionId,
    /// Producer or listener.
    pub role: Role,
    /// Whether it receives FLAC frames.
    pub flac: bool,
    /// Whether it receives chunk metadata (`metadata=chunk`).
    pub metadata: bool,
    /// Its outbound channel (see [`super::outbound_channel`]).
    pub tx: mpsc::Sender<Outbound>,
}

/// What a connection learns when it attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    /// Samples per channel accepted so far: a resuming producer continues here.
    pub samples_received: u64,
    /// Samples per channel synced to the recording.
    pub samples_durable: u64,
    /// Binary messages taken so far.
    pub chunk_count: u64,
    /// For a container decoded as it arrives: its bytes taken so far; a
    /// resuming producer sends on from this byte.
    pub bytes_accepted: Option<u64>,
    /// Whether the session already had audio (this is a resume).
    pub resumed: bool,
    /// Connections attached, this one included.
    pub connections: usize,
    /// A producer this one replaced, if any.
    pub superseded: Option<ConnectionId>,
}

/// Attaches; a new producer supersedes the old one. A listener that joins
/// mid-stream is sent the stream header first, so it can decode from the
/// next frame on.
impl Handler<Connect> for Session {
    type Result = Result<Welcome, SessionClosed>;

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        if self.finished || self.ending.is_some() {
            return Err(SessionClosed);
        }
        self.disarm_resume_window(ctx);
        if msg.role == Role::Producer {
            self.activity.touch();
            if self.fanout.producer().is_some() {
                self.drop_producer_input();
            }
        }
        if msg.flac {
            if let Some(stream) = &self.stream {
                let header = flacstream_codec::flac::StreamInfo::provisional(stream.format);
                let _ = msg
                    .tx
                    .try_send(Outbound::Flac(header.stream_header().into()));
            }
        }
        let superseded = self.fanout.attach(
            msg.conn,
            Connection {
                tx: msg.tx,
                role: msg.role,
                flac: msg.flac,
                metadata: msg.metadata,
            },
        );
        let ack = self.ack();
        Ok(Welcome {
            samples_received: ack.samples_received,
            samples_durable: ack.samples_durable,
            chunk_count: ack.chunk_count,
            bytes_accepted: ack.bytes_accepted,
            resumed: self.chunk_count > 0 || self.samples_received() > 0,
            connections: self.fanout.len(),
            superseded,
        })
    }
}

/// A connection closed or vanished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    /// The connection.
    pub conn: ConnectionId,
}

/// A `/stream` session stops with its connection; a recorded session waits
/// for a resume once its last connection has gone.
impl Handler<Disconnect> for Session {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        match self.kind {
            SessionKind::Stream => {
                if self.fanout.detach(msg.conn).is_some() && !self.finished {
                    log::info!("Session {} ended by the client.", self.id);
                    metrics::counter!(STREAMS_FINISHED, LABEL_REASON => REASON_DISCONNECTED)
                        .increment(1);
                    self.finished = true;
                    ctx.stop();
                }
            }
            SessionKind::Recording(_) => self.remove_connection(msg.conn, None, ctx),
        }
    }
}

/// The transport saw a connection break a rule (oversize message, bad text,
/// stalled reading).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abort {
    /// The connection.
    pub conn: ConnectionId,
    /// Why.
    pub error: StreamError,
}

/// A `/stream` session fails; a recorded session drops only that connection.
impl Handler<Abort> for Session {
    type Result = ();

    fn handle(&mut self, msg: Abort, ctx: &mut Self::Context) {
        // Once the input is complete, stray text from the client cannot
        // spoil a stream that is only flushing.
        let flushing = self.ending.is_some() && self.stream.is_some();
        if flushing && matches!(msg.error, StreamError::BadMessage(_)) {
            return;
        }
        match self.kind {
            SessionKind::Stream => self.fail(msg.error, ctx),
            SessionKind::Recording(_) => self.remove_connection(msg.conn, Some(msg.error), ctx),
        }
    }
}

/// The transport wrote a queued event to its client, freeing a slot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delivered;

/// Resumes dispatch now that an outbound slot is free.
impl Handler<Delivered> for Session {
    type Result = ();

    fn handle(&mut self, _msg: Delivered, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

/// A live session's current state, for the HTTP API.
#[derive(Debug, Clone, MessageResponse)]
pub struct SessionView {
    /// The catalog record with live counters (`None` for a `/stream` session).
    pub record: Option<SessionRecord>,
    /// Connections attached now.
    pub connections: usize,
}

/// Ask a live session for a [`SessionView`].
#[derive(Message)]
#[rtype(result = "SessionView")]
pub struct Describe;

/// Reports live counters.
impl Handler<Describe> for Session {
    type Result = SessionView;

    fn handle(&mut self, _msg: Describe, _ctx: &mut Self::Context) -> SessionView {
        SessionView {
            record: self.record(SessionStatus::Live, None),
            connections: self.fanout.len(),
        }
    }
}
