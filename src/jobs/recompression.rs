//! Recompression for archives (`--archive-level`, e.g. 8): a recording made
//! at a faster level is decoded and encoded again at the archive level,
//! then replaces the stored FLAC atomically, so a reader sees the old file
//! or the new one, never half of either: a rename within its directory
//! (single node) or one object write, invisible until complete (scaled).
//!
//! Never at the cost of exactness: the decoded audio's MD5 must equal the
//! original's STREAMINFO MD5 (so what is re-encoded is what was recorded),
//! and the new file is decoded again and must give the same MD5 and sample
//! count before it replaces anything. Run again, it re-encodes the same
//! audio to the same bytes: idempotent.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use flacstream_actors::store::{Job, Load, Recompressed};
use flacstream_codec::flac::{
    EncoderLevel, FrameEncoder, FrameStats, StreamFormat, StreamInfo, STREAMINFO_BYTES,
    STREAMINFO_OFFSET,
};
use flacstream_codec::media::MediaDecoder;
use flacstream_codec::pcm::PcmDecoder;

use super::context::{JobContext, JobError, SCRATCH_DIR};

/// Samples per channel per frame in the archive: libFLAC's default above
/// 48 kHz and at level 8.
const ARCHIVE_BLOCK_SIZE: usize = 4096;

/// What a re-encode produced.
struct Encoded {
    bytes: u64,
    samples: u64,
}

/// Runs the job.
pub async fn run(cx: &JobContext, job: &Job) -> Result<String, JobError> {
    let id = job
        .session_id
        .ok_or_else(|| JobError::Permanent("the job names no session".into()))?;
    let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap_or_default();
    let level = payload["level"]
        .as_u64()
        .and_then(|l| u8::try_from(l).ok())
        .and_then(EncoderLevel::new)
        .ok_or_else(|| JobError::Permanent(format!("no archive level in {}", job.payload)))?;
    let record = cx
        .store
        .send(Load { id })
        .await??
        .ok_or_else(|| JobError::Permanent("the session is gone".into()))?;
    let Some(file) = record.file.clone().filter(|_| record.record) else {
        return Ok("no recording to recompress".into());
    };
    if record.level >= level.get() {
        return Ok(format!("already at level {}", record.level));
    }
    let before = record.bytes_out;
    let source = cx.local_recording(&file, job.id, job.attempts).await?;
    let scratch = cx.data_dir.join(SCRATCH_DIR);
    tokio::fs::create_dir_all(&scratch).await?;
    // Beside the recording in single-node mode, so the rename stays in one
    // file system; a scratch file for the object otherwise.
    // Named per attempt: an attempt whose claim lapsed while it ran must
    // not share its file with the next.
    let target = match cx.objects {
        Some(_) => scratch.join(format!("{}.{}.archive.flac", job.id, job.attempts)),
        None => source
            .path
            .with_extension(format!("{}.{}.archive.tmp", job.id, job.attempts)),
    };
    let place = cx
        .decoding
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    let (from, to) = (source.path.clone(), target.clone());
    let encoded = tokio::task::spawn_blocking(move || {
        let _place = place;
        let result = reencode(&from, &to, level);
        if result.is_err() {
            let _ = std::fs::remove_file(&to);
        }
        result
    })
    .await
    .map_err(|e| JobError::Retry(format!("the recompression stopped: {e}")))??;
    match cx.objects.as_ref() {
        Some(objects) => {
            let put = objects.put_file(&file, &target).await;
            let _ = tokio::fs::remove_file(&target).await;
            put?;
        }
        None => {
            tokio::fs::rename(&target, &source.path).await?;
            if let Some(dir) = source.path.parent() {
                let dir = dir.to_path_buf();
                tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                    .await
                    .map_err(|e| JobError::Retry(e.to_string()))??;
            }
        }
    }
    drop(source);
    let recorded = cx
        .store
        .send(Recompressed {
            id,
            level: level.get(),
            bytes_out: encoded.bytes,
        })
        .await??;
    if !recorded {
        // Deleted while it was re-encoded: what was just written must go
        // too, or it would outlive its session.
        match cx.objects.as_ref() {
            Some(objects) => objects.delete_object(&file).await?,
            None => match tokio::fs::remove_file(cx.data_dir.join(&file)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            },
        }
        return Err(JobError::Permanent(
            "the session was deleted meanwhile".into(),
        ));
    }
    Ok(format!(
        "level {} to {}: {before} to {} bytes ({:.2}%), {} samples verified",
        record.level,
        level.get(),
        encoded.bytes,
        100.0 * (encoded.bytes as f64 - before as f64) / (before.max(1) as f64),
        encoded.samples
    ))
}

