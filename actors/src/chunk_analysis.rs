//! What a recorded session measures as its audio passes: metadata per chunk
//! (one binary message, or one upload body) and the session's live analysis
//! (loudness, silences, clipping). The numbers come from
//! `flacstream_codec::analysis`; this module keeps the running state and
//! runs one batch of work at a time, on a blocking thread (see
//! `session::measures`), so the I/O threads only hand bytes over.
//!
//! A chunk's samples are the sample frames staged since the chunk before it
//! was acknowledged, up to its own acknowledgement: for PCM, exactly the
//! frames its bytes completed; for a container decoded as it arrives, what
//! the decoder gave meanwhile.

use std::sync::Arc;

use bytes::Bytes;
use flacstream_codec::analysis::levels::{add_frames, ChannelLevels, LevelSums};
use flacstream_codec::analysis::loudness::{Loudness, LoudnessMeter};
use flacstream_codec::analysis::silence::{Silence, SilenceDetector};
use flacstream_codec::pcm::PcmLayout;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// How a session measures its audio; the service's settings.
#[derive(Debug, Clone)]
pub struct AnalysisSettings {
    /// Places on the blocking threads for analysis, shared by every session
    /// (`--analysis-threads`).
    pub threads: Arc<Semaphore>,
    /// A chunk is `silent` when every channel's peak is below this, dBFS.
    pub chunk_silence_dbfs: f64,
    /// Silences: below this level (dBFS) on every channel…
    pub silence_threshold_dbfs: f64,
    /// …for at least this long, in milliseconds.
    pub silence_min_ms: u64,
}

/// An upload's body, measured as one chunk (its bytes and SHA-256 as
/// received, the audio all of it) rather than per feed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeUpload {
    /// Bytes of the body.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
}

/// Silences a session keeps in its analysis at most (the last ones): a
/// 4-hour session of short pauses must not grow its record without bound.
pub const MAX_SILENCES: usize = 10_000;

/// One chunk's metadata, as stored and as sent live (`metadata=chunk`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkMetadata {
    /// `{session_id}.{seq}`: unique, and names its session.
    pub chunk_id: String,
    /// The session.
    pub session_id: String,
    /// The session's user label, if any.
    pub user_id: Option<String>,
    /// 1 for the session's first binary message, then 2, 3, …
    pub seq: u64,
    /// Bytes of the message as received.
    pub bytes: u64,
    /// Sample frames (per channel) it brought.
    pub samples: u64,
    /// The stream position of its first sample frame.
    pub start_sample: u64,
    /// `samples` in milliseconds (0 before the format is known).
    pub duration_ms: f64,
    /// SHA-256 of the bytes as received, lowercase hex.
    pub sha256: String,
    /// Per channel; empty when the chunk brought no samples.
    pub channels: Vec<ChannelLevels>,
    /// Every channel's peak below the configured level (or no samples).
    pub silent: bool,
    /// When it was acknowledged, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
}

/// The session's analysis, live and final.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionAnalysis {
    /// Sample frames measured.
    pub samples: u64,
    /// EBU R128 measures over everything so far.
    pub loudness: Loudness,
    /// Silences, oldest first (the last [`MAX_SILENCES`]).
    pub silences: Vec<Silence>,
    /// Silences dropped past [`MAX_SILENCES`].
    pub silences_dropped: u64,
    /// The silence rule in force.
    pub silence_threshold_dbfs: f64,
    /// The silence rule in force.
    pub silence_min_ms: u64,
    /// Samples at full scale, over every channel.
    pub clipped_samples: u64,
    /// Chunks measured.
    pub chunks: u64,
    /// Whether the session has ended and this is the whole recording.
    pub complete: bool,
    /// What was measured: the audio as it arrived, or the stored recording
    /// (the final-analysis job, where the live measure did not cover it).
    pub source: AnalysisSource,
}

/// What a [`SessionAnalysis`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisSource {
    /// The audio as it arrived.
    #[default]
    Live,
    /// The stored recording, after the session ended.
    Recording,
}

/// Work queued for the analysis, in stream order.
#[derive(Debug, Clone)]
pub enum Work {
    /// PCM staged, in the stream's layout (little-endian; 8-bit unsigned).
    Pcm(Bytes),
    /// A partial sample frame was dropped (its producer left); the
    /// analysis drops its own.
    DiscardPartial,
    /// The stream's format became known.
    Format {
        /// Samples per second.
        sample_rate: u32,
        /// Channels and width.
        layout: PcmLayout,
    },
    /// A chunk was acknowledged: everything since the last one is its.
    Chunk {
        /// Its number.
        seq: u64,
        /// Its bytes as received.
        bytes: Bytes,
        /// When.
        received_at_ms: i64,
        /// An upload's body, in place of `bytes`.
        whole: Option<WholeUpload>,
    },
}

