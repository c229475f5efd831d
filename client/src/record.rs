//! `flacstream-client record`: one input recorded as a session on
//! `/api/ws/audio` (docs/protocol.md, section 9), surviving dropped
//! connections.
//!
//! The client chooses the session's id (a random version-4 UUID) before it
//! connects, so an open whose answer was lost can be retried and, if the
//! first attempt did make the session (409 `session_exists`), joined. Audio
//! read from the input stays in a bounded [`Backlog`] until an ack covers
//! it (`samples_received`, or `samples_durable` with
//! `--keep-until-durable`). When the connection drops, the client
//! reconnects with backoff, joins the session as its producer, and sends
//! again from the `samples_received` the new `session` message states,
//! which is the only position the protocol promises (9.5). At the end of
//! the input it sends `close_session` and waits for `done`.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::args::RecordArgs;
use crate::backlog::Backlog;
use crate::endpoint::{give_up, Endpoint, Failure, Ws};
use crate::error::ClientError;
use crate::pacing::MAX_MESSAGE_BYTES;
use crate::session_urls::SessionUrls;
use crate::source::Source;

mod message;
pub mod pace;

use message::{parse, Text};
use pace::Pace;

/// Longest wait for the `session` message after the upgrade.
pub const SESSION_MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// With no audio to send for this long (a live input that pauses), an
/// empty binary message keeps the connection from the server's idle
/// timeout (`CONNECTION_TIMEOUT_SECONDS`, 30 s): at most a third of it.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Longest wait for `done` once `close_session` is sent and every byte is out.
pub const DONE_TIMEOUT: Duration = Duration::from_secs(120);

/// Finalizes the session (9.4).
const CLOSE_SESSION: &str = r#"{"type":"control","action":"close_session"}"#;

/// Error codes that end only this connection and leave the session
/// resumable (9.7), and that another connection may get past. Not
/// `superseded` (another producer took over: fighting it helps nobody),
/// `bad_message` or `message_too_large` (this client's fault, again).
const RESUMABLE_CODES: [&str; 4] = [
    "idle_timeout",
    "slow_reader",
    "input_too_fast",
    "session_moved",
];

/// A recorded session that ended as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The session's id.
    pub session_id: String,
    /// Samples per channel in the session, from `done`; `None` when the
    /// connection dropped after `close_session` and the session was found
    /// finished (409 `session_closed`) instead.
    pub samples: Option<u64>,
    /// Connections made, the first included.
    pub connections: u32,
    /// The session's FLAC over HTTP.
    pub audio_url: String,
}

/// Progress lines on stderr, unless quiet; the session id on stdout.
#[derive(Debug, Clone, Copy)]
pub struct Notes {
    /// Print nothing but errors (and the session id).
    pub quiet: bool,
    /// Stdout is free for the session id (not taken by the FLAC).
    pub id_to_stdout: bool,
}

impl Notes {
    /// The session id: alone on a line of stdout, for scripts; on stderr
    /// when stdout carries the FLAC.
    pub fn session(&self, id: &str) {
        if self.id_to_stdout {
            use std::io::Write;
            // A closed stdout (`| head -0`) must not end the recording.
            let _ = writeln!(std::io::stdout(), "{id}");
        } else {
            eprintln!("flacstream-client: session {id}");
        }
    }

    /// One line on stderr.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("flacstream-client: {line}");
        }
    }
}

/// How one connection ended.
enum End {
    /// `done` then close 1000.
    Finished { samples: u64 },
    /// Worth reconnecting.
    Dropped(ClientError),
    /// Not.
    Fatal(ClientError),
}

/// The state that outlives connections.
struct Recording<'a> {
    endpoint: &'a Endpoint,
    urls: SessionUrls,
    source: Source,
    backlog: RefCell<Backlog>,
    /// Bytes of one sample frame.
    frame: u64,
    keep_until_durable: bool,
    /// `--realtime`: when the session's clock started, and its pace.
    pace: Option<Pace>,
    /// The input is used up.
    eof: Cell<bool>,
    /// `close_session` was sent on some connection.
    close_sent: Cell<bool>,
    /// Highest `samples_received` × frame bytes heard so far.
    received: Cell<u64>,
    /// The session id was printed.
    announced: Cell<bool>,
    notes: Notes,
}

