//! A recorded session's FLAC over HTTP (`GET /api/audio/sessions/{id}/audio`,
//! docs/protocol.md 9.9), with the credential and TLS of the WebSocket and
//! the same retries (429 and 503 with `Retry-After`), written to
//! `<file>.part` (which the caller renames once it has checked it) or kept
//! in memory for stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;

use crate::endpoint::{retrying, Endpoint, Failure};
use crate::error::ClientError;
use crate::stdio::is_stdio;

/// Longest wait for the answer's head; the body may then take as long as
/// it keeps arriving (each chunk within this too).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of an error answer's body read (the service's are a line of JSON).
const MAX_ERROR_BODY_BYTES: usize = 4096;

/// Where the FLAC goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A file (written as `<file>.part`, see [`Downloaded::keep`]).
    File(PathBuf),
    /// Collected in memory, for stdout (after the caller's check).
    Memory,
}

impl Destination {
    /// `-` is stdout.
    pub fn of(path: &Path) -> Self {
        if is_stdio(path) {
            Self::Memory
        } else {
            Self::File(path.to_path_buf())
        }
    }
}

/// What was downloaded: the bytes when kept in memory.
#[derive(Debug)]
pub struct Downloaded {
    /// Bytes received.
    pub bytes: u64,
    /// The FLAC itself, for [`Destination::Memory`].
    pub memory: Option<Vec<u8>>,
    /// Where a [`Destination::File`] was written: `<file>.part`, for the
    /// caller to check and [`Downloaded::keep`].
    pub part: Option<PathBuf>,
}

impl Downloaded {
    /// Renames the part file to `path` (once the caller is content with it).
    pub async fn keep(&self, path: &Path) -> Result<(), ClientError> {
        let Some(part) = &self.part else {
            return Ok(());
        };
        tokio::fs::rename(part, path)
            .await
            .map_err(|source| ClientError::Write {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// Downloads `url` to `to`, retrying as the endpoint allows.
pub async fn download(
    endpoint: &Endpoint,
    url: &str,
    to: &Destination,
    notice: impl Fn(&ClientError, Duration),
) -> Result<Downloaded, ClientError> {
    let mut tls = (**endpoint.tls()).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(RESPONSE_TIMEOUT)
        .read_timeout(RESPONSE_TIMEOUT)
        .build()
        .map_err(|e| ClientError::Usage(format!("cannot set up the HTTP client: {e}")))?;
    let mut backoff = endpoint.backoff();
    retrying(&mut backoff, notice, || attempt(&client, endpoint, url, to)).await
}

async fn attempt(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    url: &str,
    to: &Destination,
) -> Result<Downloaded, Failure> {
    let mut request = client.get(url);
    if let Some(credential) = endpoint.credential() {
        request = request.header(AUTHORIZATION, credential.header_value());
    }
    let mut response = request.send().await.map_err(|e| transient(url, &e))?;
    let status = response.status().as_u16();
    if status != 200 {
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY_BYTES {
                break;
            }
        }
        return Err(endpoint.refusal(status, &headers, &body));
    }
    match to {
        Destination::Memory => {
            let mut flac = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| transient(url, &e))? {
                flac.extend_from_slice(&chunk);
            }
            Ok(Downloaded {
                bytes: flac.len() as u64,
                memory: Some(flac),
                part: None,
            })
        }
        Destination::File(path) => {
            let part = part_path(path);
            let written = write_file(&mut response, url, &part).await;
            let bytes = match written {
                Ok(bytes) => bytes,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&part).await;
                    return Err(e);
                }
            };
            Ok(Downloaded {
                bytes,
                memory: None,
                part: Some(part),
            })
        }
    }
}

async fn write_file(
    response: &mut reqwest::Response,
    url: &str,
    part: &Path,
) -> Result<u64, Failure> {
    let mut file = tokio::fs::File::create(part)
        .await
        .map_err(|e| write_error(part, e))?;
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| transient(url, &e))? {
        file.write_all(&chunk)
            .await
            .map_err(|e| write_error(part, e))?;
        bytes += chunk.len() as u64;
    }
    file.sync_all().await.map_err(|e| write_error(part, e))?;
    Ok(bytes)
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

fn write_error(path: &Path, source: std::io::Error) -> Failure {
    Failure::Permanent(ClientError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A request that failed without an answer: worth another attempt.
fn transient(url: &str, e: &reqwest::Error) -> Failure {
    // reqwest's message never holds the request's headers.
    Failure::Transient {
        error: ClientError::Download {
            url: url.to_string(),
            message: e.to_string(),
        },
        retry_after: None,
    }
}
