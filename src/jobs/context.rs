//! What a job may use, and how a job reports failure.

use std::path::PathBuf;

use actix::Addr;
use flacstream_actors::chunk_analysis::AnalysisSettings;
use flacstream_actors::object_recordings::ObjectRecordings;
use flacstream_actors::store::{Store, StoreError};

use crate::config::JobSettings;
use crate::webhook::delivery::Deliverer;

/// Shared by every job a replica runs.
pub struct JobContext {
    /// The catalog and recordings.
    pub store: Addr<Store>,
    /// The data directory (recordings in single-node mode, scratch files).
    pub data_dir: PathBuf,
    /// Object storage, in scaled mode.
    pub objects: Option<ObjectRecordings>,
    /// The analysis' settings and its thread places.
    pub analysis: AnalysisSettings,
    /// Places for decoding (`--decode-threads`), shared with uploads.
    pub decoding: std::sync::Arc<tokio::sync::Semaphore>,
    /// Webhook delivery, when a receiver is configured.
    pub deliverer: Option<Deliverer>,
    /// The settings.
    pub settings: JobSettings,
    /// Whether the replica is draining (no more claims then).
    pub stopping: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Where scratch files of jobs go, under the data directory.
pub const SCRATCH_DIR: &str = "job-scratch";

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// It may work later (storage, a receiver, the database).
    #[error("{0}")]
    Retry(String),
    /// It never will (its session is gone, its input is unusable).
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        Self::Retry(e.to_string())
    }
}

impl From<actix::MailboxError> for JobError {
    fn from(e: actix::MailboxError) -> Self {
        Self::Retry(e.to_string())
    }
}

impl From<flacstream_actors::object_recordings::ObjectError> for JobError {
    fn from(e: flacstream_actors::object_recordings::ObjectError) -> Self {
        Self::Retry(e.to_string())
    }
}

impl From<std::io::Error> for JobError {
    fn from(e: std::io::Error) -> Self {
        Self::Retry(e.to_string())
    }
}

/// A recording as a local file for the length of a job: the file itself in
/// single-node mode, a scratch copy of the object in scaled mode (deleted
/// when this is dropped).
pub struct LocalRecording {
    /// Where it can be read.
    pub path: PathBuf,
    scratch: bool,
}

impl Drop for LocalRecording {
    fn drop(&mut self) {
        if self.scratch {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl JobContext {
    /// A local copy of recording `file` (the record's `file`) for attempt
    /// `attempt` of job `job` (named per attempt: one whose claim lapsed
    /// may still run beside the next).
    pub async fn local_recording(
        &self,
        file: &str,
        job: uuid::Uuid,
        attempt: u32,
    ) -> Result<LocalRecording, JobError> {
        let Some(objects) = self.objects.as_ref() else {
            return Ok(LocalRecording {
                path: self.data_dir.join(file),
                scratch: false,
            });
        };
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let dir = self.data_dir.join(SCRATCH_DIR);
        tokio::fs::create_dir_all(&dir).await?;
        let local = LocalRecording {
            path: dir.join(format!("{job}.{attempt}.flac")),
            scratch: true,
        };
        let (_, mut stream) = objects
            .read(file)
            .await?
            .ok_or_else(|| JobError::Permanent(format!("the recording {file} is gone")))?;
        let mut out = tokio::fs::File::create(&local.path).await?;
        while let Some(piece) = stream.next().await {
            out.write_all(&piece?).await?;
        }
        out.flush().await?;
        Ok(local)
    }
}