/// Records `args.input`; see the module docs.
pub async fn record(
    args: &RecordArgs,
    endpoint: &Endpoint,
    notes: Notes,
) -> Result<Recorded, ClientError> {
    let session_id = session_id(args.session_id.as_deref())?;
    let source = Source::open(&args.input, args.format, args.sample_rate, args.channels).await?;
    let urls = SessionUrls::new(&args.url, &session_id, &source.spec, args)?;
    let pace = args.realtime.then(|| Pace::new(&source.spec));
    let rec = Recording {
        endpoint,
        urls,
        frame: source.spec.frame_bytes(),
        source,
        backlog: RefCell::new(Backlog::new(args.buffer_bytes)),
        keep_until_durable: args.keep_until_durable,
        pace,
        eof: Cell::new(false),
        close_sent: Cell::new(false),
        received: Cell::new(0),
        announced: Cell::new(false),
        notes,
    };
    rec.run(session_id).await
}

impl Recording<'_> {
    async fn run(mut self, session_id: String) -> Result<Recorded, ClientError> {
        let mut backoff = self.endpoint.backoff();
        // Whether a `session` message was seen (or the open may have made
        // the session): from then on, connections join it.
        let mut opened = false;
        let mut attempted = false;
        let mut connections = 0;
        loop {
            let url = if opened {
                self.urls.join.clone()
            } else {
                self.urls.open.clone()
            };
            let failure = match self.endpoint.open_once(&url).await {
                Ok(ws) => {
                    connections += 1;
                    let before = self.received.get();
                    let end = self.connection(ws, &session_id, &mut opened).await;
                    if self.received.get() > before {
                        backoff.reset();
                    }
                    match end {
                        End::Finished { samples } => {
                            return Ok(Recorded {
                                session_id,
                                samples: Some(samples),
                                connections,
                                audio_url: self.urls.audio,
                            })
                        }
                        End::Fatal(e) => return Err(e),
                        End::Dropped(e) => Failure::Transient {
                            error: e,
                            retry_after: None,
                        },
                    }
                }
                Err(Failure::Permanent(ClientError::Refused {
                    status: 409, code, ..
                })) if code == "session_exists" && attempted && !opened => {
                    // An earlier open made the session; its answer was lost.
                    opened = true;
                    continue;
                }
                Err(Failure::Permanent(ClientError::Refused {
                    status: 409, code, ..
                })) if code == "session_closed" && self.close_sent.get() => {
                    // The connection dropped after close_session: the session
                    // finalized without us.
                    return Ok(Recorded {
                        session_id,
                        samples: None,
                        connections,
                        audio_url: self.urls.audio,
                    });
                }
                Err(failure) => failure,
            };
            attempted = true;
            match failure {
                Failure::Permanent(e) => return Err(e),
                Failure::Transient { error, retry_after } => match backoff.next_wait(retry_after) {
                    Some(wait) => {
                        self.notes.say(&format!(
                            "{error}; reconnecting in {:.1} s",
                            wait.as_secs_f64()
                        ));
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(give_up(error, &backoff)),
                },
            }
        }
    }

    /// One connection: the `session` message, then audio out and acks in
    /// until `done` or the connection ends.
    async fn connection(&mut self, ws: Ws, session_id: &str, opened: &mut bool) -> End {
        let (mut tx, mut rx) = ws.split();
        let first = tokio::time::timeout(SESSION_MESSAGE_TIMEOUT, rx.next()).await;
        let (resume, resumed) = match first {
            Ok(Some(Ok(Message::Text(text)))) => match parse(&text) {
                Ok(Text::Session {
                    session_id: id,
                    samples_received,
                    resumed,
                }) if id == session_id => (samples_received, resumed),
                Ok(Text::Error { code, message }) => {
                    return End::Fatal(ClientError::Server {
                        code,
                        message,
                        close: None,
                    })
                }
                Ok(_) => {
                    return End::Fatal(ClientError::Protocol(format!(
                        "expected the session message for {session_id}, got {text}"
                    )))
                }
                Err(e) => return End::Fatal(e),
            },
            Ok(Some(Ok(other))) => {
                return End::Dropped(ClientError::Incomplete(format!(
                    "the server sent {other:?} before the session message"
                )))
            }
            Ok(Some(Err(e))) => {
                return End::Dropped(ClientError::Incomplete(format!(
                    "the connection was lost before the session message: {e}"
                )))
            }
            Ok(None) => {
                return End::Dropped(ClientError::Incomplete(
                    "the connection ended before the session message".into(),
                ))
            }
            Err(_) => {
                return End::Dropped(ClientError::Incomplete(format!(
                    "no session message within {} s",
                    SESSION_MESSAGE_TIMEOUT.as_secs()
                )))
            }
        };
        if !self.announced.replace(true) {
            self.notes.session(session_id);
        } else {
            self.notes.say(&format!(
                "session {session_id} {}at sample {resume}",
                if resumed { "resumed " } else { "joined " }
            ));
        }
        *opened = true;
        let offset = resume.saturating_mul(self.frame);
        {
            let mut backlog = self.backlog.borrow_mut();
            if offset < backlog.start() || offset > backlog.end() {
                return End::Fatal(ClientError::Protocol(format!(
                    "the session stands at sample {resume}, but this client holds audio \
                     from byte {} to {} only (the session was not made from this input, \
                     or lost audio it had acknowledged)",
                    backlog.start(),
                    backlog.end()
                )));
            }
            if !self.keep_until_durable {
                backlog.acknowledge(offset);
            }
        }
        self.received.set(self.received.get().max(offset));

        let freed = Notify::new();
        let position = Cell::new(offset);
        let frame = self.frame;
        let keep_until_durable = self.keep_until_durable;
        let pace = self.pace;
        let piece_max = pace.map_or(MAX_MESSAGE_BYTES, |p| p.step);
        let backlog = &self.backlog;
        let eof = &self.eof;
        let close_sent = &self.close_sent;
        let received = &self.received;
        let notes = self.notes;
        let source = &mut self.source;

        let send = async {
            let mut chunk = vec![0u8; MAX_MESSAGE_BYTES];
            loop {
                let piece = backlog
                    .borrow()
                    .slice_from(position.get(), piece_max)
                    .map(<[u8]>::to_vec);
                if let Some(piece) = piece {
                    let len = piece.len() as u64;
                    if let Some(pace) = pace {
                        tokio::time::sleep_until(pace.due(position.get() + len)).await;
                    }
                    tx.send(Message::binary(piece))
                        .await
                        .map_err(SendEnd::Broken)?;
                    position.set(position.get() + len);
                    continue;
                }
                if eof.get() {
                    // Sent on every connection that gets this far: a
                    // session finalizing already refuses new connections,
                    // so a connection that reached here has not closed it.
                    tx.send(Message::text(CLOSE_SESSION))
                        .await
                        .map_err(SendEnd::Broken)?;
                    close_sent.set(true);
                    return Ok(());
                }
                let room = backlog.borrow().room();
                if room == 0 {
                    freed.notified().await;
                    continue;
                }
                let want = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
                match tokio::time::timeout(KEEPALIVE_INTERVAL, source.read(&mut chunk[..want]))
                    .await
                {
                    Ok(Ok(0)) => eof.set(true),
                    Ok(Ok(n)) => backlog.borrow_mut().push(chunk[..n].to_vec()),
                    Ok(Err(e)) => return Err(SendEnd::Input(e)),
                    Err(_) => tx
                        .send(Message::binary(Vec::new()))
                        .await
                        .map_err(SendEnd::Broken)?,
                }
            }
        };

        let receive = async {
            let mut seen = Seen::default();
            while let Some(message) = rx.next().await {
                match message {
                    Ok(Message::Text(text)) => match parse(&text) {
                        Ok(Text::Ack {
                            samples_received,
                            samples_durable,
                        }) => {
                            let at = samples_received.saturating_mul(frame);
                            received.set(received.get().max(at));
                            let keep = if keep_until_durable {
                                samples_durable
                            } else {
                                samples_received
                            };
                            backlog.borrow_mut().acknowledge(keep.saturating_mul(frame));
                            freed.notify_one();
                        }
                        Ok(Text::Storage { code, message }) => {
                            notes.say(&format!("{code}: {message}"))
                        }
                        Ok(Text::Done { reason, samples }) => seen.done = Some((reason, samples)),
                        Ok(Text::Error { code, message }) => seen.error = Some((code, message)),
                        Ok(Text::Session { .. } | Text::Other) => {}
                        Err(e) => return Err(e),
                    },
                    Ok(Message::Close(frame)) => {
                        seen.close = Some(frame.map(|f| u16::from(f.code)));
                        break;
                    }
                    // No `output=flac`: the FLAC is not sent to the producer.
                    Ok(
                        Message::Binary(_)
                        | Message::Ping(_)
                        | Message::Pong(_)
                        | Message::Frame(_),
                    ) => {}
                    Err(e) => {
                        seen.lost = Some(e.to_string());
                        break;
                    }
                }
            }
            Ok(seen)
        };

        tokio::pin!(send, receive);
        let mut send_end = None;
        let seen = tokio::select! {
            seen = &mut receive => seen,
            sent = &mut send => {
                send_end = sent.err();
                if let Some(SendEnd::Input(e)) = send_end {
                    return End::Fatal(ClientError::Read(e));
                }
                match tokio::time::timeout(DONE_TIMEOUT, &mut receive).await {
                    Ok(seen) => seen,
                    Err(_) => return End::Dropped(ClientError::Incomplete(format!(
                        "no done within {} s of the end of the input", DONE_TIMEOUT.as_secs()))),
                }
            }
        };
        let seen = match seen {
            Ok(seen) => seen,
            Err(e) => return End::Fatal(e),
        };
        judge(seen, send_end)
    }
}

