//! How a session ends: finalize, idle timeout, shutdown, the resume window,
//! and what is saved to the catalog.

use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture,
};
use flacstream_codec::flac::StreamInfo;
use tokio::sync::oneshot;

use super::{DoneSummary, EndReason, Outbound, Session, SessionClosed, SessionKind};
use crate::metrics::{LABEL_CODE, LABEL_REASON, STREAMS_FAILED, STREAMS_FINISHED};
use crate::object_recordings::ObjectRecordings;
use crate::store::{
    now_ms, FinalizeRecording, Save, SaveFinal, SessionRecord, SessionStatus, Settle,
};
use crate::StreamError;

/// Finalize the session (HTTP `close`); answers once it has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finalize;

/// Ends input now and waits for the session to stop.
impl Handler<Finalize> for Session {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Finalize, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.begin_end(EndReason::Closed, ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Sent by the registry when no audio arrived for the idle timeout.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IdleTimeout {
    /// The timeout that passed, for the error message.
    pub after_seconds: u64,
}

/// A `/stream` session fails; a recorded session drops its idle producer
/// (it may resume) and keeps running. A session that is finishing, or whose
/// producer is waiting on backpressure, is left alone.
impl Handler<IdleTimeout> for Session {
    type Result = ();

    fn handle(&mut self, msg: IdleTimeout, ctx: &mut Self::Context) {
        // Audio may have arrived since the registry's sweep looked.
        let still_idle = self.activity.idle_for() >= Duration::from_secs(msg.after_seconds);
        if self.ending.is_some() || self.reply.is_some() || !still_idle {
            return;
        }
        let error = StreamError::IdleTimeout(msg.after_seconds);
        match (&self.kind, self.fanout.producer()) {
            (SessionKind::Stream, _) => self.fail(error, ctx),
            (SessionKind::Recording(_), Some(producer)) => {
                self.remove_connection(producer, Some(error), ctx)
            }
            (SessionKind::Recording(_), None) => {}
        }
    }
}

/// The last store call of a session.
enum Settlement {
    /// Save the final record.
    Save(Save),
    /// Repair the recording, then save the record with its totals.
    Settle(Settle),
}

/// Sent by the registry when a drain's grace period is over: flush what was
/// received and end with "going away".
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Ends input now and finishes with what was received.
impl Handler<Shutdown> for Session {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        if self.hand_over_for_drain(ctx) {
            return;
        }
        self.ending = Some(EndReason::GoingAway);
        self.pump(ctx);
    }
}

/// Sent by the registry when a drain starts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainStarted;

/// In scaled mode a recorded session hands over at once; any other session
/// runs on into the grace period.
impl Handler<DrainStarted> for Session {
    type Result = ();

    fn handle(&mut self, _msg: DrainStarted, ctx: &mut Self::Context) {
        self.hand_over_for_drain(ctx);
    }
}

impl Session {
    /// Scaled mode: hands the session over instead of ending it, so its
    /// producer resumes the same session on another replica. Whether it did.
    fn hand_over_for_drain(&mut self, ctx: &mut Context<Self>) -> bool {
        let shared = self.segments.as_ref().is_some_and(|w| w.sink.shared);
        // A container session's decoder cannot move: it runs on into the
        // grace period and is finalized as on one node.
        if !shared || self.ending.is_some() || self.finished || self.settings.input.is_decoded() {
            return false;
        }
        if !self.handing_over {
            self.drop_producer_input();
            self.handing_over = true;
        }
        self.flush_recording(ctx);
        self.pump(ctx);
        true
    }

    /// The catalog record as things stand.
    pub(super) fn record(
        &self,
        status: SessionStatus,
        error: Option<&StreamError>,
    ) -> Option<SessionRecord> {
        let policy = self.policy()?;
        let format = self.stream.as_ref().map(|s| s.format);
        Some(SessionRecord {
            id: self.id,
            user_id: policy.user_id.clone(),
            owner_key: policy.owner_key.clone(),
            status,
            encoding: policy.encoding.clone(),
            sample_rate: format.map(|f| f.sample_rate),
            channels: format.map(|f| f.layout.channels as u16),
            bits_per_sample: format.map(|f| f.layout.bits_per_sample() as u16),
            level: self.settings.level.get(),
            block_size: format.map(|f| f.block_size as u32),
            record: policy.record,
            chunk_count: self.chunk_count,
            samples: self.samples_received(),
            bytes_in: self.bytes_in,
            bytes_out: self.stream.as_ref().map_or(0, |s| s.bytes_out),
            created_at_ms: self.created_at_ms,
            updated_at_ms: now_ms(),
            closed_at_ms: (status != SessionStatus::Live).then(now_ms),
            file: match (&self.recorder, &self.segments) {
                (Some(r), _) => Some(r.relative.clone()),
                (None, Some(_)) => Some(ObjectRecordings::final_key(self.id)),
                (None, None) => None,
            },
            error: error.map(|e| e.code().to_string()),
        })
    }