/// A stream's measuring state; moved to a blocking thread with each batch.
pub struct Analyzer {
    session_id: String,
    user_id: Option<String>,
    settings: AnalysisSettings,
    format: Option<(u32, PcmLayout)>,
    loudness: Option<LoudnessMeter>,
    silence: Option<SilenceDetector>,
    carry: Vec<u8>,
    samples: Vec<i32>,
    /// The open chunk's sums, per channel, and its first frame.
    chunk_sums: Vec<LevelSums>,
    chunk_start: u64,
    position: u64,
    clipped: u64,
    chunks: u64,
}

impl Analyzer {
    /// A fresh state for session `session_id`.
    pub fn new(session_id: String, user_id: Option<String>, settings: AnalysisSettings) -> Self {
        Self {
            session_id,
            user_id,
            settings,
            format: None,
            loudness: None,
            silence: None,
            carry: Vec::new(),
            samples: Vec::new(),
            chunk_sums: Vec::new(),
            chunk_start: 0,
            position: 0,
            clipped: 0,
            chunks: 0,
        }
    }

    /// Does `work`, in order; answers the chunks it closed.
    pub fn run(&mut self, work: Vec<Work>) -> Vec<ChunkMetadata> {
        let mut closed = Vec::new();
        for item in work {
            match item {
                Work::Format {
                    sample_rate,
                    layout,
                } => self.start(sample_rate, layout),
                Work::Pcm(bytes) => self.pcm(&bytes),
                Work::DiscardPartial => self.carry.clear(),
                Work::Chunk {
                    seq,
                    bytes,
                    received_at_ms,
                    whole,
                } => closed.push(self.close_chunk(seq, &bytes, whole, received_at_ms)),
            }
        }
        closed
    }

    fn start(&mut self, sample_rate: u32, layout: PcmLayout) {
        let bits = layout.bits_per_sample() as u32;
        self.format = Some((sample_rate, layout));
        // The loudness meter (about 34 KiB) is made with the first audio,
        // so a session that waits for its producer costs no more than
        // before.
        self.loudness = None;
        self.silence = Some(SilenceDetector::new(
            layout.channels,
            sample_rate,
            bits,
            self.settings.silence_threshold_dbfs,
            self.settings.silence_min_ms,
            MAX_SILENCES,
        ));
        self.chunk_sums = vec![LevelSums::default(); layout.channels];
    }

    fn pcm(&mut self, bytes: &[u8]) {
        let Some((_, layout)) = self.format else {
            return;
        };
        let bits = layout.bits_per_sample() as u32;
        let align = layout.block_align();
        self.samples.clear();
        let mut input = bytes;
        if !self.carry.is_empty() {
            let n = (align - self.carry.len()).min(input.len());
            self.carry.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.carry.len() == align {
                let carry = std::mem::take(&mut self.carry);
                push_samples(&carry, layout.bytes_per_sample, &mut self.samples);
            }
        }
        let whole = input.len() / align * align;
        push_samples(&input[..whole], layout.bytes_per_sample, &mut self.samples);
        self.carry.extend_from_slice(&input[whole..]);
        add_frames(&mut self.chunk_sums, &self.samples, bits);
        if self.loudness.is_none() && !self.samples.is_empty() {
            self.loudness =
                LoudnessMeter::new(layout.channels, self.format.map_or(0, |f| f.0), bits);
        }
        if let Some(meter) = self.loudness.as_mut() {
            meter.add(&self.samples);
        }
        if let Some(silence) = self.silence.as_mut() {
            silence.add(&self.samples);
        }
        self.position += (self.samples.len() / layout.channels) as u64;
    }

    fn close_chunk(
        &mut self,
        seq: u64,
        bytes: &[u8],
        whole: Option<WholeUpload>,
        received_at_ms: i64,
    ) -> ChunkMetadata {
        self.chunks += 1;
        let (rate, bits) = self
            .format
            .map_or((0, 16), |(r, l)| (r, l.bits_per_sample() as u32));
        let samples = self.position - self.chunk_start;
        let channels: Vec<ChannelLevels> = if samples == 0 {
            Vec::new()
        } else {
            self.chunk_sums.iter().map(|s| s.levels(bits)).collect()
        };
        self.clipped += channels.iter().map(|c| c.clipped_samples).sum::<u64>();
        let silent = channels.iter().all(|c| {
            c.peak_dbfs
                .is_none_or(|p| p < self.settings.chunk_silence_dbfs)
        });
        let metadata = ChunkMetadata {
            chunk_id: chunk_id(&self.session_id, seq),
            session_id: self.session_id.clone(),
            user_id: self.user_id.clone(),
            seq,
            bytes: whole.map_or(bytes.len() as u64, |w| w.bytes),
            samples,
            start_sample: self.chunk_start,
            duration_ms: if rate == 0 {
                0.0
            } else {
                samples as f64 * 1000.0 / f64::from(rate)
            },
            sha256: match whole {
                Some(w) => hex(&w.sha256),
                None => hex(&Sha256::digest(bytes)),
            },
            channels,
            silent,
            received_at_ms,
        };
        self.chunk_start = self.position;
        for sum in &mut self.chunk_sums {
            *sum = LevelSums::default();
        }
        metadata
    }