/// Why the sending half stopped early.
#[derive(Debug)]
enum SendEnd {
    /// The connection broke.
    Broken(tokio_tungstenite::tungstenite::Error),
    /// The input could not be read.
    Input(std::io::Error),
}

/// What the receiving half saw.
#[derive(Debug, Default)]
struct Seen {
    done: Option<(String, u64)>,
    error: Option<(String, String)>,
    close: Option<Option<u16>>,
    lost: Option<String>,
}

/// How a connection ended, from what was seen on it.
fn judge(seen: Seen, send_end: Option<SendEnd>) -> End {
    if let Some((code, message)) = seen.error {
        let resumable = RESUMABLE_CODES.contains(&code.as_str());
        let error = ClientError::Server {
            code,
            message,
            close: seen.close.flatten(),
        };
        return if resumable {
            End::Dropped(error)
        } else {
            End::Fatal(error)
        };
    }
    match (seen.done, seen.close) {
        (Some((reason, samples)), Some(Some(1000)))
            if reason == "closed" || reason == "complete" =>
        {
            End::Finished { samples }
        }
        (Some((reason, _)), _) => End::Fatal(ClientError::Incomplete(format!(
            "the session ended before all the input was recorded: {reason}"
        ))),
        (None, close) => {
            let why = seen
                .lost
                .or_else(|| match send_end {
                    Some(SendEnd::Broken(e)) => Some(e.to_string()),
                    _ => None,
                })
                .or_else(|| close.map(|c| format!("closed with {c:?}")))
                .unwrap_or_else(|| "no close frame".into());
            End::Dropped(ClientError::Incomplete(format!(
                "the connection was lost: {why}"
            )))
        }
    }
}

