//! The encoder pool: [`Encoder`] actors on dedicated threads behind a
//! bounded queue.
//!
//! actix's `SyncArbiter` forwards into an unbounded queue, so the bound is
//! kept here: a job first takes one of `queue_capacity` permits and returns it
//! when its frame comes back. Sessions also cap their own blocks in flight, so
//! one session cannot take every slot.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::{Addr, SyncArbiter};
use flacstream_codec::flac::EncodedFrame;
use tokio::sync::Semaphore;

use super::{EncodeBlock, EncodeFailure, Encoder};

/// Default jobs queued or running across the pool, per encoder thread.
pub const DEFAULT_QUEUE_PER_THREAD: usize = 64;

/// Counters shared by every encoder thread (read by tests and metrics).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Blocks encoded successfully.
    pub blocks_encoded: AtomicU64,
    /// Encoders restarted after a panic.
    pub restarts: AtomicU64,
    /// Time spent encoding, in nanoseconds.
    pub encode_nanos: AtomicU64,
}

impl PoolStats {
    /// Encoders restarted after a panic so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

/// A cheap-to-clone handle to the pool.
#[derive(Clone)]
pub struct EncoderPool {
    addr: Addr<Encoder>,
    slots: Arc<Semaphore>,
    stats: Arc<PoolStats>,
    threads: usize,
}

impl EncoderPool {
    /// Starts `threads` encoder threads (at least one) with room for
    /// `queue_capacity` jobs (at least one) queued or running. Must be called
    /// inside an actix system.
    pub fn start(threads: usize, queue_capacity: usize) -> Self {
        let threads = threads.max(1);
        let stats = Arc::new(PoolStats::default());
        let factory_stats = Arc::clone(&stats);
        let addr = SyncArbiter::start(threads, move || Encoder::new(Arc::clone(&factory_stats)));
        Self {
            addr,
            slots: Arc::new(Semaphore::new(queue_capacity.max(1))),
            stats,
            threads,
        }
    }

    /// Encoder threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The pool's counters.
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }

    /// Jobs that could still be queued right now without waiting.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Encodes one block; waits for a queue slot first.
    pub fn encode(
        &self,
        job: EncodeBlock,
    ) -> impl Future<Output = Result<EncodedFrame, EncodeFailure>> + 'static {
        let slots = Arc::clone(&self.slots);
        let addr = self.addr.clone();
        async move {
            let permit = slots
                .acquire_owned()
                .await
                .map_err(|_| EncodeFailure::PoolGone)?;
            let job = EncodeBlock {
                permit: Some(permit),
                ..job
            };
            addr.send(job).await.map_err(|_| EncodeFailure::PoolGone)?
        }
    }
}
