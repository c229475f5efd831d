//! How a session in scaled mode makes its frames durable in object storage
//! and ends there: segment writes and their retries, the final compose, a
//! handover to another replica, and stopping when it has moved.

use actix::fut::wrap_future;
use actix::{
    ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture,
};
use std::sync::Arc;

use flacstream_codec::flac::{STREAMINFO_BYTES, STREAMINFO_OFFSET};
use tokio::sync::oneshot;

use super::segment_writer::SegmentWrite;
use super::{DoneSummary, Outbound, Session, SessionClosed};
use crate::metrics::{LABEL_CODE, SEGMENTS_WRITTEN, SEGMENT_WRITE_FAILURES, STREAMS_FAILED};
use crate::object_recordings::{Composed, ObjectError};
use crate::store::{ReleaseLease, Save, SessionStatus};
use crate::StreamError;

/// Bytes of the stream header before the first frame.
const STREAM_HEADER_BYTES: u64 = (STREAMINFO_OFFSET + STREAMINFO_BYTES) as u64;

/// Longest the final compose is retried while storage refuses it, in
/// seconds; after that the session is left `live` for another replica's
/// orphan sweep, which composes it when storage is back.
const COMPOSE_RETRY_SECONDS: u64 = 60;

/// How often a container session whose replica's lease clock lapsed (the
/// database slow or away) looks again before writing its next segment. It
/// cannot move to another replica as other sessions do (its decoder's
/// state is here), so it waits: its producer is slowed meanwhile, and a
/// write that finds the session taken (`Superseded`) ends it.
const LEASE_LAPSE_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Hand the session over: make everything received durable, then stop
/// without finalizing, so that another replica can continue it. Answers
/// the samples per channel durable, or `SessionClosed` if it ended first.
#[derive(Message)]
#[rtype(result = "Result<u64, SessionClosed>")]
pub struct HandOver;

/// Stops taking input, flushes, answers once every frame is durable.
impl Handler<HandOver> for Session {
    type Result = ResponseFuture<Result<u64, SessionClosed>>;

    fn handle(&mut self, _msg: HandOver, ctx: &mut Self::Context) -> Self::Result {
        if self.finished {
            return Box::pin(async { Err(SessionClosed) });
        }
        if self.settings.input.is_decoded() {
            // Its decoder's state cannot move: the session is finalized
            // here with everything it took (the requester, a close through
            // another replica, then finds it closed).
            log::info!(
                "Session {}: a container session cannot move; finalized instead.",
                self.id
            );
            self.begin_end(super::EndReason::Closed, ctx);
            return Box::pin(async { Err(SessionClosed) });
        }
        if self.segments.is_none() {
            if self.policy().is_some_and(|p| p.objects.is_some()) {
                // Nothing of it is durable yet (a WAV header still to come):
                // it moves as it is, and its producer starts it again.
                self.stop_moved(ctx);
                return Box::pin(async { Ok(0) });
            }
            return Box::pin(async { Err(SessionClosed) });
        }
        let (tx, rx) = oneshot::channel();
        self.handover.push(tx);
        if self.ending.is_none() {
            self.drop_producer_input();
            self.handing_over = true;
        }
        self.flush_recording(ctx);
        self.pump(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(SessionClosed)) })
    }
}

impl Session {
    /// Cuts and writes the next segment, if one is due.
    pub(super) fn flush_segments(&mut self, ctx: &mut Context<Self>) {
        // While the FLAC is composed nothing more is written: a segment
        // landing after the compose read the list would be left out.
        if self.finished || self.finalizing {
            return;
        }
        let force = self.ending.is_some() || self.handing_over;
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        let (format, stats) = (stream.format, stream.stats);
        let frame_bytes = stream.bytes_out.saturating_sub(STREAM_HEADER_BYTES);
        let Some(writer) = self.segments.as_mut() else {
            return;
        };
        if writer.is_writing() {
            return;
        }
        if !writer.sink.lease.valid() && !writer.is_idle() {
            // Another replica may own the session by now: write nothing.
            if self.settings.input.is_decoded() {
                // Its decoder cannot move: wait for the renewals to hold
                // again (a write then finds out whether it is still ours).
                ctx.run_later(LEASE_LAPSE_RETRY, |act, ctx| {
                    act.flush_recording(ctx);
                    act.pump(ctx);
                });
                return;
            }
            return self.moved(ctx);
        }
        if let Some(write) = writer.next_write(force, format, &stats, frame_bytes) {
            self.put_segment(write, ctx);
        }
    }

