//! Reading an upload: spooled to a temporary file (never held in memory,
//! bounded by `MAX_UPLOAD_BYTES`), its WAV header checked and its samples
//! counted and hashed on the way, so the final STREAMINFO is known before the
//! first FLAC byte is sent.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use flacstream_actors::registry::SessionId;
use flacstream_actors::StreamError;
use flacstream_codec::flac::{default_block_size, StreamFormat, StreamInfo};
use flacstream_codec::pcm::{PcmDecoder, PcmLayout};
use flacstream_codec::wav::{WavEvent, WavParser};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::config::Settings;
use crate::error::ApiError;

/// Samples decoded per step while checking an upload (bounds the scratch buffer).
const CHECK_STEP_SAMPLES: usize = 16 * 1024;

/// Where uploads are spooled, under the data directory; emptied at start.
pub const SPOOL_DIR: &str = "tmp";

/// Media types `/convert` and `/upload` take as a raw WAV body.
const WAV_MEDIA_TYPES: [&str; 5] = [
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/vnd.wave",
    "application/octet-stream",
];

/// A spooled upload, removed from disk when dropped.
pub(super) struct Spool {
    pub(super) path: PathBuf,
    /// The final STREAMINFO, from the audio itself.
    pub(super) info: StreamInfo,
    /// The original file name's stem, for the download name.
    pub(super) stem: String,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads WAV bytes as they arrive, checking the header and counting the
/// audio exactly as a session will.
struct Checker {
    parser: WavParser,
    decoder: Option<PcmDecoder>,
    rate: u32,
    scratch: Vec<i32>,
}

impl Checker {
    fn new(max_header_bytes: u64) -> Self {
        Self {
            parser: WavParser::new(max_header_bytes),
            decoder: None,
            rate: 0,
            scratch: vec![0; CHECK_STEP_SAMPLES],
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ApiError> {
        while let Some(event) = self.parser.next(&mut bytes).map_err(wav_error)? {
            match event {
                WavEvent::Format(f) => {
                    self.rate = f.sample_rate;
                    self.decoder = Some(PcmDecoder::new(PcmLayout {
                        channels: usize::from(f.channels),
                        bytes_per_sample: f.bytes_per_sample(),
                    }));
                }
                WavEvent::Audio(mut audio) => {
                    if let Some(decoder) = self.decoder.as_mut() {
                        while !audio.is_empty() {
                            decoder.decode(&mut audio, &mut self.scratch);
                        }
                    }
                }
                WavEvent::DataEnd => {}
            }
        }
        Ok(())
    }

    fn finish(self, block_size: Option<usize>) -> Result<StreamInfo, ApiError> {
        self.parser.finish().map_err(wav_error)?;
        let decoder = self
            .decoder
            .ok_or_else(|| wav_error(flacstream_codec::wav::WavError::TruncatedHeader))?;
        let format = StreamFormat {
            sample_rate: self.rate,
            layout: decoder.layout(),
            block_size: block_size.unwrap_or_else(|| default_block_size(self.rate)),
        };
        Ok(StreamInfo {
            format,
            min_frame_bytes: 0,
            max_frame_bytes: 0,
            total_samples: decoder.frames_decoded(),
            md5: decoder.md5_digest(),
        })
    }
}

fn wav_error(e: flacstream_codec::wav::WavError) -> ApiError {
    ApiError::Stream(e.into())
}

/// A spool file operation failed: the server's disk, not the client's upload.
fn io_error(e: std::io::Error) -> ApiError {
    ApiError::Storage(flacstream_actors::store::StoreError::File(e.to_string()))
}

/// How long an upload may still wait for its client. Two bounds:
/// - idle: nothing arrives for `CONNECTION_TIMEOUT_SECONDS` (400
///   `idle_timeout`);
/// - slow (`--min-upload-bytes-per-second`): a client trickling a byte now
///   and then is never idle, so the time spent waiting for it may not run
///   ahead of what it sent at the minimum rate, after a grace as long as
///   the idle timeout (408 `upload_too_slow`). This is Apache
///   `mod_reqtimeout`'s `MinRate`: each byte buys 1/rate seconds more.
///
/// Only time spent waiting for the client counts, not time the server
/// spent writing the spool: a slow disk is not the client's fault.
struct UploadClock {
    idle: Duration,
    /// Bytes per second; 0 for no bound.
    min_rate: u64,
    waited: Duration,
    received: u64,
}

impl UploadClock {
    fn new(idle: Duration, min_rate: u64) -> Self {
        Self {
            idle,
            min_rate,
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// Waiting time left under the rate bound, if there is one.
    fn rate_budget(&self) -> Option<Duration> {
        if self.min_rate == 0 {
            return None;
        }
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        Some((self.idle + earned).saturating_sub(self.waited))
    }

    /// Waits for the next piece of the upload within both bounds.
    async fn next<T, E: std::fmt::Display>(
        &mut self,
        stream: &mut (impl Stream<Item = Result<T, E>> + Unpin),
    ) -> Result<Option<T>, ApiError> {
        let budget = self.rate_budget().filter(|b| *b < self.idle);
        let started = Instant::now();
        // A piece already buffered is taken even with no time left: the
        // timeout polls the stream first.
        let next = tokio::time::timeout(budget.unwrap_or(self.idle), stream.next()).await;
        self.waited += started.elapsed();
        match next {
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(e))) => Err(ApiError::Upload(e.to_string())),
            Ok(None) => Ok(None),
            Err(_) if budget.is_some() => Err(ApiError::UploadTooSlow(self.min_rate)),
            Err(_) => Err(ApiError::Stream(StreamError::IdleTimeout(
                self.idle.as_secs(),
            ))),
        }
    }

    /// Counts bytes that arrived.
    fn received(&mut self, n: usize) {
        self.received += n as u64;
    }
}

/// Keeps the letters, digits, `-`, `_` and `.` of an uploaded file's stem.
fn safe_stem(filename: Option<&str>) -> String {
    let stem = filename
        .map(|f| {
            Path::new(f)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
        })
        .unwrap_or("");
    let clean: String = stem
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(100)
        .collect();
    if clean.is_empty() {
        "audio".to_string()
    } else {
        clean
    }
}

/// Spools the request's WAV (raw body or multipart field `file`).
pub(super) async fn spool(
    req: &HttpRequest,
    payload: web::Payload,
    settings: &Settings,
    block_size: Option<usize>,
) -> Result<Spool, ApiError> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_ascii_lowercase();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > settings.max_upload_bytes) {
        return Err(ApiError::UploadTooLarge(settings.max_upload_bytes));
    }
    let mut clock = UploadClock::new(
        settings.connection_timeout,
        settings.min_upload_bytes_per_second,
    );
    let dir = settings.data_dir.join(SPOOL_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(io_error)?;
    let path = dir.join(format!("{}.wav", SessionId::new_v4()));
    let file = tokio::fs::File::create(&path).await.map_err(io_error)?;
    let mut spool = Spool {
        path,
        info: StreamInfo::provisional(StreamFormat {
            sample_rate: 1,
            layout: PcmLayout {
                channels: 1,
                bytes_per_sample: 2,
            },
            block_size: 32,
        }),
        stem: "audio".into(),
    };
    let mut writer = SpoolWriter {
        file,
        written: 0,
        limit: settings.max_upload_bytes,
        checker: Checker::new(settings.max_header_bytes),
    };
    if media.starts_with("multipart/form-data") {
        let mut form = Multipart::new(req.headers(), payload);
        let mut found = false;
        while let Some(mut field) = clock.next(&mut form).await? {
            let is_file = !found && field.name() == Some("file");
            if is_file {
                found = true;
                spool.stem =
                    safe_stem(field.content_disposition().and_then(|cd| cd.get_filename()));
            }
            while let Some(chunk) = clock.next(&mut field).await? {
                clock.received(chunk.len());
                if is_file {
                    writer.write(&chunk).await?;
                } else {
                    // Other fields are read past, not kept, but they count
                    // against the upload limit.
                    writer.count(chunk.len())?;
                }
            }
        }
        if !found {
            return Err(ApiError::MissingFile);
        }
    } else if WAV_MEDIA_TYPES.iter().any(|t| media.starts_with(t)) {
        let mut payload = payload;
        while let Some(chunk) = clock.next(&mut payload).await? {
            clock.received(chunk.len());
            writer.write(&chunk).await?;
        }
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the WAV as the raw body (Content-Type audio/wav) or as the multipart/form-data field file, not {media}"
        )));
    }
    writer.file.flush().await.map_err(io_error)?;
    spool.info = writer.checker.finish(block_size)?;
    Ok(spool)
}

struct SpoolWriter {
    file: tokio::fs::File,
    written: u64,
    limit: u64,
    checker: Checker,
}

impl SpoolWriter {
    fn count(&mut self, n: usize) -> Result<(), ApiError> {
        self.written += n as u64;
        if self.written > self.limit {
            return Err(ApiError::UploadTooLarge(self.limit));
        }
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.count(chunk.len())?;
        self.checker.feed(chunk)?;
        self.file.write_all(chunk).await.map_err(io_error)
    }
}
