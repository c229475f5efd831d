//! The text messages the server sends on a recorded session, the part
//! `record` reads (docs/protocol.md 9.2–9.4).

use serde::Deserialize;

use crate::error::ClientError;

/// Server text messages on a session.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Text {
    /// The first message of a connection (9.2).
    Session {
        /// The session's id.
        session_id: String,
        /// Where a producer resumes, in samples per channel.
        samples_received: u64,
        /// The session had taken audio before.
        #[serde(default)]
        resumed: bool,
    },
    /// A binary message was accepted (9.3).
    Ack {
        /// Samples per channel accepted.
        samples_received: u64,
        /// Samples per channel on disk, synced.
        samples_durable: u64,
    },
    /// Storage refused or took writes again (9.8).
    Storage {
        /// `storage_unavailable` or `storage_available`.
        code: String,
        /// The server's sentence.
        message: String,
    },
    /// The session ended (9.4).
    Done {
        /// `closed`, `complete`, `resume_window_expired`…
        reason: String,
        /// Samples per channel in the session.
        samples: u64,
    },
    /// An error; a close follows.
    Error {
        /// The stable code.
        code: String,
        /// The server's sentence.
        message: String,
    },
    /// Anything else (`chunk` metadata…).
    #[serde(other)]
    Other,
}

/// Parses one text message.
pub fn parse(text: &str) -> Result<Text, ClientError> {
    serde_json::from_str(text)
        .map_err(|e| ClientError::Protocol(format!("unreadable text message {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse() {
        let ack = r#"{"type":"ack","session_id":"x","chunk_count":3,"samples_received":40000,"samples_durable":20480,"chunk_id":"c"}"#;
        assert!(matches!(
            parse(ack),
            Ok(Text::Ack {
                samples_received: 40_000,
                samples_durable: 20_480
            })
        ));
        assert!(matches!(
            parse(r#"{"type":"chunk","x":1}"#),
            Ok(Text::Other)
        ));
        assert!(parse("{").is_err());
    }
}