    pub(super) fn save_progress(&mut self) {
        self.save_measures(false);
        if let (Some(policy), Some(record)) =
            (self.policy(), self.record(SessionStatus::Live, None))
        {
            policy.store.do_send(Save { record });
        }
    }

    pub(super) fn finish_if_drained(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        if self.live.busy() {
            // The decoder still has input to take or audio to give.
            return;
        }
        let Some(stream) = self.stream.as_ref() else {
            let error = match (reason, self.parser.finish()) {
                (EndReason::GoingAway, _) => StreamError::ShuttingDown,
                // A container that ended before its first audio.
                _ if self.settings.input.is_decoded() => {
                    StreamError::Media(flacstream_codec::media::MediaError::Truncated)
                }
                (_, Err(e)) => e.into(),
                (_, Ok(())) => StreamError::BadMessage("no WAV header arrived".into()),
            };
            if self.policy().is_some() && self.chunk_count == 0 {
                // A recorded session that never received audio just ends.
                return self.end_empty(reason, ctx);
            }
            return self.fail(error, ctx);
        };
        let recording_busy = self.recorder.as_ref().is_some_and(|r| !r.is_idle())
            || self.segments.as_ref().is_some_and(|w| !w.is_idle());
        if !self.audio.is_empty()
            || !self.input.is_empty()
            || stream.staging.staged() > 0
            || !stream.in_flight.is_empty()
            || recording_busy
        {
            return;
        }
        self.measure_whole_upload();
        if self.measures.busy() {
            // The analysis has the last of the audio still to measure.
            return self.run_measures(ctx);
        }
        self.save_measures(true);
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        let info = StreamInfo {
            format: stream.format,
            min_frame_bytes: stream.stats.min_frame_bytes,
            max_frame_bytes: stream.stats.max_frame_bytes,
            total_samples: stream.samples(),
            // In scaled mode the digest may have begun on another replica.
            md5: self
                .segments
                .as_ref()
                .map_or_else(|| stream.decoder.md5_digest(), |w| w.md5()),
        };
        let summary = DoneSummary {
            session_id: self.id,
            samples: info.total_samples,
            md5: info.md5,
            streaminfo: info.to_bytes(),
            dropped_bytes: stream.decoder.pending_bytes(),
            frames: stream.stats.frames,
            verbatim_frames: stream.stats.verbatim_fallbacks,
            bytes_in: self.bytes_in,
            bytes_out: stream.bytes_out,
            sample_rate: stream.format.sample_rate,
            channels: stream.format.layout.channels,
            bits_per_sample: stream.format.layout.bits_per_sample(),
            source: self.settings.source,
            reason,
        };
        if self.segments.is_some() {
            return self.end_composed(summary, ctx);
        }
        let file = self.recorder.as_ref().and_then(|r| r.file().cloned());
        match (self.policy().map(|p| p.store.clone()), file) {
            (Some(store), Some(file)) => {
                self.finalizing = true;
                let finalize = FinalizeRecording {
                    file,
                    streaminfo: summary.streaminfo,
                };
                let done =
                    wrap_future::<_, Self>(store.send(finalize)).map(move |result, act, ctx| {
                        match result {
                            Ok(Ok(())) => act.end(summary, ctx),
                            Ok(Err(e)) => act.fail(StreamError::Storage(e.to_string()), ctx),
                            Err(e) => act.fail(StreamError::Storage(e.to_string()), ctx),
                        }
                    });
                ctx.spawn(done);
            }
            _ => self.end(summary, ctx),
        }
    }

    /// Ends normally: the final record is saved, then every connection
    /// gets `done` (so a client that reads the catalog after `done` finds it
    /// closed, and a drain that waits for sessions waits for their saves).
    pub(super) fn end(&mut self, summary: DoneSummary, ctx: &mut Context<Self>) {
        log::info!(
            "Session {} done ({}): {} samples in {} frames.",
            self.id,
            summary.reason.as_str(),
            summary.samples,
            summary.frames
        );
        metrics::counter!(STREAMS_FINISHED, LABEL_REASON => summary.reason.as_str()).increment(1);
        self.finished = true;
        let save = self
            .record(SessionStatus::Closed, None)
            .map(|record| Save { record });
        self.settle_then_close(save.map(Settlement::Save), Outbound::Done(summary), ctx);
    }

    /// Ends a recorded session that never got audio.
    pub(super) fn end_empty(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        log::info!(
            "Session {} ended without audio ({}).",
            self.id,
            reason.as_str()
        );
        metrics::counter!(STREAMS_FINISHED, LABEL_REASON => reason.as_str()).increment(1);
        self.finished = true;
        let save = self
            .record(SessionStatus::Closed, None)
            .map(|record| Save { record });
        let event = Outbound::Failed(StreamError::BadMessage(
            "the session ended before any audio arrived".into(),
        ));
        self.settle_then_close(save.map(Settlement::Save), event, ctx);
    }