    /// The session's analysis now.
    pub fn summary(&self, complete: bool) -> SessionAnalysis {
        let empty = Loudness {
            integrated_lufs: None,
            momentary_lufs: None,
            short_term_lufs: None,
            loudness_range_lu: None,
            true_peak_dbtp: None,
        };
        SessionAnalysis {
            samples: self.position,
            loudness: self
                .loudness
                .as_ref()
                .map_or(empty, LoudnessMeter::loudness),
            silences: self
                .silence
                .as_ref()
                .map(SilenceDetector::silences)
                .unwrap_or_default(),
            silences_dropped: self.silence.as_ref().map_or(0, SilenceDetector::dropped),
            silence_threshold_dbfs: self.settings.silence_threshold_dbfs,
            silence_min_ms: self.settings.silence_min_ms,
            clipped_samples: self.clipped,
            chunks: self.chunks,
            complete,
            source: AnalysisSource::Live,
        }
    }
}

/// A chunk's id: its session's and its number.
pub fn chunk_id(session_id: &str, seq: u64) -> String {
    format!("{session_id}.{seq}")
}

/// The session id and number a chunk id names, if it is one.
pub fn parse_chunk_id(id: &str) -> Option<(uuid::Uuid, u64)> {
    let (session, seq) = id.rsplit_once('.')?;
    Some((uuid::Uuid::parse_str(session).ok()?, seq.parse().ok()?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Little-endian samples of `bps` bytes (8-bit unsigned) to `i32`.
fn push_samples(bytes: &[u8], bps: usize, out: &mut Vec<i32>) {
    match bps {
        1 => out.extend(bytes.iter().map(|&b| i32::from(b) - 128)),
        2 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]]))),
        ),
        3 => out.extend(
            bytes
                .chunks_exact(3)
                .map(|b| i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8),
        ),
        _ => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AnalysisSettings {
        AnalysisSettings {
            threads: Arc::new(Semaphore::new(1)),
            chunk_silence_dbfs: -60.0,
            silence_threshold_dbfs: -60.0,
            silence_min_ms: 500,
        }
    }

    #[test]
    fn chunks_split_mid_frame_count_whole_frames_and_hash_their_bytes() {
        let mut a = Analyzer::new("s".into(), Some("u".into()), settings());
        let layout = PcmLayout {
            channels: 2,
            bytes_per_sample: 3,
        };
        let frames: Vec<i32> = (0..1000)
            .map(|i| (i * 997) % 8_000_000 - 4_000_000)
            .collect();
        let bytes: Vec<u8> = frames
            .iter()
            .flat_map(|s| s.to_le_bytes()[..3].to_vec())
            .collect();
        let (first, second) = bytes.split_at(1001);
        let mut work = vec![Work::Format {
            sample_rate: 8000,
            layout,
        }];
        work.push(Work::Pcm(Bytes::copy_from_slice(first)));
        work.push(Work::Chunk {
            seq: 1,
            bytes: Bytes::copy_from_slice(first),
            received_at_ms: 1,
            whole: None,
        });
        work.push(Work::Pcm(Bytes::copy_from_slice(second)));
        work.push(Work::Chunk {
            seq: 2,
            bytes: Bytes::copy_from_slice(second),
            received_at_ms: 2,
            whole: None,
        });
        let chunks = a.run(work);
        // 1001 bytes = 166 frames of 6 bytes and 5 bytes over.
        assert_eq!((chunks[0].samples, chunks[0].start_sample), (166, 0));
        assert_eq!((chunks[1].samples, chunks[1].start_sample), (334, 166));
        assert_eq!(chunks[1].chunk_id, "s.2");
        assert_eq!(chunks[0].sha256, hex(&Sha256::digest(first)));
        let left: Vec<i32> = frames[..332].iter().step_by(2).copied().collect();
        let peak = left.iter().map(|s| s.unsigned_abs()).max().unwrap();
        let expected = 20.0 * (f64::from(peak) / 8_388_608.0).log10();
        assert!((chunks[0].channels[0].peak_dbfs.unwrap() - expected).abs() < 1e-9);
        assert_eq!(a.summary(false).samples, 500);
        assert_eq!(
            parse_chunk_id("0f8e51a2-3c4d-4e5f-9a6b-7c8d9e0f1a2b.12").map(|c| c.1),
            Some(12)
        );
        assert_eq!(parse_chunk_id("nope.1"), None);
    }
}
