//! The recording side of a session: frames queued for the file, one write
//! in flight at a time (so appends stay in order across store threads), and
//! how many samples are durable.

use std::path::PathBuf;

use bytes::Bytes;

use super::retry::Retry;
use crate::store::{AppendFrames, SharedRecording};

/// Where the recording file is.
#[derive(Debug)]
enum FileState {
    /// Being created by the store.
    Creating,
    /// Open for appending.
    Ready(SharedRecording),
}

/// A session's recording; see the module docs.
#[derive(Debug)]
pub struct Recorder {
    /// Absolute path of the file.
    pub path: PathBuf,
    /// Path relative to the data directory, as stored in the catalog.
    pub relative: String,
    file: FileState,
    pending: Vec<u8>,
    pending_frames: usize,
    pending_samples: u64,
    /// (frames, samples, bytes) of the write in flight, kept for a retry.
    writing: Option<(usize, u64, Bytes)>,
    durable_samples: u64,
    /// Refusals of the write in flight.
    pub retry: Retry,
}

impl Recorder {
    /// A recorder whose file is about to be created.
    pub fn new(path: PathBuf, relative: String) -> Self {
        Self {
            path,
            relative,
            file: FileState::Creating,
            pending: Vec::new(),
            pending_frames: 0,
            pending_samples: 0,
            writing: None,
            durable_samples: 0,
            retry: Retry::default(),
        }
    }

    /// The file is created and open.
    pub fn ready(&mut self, file: SharedRecording) {
        self.file = FileState::Ready(file);
    }

    /// The open file, once created.
    pub fn file(&self) -> Option<&SharedRecording> {
        match &self.file {
            FileState::Ready(f) => Some(f),
            FileState::Creating => None,
        }
    }

    /// Queues one frame for the file.
    pub fn queue(&mut self, frame: &[u8], samples: usize) {
        self.pending.extend_from_slice(frame);
        self.pending_frames += 1;
        self.pending_samples += samples as u64;
    }

    /// Frames encoded but not yet synced to the file.
    pub fn unwritten_frames(&self) -> usize {
        self.pending_frames + self.writing.as_ref().map_or(0, |(f, _, _)| *f)
    }

    /// Samples per channel synced to the file.
    pub fn durable_samples(&self) -> u64 {
        self.durable_samples
    }

    /// Whether every queued frame is synced.
    pub fn is_idle(&self) -> bool {
        self.writing.is_none() && self.pending_frames == 0 && self.file().is_some()
    }

    /// The next append to send to the store, if one may start now.
    pub fn next_write(&mut self) -> Option<AppendFrames> {
        let file = self.file()?.clone();
        if self.writing.is_some() || self.pending_frames == 0 {
            return None;
        }
        let bytes = Bytes::from(std::mem::take(&mut self.pending));
        self.writing = Some((self.pending_frames, self.pending_samples, bytes.clone()));
        self.pending_frames = 0;
        self.pending_samples = 0;
        Some(AppendFrames { file, bytes })
    }

    /// The write in flight again, after the file refused it.
    pub fn retry_write(&self) -> Option<AppendFrames> {
        let file = self.file()?.clone();
        let (_, _, bytes) = self.writing.as_ref()?;
        Some(AppendFrames {
            file,
            bytes: bytes.clone(),
        })
    }

    /// The write in flight is synced; answers whether writes had been
    /// refused before.
    pub fn written(&mut self) -> bool {
        if let Some((_, samples, _)) = self.writing.take() {
            self.durable_samples += samples;
        }
        self.retry.succeeded()
    }
}
