//! Taking over a live session another replica holds (or held, and died):
//! for a producer that resumes through this replica, a listener, or a
//! close. Handover, not forwarding: the session moves to where the request
//! is, so no replica proxies another's traffic.
//!
//! 1. Claim the lease. A live owner is asked to hand over (a flag on its
//!    lease row, seen at its next renewal, at most a third of a lease
//!    later); it makes everything it received durable, gives the lease up,
//!    and tells its producer `session_moved` (close 1001). A dead owner's
//!    lease simply runs out. Either way the claim is retried until the
//!    lease plus [`HANDOVER_SLACK_MS`] has passed, then 503
//!    `session_owned_elsewhere` with `Retry-After`.
//! 2. Read the durable tail: the last segment (one LIST, one ranged GET).
//! 3. Start the session here from it: frame numbers, totals and the
//!    STREAMINFO MD5 go on from the tail; the producer resumes at
//!    `samples_received`, which is the durable total.
//!
//! A container session (`format=ogg`, …) never moves: its decoder's state
//! is in its owner's memory. Its producer is relayed to a live owner
//! ([`crate::api::relay`]); asked to hand over (a close through another
//! replica), the owner finalizes it instead; a dead owner's is finalized
//! here with what was durable, and the request finds it closed.

use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use flacstream_actors::registry::{AdmitAs, AdmitError, LeaveGuard, Lookup, SessionId};
use flacstream_actors::session::{InputFormat, RecordingPolicy, SessionKind, Takeover};
use flacstream_actors::store::{
    ClaimLease, LeaseClaim, Load, ReleaseLease, RequestHandover, SessionRecord, SessionStatus,
};
use flacstream_actors::Session;
use flacstream_codec::pcm::PcmLayout;

use crate::cluster::orphan_sweep::finalize_orphan;
use crate::error::ApiError;
use crate::protocol::{g711_law, is_decoded_encoding, raw_bytes_per_sample};
use crate::state::AppState;

/// Time past the lease a takeover waits for the owner to let go, in
/// milliseconds: a renewal interval and a flush.
const HANDOVER_SLACK_MS: u64 = 2_000;

/// How often a takeover tries the claim again, in milliseconds.
const CLAIM_POLL_MS: u64 = 100;

