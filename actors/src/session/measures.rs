//! A recorded session's measuring (`crate::chunk_analysis`): the session
//! queues what it staged and each chunk it acknowledged; one batch at a
//! time runs on a blocking thread, holding a place of the shared analysis
//! pool (`AnalysisSettings::threads`), with the analyzer moved there and
//! back, so the I/O threads only queue. A producer that outruns the
//! analysis by [`MAX_CHUNKS_QUEUED`] chunks waits for its ack.
//!
//! Results go three ways: to connections that asked for them
//! (`metadata=chunk`), to the catalog with the session's progress saves
//! (and at its end), and into the live analysis the session JSON shows.
//! A panic inside the analysis turns the session's measuring off; its
//! audio goes on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Context};
use bytes::Bytes;
use flacstream_codec::pcm::PcmLayout;
use futures_util::future::{join_all, LocalBoxFuture};
use futures_util::FutureExt;

use super::Session;
use crate::chunk_analysis::{
    chunk_id, Analyzer, ChunkMetadata, SessionAnalysis, WholeUpload, Work,
};
use crate::store::{SaveAnalysis, SaveChunks};

/// Acknowledged chunks a session may have waiting for the analysis; past
/// this its producer's next ack waits (backpressure), so a fast producer
/// cannot queue without bound.
pub const MAX_CHUNKS_QUEUED: usize = 64;

/// PCM a session may have waiting for the analysis, in bytes; past this
/// its producer's next ack waits and a container's decoder is not read
/// (its output arrives between acks): 4 MiB is 24 s of CD audio.
pub const MAX_PCM_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// A session's measuring state.
#[derive(Default)]
pub struct Measures {
    /// The analyzer; `None` while a batch runs (or measuring is off).
    analyzer: Option<Box<Analyzer>>,
    /// Whether the session measures at all.
    enabled: bool,
    queue: Vec<Work>,
    /// Chunks in `queue` and in the running batch.
    chunks_pending: usize,
    /// PCM bytes in `queue` and in the running batch.
    pcm_pending: usize,
    running: bool,
    /// Chunk metadata not yet handed to the catalog.
    unsaved: Vec<ChunkMetadata>,
    /// The latest analysis.
    summary: Option<SessionAnalysis>,
    /// An upload's body, closed as one chunk when its input ends.
    whole: Option<WholeUpload>,
    /// The final saves, awaited before the session's last message: a
    /// client that reads the catalog after `done` finds every chunk (the
    /// store is a pool, so a save only sent could still be running).
    final_saves: Vec<LocalBoxFuture<'static, ()>>,
}

impl Measures {
    /// What session `id` of `kind` measures: a recorded session with
    /// analysis settings does, anything else nothing.
    pub fn for_session(id: crate::session_id::SessionId, kind: &super::SessionKind) -> Self {
        let super::SessionKind::Recording(policy) = kind else {
            return Self::default();
        };
        let Some(settings) = policy.analysis.clone() else {
            return Self::default();
        };
        let analyzer = Analyzer::new(id.to_string(), policy.user_id.clone(), settings);
        Self {
            analyzer: Some(Box::new(analyzer)),
            enabled: true,
            whole: policy.whole_upload,
            ..Self::default()
        }
    }

    /// Whether each message is a chunk (not an upload's feed step).
    pub fn per_message(&self) -> bool {
        self.enabled && self.whole.is_none()
    }

    /// Whether a batch runs or work waits.
    pub fn busy(&self) -> bool {
        self.enabled && (self.running || !self.queue.is_empty())
    }

    /// Whether the producer's next ack must wait for the analysis.
    pub fn full(&self) -> bool {
        self.enabled
            && (self.chunks_pending >= MAX_CHUNKS_QUEUED
                || self.pcm_pending >= MAX_PCM_QUEUED_BYTES)
    }

    fn push(&mut self, work: Work) {
        if self.enabled {
            self.queue.push(work);
        }
    }
}

impl Session {
    /// The stream's format is known.
    pub(super) fn measure_format(&mut self, sample_rate: u32, layout: PcmLayout) {
        self.measures.push(Work::Format {
            sample_rate,
            layout,
        });
    }

    /// `bytes` of PCM were staged.
    pub(super) fn measure_pcm(&mut self, bytes: Bytes) {
        if !bytes.is_empty() && self.measures.enabled {
            self.measures.pcm_pending += bytes.len();
            self.measures.push(Work::Pcm(bytes));
        }
    }

    /// A partial sample frame was dropped with its producer.
    pub(super) fn measure_discard_partial(&mut self) {
        self.measures.push(Work::DiscardPartial);
    }