/// The STREAMINFO of the FLAC at `path`.
fn stream_info(path: &Path) -> Result<StreamInfo, JobError> {
    let mut head = [0u8; STREAMINFO_OFFSET + STREAMINFO_BYTES];
    std::fs::File::open(path)?.read_exact(&mut head)?;
    let mut body = [0u8; STREAMINFO_BYTES];
    body.copy_from_slice(&head[STREAMINFO_OFFSET..]);
    StreamInfo::parse(&body)
        .filter(|_| &head[..4] == b"fLaC")
        .ok_or_else(|| JobError::Permanent("the recording has no STREAMINFO".into()))
}

/// Decodes `path` into PCM, passing each piece to `each`; answers the
/// decoder's layout and the MD5 and length of what it decoded.
fn decode(
    path: &Path,
    mut each: impl FnMut(&[i32]) -> Result<(), JobError>,
) -> Result<(u32, flacstream_codec::pcm::PcmLayout, [u8; 16], u64), JobError> {
    let unusable = |e: flacstream_codec::media::MediaError| {
        JobError::Permanent(format!("the recording cannot be decoded: {e}"))
    };
    let mut decoder = MediaDecoder::open(Box::new(std::fs::File::open(path)?)).map_err(unusable)?;
    let info = decoder.info();
    let mut pcm = PcmDecoder::new(info.layout);
    let (mut bytes, mut samples) = (Vec::new(), vec![0i32; ARCHIVE_BLOCK_SIZE * 8]);
    loop {
        bytes.clear();
        let more = decoder.next_pcm(&mut bytes).map_err(unusable)?;
        let mut input = bytes.as_slice();
        while !input.is_empty() {
            let n = pcm.decode(&mut input, &mut samples);
            if n == 0 {
                break;
            }
            each(&samples[..n])?;
        }
        if !more {
            break;
        }
    }
    Ok((
        info.sample_rate,
        info.layout,
        pcm.md5_digest(),
        pcm.frames_decoded(),
    ))
}

/// Re-encodes `from` into `to` at `level`, checked both ways.
fn reencode(from: &Path, to: &Path, level: EncoderLevel) -> Result<Encoded, JobError> {
    let original = stream_info(from)?;
    let format = StreamFormat {
        block_size: ARCHIVE_BLOCK_SIZE,
        ..original.format
    };
    let channels = format.layout.channels;
    let mut out = std::io::BufWriter::new(std::fs::File::create(to)?);
    out.write_all(&StreamInfo::provisional(format).stream_header())?;
    let (mut encoder, mut stats) = (FrameEncoder::new(), FrameStats::default());
    let mut block: Vec<i32> = Vec::with_capacity(ARCHIVE_BLOCK_SIZE * channels);
    let mut frame_number = 0u32;
    let mut flush = |block: &mut Vec<i32>, out: &mut std::io::BufWriter<std::fs::File>| {
        let frame = encoder
            .encode(&format, level, frame_number, block)
            .map_err(|e| JobError::Permanent(format!("the encoder refused a block: {e}")))?;
        out.write_all(&frame.bytes)?;
        stats.record(&frame);
        frame_number += 1;
        block.clear();
        Ok::<(), JobError>(())
    };
    let (_, _, md5, samples) = decode(from, |mut pcm| {
        while !pcm.is_empty() {
            let take = (ARCHIVE_BLOCK_SIZE * channels - block.len()).min(pcm.len());
            block.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if block.len() == ARCHIVE_BLOCK_SIZE * channels {
                flush(&mut block, &mut out)?;
            }
        }
        Ok(())
    })?;
    if !block.is_empty() {
        flush(&mut block, &mut out)?;
    }
    if original.md5 != [0; 16] && md5 != original.md5 {
        return Err(JobError::Permanent(
            "the recording does not decode to its own MD5; left as it is".into(),
        ));
    }
    let info = StreamInfo {
        format,
        min_frame_bytes: stats.min_frame_bytes,
        max_frame_bytes: stats.max_frame_bytes,
        total_samples: samples,
        md5,
    };
    let mut file = out
        .into_inner()
        .map_err(|e| JobError::Retry(e.error().to_string()))?;
    file.seek(SeekFrom::Start(STREAMINFO_OFFSET as u64))?;
    file.write_all(&info.to_bytes())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    drop(file);
    // The new file, decoded on its own, must give the same audio.
    let (_, _, again, again_samples) = decode(to, |_| Ok(()))?;
    if again != md5 || again_samples != samples {
        return Err(JobError::Permanent(
            "the re-encoded file does not decode to the recording's audio; not used".into(),
        ));
    }
    Ok(Encoded { bytes, samples })
}
