//! Recovery at start-up: sessions a previous run left live are finalized.

use std::sync::Arc;

use actix::Addr;
use flacstream_actors::store::{now_ms, SessionStatus, Settle, Store, Unfinished};

use crate::cluster::orphan_sweep::finalize_orphan;
use crate::cluster::Cluster;

/// Finalizes sessions a previous run left live (it crashed or was killed):
/// each recording is repaired from its own frames and closed.
/// In object-storage mode each is composed from its durable segments
/// instead ([`crate::cluster::orphan_sweep::finalize_orphan`]).
pub(super) async fn recover_unfinished(
    store: Addr<Store>,
    data_dir: std::path::PathBuf,
    cluster: Arc<Cluster>,
) {
    let unfinished = match store.send(Unfinished).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return log::error!("Cannot list unfinished sessions: {e}."),
        Err(e) => return log::error!("Cannot list unfinished sessions: {e}."),
    };
    if let Some(objects) = cluster.objects.as_ref() {
        for record in unfinished {
            finalize_orphan(&store, &cluster, objects, record).await;
        }
        return;
    }
    for mut record in unfinished {
        let id = record.id;
        record.status = SessionStatus::Closed;
        record.closed_at_ms = Some(now_ms());
        record.updated_at_ms = now_ms();
        record.error = Some("recovered_after_restart".into());
        let settle = Settle {
            path: record
                .file
                .clone()
                .filter(|_| record.record)
                .map(|f| data_dir.join(f)),
            record,
            file: None,
        };
        match store.send(settle).await {
            Ok(Ok(settled)) => log::info!(
                "Recovered session {id}: {} samples, now {}.",
                settled.samples,
                settled.status.as_str()
            ),
            Ok(Err(e)) => log::error!("Cannot recover session {id}: {e}."),
            Err(e) => log::error!("Cannot recover session {id}: {e}."),
        }
    }
}
