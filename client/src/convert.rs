//! One file end to end: read the WAV, stream it, write the FLAC as it
//! arrives, patch its STREAMINFO from `done`, verify it, and move it into place.
//!
//! The FLAC is written to `<output>.part` and renamed to `<output>` only once
//! verified. A failed stream removes the part file; a failed verification
//! keeps it for inspection. With `-o -` the FLAC is kept in memory (its
//! STREAMINFO is patched at the end, which a pipe cannot seek back to) and
//! written to stdout only once verified.
//!
//! Opening the stream is retried as the [`Endpoint`] allows; a stream that
//! fails once started is not (it may be a long file, and `/stream` keeps
//! nothing to resume from).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::args::{Job, Settings};
pub use crate::converted::Converted;
use crate::endpoint::Endpoint;
use crate::error::ClientError;
use crate::exchange::{exchange, Done, STREAMINFO_BYTES};
use crate::input::Input;
use crate::progress::FileProgress;
use crate::stdio::is_stdio;
use crate::verify::{verify, verify_reader};

/// Converts one file; see the module docs.
pub async fn convert(
    job: &Job,
    settings: &Settings,
    endpoint: &Endpoint,
    progress: &FileProgress<'_>,
) -> Result<Converted, ClientError> {
    let input = Input::read(&job.input).await?;
    progress.start(input.bytes.len() as u64);
    let mut backoff = endpoint.backoff();
    let ws = endpoint
        .open(&settings.url, &mut backoff, |e, wait| {
            progress.retrying(e, wait)
        })
        .await?;
    if is_stdio(&job.output) {
        return to_stdout(ws, input, settings, progress).await;
    }
    let mut flac = PartFile::new(part_path(&job.output));
    let streamed = exchange(ws, &input, settings.realtime, progress, |bytes| {
        flac.write(bytes)
    })
    .await;
    let done = match streamed.and_then(|done| flac.finish(&done).map(|()| done)) {
        Ok(done) => done,
        Err(e) => {
            flac.discard();
            return Err(e);
        }
    };
    progress.verifying();
    let part = flac.path.clone();
    let bytes_in = input.bytes.len() as u64;
    let verified = tokio::task::spawn_blocking(move || verify(&part, &input.bytes))
        .await
        .map_err(|e| ClientError::Protocol(format!("verification did not finish: {e}")))?;
    if let Err(source) = verified {
        return Err(ClientError::Verify {
            kept: flac.path,
            source,
        });
    }
    std::fs::rename(&flac.path, &job.output).map_err(|source| ClientError::Write {
        path: job.output.clone(),
        source,
    })?;
    Ok(Converted {
        output: job.output.clone(),
        samples: done.samples,
        bytes_in,
        bytes_out: flac.written,
    })
}

/// The stream into memory, checked, then out on stdout.
async fn to_stdout(
    ws: crate::endpoint::Ws,
    input: Input,
    settings: &Settings,
    progress: &FileProgress<'_>,
) -> Result<Converted, ClientError> {
    let mut flac = Vec::new();
    let done = exchange(ws, &input, settings.realtime, progress, |bytes| {
        flac.extend_from_slice(bytes);
        Ok(())
    })
    .await?;
    let Some(streaminfo) = flac.get_mut(8..8 + STREAMINFO_BYTES) else {
        return Err(ClientError::Protocol(format!(
            "the server sent {} FLAC bytes, fewer than the 42-byte stream header",
            flac.len()
        )));
    };
    streaminfo.copy_from_slice(&done.streaminfo);
    progress.verifying();
    let bytes_in = input.bytes.len() as u64;
    let (flac, verified) = tokio::task::spawn_blocking(move || {
        let verified = verify_reader(flac.as_slice(), &input.bytes);
        (flac, verified)
    })
    .await
    .map_err(|e| ClientError::Protocol(format!("verification did not finish: {e}")))?;
    verified.map_err(|source| ClientError::VerifyStdout { source })?;
    let mut stdout = tokio::io::stdout();
    let written = stdout.write_all(&flac).await.and(stdout.flush().await);
    written.map_err(|source| ClientError::Write {
        path: PathBuf::from("stdout"),
        source,
    })?;
    Ok(Converted {
        output: PathBuf::from("stdout"),
        samples: done.samples,
        bytes_in,
        bytes_out: flac.len() as u64,
    })
}

/// `<output>.part`.
fn part_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

/// The FLAC being received, created at its first byte.
struct PartFile {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    created: bool,
    written: u64,
}

impl PartFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            created: false,
            written: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.append(bytes).map_err(|e| self.error(e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let file = File::create(&self.path)?;
                self.created = true;
                BufWriter::new(file)
            }
        };
        self.file.insert(file).write_all(bytes)
    }

    /// Writes the final STREAMINFO body over bytes 8..42 and closes the file.
    fn finish(&mut self, done: &Done) -> Result<(), ClientError> {
        if self.written < 42 {
            return Err(ClientError::Protocol(format!(
                "the server sent {} FLAC bytes, fewer than the 42-byte stream header",
                self.written
            )));
        }
        let Some(mut file) = self.file.take() else {
            return Err(ClientError::Protocol("no FLAC bytes arrived".into()));
        };
        let patched = file
            .seek(SeekFrom::Start(8))
            .and_then(|_| file.write_all(&done.streaminfo))
            .and_then(|()| file.flush())
            .and_then(|()| file.get_ref().sync_all());
        patched.map_err(|e| self.error(e))
    }

    /// Removes the incomplete file, if one was started.
    fn discard(&mut self) {
        self.file = None;
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn error(&self, source: std::io::Error) -> ClientError {
        ClientError::Write {
            path: self.path.clone(),
            source,
        }
    }
}