/// `--session-id`, checked as the server checks it (a canonical version-4
/// UUID), or a new random one.
pub fn session_id(given: Option<&str>) -> Result<String, ClientError> {
    let Some(given) = given else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    match uuid::Uuid::parse_str(given) {
        Ok(id) if id.get_version_num() == 4 && id.to_string() == given => Ok(given.to_string()),
        _ => Err(ClientError::Usage(format!(
            "--session-id {given}: not a random (version 4) UUID in lowercase canonical form"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_canonical_v4() {
        let made = session_id(None).unwrap();
        assert_eq!(session_id(Some(&made)).unwrap(), made);
        assert!(session_id(Some(&made.to_uppercase())).is_err());
        assert!(
            session_id(Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8")).is_err(),
            "v1"
        );
        assert!(session_id(Some("nope")).is_err());
    }

    #[test]
    fn endings_are_judged() {
        let done = Seen {
            done: Some(("closed".into(), 7)),
            close: Some(Some(1000)),
            ..Seen::default()
        };
        assert!(matches!(judge(done, None), End::Finished { samples: 7 }));
        let expired = Seen {
            done: Some(("resume_window_expired".into(), 7)),
            close: Some(Some(1000)),
            ..Seen::default()
        };
        assert!(matches!(judge(expired, None), End::Fatal(_)));
        let idle = Seen {
            error: Some(("idle_timeout".into(), "m".into())),
            close: Some(Some(1008)),
            ..Seen::default()
        };
        assert!(matches!(judge(idle, None), End::Dropped(_)));
        let superseded = Seen {
            error: Some(("superseded".into(), "m".into())),
            ..Seen::default()
        };
        assert!(matches!(judge(superseded, None), End::Fatal(_)));
        let lost = Seen {
            lost: Some("reset".into()),
            ..Seen::default()
        };
        assert!(matches!(judge(lost, None), End::Dropped(_)));
    }
}
