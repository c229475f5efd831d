//! One `/stream` WebSocket exchange: the WAV goes out, FLAC comes back while
//! it is still being sent, then `done` and close 1000, or an error.

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::endpoint::Ws;
use crate::error::ClientError;
use crate::input::Input;
use crate::pacing::Pacing;
use crate::progress::FileProgress;

/// Bytes of the STREAMINFO body that `done` carries.
pub const STREAMINFO_BYTES: usize = 34;

/// What the client sends after the last WAV byte.
const END: &str = r#"{"type":"end"}"#;

/// The close code of a complete stream.
const CLOSE_NORMAL: u16 = 1000;

/// The server's `done` message, the part the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Samples per channel encoded.
    pub samples: u64,
    /// The final STREAMINFO body, for bytes 8..42 of the FLAC.
    pub streaminfo: [u8; STREAMINFO_BYTES],
}

/// Server text messages.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Text {
    Done {
        samples: u64,
        streaminfo: String,
    },
    Error {
        code: String,
        message: String,
    },
    #[serde(other)]
    Other,
}

/// Everything the receiving half saw.
#[derive(Debug, Default)]
struct Received {
    done: Option<Done>,
    error: Option<(String, String)>,
    /// `Some(code)` once a close frame came (`None` inside: no code given).
    close: Option<Option<u16>>,
    /// Why reading stopped, when it stopped without a close frame.
    lost: Option<String>,
}

/// Streams `input` over `ws` (an open `/stream` WebSocket) and hands each
/// FLAC byte run to `on_flac` as it arrives. Returns the `done` message only
/// when the stream completed (`done`, then close 1000); any other ending is
/// an error.
pub async fn exchange(
    ws: Ws,
    input: &Input,
    realtime: bool,
    progress: &FileProgress<'_>,
    mut on_flac: impl FnMut(&[u8]) -> Result<(), ClientError>,
) -> Result<Done, ClientError> {
    let (mut tx, mut rx) = ws.split();

    let send = async {
        let start = Instant::now();
        let pacing = Pacing::new(input.bytes.len(), input.header.as_ref().ok(), realtime);
        for piece in pacing {
            if let Some(due) = piece.due {
                tokio::time::sleep_until(start + due).await;
            }
            let len = piece.range.len();
            tx.send(Message::binary(input.bytes[piece.range].to_vec()))
                .await?;
            progress.sent(len as u64);
        }
        tx.send(Message::text(END)).await
    };

    let receive = async {
        let mut seen = Received::default();
        while let Some(message) = rx.next().await {
            match message {
                Ok(Message::Binary(bytes)) => {
                    on_flac(&bytes)?;
                    progress.received(bytes.len() as u64);
                }
                Ok(Message::Text(text)) => match parse_text(&text)? {
                    Text::Done {
                        samples,
                        streaminfo,
                    } => {
                        seen.done = Some(Done {
                            samples,
                            streaminfo: decode_streaminfo(&streaminfo)?,
                        })
                    }
                    Text::Error { code, message } => seen.error = Some((code, message)),
                    Text::Other => {}
                },
                Ok(Message::Close(frame)) => {
                    seen.close = Some(frame.map(|f| u16::from(f.code)));
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    seen.lost = Some(e.to_string());
                    break;
                }
            }
        }
        Ok::<_, ClientError>(seen)
    };

    tokio::pin!(send, receive);
    let mut send_error = None;
    let seen = tokio::select! {
        // The server has finished (or failed): stop sending.
        seen = &mut receive => seen?,
        sent = &mut send => {
            send_error = sent.err();
            receive.await?
        }
    };
    outcome(seen, send_error)
}

/// Judges how the stream ended.
fn outcome(seen: Received, send_error: Option<tungstenite::Error>) -> Result<Done, ClientError> {
    if let Some((code, message)) = seen.error {
        return Err(ClientError::Server {
            code,
            message,
            close: seen.close.flatten(),
        });
    }
    match (seen.done, seen.close) {
        (Some(done), Some(Some(CLOSE_NORMAL))) => Ok(done),
        (Some(_), Some(code)) => Err(ClientError::Incomplete(format!(
            "the server sent `done` but closed with {}",
            describe_close(code)
        ))),
        (None, Some(code)) => Err(ClientError::Incomplete(format!(
            "the server closed with {} before `done`",
            describe_close(code)
        ))),
        (_, None) => {
            let why = seen
                .lost
                .or_else(|| send_error.map(|e| e.to_string()))
                .unwrap_or_else(|| "no close frame".into());
            Err(ClientError::Incomplete(format!(
                "the connection was lost: {why}"
            )))
        }
    }
}

fn describe_close(code: Option<u16>) -> String {
    match code {
        Some(1001) => "code 1001 (going away: the server is shutting down)".into(),
        Some(code) => format!("code {code}"),
        None => "no close code".into(),
    }
}

fn parse_text(text: &str) -> Result<Text, ClientError> {
    serde_json::from_str(text)
        .map_err(|e| ClientError::Protocol(format!("unreadable text message {text:?}: {e}")))
}

fn decode_streaminfo(b64: &str) -> Result<[u8; STREAMINFO_BYTES], ClientError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| ClientError::Protocol(format!("`done` streaminfo is not base64: {e}")))?;
    <[u8; STREAMINFO_BYTES]>::try_from(bytes.as_slice()).map_err(|_| {
        ClientError::Protocol(format!(
            "`done` streaminfo is {} bytes, not {STREAMINFO_BYTES}",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done() -> Done {
        Done {
            samples: 1,
            streaminfo: [0; STREAMINFO_BYTES],
        }
    }

    #[test]
    fn only_done_then_1000_succeeds() {
        let ok = Received {
            done: Some(done()),
            close: Some(Some(1000)),
            ..Received::default()
        };
        assert_eq!(outcome(ok, None).unwrap(), done());
        let going_away = Received {
            done: Some(done()),
            close: Some(Some(1001)),
            ..Received::default()
        };
        assert!(matches!(
            outcome(going_away, None),
            Err(ClientError::Incomplete(_))
        ));
        let lost = Received {
            lost: Some("reset".into()),
            ..Received::default()
        };
        assert!(
            matches!(outcome(lost, None), Err(ClientError::Incomplete(m)) if m.contains("reset"))
        );
    }

    #[test]
    fn server_errors_keep_code_and_close() {
        let failed = Received {
            error: Some(("not_wav".into(), "no".into())),
            close: Some(Some(1007)),
            ..Received::default()
        };
        match outcome(failed, None) {
            Err(ClientError::Server { code, close, .. }) => {
                assert_eq!(code, "not_wav");
                assert_eq!(close, Some(1007));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn texts_parse() {
        let d = parse_text(r#"{"type":"done","samples":3,"streaminfo":"AAAA","md5":"x"}"#);
        assert!(matches!(d, Ok(Text::Done { samples: 3, .. })));
        assert!(matches!(parse_text(r#"{"type":"ack"}"#), Ok(Text::Other)));
        assert!(parse_text("nope").is_err());
        assert!(decode_streaminfo("AAAA").is_err());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 34]);
        assert_eq!(decode_streaminfo(&b64).unwrap(), [7u8; 34]);
    }
}
