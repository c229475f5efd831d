//! Finalizes live sessions nobody owns any more: their replica died (or a
//! single node restarted) and no producer resumed them within the resume
//! window. Each is composed from its durable segments into its final FLAC
//! and recorded as closed (`recovered_after_restart`), as the single-node
//! recovery does with a file.

use std::sync::Arc;

use actix::Addr;
use flacstream_actors::object_recordings::{ObjectError, ObjectRecordings};
use flacstream_actors::store::{
    now_ms, ClaimOrphans, ReleaseLease, SaveFinal, SessionRecord, SessionStatus, Store,
};

use super::Cluster;

/// Orphans one sweep claims at most: the rest wait for the next sweep (or
/// another replica's).
const ORPHANS_PER_SWEEP: u32 = 16;

/// Composes an orphan's recording and saves it closed, if this replica
/// still owns it (the save is fenced by the lease row). Segments that do not
/// make one stream are recorded as `failed` (`recording_inconsistent`) and
/// kept for inspection, so the sweep does not pick the session up again. On
/// a storage error the session stays live and its lease is given back, for
/// a later sweep.
pub async fn finalize_orphan(
    store: &Addr<Store>,
    cluster: &Cluster,
    objects: &ObjectRecordings,
    mut record: SessionRecord,
) {
    let id = record.id;
    let owner = cluster.replica.clone();
    // While it is composed here, a handover request for it must not make
    // the lease keeper give the lease up (the session is not in the registry).
    cluster.sweeping.lock().insert(id);
    let fence = cluster.shared_catalog.then(|| cluster.lease.as_ref());
    let mut keep_segments = false;
    record.status = SessionStatus::Closed;
    record.error = Some("recovered_after_restart".into());
    if record.record {
        match objects.compose(id, fence).await {
            Ok(Some(composed)) => {
                record.samples = composed.info.total_samples;
                record.file = Some(composed.key);
            }
            Ok(None) => record.file = None,
            Err(e @ ObjectError::Inconsistent(_)) => {
                log::error!("Orphaned session {id}: {e}; recorded as failed, segments kept.");
                record.status = SessionStatus::Failed;
                record.error = Some("recording_inconsistent".into());
                record.file = None;
                keep_segments = true;
            }
            Err(e) => {
                log::error!("Cannot compose orphaned session {id}: {e}; a later sweep retries.");
                store.do_send(ReleaseLease { id, owner });
                cluster.sweeping.lock().remove(&id);
                return;
            }
        }
    }
    record.closed_at_ms = Some(now_ms());
    record.updated_at_ms = now_ms();
    let samples = record.samples;
    match store.send(SaveFinal { record, owner }).await {
        Ok(Ok(true)) => {
            log::info!("Recovered orphaned session {id}: {samples} samples.");
            if !keep_segments {
                if let Err(e) = objects.delete_segments(id).await {
                    log::warn!("Session {id}: its segments were not deleted ({e}).");
                }
            }
        }
        Ok(Ok(false)) => log::info!("Orphaned session {id} was taken over meanwhile."),
        Ok(Err(e)) => log::error!("Cannot save recovered session {id}: {e}."),
        Err(e) => log::error!("Cannot save recovered session {id}: {e}."),
    }
    cluster.sweeping.lock().remove(&id);
}

/// Sweeps once: claims orphans and finalizes them; answers how many.
pub async fn sweep_once(cluster: &Cluster, store: &Addr<Store>) -> usize {
    let Some(objects) = cluster.objects.as_ref() else {
        return 0;
    };
    let claimed = store
        .send(ClaimOrphans {
            owner: cluster.replica.clone(),
            ttl_ms: cluster.lease_ms(),
            grace_ms: cluster.settings.orphan_grace.as_millis() as u64,
            limit: ORPHANS_PER_SWEEP,
        })
        .await;
    let records = match claimed {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => {
            log::warn!("Cannot look for orphaned sessions: {e}.");
            return 0;
        }
        Err(_) => return 0,
    };
    let n = records.len();
    for record in records {
        finalize_orphan(store, cluster, objects, record).await;
    }
    n
}

/// Sweeps every lease, for as long as the system runs.
pub fn spawn(cluster: Arc<Cluster>, store: Addr<Store>) {
    let every = cluster.settings.lease;
    actix::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            sweep_once(&cluster, &store).await;
        }
    });
}
