//! Everything that can fail, and the exit code each failure maps to.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::verify::VerifyError;

/// Process exit codes. When several files fail, the process exits with the
/// highest code among them.
pub mod exit {
    /// Every file was converted and verified.
    pub const OK: u8 = 0;
    /// Bad arguments, or a file could not be read or written.
    pub const USAGE_OR_IO: u8 = 1;
    /// The server could not be reached, refused the stream, sent an error,
    /// or closed without a complete result.
    pub const SERVER: u8 = 2;
    /// The FLAC received does not decode to exactly the input's samples.
    pub const VERIFY: u8 = 3;
    /// The server refused the credential (HTTP 401 or 403): none was given,
    /// or the API key or token is unknown, expired, or does not reach this.
    pub const AUTH: u8 = 4;
}

/// Why one file (or the whole run) failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The command line is unusable.
    #[error("{0}")]
    Usage(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    /// The output directory could not be created.
    #[error("cannot create the output directory {path}: {source}", path = path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The input could not be read.
    #[error("cannot read the input: {0}")]
    Read(#[source] io::Error),
    /// The output could not be written.
    #[error("cannot write {path}: {source}", path = path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No WebSocket connection could be opened.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// An HTTP request failed without an answer.
    #[error("cannot download {url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The server answered the upgrade with an HTTP error.
    #[error("the server refused the stream (HTTP {status}): {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code from the JSON body (`server_busy`, `bad_parameter`…).
        code: String,
        /// Human-readable message from the body.
        message: String,
    },
    /// The FLAC meant for stdout does not match the input; nothing was written.
    #[error("verification failed: {source}; nothing was written to stdout")]
    VerifyStdout {
        /// What differs.
        #[source]
        source: VerifyError,
    },
    /// The server refused the credential (HTTP 401 or 403). Never holds the
    /// credential itself.
    #[error("the server refused the credential (HTTP {status}, {code}): {message}; {hint}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// `unauthorized`, `forbidden`…
        code: String,
        /// The server's message (which never repeats the credential).
        message: String,
        /// What the client sent, and what to check.
        hint: String,
    },
    /// Retries were used up; `source` is the last failure.
    #[error("{source} (gave up after {attempts} attempts and {waited_seconds:.1} s of waiting)")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Time spent waiting between them.
        waited_seconds: f64,
        /// The last attempt's failure.
        #[source]
        source: Box<ClientError>,
    },
    /// The server sent `{"type":"error",…}`.
    #[error("the server failed the stream: {code}: {message}{}", close_suffix(*close))]
    Server {
        /// The error code (`unsupported_format`, `not_wav`…).
        code: String,
        /// The server's message.
        message: String,
        /// The close code that followed, if any.
        close: Option<u16>,
    },
    /// The stream ended without `done` and close 1000.
    #[error("the stream ended without a complete result: {0}")]
    Incomplete(String),
    /// The server sent something the protocol does not allow.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The output does not match the input.
    #[error("verification failed: {source}; the output is kept as {kept}", kept = kept.display())]
    Verify {
        /// Where the unverified output was left.
        kept: PathBuf,
        /// What differs.
        #[source]
        source: VerifyError,
    },
}

fn close_suffix(close: Option<u16>) -> String {
    close.map(|c| format!(" (close {c})")).unwrap_or_default()
}

impl ClientError {
    /// The process exit code for this failure (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_)
            | Self::Runtime(_)
            | Self::CreateDir { .. }
            | Self::Read(_)
            | Self::Write { .. } => exit::USAGE_OR_IO,
            Self::Connect { .. }
            | Self::Download { .. }
            | Self::Refused { .. }
            | Self::Server { .. }
            | Self::Incomplete(_)
            | Self::Protocol(_) => exit::SERVER,
            Self::Verify { .. } | Self::VerifyStdout { .. } => exit::VERIFY,
            Self::Unauthorized { .. } => exit::AUTH,
            Self::GaveUp { source, .. } => source.exit_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_kind() {
        assert_eq!(ClientError::Usage("x".into()).exit_code(), 1);
        let server = ClientError::Server {
            code: "not_wav".into(),
            message: "m".into(),
            close: Some(1007),
        };
        assert_eq!(server.exit_code(), 2);
        assert_eq!(
            server.to_string(),
            "the server failed the stream: not_wav: m (close 1007)"
        );
        let verify = ClientError::Verify {
            kept: "o.flac.part".into(),
            source: VerifyError::Md5,
        };
        assert_eq!(verify.exit_code(), 3);
    }
}
