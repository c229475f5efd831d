//! Scaled mode: how replicas share sessions. The catalog is PostgreSQL
//! ([`crate::catalog::postgres`]), recordings are in object storage
//! ([`crate::storage`]), and each live session has one owner replica,
//! recorded as a lease row in the catalog. There is no coordination of
//! our own beyond that row and the object store's create-only writes.
//!
//! - [`lease_keeper`]: renews this replica's leases in one statement every
//!   third of the lease, keeps the [`LeaseClock`] its sessions check, and
//!   hands over the sessions another replica asked for.
//! - `api::takeover` (above the state, which it uses): a request for a live session this replica does not hold
//!   (a producer resuming, a listener, a close) takes it over: it asks the
//!   owner to hand over (or waits out a dead owner's lease), then continues
//!   the session from its last durable segment.
//! - [`orphan_sweep`]: live sessions nobody owns (their replica died and no
//!   producer came back within the resume window) are finalized by whichever
//!   replica claims them first (`FOR UPDATE SKIP LOCKED`).
//!
//! docs/scaling.md gives the design and what happens on each failure.

pub mod lease_keeper;
pub mod orphan_sweep;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use flacstream_actors::lease_clock::LeaseClock;
use flacstream_actors::object_recordings::ObjectRecordings;
use flacstream_actors::session::ObjectSink;

use crate::config::ClusterSettings;
use crate::storage::StorageError;

/// Time a segment's PUT is allowed within the durable lag bound, in
/// milliseconds: a segment is cut this long (plus the check interval)
/// before its oldest frame reaches the bound.
const SEGMENT_PUT_ALLOWANCE_MS: u64 = 1_250;

/// Shortest interval between segments, in milliseconds, whatever the lag
/// setting: bounds the object-store requests per stream-hour (at most 3,600
/// at this floor).
const MIN_SEGMENT_INTERVAL_MS: u64 = 1_000;

/// Segment bytes that cut a segment early (8 MiB: a segment is one PUT held
/// in memory).
const MAX_SEGMENT_BYTES: usize = 8 << 20;

/// How this replica takes part in the cluster; see the module docs.
#[derive(Debug)]
pub struct Cluster {
    /// This replica's id in lease rows: its advertised address and a random
    /// part, new at every start (a restarted replica is a new owner).
    pub replica: String,
    /// Until when this replica's leases hold.
    pub lease: Arc<LeaseClock>,
    /// Recordings in object storage, if configured.
    pub objects: Option<ObjectRecordings>,
    /// Whether the catalog is shared with other replicas (PostgreSQL).
    pub shared_catalog: bool,
    /// The settings.
    pub settings: ClusterSettings,
    /// Sessions the orphan sweep is finalizing here (not in the registry):
    /// their leases must not be given up on a handover request.
    pub sweeping: parking_lot::Mutex<HashSet<uuid::Uuid>>,
    /// Sessions asked to hand over and not done yet: one handover each.
    pub handing_over: parking_lot::Mutex<HashSet<uuid::Uuid>>,
}

impl Cluster {
    /// Opens the object storage, if any.
    pub fn new(
        settings: &ClusterSettings,
        bind: std::net::SocketAddr,
    ) -> Result<Self, StorageError> {
        let objects = settings
            .storage_url
            .as_deref()
            .map(|url| crate::storage::open(url, settings.storage_timeout))
            .transpose()?;
        let shared_catalog = settings.database_url.is_some();
        let address = settings
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{bind}"));
        Ok(Self {
            replica: format!("{address}#{}", uuid::Uuid::new_v4().simple()),
            // One node: nobody else can take a session over.
            lease: Arc::new(if shared_catalog {
                LeaseClock::new()
            } else {
                LeaseClock::always()
            }),
            objects,
            shared_catalog,
            settings: settings.clone(),
            sweeping: parking_lot::Mutex::new(HashSet::new()),
            handing_over: parking_lot::Mutex::new(HashSet::new()),
        })
    }

    /// The lease's length in milliseconds.
    pub fn lease_ms(&self) -> u64 {
        self.settings.lease.as_millis() as u64
    }

    /// Where a recorded session's segments go, in object-storage mode.
    pub fn sink(&self) -> Option<ObjectSink> {
        let recordings = self.objects.clone()?;
        let lag_ms = self.settings.durable_lag.as_millis() as u64;
        let interval = lag_ms
            .saturating_sub(SEGMENT_PUT_ALLOWANCE_MS)
            .max(MIN_SEGMENT_INTERVAL_MS);
        Some(ObjectSink {
            recordings,
            segment_interval: Duration::from_millis(interval),
            max_segment_bytes: MAX_SEGMENT_BYTES,
            max_unwritten_bytes: self.settings.max_undurable_bytes,
            lease: Arc::clone(&self.lease),
            replica: self.replica.clone(),
            shared: self.shared_catalog,
        })
    }
}