/// Takes session `id` over here; answers its address and a connection slot
/// in it. Only in object-storage mode (else the session is not live).
pub async fn take_over(
    state: &AppState,
    id: SessionId,
) -> Result<(Addr<Session>, LeaveGuard), ApiError> {
    let cluster = &state.cluster;
    // One node (SQLite): there is no other replica to take a session from;
    // a session its crash left live is finalized by the start-up recovery.
    let Some(sink) = cluster.sink().filter(|_| cluster.shared_catalog) else {
        return Err(state.not_live(id).await);
    };
    let record = state
        .store
        .send(Load { id })
        .await??
        .ok_or(ApiError::SessionNotFound)?;
    if record.status != SessionStatus::Live {
        return Err(ApiError::SessionClosed);
    }
    if !record.record {
        // Nothing of it is durable: it cannot go on elsewhere.
        return Err(ApiError::SessionClosed);
    }
    // A draining replica takes nothing over (the balancer tries another).
    if state.draining.is_set() {
        return Err(ApiError::Draining(AdmitError::Draining));
    }
    claim(state, id).await?;
    let release = || {
        state.store.do_send(ReleaseLease {
            id,
            owner: cluster.replica.clone(),
        })
    };
    // The owner may have finished it while we waited for the lease: only a
    // session still live under our lease goes on.
    let record = match state.store.send(Load { id }).await? {
        Ok(Some(record)) if record.status == SessionStatus::Live => record,
        Ok(_) => {
            release();
            return Err(ApiError::SessionClosed);
        }
        Err(e) => {
            release();
            return Err(e.into());
        }
    };
    if is_decoded_encoding(&record.encoding) {
        // A container decoded as it arrived: the decoder's state died with
        // its replica (a live owner finalizes such a session when asked to
        // hand it over). What was durable is kept, and the session ends.
        finalize_orphan(&state.store, cluster, &sink.recordings, record).await;
        return Err(ApiError::SessionClosed);
    }
    let tail = match sink.recordings.tail(id).await {
        Ok(tail) => tail,
        Err(e) => {
            release();
            return Err(e.into());
        }
    };
    if let Some(last) = tail.last.as_ref() {
        if last.end_sample() != u64::from(last.end_frame()) * last.format.block_size as u64 {
            // Its last frame is the short final block: the session was
            // ending (its compose failed). It cannot go on without a short
            // block in mid-stream; it is finalized as it is.
            finalize_orphan(&state.store, cluster, &sink.recordings, record).await;
            return Err(ApiError::SessionClosed);
        }
    }
    let admitted = match state.registry.send(AdmitAs { id }).await {
        Ok(admitted) => admitted,
        Err(e) => {
            release();
            return Err(e.into());
        }
    };
    if let Err(e) = admitted {
        // Another request on this replica took it over first.
        if let Ok(Some(session)) = state.registry.send(Lookup::new(id)).await {
            return Ok((session, LeaveGuard::new(state.registry.clone(), id)));
        }
        // Refused (draining, full): the lease must not stay with a replica
        // that does not run the session, or the next taker waits it out.
        release();
        return Err(e.into());
    }
    let guard = LeaveGuard::new(state.registry.clone(), id);
    let samples = tail.samples();
    let input = input_of(&record);
    let mut settings = state.session_settings(
        Some(record.level),
        record.block_size.map(|b| b as usize),
        input,
    );
    settings.input_rate = Some(state.settings.input_rate);
    settings.source = flacstream_codec::media::SourceCodec::of_encoding(&record.encoding);
    let policy = RecordingPolicy {
        store: state.store.clone(),
        data_dir: state.settings.data_dir.clone(),
        record: true,
        resume_window: state.settings.session_resume,
        user_id: record.user_id.clone(),
        owner_key: record.owner_key.clone(),
        encoding: record.encoding.clone(),
        objects: Some(sink),
        takeover: Some(Takeover {
            // With nothing durable the session starts over: the producer is
            // told `resumed: false` and sends from the beginning.
            chunk_count: if tail.last.is_some() {
                record.chunk_count
            } else {
                0
            },
            bytes_in: record.bytes_in,
            created_at_ms: record.created_at_ms,
            tail,
        }),
        // A session continued here measures nothing more: its analysis so
        // far is stored, and its stream went on without it.
        analysis: None,
        whole_upload: None,
    };
    let session = Session::new(
        id,
        settings,
        SessionKind::Recording(Box::new(policy)),
        state.pool.clone(),
        state.registry.clone(),
    )
    .start();
    metrics::counter!(flacstream_actors::metrics::SESSIONS_TAKEN_OVER).increment(1);
    log::info!("Took session {id} over at {samples} durable samples.");
    Ok((session, guard))
}

/// Claims the lease, asking the owner to hand over, until it is ours.
async fn claim(state: &AppState, id: SessionId) -> Result<(), ApiError> {
    let cluster = &state.cluster;
    let deadline =
        Instant::now() + cluster.settings.lease + Duration::from_millis(HANDOVER_SLACK_MS);
    let mut asked = false;
    loop {
        let claim = ClaimLease {
            id,
            owner: cluster.replica.clone(),
            ttl_ms: cluster.lease_ms(),
        };
        match state.store.send(claim).await?? {
            LeaseClaim::Claimed => return Ok(()),
            LeaseClaim::HeldBy { expires_in_ms, .. } => {
                if !asked {
                    state.store.send(RequestHandover { id }).await??;
                    asked = true;
                }
                if Instant::now() >= deadline {
                    return Err(ApiError::OwnedElsewhere {
                        retry_after_seconds: (expires_in_ms.max(0) as u64).div_ceil(1000).max(1),
                    });
                }
                tokio::time::sleep(Duration::from_millis(CLAIM_POLL_MS)).await;
            }
        }
    }
}

/// The input a session takes when it has nothing durable (a WAV session
/// still expects its header); with a durable tail the session takes raw
/// PCM in the tail's format whatever this says.
fn input_of(record: &SessionRecord) -> InputFormat {
    if let (Some(law), Some(sample_rate), Some(channels)) = (
        g711_law(&record.encoding),
        record.sample_rate,
        record.channels,
    ) {
        return InputFormat::G711 {
            law,
            channels: usize::from(channels),
            sample_rate,
        };
    }
    let Some(bytes_per_sample) = raw_bytes_per_sample(&record.encoding) else {
        return InputFormat::Wav;
    };
    match (record.sample_rate, record.channels) {
        (Some(sample_rate), Some(channels)) => InputFormat::Raw {
            layout: PcmLayout {
                channels: usize::from(channels),
                bytes_per_sample,
            },
            sample_rate,
        },
        _ => InputFormat::Wav,
    }
}