    fn put_segment(&mut self, write: SegmentWrite, ctx: &mut Context<Self>) {
        let Some(writer) = self.segments.as_ref() else {
            return;
        };
        let recordings = writer.sink.recordings.clone();
        let id = self.id;
        let put = async move {
            match recordings
                .put_segment(id, write.seq, &write.header, write.frames)
                .await
            {
                // The name is taken: by this very write if an earlier try
                // reached storage but its answer was lost, else by another
                // replica.
                Err(ObjectError::Superseded) => {
                    match recordings.segment_header(id, write.seq).await {
                        Ok(h) if h == write.header => Ok(()),
                        _ => Err(ObjectError::Superseded),
                    }
                }
                other => other,
            }
        };
        let done = wrap_future::<_, Self>(put).map(|result, act, ctx| {
            if act.finished {
                return;
            }
            match result {
                Ok(()) => {
                    metrics::counter!(SEGMENTS_WRITTEN).increment(1);
                    let recovered = act.segments.as_mut().is_some_and(|w| w.written());
                    if recovered {
                        log::info!("Session {}: object storage takes writes again.", act.id);
                        act.storage_notice(true);
                    }
                    act.flush_recording(ctx);
                    act.pump(ctx);
                }
                Err(ObjectError::Superseded) => act.moved(ctx),
                Err(e) => {
                    metrics::counter!(SEGMENT_WRITE_FAILURES).increment(1);
                    let Some(w) = act.segments.as_mut() else {
                        return;
                    };
                    let wait = w.retry.refused();
                    if w.retry.failures() == 1 {
                        log::warn!(
                            "Session {}: object storage refused a segment ({e}); retrying, samples_durable stays at {}.",
                            act.id,
                            w.durable_samples()
                        );
                        act.storage_notice(false);
                    }
                    ctx.run_later(wait, |act, ctx| act.retry_segment(ctx));
                }
            }
        });
        ctx.spawn(done);
    }

    fn retry_segment(&mut self, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        let Some(writer) = self.segments.as_ref() else {
            return;
        };
        if !writer.sink.lease.valid() {
            if self.settings.input.is_decoded() {
                // As in `flush_segments`: a container session waits.
                ctx.run_later(LEASE_LAPSE_RETRY, |act, ctx| act.retry_segment(ctx));
                return;
            }
            return self.moved(ctx);
        }
        if let Some(write) = writer.retry() {
            self.put_segment(write, ctx);
        }
    }

    /// Tells the producer that storage refuses writes, or takes them again.
    pub(super) fn storage_notice(&mut self, available: bool) {
        let samples_durable = self.samples_durable();
        self.fanout.notify_producer(Outbound::Storage {
            available,
            samples_durable,
        });
    }

    /// Whether a handover may finish: nothing in flight, everything durable.
    pub(super) fn finish_handover_if_drained(&mut self, ctx: &mut Context<Self>) {
        let encoding = self
            .stream
            .as_ref()
            .is_some_and(|s| !s.in_flight.is_empty());
        let idle = self.segments.as_ref().is_none_or(|w| w.is_idle());
        if encoding || !idle {
            return self.flush_recording(ctx);
        }
        let durable = self.samples_durable();
        log::info!(
            "Session {} handed over at {durable} durable samples.",
            self.id
        );
        self.release_lease();
        for tx in self.handover.drain(..) {
            let _ = tx.send(Ok(durable));
        }
        self.stop_moved(ctx);
    }

    /// Another replica owns the session now: stop without finalizing.
    pub(super) fn moved(&mut self, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        log::info!("Session {} moved to another replica.", self.id);
        self.stop_moved(ctx);
    }

