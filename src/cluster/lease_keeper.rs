//! Renews this replica's leases and answers handover requests.
//!
//! Every third of the lease, one `UPDATE … WHERE owner = me` renews every
//! lease this replica holds; the [`LeaseClock`](flacstream_actors::lease_clock::LeaseClock)
//! then holds until the renewal's start plus two thirds of the lease, so a
//! replica that cannot reach the database stops writing segments a third of
//! a lease before anyone may take its sessions. The same statement returns
//! the sessions another replica asked for; each is handed over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use flacstream_actors::registry::Lookup;
use flacstream_actors::session::HandOver;
use flacstream_actors::store::{ReleaseLease, RenewLeases, Store};
use flacstream_actors::Registry;

use super::Cluster;

/// Renews once now; answers whether it succeeded.
pub async fn renew_once(
    cluster: &Arc<Cluster>,
    store: &Addr<Store>,
    registry: &Addr<Registry>,
) -> bool {
    let ttl = cluster.settings.lease;
    let sent = Instant::now();
    let renewed = store
        .send(RenewLeases {
            owner: cluster.replica.clone(),
            ttl_ms: cluster.lease_ms(),
        })
        .await;
    match renewed {
        Ok(Ok(handovers)) => {
            cluster.lease.renewed(sent, ttl - ttl / 3);
            for id in handovers {
                hand_over(cluster, store, registry, id);
            }
            true
        }
        Ok(Err(e)) => {
            log::warn!("Cannot renew this replica's leases: {e}.");
            false
        }
        Err(e) => {
            log::warn!("Cannot renew this replica's leases: {e}.");
            false
        }
    }
}

fn hand_over(
    cluster: &Arc<Cluster>,
    store: &Addr<Store>,
    registry: &Addr<Registry>,
    id: uuid::Uuid,
) {
    // Being finalized by this replica's sweep: it keeps the lease until the
    // session is closed, and the requester then finds it closed.
    if cluster.sweeping.lock().contains(&id) {
        return;
    }
    // Asked again at every renewal until done: one handover at a time.
    if !cluster.handing_over.lock().insert(id) {
        return;
    }
    let (store, registry, owner) = (store.clone(), registry.clone(), cluster.replica.clone());
    let cluster = Arc::clone(cluster);
    actix::spawn(async move {
        match registry.send(Lookup::new(id)).await {
            Ok(Some(session)) => match session.send(HandOver).await {
                Ok(Ok(durable)) => log::info!("Handed session {id} over at {durable} samples."),
                _ => log::info!("Session {id} ended before its handover."),
            },
            // Not running here: the row is stale; free it.
            _ => store.do_send(ReleaseLease { id, owner }),
        }
        cluster.handing_over.lock().remove(&id);
    });
}

/// Renews every third of the lease, for as long as the system runs.
pub fn spawn(cluster: Arc<Cluster>, store: Addr<Store>, registry: Addr<Registry>) {
    let every = cluster.settings.lease / 3;
    actix::spawn(async move {
        loop {
            renew_once(&cluster, &store, &registry).await;
            tokio::time::sleep(every.max(Duration::from_millis(100))).await;
        }
    });
}
