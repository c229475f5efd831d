//! The analysis over the whole stored recording, after its session ended.
//! The live analysis already covers a session measured from its first
//! sample to its last on one replica; this job then only checks that. A
//! session taken over by another replica, recovered after a crash, or
//! measured with batches lost, gets its analysis from the recording
//! itself: decoded (the FLAC, through the same decoder as uploads) and
//! measured by the same analyzer, on a blocking thread holding an analysis
//! place. Saving it again gives the same result: idempotent.

use flacstream_actors::chunk_analysis::{
    AnalysisSettings, AnalysisSource, Analyzer, SessionAnalysis, Work,
};
use flacstream_actors::store::{Job, Load, LoadAnalysis, SaveAnalysis};
use flacstream_codec::media::MediaDecoder;

use super::context::{JobContext, JobError};

/// PCM handed to the analyzer at a time, in bytes.
const PCM_BATCH_BYTES: usize = 1 << 20;

/// Runs the job.
pub async fn run(cx: &JobContext, job: &Job) -> Result<String, JobError> {
    let id = job
        .session_id
        .ok_or_else(|| JobError::Permanent("the job names no session".into()))?;
    let record = cx
        .store
        .send(Load { id })
        .await??
        .ok_or_else(|| JobError::Permanent("the session is gone".into()))?;
    let Some(file) = record.file.clone().filter(|_| record.record) else {
        return Ok("no recording to measure".into());
    };
    if let Some(json) = cx.store.send(LoadAnalysis { id }).await?? {
        let live: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        if live["complete"] == true && live["samples"] == record.samples {
            return Ok(format!(
                "the live analysis covers all {} samples",
                record.samples
            ));
        }
    }
    let local = cx.local_recording(&file, job.id, job.attempts).await?;
    let place = cx
        .analysis
        .threads
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    let settings = cx.analysis.clone();
    let path = local.path.clone();
    let user = record.user_id.clone();
    let mut summary = tokio::task::spawn_blocking(move || {
        let _place = place;
        measure(&path, id.to_string(), user, settings)
    })
    .await
    .map_err(|e| JobError::Retry(format!("the analysis stopped: {e}")))??;
    drop(local);
    summary.chunks = record.chunk_count;
    summary.source = AnalysisSource::Recording;
    let samples = summary.samples;
    cx.store
        .send(SaveAnalysis {
            id,
            analysis: summary,
        })
        .await??;
    Ok(format!("measured {samples} samples from the recording"))
}

/// Decodes and measures the FLAC at `path`.
fn measure(
    path: &std::path::Path,
    session: String,
    user: Option<String>,
    settings: AnalysisSettings,
) -> Result<SessionAnalysis, JobError> {
    let file = std::fs::File::open(path)?;
    let mut decoder = MediaDecoder::open(Box::new(file))
        .map_err(|e| JobError::Permanent(format!("the recording cannot be decoded: {e}")))?;
    let info = decoder.info();
    let mut analyzer = Analyzer::new(session, user, settings);
    analyzer.run(vec![Work::Format {
        sample_rate: info.sample_rate,
        layout: info.layout,
    }]);
    let mut pcm = Vec::with_capacity(PCM_BATCH_BYTES + (1 << 16));
    loop {
        let more = decoder
            .next_pcm(&mut pcm)
            .map_err(|e| JobError::Permanent(format!("the recording cannot be decoded: {e}")))?;
        if pcm.len() >= PCM_BATCH_BYTES || (!more && !pcm.is_empty()) {
            let batch = bytes::Bytes::from(std::mem::take(&mut pcm));
            analyzer.run(vec![Work::Pcm(batch)]);
            pcm.reserve(PCM_BATCH_BYTES + (1 << 16));
        }
        if !more {
            break;
        }
    }
    Ok(analyzer.summary(true))
}