    /// Chunk `seq` (`bytes` as received) is acknowledged (or was taken
    /// and its producer left first); its id, when the session measures.
    /// The batch starts at the end of the session's pump.
    pub(super) fn measure_chunk(&mut self, seq: u64, bytes: Bytes) -> Option<String> {
        if !self.measures.per_message() {
            return None;
        }
        self.measures.push(Work::Chunk {
            seq,
            bytes,
            received_at_ms: crate::store::now_ms(),
            whole: None,
        });
        self.measures.chunks_pending += 1;
        Some(chunk_id(&self.id.to_string(), seq))
    }

    /// An upload's input has ended: its body closes as its one chunk.
    pub(super) fn measure_whole_upload(&mut self) {
        if let Some(whole) = self.measures.whole.take() {
            if self.measures.enabled {
                self.measures.queue.push(Work::Chunk {
                    seq: 1,
                    bytes: Bytes::new(),
                    received_at_ms: crate::store::now_ms(),
                    whole: Some(whole),
                });
                self.measures.chunks_pending += 1;
            }
        }
    }

    /// Starts the next batch if none runs.
    pub(super) fn run_measures(&mut self, ctx: &mut Context<Self>) {
        if self.measures.running || self.measures.queue.is_empty() {
            return;
        }
        let Some(places) = self.policy().and_then(|p| p.analysis.clone()) else {
            return;
        };
        let Some(mut analyzer) = self.measures.analyzer.take() else {
            return;
        };
        let work = std::mem::take(&mut self.measures.queue);
        let chunks = work
            .iter()
            .filter(|w| matches!(w, Work::Chunk { .. }))
            .count();
        let pcm: usize = work
            .iter()
            .map(|w| match w {
                Work::Pcm(b) => b.len(),
                _ => 0,
            })
            .sum();
        let complete = self.finished || self.ending.is_some();
        self.measures.running = true;
        let job = async move {
            let place = places.threads.acquire_owned().await.ok()?;
            tokio::task::spawn_blocking(move || {
                // Held here, so the place is free only once the work is
                // done, even if the session stopped waiting for it.
                let _place = place;
                catch_unwind(AssertUnwindSafe(move || {
                    let closed = analyzer.run(work);
                    let summary = analyzer.summary(complete);
                    (analyzer, closed, summary)
                }))
                .ok()
            })
            .await
            .ok()
            .flatten()
        };
        let done = wrap_future::<_, Self>(job).map(move |result, act, ctx| {
            act.measures.running = false;
            act.measures.chunks_pending = act.measures.chunks_pending.saturating_sub(chunks);
            act.measures.pcm_pending = act.measures.pcm_pending.saturating_sub(pcm);
            let Some((analyzer, closed, summary)) = result else {
                log::error!("Session {}: the analysis failed; measuring is off.", act.id);
                act.measures.enabled = false;
                act.measures.queue.clear();
                act.measures.chunks_pending = 0;
                act.measures.pcm_pending = 0;
                act.pump(ctx);
                return;
            };
            act.measures.analyzer = Some(analyzer);
            for chunk in &closed {
                act.fanout.metadata(&Arc::new(chunk.clone()));
            }
            act.measures.unsaved.extend(closed);
            act.measures.summary = Some(summary);
            act.run_measures(ctx);
            act.pump(ctx);
        });
        ctx.spawn(done);
    }

    /// Hands unsaved chunk metadata and the analysis to the catalog. The
    /// final saves (`complete`) are kept for [`Session::measures_saved`].
    pub(super) fn save_measures(&mut self, complete: bool) {
        let Some(store) = self.policy().map(|p| p.store.clone()) else {
            return;
        };
        if !self.measures.unsaved.is_empty() {
            let save = SaveChunks {
                id: self.id,
                chunks: std::mem::take(&mut self.measures.unsaved),
            };
            if complete {
                let sent = store.send(save);
                self.measures
                    .final_saves
                    .push(sent.map(|_| ()).boxed_local());
            } else {
                store.do_send(save);
            }
        }
        if let Some(summary) = self.measures.summary.as_mut() {
            summary.complete = complete;
            let save = SaveAnalysis {
                id: self.id,
                analysis: summary.clone(),
            };
            if complete {
                let sent = store.send(save);
                self.measures
                    .final_saves
                    .push(sent.map(|_| ()).boxed_local());
            } else {
                store.do_send(save);
            }
        }
    }

    /// Resolves once the final saves are done (failures are logged by the
    /// store).
    pub(super) fn measures_saved(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        join_all(std::mem::take(&mut self.measures.final_saves)).map(|_| ())
    }
}
