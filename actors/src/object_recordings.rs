//! Recordings in object storage (scaled mode): S3, GCS, Azure, or a local
//! directory, through the `object_store` crate.
//!
//! A live session's frames become durable as [`crate::segment`]s, each one
//! object written create-only (`PutMode::Create`, S3's `If-None-Match: *`),
//! so two replicas that both believe they own a session cannot both extend
//! it: the second writer of a sequence number gets `AlreadyExists` and
//! stops ([`ObjectError::Superseded`]). When the session ends, the segments
//! are composed into one FLAC object (`recordings/{id}.flac`) whose
//! STREAMINFO holds the final totals and the MD5 the last segment carries;
//! an object is invisible until its upload completes, so a reader sees the
//! whole file or none. The segments are deleted after the catalog says
//! `closed`.
//!
//! Every call here is async I/O on the runtime; nothing blocks a thread.

use std::sync::Arc;

use bytes::Bytes;
use flacstream_codec::flac::StreamInfo;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::lease_clock::LeaseClock;
use crate::segment::{parse_segment_name, segment_name, SegmentHeader, MAX_HEADER_BYTES};
use crate::stream_digest::StreamDigest;

/// Upload buffer of a composed recording, in bytes: below it the FLAC goes
/// up in one PUT, above it as a multipart upload of parts this size (S3's
/// parts must be at least 5 MiB, all but the last: this is that minimum).
const COMPOSE_PART_BYTES: usize = 5 << 20;

/// Parts of one composed recording uploading at once: with the buffer, at
/// most (1 + this) × 5 MiB per compose.
const COMPOSE_PART_CONCURRENCY: usize = 1;

/// Composes (and migration uploads) running at once in a process. Sessions
/// tend to end together (a load test, a drain); measured, 100 sessions
/// composing at once with 8 MiB buffers and object_store's default of 8
/// parts in flight took the process from 52 to 263 MiB. Four at once bound
/// it near 40 MiB; the rest wait their turn, and their sessions end a
/// little later.
const MAX_CONCURRENT_COMPOSES: usize = 4;

/// A storage call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Another writer already wrote this segment: the session is owned
    /// elsewhere now.
    #[error("another replica extended this session")]
    Superseded,
    /// The segments do not make one stream (a gap, an overlap or a segment
    /// that does not parse).
    #[error("the session's segments are inconsistent: {0}")]
    Inconsistent(String),
    /// The object store refused or failed the request.
    #[error("object storage failed: {0}")]
    Store(String),
}

impl From<object_store::Error> for ObjectError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::AlreadyExists { .. } => Self::Superseded,
            other => Self::Store(other.to_string()),
        }
    }
}

/// Where a session's durable stream ends, read from its last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableTail {
    /// The next segment's sequence number.
    pub next_seq: u64,
    /// The last segment's header (`None`: no segment yet).
    pub last: Option<SegmentHeader>,
}

impl DurableTail {
    /// Samples per channel durable.
    pub fn samples(&self) -> u64 {
        self.last.as_ref().map_or(0, SegmentHeader::end_sample)
    }
}

/// A composed recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// Its final STREAMINFO.
    pub info: StreamInfo,
    /// Its key, relative to the prefix (what the catalog stores).
    pub key: String,
    /// Its length in bytes.
    pub bytes: u64,
}

/// Recordings under one prefix of one object store; see the module docs.
#[derive(Debug, Clone)]
pub struct ObjectRecordings {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    composing: Arc<tokio::sync::Semaphore>,
}

