//! Finalizes live sessions nobody owns any more: their replica died (or a
//! single node restarted) and no producer resumed them within the resume
//! window. Each is composed from its durable segments into its final FLAC
//! and recorded as closed (`recovered_after_restart`), as the single-node
//! recovery does with a file.

use std::sync::Arc;

use actix::Addr;
use flacstream_actors::object_recordings::ObjectRecordings;
use flacstream_actors::store::{
    now_ms, ClaimOrphans, ReleaseLease, Save, SessionRecord, SessionStatus, Store,
};

use super::Cluster;

/// Orphans one sweep claims at most: the rest wait for the next sweep (or
/// another replica's).
const ORPHANS_PER_SWEEP: u32 = 16;

/// Composes an orphan's recording and saves it closed. On a storage error
/// the session stays live and its lease is given back, for a later sweep.
pub async fn finalize_orphan(
    store: &Addr<Store>,
    objects: &ObjectRecordings,
    owner: &str,
    mut record: SessionRecord,
) {
    let id = record.id;
    if record.record {
        match objects.compose(id).await {
            Ok(Some(composed)) => {
                record.samples = composed.info.total_samples;
                record.file = Some(composed.key);
            }
            Ok(None) => record.file = None,
            Err(e) => {
                log::error!("Cannot compose orphaned session {id}: {e}; a later sweep retries.");
                store.do_send(ReleaseLease {
                    id,
                    owner: owner.to_string(),
                });
                return;
            }
        }
    }
    record.status = SessionStatus::Closed;
    record.closed_at_ms = Some(now_ms());
    record.updated_at_ms = now_ms();
    record.error = Some("recovered_after_restart".into());
    let samples = record.samples;
    match store.send(Save { record }).await {
        Ok(Ok(())) => {
            log::info!("Recovered orphaned session {id}: {samples} samples, now closed.");
            if let Err(e) = objects.delete_segments(id).await {
                log::warn!("Session {id}: its segments were not deleted ({e}).");
            }
        }
        Ok(Err(e)) => log::error!("Cannot save recovered session {id}: {e}."),
        Err(e) => log::error!("Cannot save recovered session {id}: {e}."),
    }
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
        finalize_orphan(store, objects, &cluster.replica, record).await;
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
