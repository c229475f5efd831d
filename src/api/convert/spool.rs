//! Reading an upload: spooled to a temporary file (never held in memory,
//! bounded by `MAX_UPLOAD_BYTES`) and checked, so the final STREAMINFO is
//! known before the first FLAC byte is sent:
//! - a WAV (recognised by its first four bytes) has its header checked and
//!   its samples counted and hashed on the way in;
//! - anything else is decoded once to the end after it has arrived
//!   (`codec::media`, on a blocking thread holding one of the
//!   `--decode-threads` places), which recognises it from its content,
//!   counts and hashes the PCM it decodes to, and refuses what it cannot
//!   decode before any FLAC is produced. Since the spool is a file, an MP4
//!   with its `moov` at the end decodes like any other.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use flacstream_actors::registry::SessionId;
use flacstream_actors::StreamError;
use flacstream_codec::flac::{default_block_size, StreamFormat, StreamInfo};
use flacstream_codec::media::{DecodeOptions, MediaDecoder, MediaError, MediaInfo};
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

/// Media types `/convert` and `/upload` take as a raw body. Only the
/// family is checked: what the audio is comes from its content.
const AUDIO_MEDIA_TYPES: [&str; 4] = [
    "audio/",
    "video/",
    "application/octet-stream",
    "application/ogg",
];

/// First bytes of the containers the WAV parser reads (RIFX and RF64 for
/// its own refusal of them).
const WAV_MAGICS: [&[u8; 4]; 3] = [b"RIFF", b"RIFX", b"RF64"];

/// What an upload turned out to be.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    /// A WAV, fed to the session as it is.
    Wav,
    /// Anything else, decoded to PCM in this layout on the way to the session.
    Media(MediaInfo),
}

