//! The encoder actor: turns one block of PCM into one FLAC frame on a
//! dedicated thread, under supervision.
//!
//! actix gives no supervision for sync actors: a panic inside a `SyncArbiter`
//! handler kills that thread for good, and `Supervisor` restarts only actors
//! that stop. So supervision is built here: the handler catches a panic, fails
//! only that job ([`EncodeFailure::Panicked`]), counts it, and stops the
//! actor, which makes the `SyncArbiter` build a fresh one (new buffers, no
//! state from the failed job) on the same thread.

pub mod pool;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, ActorContext, Handler, Message, SyncContext};
use flacstream_codec::flac::{EncodedFrame, EncoderLevel, FlacError, FrameEncoder, StreamFormat};

use crate::metrics::{ENCODER_RESTARTS, ENCODE_SECONDS};
use pool::PoolStats;

/// With the `fault-injection` feature, a block whose first samples are these
/// makes the encoder panic. Tests use it to prove supervision end to end.
pub const POISON_BLOCK_PREFIX: [i32; 4] = [0x1DEA, -0x1DEA, 0x0BAD, -0x0BAD];

/// An encoder thread's actor; see the module docs.
pub struct Encoder {
    frames: FrameEncoder,
    stats: Arc<PoolStats>,
}

impl Encoder {
    /// A fresh encoder reporting to `stats`.
    pub fn new(stats: Arc<PoolStats>) -> Self {
        Self {
            frames: FrameEncoder::new(),
            stats,
        }
    }
}

impl Actor for Encoder {
    type Context = SyncContext<Self>;
}

/// Encode one block as one frame.
#[derive(Message)]
#[rtype(result = "Result<EncodedFrame, EncodeFailure>")]
pub struct EncodeBlock {
    /// The stream's fixed parameters.
    pub format: StreamFormat,
    /// Compression level.
    pub level: EncoderLevel,
    /// FLAC frame number (the block's index in the stream).
    pub frame_number: u32,
    /// Interleaved samples: whole sample frames, at most one block.
    pub samples: Vec<i32>,
    /// The pool queue slot this job holds; set by [`pool::EncoderPool::encode`].
    /// It is freed when the message is dropped, after encoding or when actix
    /// discards a cancelled job, so the queue bound holds either way.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Why a block was not encoded. `Send`, unlike flacenc's own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeFailure {
    /// The encoder refused the block.
    #[error(transparent)]
    Rejected(#[from] FlacError),
    /// The encoder panicked; it has been replaced.
    #[error("the encoder panicked on this block and was restarted")]
    Panicked,
    /// The pool has shut down.
    #[error("the encoder pool is not running")]
    PoolGone,
}

/// Encodes one block, catching any panic (see the module docs).
impl Handler<EncodeBlock> for Encoder {
    type Result = Result<EncodedFrame, EncodeFailure>;

    fn handle(&mut self, msg: EncodeBlock, ctx: &mut SyncContext<Self>) -> Self::Result {
        let started = Instant::now();
        let frames = &mut self.frames;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            inject_fault(&msg.samples);
            frames.encode(&msg.format, msg.level, msg.frame_number, &msg.samples)
        }));
        let elapsed = started.elapsed();
        metrics::histogram!(ENCODE_SECONDS).record(elapsed);
        let nanos = elapsed.as_nanos() as u64;
        self.stats.encode_nanos.fetch_add(nanos, Ordering::Relaxed);
        match outcome {
            Ok(Ok(frame)) => {
                self.stats.blocks_encoded.fetch_add(1, Ordering::Relaxed);
                Ok(frame)
            }
            Ok(Err(e)) => Err(EncodeFailure::Rejected(e)),
            Err(_) => {
                self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(ENCODER_RESTARTS).increment(1);
                log::error!(
                    "Encoder panicked on frame {}; restarting it.",
                    msg.frame_number
                );
                // Stopping a sync actor makes its SyncArbiter thread build a
                // new one from the factory: that is the restart.
                ctx.stop();
                Err(EncodeFailure::Panicked)
            }
        }
    }
}

#[cfg(feature = "fault-injection")]
fn inject_fault(samples: &[i32]) {
    if samples.starts_with(&POISON_BLOCK_PREFIX) {
        panic!("injected encoder fault");
    }
}

#[cfg(not(feature = "fault-injection"))]
fn inject_fault(_samples: &[i32]) {}