    fn stop_moved(&mut self, ctx: &mut Context<Self>) {
        metrics::counter!(STREAMS_FAILED, LABEL_CODE => StreamError::Moved.code()).increment(1);
        // What was measured here is kept; the session goes on unmeasured.
        self.save_measures(false);
        // If this replica still holds the lease, give it up (the delete
        // names the owner, so another's lease is untouched): a row left
        // behind would be renewed forever and the session never swept.
        self.release_lease();
        self.finished = true;
        self.fanout
            .finish_all(&Outbound::Failed(StreamError::Moved));
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(SessionClosed));
        }
        for tx in self.handover.drain(..) {
            let _ = tx.send(Err(SessionClosed));
        }
        ctx.stop();
    }

    /// Gives the session's lease up, so another replica may take it at once.
    pub(super) fn release_lease(&self) {
        if let Some((policy, sink)) = self
            .policy()
            .and_then(|p| p.objects.as_ref().map(|sink| (p, sink)))
        {
            policy.store.do_send(ReleaseLease {
                id: self.id,
                owner: sink.replica.clone(),
            });
        }
    }

    /// Composes the final FLAC from the segments, then ends with `then`
    /// (a normal end, or a failure whose record keeps what was durable).
    pub(super) fn compose_then(
        &mut self,
        then: impl FnOnce(&mut Self, Option<Composed>, &mut Context<Self>) + 'static,
        ctx: &mut Context<Self>,
    ) {
        let Some(writer) = self.segments.as_ref() else {
            return then(self, None, ctx);
        };
        self.finalizing = true;
        let recordings = writer.sink.recordings.clone();
        let fence = writer.sink.shared.then(|| Arc::clone(&writer.sink.lease));
        let id = self.id;
        let compose = async move {
            let deadline =
                tokio::time::Instant::now() + std::time::Duration::from_secs(COMPOSE_RETRY_SECONDS);
            let mut wait = std::time::Duration::from_millis(200);
            loop {
                match recordings.compose(id, fence.as_deref()).await {
                    Ok(composed) => return Ok(composed),
                    Err(e @ (ObjectError::Inconsistent(_) | ObjectError::Superseded)) => {
                        return Err(e)
                    }
                    Err(e) if tokio::time::Instant::now() + wait > deadline => return Err(e),
                    Err(e) => {
                        log::warn!("Session {id}: composing its FLAC failed ({e}); retrying.");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            }
        };
        let done = wrap_future::<_, Self>(compose).map(move |result, act, ctx| match result {
            Ok(composed) => then(act, composed, ctx),
            Err(ObjectError::Superseded) => act.moved(ctx),
            Err(e) => {
                // The segments stay, and so does the `live` record: the
                // orphan sweep composes it once storage is back.
                log::error!("Session {}: cannot compose its FLAC: {e}.", act.id);
                act.release_lease();
                metrics::counter!(STREAMS_FAILED, LABEL_CODE => "storage").increment(1);
                act.finished = true;
                act.fanout
                    .finish_all(&Outbound::Failed(StreamError::Storage(e.to_string())));
                if let Some(reply) = act.reply.take() {
                    let _ = reply.send(Err(SessionClosed));
                }
                ctx.stop();
            }
        });
        ctx.spawn(done);
    }

    /// Ends normally once the FLAC is composed: the summary's totals and MD5
    /// are the composed STREAMINFO's.
    pub(super) fn end_composed(&mut self, mut summary: DoneSummary, ctx: &mut Context<Self>) {
        self.compose_then(
            move |act, composed, ctx| {
                if let Some(c) = composed {
                    summary.samples = c.info.total_samples;
                    summary.md5 = c.info.md5;
                    summary.streaminfo = c.info.to_bytes();
                }
                act.end(summary, ctx);
            },
            ctx,
        );
    }

    /// Fails with what is durable composed and recorded.
    pub(super) fn fail_composed(&mut self, error: StreamError, ctx: &mut Context<Self>) {
        self.compose_then(
            move |act, composed, ctx| {
                let mut record = act.record(SessionStatus::Failed, Some(&error));
                if let Some(r) = record.as_mut() {
                    r.samples = composed.as_ref().map_or(0, |c| c.info.total_samples);
                    if composed.is_none() {
                        r.file = None;
                    }
                }
                act.close_with(
                    record.map(|record| Save { record }),
                    Outbound::Failed(error),
                    ctx,
                );
            },
            ctx,
        );
    }

    /// After the final save: the segments are no longer needed.
    pub(super) fn delete_segments(&self) {
        if let Some(writer) = self.segments.as_ref() {
            let recordings = writer.sink.recordings.clone();
            let id = self.id;
            actix::spawn(async move {
                if let Err(e) = recordings.delete_segments(id).await {
                    log::warn!(
                        "Session {id}: its segments were not deleted ({e}); the sweep will."
                    );
                }
            });
        }
    }
}