impl ObjectRecordings {
    /// Recordings under `prefix` of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self {
            store,
            prefix,
            composing: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_COMPOSES)),
        }
    }

    fn upload(&self, key: &str) -> object_store::buffered::BufWriter {
        object_store::buffered::BufWriter::with_capacity(
            Arc::clone(&self.store),
            self.path(key),
            COMPOSE_PART_BYTES,
        )
        .with_max_concurrency(COMPOSE_PART_CONCURRENCY)
    }

    /// The key of a session's finished FLAC, relative to the prefix.
    pub fn final_key(id: Uuid) -> String {
        format!("recordings/{id}.flac")
    }

    /// The key of a session's kept original (the uploaded bytes), relative
    /// to the prefix; also its path under a single node's data directory.
    pub fn original_key(id: Uuid) -> String {
        format!("originals/{id}")
    }

    fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    fn live_dir(&self, id: Uuid) -> Path {
        self.path(&format!("live/{id}"))
    }

    /// Writes segment `seq`, create-only.
    pub async fn put_segment(
        &self,
        id: Uuid,
        seq: u64,
        header: &SegmentHeader,
        frames: Bytes,
    ) -> Result<(), ObjectError> {
        let path = self.live_dir(id).join(segment_name(seq));
        let payload = PutPayload::from_iter([Bytes::from(header.to_bytes()), frames]);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store.put_opts(&path, payload, opts).await?;
        Ok(())
    }

    /// A session's segments, in order: (sequence number, location).
    async fn segments(&self, id: Uuid) -> Result<Vec<(u64, Path)>, ObjectError> {
        let dir = self.live_dir(id);
        let mut found: Vec<(u64, Path)> = self
            .store
            .list(Some(&dir))
            .map_err(ObjectError::from)
            .try_filter_map(|meta| async move {
                Ok(meta
                    .location
                    .filename()
                    .and_then(parse_segment_name)
                    .map(|seq| (seq, meta.location.clone())))
            })
            .try_collect()
            .await?;
        found.sort_by_key(|(seq, _)| *seq);
        Ok(found)
    }

    async fn header_of(&self, path: &Path) -> Result<(SegmentHeader, usize, u64), ObjectError> {
        let meta = self.store.head(path).await?;
        let want = (MAX_HEADER_BYTES as u64).min(meta.size);
        let bytes = self.store.get_range(path, 0..want).await?;
        let (header, len) = SegmentHeader::parse(&bytes)
            .map_err(|e| ObjectError::Inconsistent(format!("{path}: {e}")))?;
        Ok((header, len, meta.size))
    }

    /// The header of segment `seq`.
    pub async fn segment_header(&self, id: Uuid, seq: u64) -> Result<SegmentHeader, ObjectError> {
        let path = self.live_dir(id).join(segment_name(seq));
        Ok(self.header_of(&path).await?.0)
    }

    /// Where the durable stream ends: one LIST and one ranged GET.
    pub async fn tail(&self, id: Uuid) -> Result<DurableTail, ObjectError> {
        let segments = self.segments(id).await?;
        let Some((seq, path)) = segments.last() else {
            return Ok(DurableTail {
                next_seq: 0,
                last: None,
            });
        };
        let (header, _, _) = self.header_of(path).await?;
        Ok(DurableTail {
            next_seq: seq + 1,
            last: Some(header),
        })
    }

    /// The durable part of a live session as a FLAC stream (provisional
    /// STREAMINFO, then every durable frame), read segment by segment.
    /// `None` when nothing is durable yet.
    pub async fn live_stream(
        &self,
        id: Uuid,
    ) -> Result<Option<BoxStream<'static, Result<Bytes, ObjectError>>>, ObjectError> {
        let segments = self.segments(id).await?;
        let Some((_, first)) = segments.first() else {
            return Ok(None);
        };
        let (header, _, _) = self.header_of(first).await?;
        let stream_header = Bytes::from(StreamInfo::provisional(header.format).stream_header());
        let store = Arc::clone(&self.store);
        let frames = stream::iter(segments).then(move |(_, path)| {
            let store = Arc::clone(&store);
            async move {
                let body = store.get(&path).await?.bytes().await?;
                let (_, len) = SegmentHeader::parse(&body)
                    .map_err(|e| ObjectError::Inconsistent(format!("{path}: {e}")))?;
                Ok(body.slice(len..))
            }
        });
        Ok(Some(
            stream::once(async move { Ok(stream_header) })
                .chain(frames)
                .boxed(),
        ))
    }

    /// Composes the segments into the final FLAC object; see the module
    /// docs. Checks that the segments continue one another. `None` when the
    /// session has no segment (it never got audio).
    ///
    /// With `fence`, the upload is completed only while this replica's
    /// leases hold: a replica cut off from the catalog long enough for
    /// another to take the session must not publish a stale FLAC.
    pub async fn compose(
        &self,
        id: Uuid,
        fence: Option<&LeaseClock>,
    ) -> Result<Option<Composed>, ObjectError> {
        let segments = self.segments(id).await?;
        let Some((_, last)) = segments.last() else {
            return Ok(None);
        };
        let (tail, _, _) = self.header_of(last).await?;
        let digest = StreamDigest::restore(&tail.md5_state)
            .ok_or_else(|| ObjectError::Inconsistent("the MD5 state does not restore".into()))?;
        let info = StreamInfo {
            format: tail.format,
            min_frame_bytes: tail.min_frame_bytes,
            max_frame_bytes: tail.max_frame_bytes,
            total_samples: tail.end_sample(),
            md5: digest.digest(),
        };
        let key = Self::final_key(id);
        let _permit = self
            .composing
            .acquire()
            .await
            .map_err(|_| ObjectError::Store("shutting down".into()))?;
        let mut writer = self.upload(&key);
        let result = self
            .write_composed(&mut writer, info.stream_header(), &segments, &tail, fence)
            .await;
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(e) => {
                // Nothing became visible: an upload not completed is
                // aborted, and the segments are still there to try again.
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        Ok(Some(Composed { info, key, bytes }))
    }

    async fn write_composed(
        &self,
        writer: &mut object_store::buffered::BufWriter,
        header: Vec<u8>,
        segments: &[(u64, Path)],
        tail: &SegmentHeader,
        fence: Option<&LeaseClock>,
    ) -> Result<u64, ObjectError> {
        let mut bytes = header.len() as u64;
        writer.put(Bytes::from(header)).await?;
        let mut expect_sample = 0u64;
        let mut expect_frame = 0u32;
        for (seq, path) in segments {
            let body = self.store.get(path).await?.bytes().await?;
            let (h, len) = SegmentHeader::parse(&body)
                .map_err(|e| ObjectError::Inconsistent(format!("{path}: {e}")))?;
            if h.first_sample != expect_sample || h.first_frame != expect_frame {
                return Err(ObjectError::Inconsistent(format!(
                    "segment {seq} starts at sample {} (frame {}), expected {expect_sample} ({expect_frame})",
                    h.first_sample, h.first_frame
                )));
            }
            if h.format != tail.format {
                return Err(ObjectError::Inconsistent(format!(
                    "segment {seq} has another format"
                )));
            }
            expect_sample = h.end_sample();
            expect_frame = h.end_frame();
            bytes += (body.len() - len) as u64;
            writer.put(body.slice(len..)).await?;
        }
        if fence.is_some_and(|clock| !clock.valid()) {
            return Err(ObjectError::Superseded);
        }
        writer
            .shutdown()
            .await
            .map_err(|e| ObjectError::Store(e.to_string()))?;
        Ok(bytes)
    }

    /// Deletes a session's segments (after its final FLAC is composed and
    /// the catalog says so, or with the session).
    pub async fn delete_segments(&self, id: Uuid) -> Result<(), ObjectError> {
        let locations = self
            .segments(id)
            .await?
            .into_iter()
            .map(|(_, p)| Ok(p))
            .collect::<Vec<_>>();
        let mut deleted = self.store.delete_stream(stream::iter(locations).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes a finished session's FLAC and any segments left.
    pub async fn delete(&self, id: Uuid, key: Option<&str>) -> Result<(), ObjectError> {
        if let Some(key) = key {
            match self.store.delete(&self.path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.delete_segments(id).await
    }

    /// Deletes the object `key`, if it exists.
    pub async fn delete_object(&self, key: &str) -> Result<(), ObjectError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads a finished FLAC file as the recording `key` (a migration from
    /// files); answers its length. Read and sent in parts, never whole.
    pub async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<u64, ObjectError> {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ObjectError::Store(format!("{}: {e}", path.display())))?;
        let _permit = self
            .composing
            .acquire()
            .await
            .map_err(|_| ObjectError::Store("shutting down".into()))?;
        let mut writer = self.upload(key);
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(ObjectError::Store(format!("{}: {e}", path.display())));
                }
            };
            if n == 0 {
                break;
            }
            total += n as u64;
            if let Err(e) = writer.put(Bytes::copy_from_slice(&buf[..n])).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
        }
        writer
            .shutdown()
            .await
            .map_err(|e| ObjectError::Store(e.to_string()))?;
        Ok(total)
    }

    /// A finished recording: its length and its bytes as a stream.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes, ObjectError>>)>, ObjectError> {
        match self.store.get(&self.path(key)).await {
            Ok(got) => {
                let size = got.meta.size;
                Ok(Some((
                    size,
                    got.into_stream().map_err(ObjectError::from).boxed(),
                )))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
#[path = "object_recordings_tests.rs"]
mod tests;
