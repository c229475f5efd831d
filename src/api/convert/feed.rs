//! Feeding a spooled upload to its session as the producer, then `end`:
//! a WAV as its bytes, anything else decoded to PCM on the way.

use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;
use bytes::Bytes;
use flacstream_actors::session::{Abort, ConnectionId, EndOfInput, EndReason, Ingest};
use flacstream_actors::{Session, StreamError};
use flacstream_codec::media::{DecodeOptions, MediaDecoder};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use super::spool::Source;

/// Bytes of spooled audio (or decoded PCM, at least) per ingest message fed
/// to the session: the same size a well-behaved WebSocket client sends.
const FEED_CHUNK_BYTES: usize = 64 * 1024;

/// Feeds the spool at `path`, as `source` says it is.
pub(super) async fn feed(
    session: Addr<Session>,
    conn: ConnectionId,
    path: PathBuf,
    source: Source,
    options: DecodeOptions,
    decoding: Arc<Semaphore>,
) {
    let fed = match source {
        Source::Wav => feed_file(&session, conn, &path).await,
        Source::Media(_) => feed_decoded(&session, conn, path, options, decoding).await,
    };
    match fed {
        Ok(true) => session.do_send(EndOfInput {
            conn,
            reason: EndReason::Complete,
        }),
        // The session stopped taking input: it has ended already.
        Ok(false) => {}
        Err(error) => session.do_send(Abort { conn, error }),
    }
}

/// Sends one chunk; whether the session took it.
async fn ingest(session: &Addr<Session>, conn: ConnectionId, bytes: Bytes) -> bool {
    matches!(session.send(Ingest { conn, bytes }).await, Ok(Ok(_)))
}

/// A WAV, as it is; whether it was all taken.
async fn feed_file(
    session: &Addr<Session>,
    conn: ConnectionId,
    path: &std::path::Path,
) -> Result<bool, StreamError> {
    let spool_error =
        |e: std::io::Error| StreamError::Storage(format!("reading the spooled upload: {e}"));
    let mut file = tokio::fs::File::open(path).await.map_err(spool_error)?;
    let mut buf = vec![0u8; FEED_CHUNK_BYTES];
    loop {
        let n = file.read(&mut buf).await.map_err(spool_error)?;
        if n == 0 {
            return Ok(true);
        }
        if !ingest(session, conn, Bytes::copy_from_slice(&buf[..n])).await {
            return Ok(false);
        }
    }
}

/// Anything else, decoded again (the spool check decoded it once to learn
/// its length and MD5). Each step decodes about [`FEED_CHUNK_BYTES`] of PCM
/// on a blocking thread while holding one of the `--decode-threads`
/// places, then gives both back while the session takes the chunk: a
/// session that waits for its encoder or its client holds no thread and no
/// place, and decoding never runs further ahead than one chunk.
async fn feed_decoded(
    session: &Addr<Session>,
    conn: ConnectionId,
    path: PathBuf,
    options: DecodeOptions,
    decoding: Arc<Semaphore>,
) -> Result<bool, StreamError> {
    let mut decoder: Option<MediaDecoder> = None;
    loop {
        let place = Arc::clone(&decoding)
            .acquire_owned()
            .await
            .map_err(|_| StreamError::PoolUnavailable)?;
        let path = path.clone();
        let step = actix_web::rt::task::spawn_blocking(move || {
            let _place = place;
            decode_step(decoder, &path, options)
        })
        .await
        .map_err(|e| StreamError::Storage(format!("the decoding thread failed: {e}")))?;
        let (next, pcm) = step?;
        if !pcm.is_empty() && !ingest(session, conn, Bytes::from(pcm)).await {
            return Ok(false);
        }
        match next {
            Some(d) => decoder = Some(d),
            None => return Ok(true),
        }
    }
}

/// Opens the decoder if need be and decodes about one chunk; the decoder
/// comes back unless the source is over.
fn decode_step(
    decoder: Option<MediaDecoder>,
    path: &std::path::Path,
    options: DecodeOptions,
) -> Result<(Option<MediaDecoder>, Vec<u8>), StreamError> {
    let mut decoder = match decoder {
        Some(d) => d,
        None => {
            // The server's own spool: a failure to read it is the server's.
            let file = std::fs::File::open(path)
                .map_err(|e| StreamError::Storage(format!("reading the spooled upload: {e}")))?;
            MediaDecoder::open_with(Box::new(file), options)?
        }
    };
    let mut pcm = Vec::with_capacity(FEED_CHUNK_BYTES * 2);
    while pcm.len() < FEED_CHUNK_BYTES {
        if !decoder.next_pcm(&mut pcm)? {
            return Ok((None, pcm));
        }
    }
    Ok((Some(decoder), pcm))
}