    /// Fails the session. A recording keeps what reached the disk: the file
    /// is repaired and finalized from its own frames and the record saved
    /// with those totals, before the connections are told.
    pub(super) fn fail(&mut self, error: StreamError, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        log::info!("Session {} failed: {} ({error}).", self.id, error.code());
        metrics::counter!(STREAMS_FAILED, LABEL_CODE => error.code()).increment(1);
        // What was measured is kept (a batch still running is not).
        self.save_measures(true);
        if self.segments.is_some() && self.finalizing {
            // The compose under way ends the session.
            return;
        }
        if self.segments.is_some() {
            // What is durable stays: composed, then recorded as failed.
            self.ending.get_or_insert(EndReason::GoingAway);
            return self.fail_composed(error, ctx);
        }
        self.finished = true;
        let settle = self
            .record(SessionStatus::Failed, Some(&error))
            .map(|record| Settle {
                record,
                path: self.recorder.as_ref().map(|r| r.path.clone()),
                file: self.recorder.as_ref().and_then(|r| r.file().cloned()),
            });
        self.settle_then_close(settle.map(Settlement::Settle), Outbound::Failed(error), ctx);
    }

    /// Saves the final record (if any), then tells the connections and stops.
    pub(super) fn close_with(
        &mut self,
        save: Option<Save>,
        event: Outbound,
        ctx: &mut Context<Self>,
    ) {
        self.finished = true;
        self.settle_then_close(save.map(Settlement::Save), event, ctx);
    }

    /// Runs the final store call (if any), then sends `event` to every
    /// connection, answers a pending ingest and stops.
    fn settle_then_close(
        &mut self,
        settlement: Option<Settlement>,
        event: Outbound,
        ctx: &mut Context<Self>,
    ) {
        let close = move |act: &mut Self, ctx: &mut Context<Self>, moved: bool| {
            // Another replica owns the session now: it did not end here.
            let event = if moved {
                Outbound::Failed(StreamError::Moved)
            } else {
                event
            };
            let answer = match event {
                Outbound::Done(_) => Ok(act.ack()),
                _ => Err(SessionClosed),
            };
            act.fanout.finish_all(&event);
            if let Some(reply) = act.reply.take() {
                let _ = reply.send(answer);
            }
            ctx.stop();
        };
        let (Some(settlement), Some(store)) = (settlement, self.policy().map(|p| p.store.clone()))
        else {
            return close(self, ctx, false);
        };
        let id = self.id;
        // Scaled mode: the final save holds only while this replica still
        // owns the session (a takeover may have happened while it finished).
        let fence = self
            .segments
            .as_ref()
            .filter(|w| w.sink.shared)
            .map(|w| w.sink.replica.clone());
        let measured = self.measures_saved();
        let stored = async move {
            measured.await;
            match (settlement, fence) {
                (Settlement::Save(save), Some(owner)) => {
                    store
                        .send(SaveFinal {
                            record: save.record,
                            owner,
                        })
                        .await
                }
                (Settlement::Save(save), None) => store.send(save).await.map(|r| r.map(|_| true)),
                (Settlement::Settle(settle), _) => {
                    store.send(settle).await.map(|r| r.map(|_| true))
                }
            }
        };
        let done = wrap_future::<_, Self>(stored).map(move |result, act, ctx| {
            let mut moved = false;
            match result {
                Ok(Ok(true)) => act.delete_segments(),
                Ok(Ok(false)) => {
                    log::warn!("Session {id}: another replica owns it now; not closing it here.");
                    moved = true;
                }
                Ok(Err(e)) => log::error!("Session {id}: saving its final state failed: {e}."),
                Err(e) => log::error!("Session {id}: the store did not answer: {e}."),
            }
            close(act, ctx, moved)
        });
        ctx.spawn(done);
    }

    /// Starts (or restarts) ending the session for `reason`.
    pub(super) fn begin_end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        self.ending.get_or_insert(reason);
        self.pump(ctx);
    }

    /// Arms the resume window when the last connection has left.
    pub(super) fn arm_resume_window(&mut self, ctx: &mut Context<Self>) {
        let Some(window) = self.policy().map(|p| p.resume_window) else {
            return;
        };
        if !self.fanout.is_empty() || self.resume_timer.is_some() || self.finished {
            return;
        }
        log::debug!("Session {} waits {window:?} for a connection.", self.id);
        self.resume_timer = Some(ctx.run_later(window, |act, ctx| {
            act.resume_timer = None;
            if act.fanout.is_empty() {
                act.begin_end(EndReason::ResumeWindowExpired, ctx);
            }
        }));
    }

    pub(super) fn disarm_resume_window(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.resume_timer.take() {
            ctx.cancel_future(timer);
        }
    }
}