/// A spooled upload, removed from disk when dropped.
pub(super) struct Spool {
    pub(super) path: PathBuf,
    /// The final STREAMINFO, from the audio itself.
    pub(super) info: StreamInfo,
    /// The original file name's stem, for the download name.
    pub(super) stem: String,
    /// What it is.
    pub(super) source: Source,
    /// How it is decoded (if it is not WAV).
    pub(super) options: DecodeOptions,
    /// The body's bytes and their SHA-256, as received: the upload's one
    /// chunk (chunk metadata).
    pub(super) received: (u64, [u8; 32]),
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

fn media_error(e: MediaError) -> ApiError {
    ApiError::Stream(e.into())
}

/// Decodes a spooled non-WAV upload to its end, as the session will be fed
/// it, and returns what it holds with its final STREAMINFO. Refuses audio
/// longer than `max_seconds` (the longest session), so a small file of a
/// very low bit rate cannot occupy a decoder and an encoder for hours.
fn check_media(
    path: &Path,
    block_size: Option<usize>,
    max_seconds: u64,
    options: DecodeOptions,
) -> Result<(StreamInfo, MediaInfo), ApiError> {
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut decoder = MediaDecoder::open_with(Box::new(file), options).map_err(media_error)?;
    let media = decoder.info();
    let max_frames = max_seconds.saturating_mul(u64::from(media.sample_rate));
    let mut pcm = PcmDecoder::new(media.layout);
    let mut scratch = vec![0; CHECK_STEP_SAMPLES];
    let mut bytes = Vec::new();
    while decoder.next_pcm(&mut bytes).map_err(media_error)? {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            pcm.decode(&mut rest, &mut scratch);
        }
        bytes.clear();
        if pcm.frames_decoded() > max_frames {
            return Err(ApiError::AudioTooLong(max_seconds));
        }
    }
    let format = StreamFormat {
        sample_rate: media.sample_rate,
        layout: media.layout,
        block_size: block_size.unwrap_or_else(|| default_block_size(media.sample_rate)),
    };
    let info = StreamInfo {
        format,
        min_frame_bytes: 0,
        max_frame_bytes: 0,
        total_samples: pcm.frames_decoded(),
        md5: pcm.md5_digest(),
    };
    Ok((info, media))
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

/// Spools the request's audio (raw body or multipart field `field`) and
/// checks it (see the module docs).
pub(super) async fn spool(
    req: &HttpRequest,
    payload: web::Payload,
    settings: &Settings,
    decoding: &Arc<tokio::sync::Semaphore>,
    block_size: Option<usize>,
    field: &'static str,
    options: DecodeOptions,
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
        source: Source::Wav,
        options,
        received: (0, [0; 32]),
    };
    let mut writer = SpoolWriter {
        file,
        digest: Sha256::new(),
        written: 0,
        limit: settings.max_upload_bytes,
        sniff: Sniff::Pending(Vec::new()),
        max_header_bytes: settings.max_header_bytes,
        float_to_media: options.float_bytes.is_some(),
    };
    if media.starts_with("multipart/form-data") {
        let mut form = Multipart::new(req.headers(), payload);
        let mut found = false;
        while let Some(mut part) = clock.next(&mut form).await? {
            let is_file = !found && part.name() == Some(field);
            if is_file {
                found = true;
                spool.stem = safe_stem(part.content_disposition().and_then(|cd| cd.get_filename()));
            }
            while let Some(chunk) = clock.next(&mut part).await? {
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
            return Err(ApiError::MissingFile(field));
        }
    } else if AUDIO_MEDIA_TYPES.iter().any(|t| media.starts_with(t)) {
        let mut payload = payload;
        while let Some(chunk) = clock.next(&mut payload).await? {
            clock.received(chunk.len());
            writer.write(&chunk).await?;
        }
    } else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the audio as the raw body (Content-Type audio/* or application/octet-stream) or as the multipart/form-data field file, not {media}"
        )));
    }
    writer.file.flush().await.map_err(io_error)?;
    drop(writer.file);
    spool.received = (writer.written, writer.digest.finalize().into());
    match writer.sniff {
        Sniff::Media => {
            // The place moves into the blocking call, so a request dropped
            // mid-decode keeps it until that decode really ends.
            let place = Arc::clone(decoding)
                .acquire_owned()
                .await
                .map_err(|_| ApiError::Unavailable("the decoders are shut down".into()))?;
            let path = spool.path.clone();
            let max_seconds = settings.max_session.as_secs();
            let (info, media) = web::block(move || {
                let _place = place;
                check_media(&path, block_size, max_seconds, options)
            })
            .await
            .map_err(|e| ApiError::Unavailable(format!("the decoder failed: {e}")))??;
            spool.info = info;
            spool.source = Source::Media(media);
        }
        Sniff::Wav(checker) => spool.info = checker.finish(block_size)?,
        Sniff::Pending(head) => {
            // Under four bytes in all: the WAV parser says why that is no WAV.
            let mut checker = Checker::new(settings.max_header_bytes);
            checker.feed(&head)?;
            spool.info = checker.finish(block_size)?;
        }
    }
    Ok(spool)
}

/// What the first bytes said the upload is.
enum Sniff {
    /// Fewer than four bytes so far.
    Pending(Vec<u8>),
    /// A WAV, checked as it arrives.
    Wav(Box<Checker>),
    /// Anything else: checked by decoding once it is all here.
    Media,
}

struct SpoolWriter {
    file: tokio::fs::File,
    /// SHA-256 of the body so far.
    digest: Sha256,
    written: u64,
    limit: u64,
    sniff: Sniff,
    max_header_bytes: u64,
    /// Float WAVs go to the decoder (the client asked for `float_to`).
    float_to_media: bool,
}

impl SpoolWriter {
    /// A WAV the parser refused: G.711 (and float, when the client asked
    /// for its conversion) goes to the decoder, the rest is refused as it
    /// was.
    fn refused_wav(&self, e: ApiError) -> Result<Sniff, ApiError> {
        match e {
            ApiError::Stream(StreamError::Wav(w))
                if w.is_g711() || (self.float_to_media && w.is_float()) =>
            {
                Ok(Sniff::Media)
            }
            other => Err(other),
        }
    }

    fn count(&mut self, n: usize) -> Result<(), ApiError> {
        self.written += n as u64;
        if self.written > self.limit {
            return Err(ApiError::UploadTooLarge(self.limit));
        }
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.count(chunk.len())?;
        self.digest.update(chunk);
        match &mut self.sniff {
            Sniff::Wav(checker) => {
                if let Err(e) = checker.feed(chunk) {
                    self.sniff = self.refused_wav(e)?;
                }
            }
            Sniff::Media => {}
            Sniff::Pending(head) => {
                head.extend_from_slice(chunk);
                if head.len() >= 4 {
                    let head = std::mem::take(head);
                    self.sniff = if WAV_MAGICS.iter().any(|m| head.starts_with(*m)) {
                        let mut checker = Checker::new(self.max_header_bytes);
                        match checker.feed(&head) {
                            Ok(()) => Sniff::Wav(Box::new(checker)),
                            Err(e) => self.refused_wav(e)?,
                        }
                    } else {
                        Sniff::Media
                    };
                }
            }
        }
        self.file.write_all(chunk).await.map_err(io_error)
    }
}
