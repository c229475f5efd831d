//! Session ownership between replicas (scaled mode): the catalog's lease
//! rows, and the store messages that claim, renew, release and hand them
//! over.

use actix::{Handler, Message, SyncContext};
use uuid::Uuid;

use super::{SessionRecord, Store, StoreError};

/// The answer to a lease claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The caller holds the lease now.
    Claimed,
    /// Another replica holds it for this much longer.
    HeldBy {
        /// The holder's replica id.
        owner: String,
        /// Milliseconds until it expires unless renewed.
        expires_in_ms: i64,
    },
}

/// Session ownership between replicas (scaled mode): a lease row per live
/// session. A single-node catalog has no other replica, so by default every
/// claim succeeds and there is nothing to renew. Methods block.
pub trait Leases {
    /// Takes session `id`'s lease for `owner` for `ttl_ms`, if nobody holds
    /// it, it has expired, or `owner` holds it already.
    fn claim(&mut self, _id: Uuid, _owner: &str, _ttl_ms: u64) -> Result<LeaseClaim, StoreError> {
        Ok(LeaseClaim::Claimed)
    }
    /// Renews every lease `owner` holds; answers the sessions another
    /// replica has asked it to hand over.
    fn renew(&mut self, _owner: &str, _ttl_ms: u64) -> Result<Vec<Uuid>, StoreError> {
        Ok(Vec::new())
    }
    /// Gives a lease up (if `owner` holds it).
    fn release(&mut self, _id: Uuid, _owner: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Who holds session `id`'s lease now, if anyone (and it has not expired).
    fn holder(&mut self, _id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Asks the holder of session `id`'s lease to hand it over.
    fn request_handover(&mut self, _id: Uuid) -> Result<(), StoreError> {
        Ok(())
    }
    /// Claims up to `limit` live sessions nobody holds: their lease expired
    /// at least `grace_ms` ago, or they have none and were last saved that
    /// long ago. Answers their records.
    fn claim_orphans(
        &mut self,
        _owner: &str,
        _ttl_ms: u64,
        _grace_ms: u64,
        _limit: u32,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(Vec::new())
    }
}

/// Take a session's lease; see [`Leases::claim`].
#[derive(Message)]
#[rtype(result = "Result<LeaseClaim, StoreError>")]
pub struct ClaimLease {
    /// The session.
    pub id: Uuid,
    /// This replica.
    pub owner: String,
    /// The lease's length, in milliseconds.
    pub ttl_ms: u64,
}

/// Claims.
impl Handler<ClaimLease> for Store {
    type Result = Result<LeaseClaim, StoreError>;

    fn handle(&mut self, msg: ClaimLease, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.claim(msg.id, &msg.owner, msg.ttl_ms)
    }
}

/// Renew this replica's leases; see [`Leases::renew`].
#[derive(Message)]
#[rtype(result = "Result<Vec<Uuid>, StoreError>")]
pub struct RenewLeases {
    /// This replica.
    pub owner: String,
    /// The leases' length, in milliseconds.
    pub ttl_ms: u64,
}

/// Renews.
impl Handler<RenewLeases> for Store {
    type Result = Result<Vec<Uuid>, StoreError>;

    fn handle(&mut self, msg: RenewLeases, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.renew(&msg.owner, msg.ttl_ms)
    }
}

/// Give a lease up; see [`Leases::release`].
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct ReleaseLease {
    /// The session.
    pub id: Uuid,
    /// This replica.
    pub owner: String,
}

/// Releases.
impl Handler<ReleaseLease> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: ReleaseLease, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.release(msg.id, &msg.owner)
    }
}

/// Who holds a session's lease; see [`Leases::holder`].
#[derive(Message)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct LeaseHolder {
    /// The session.
    pub id: Uuid,
}

/// Reads the row.
impl Handler<LeaseHolder> for Store {
    type Result = Result<Option<String>, StoreError>;

    fn handle(&mut self, msg: LeaseHolder, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.holder(msg.id)
    }
}

/// Ask a session's holder to hand it over; see [`Leases::request_handover`].
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RequestHandover {
    /// The session.
    pub id: Uuid,
}

/// Records the request.
impl Handler<RequestHandover> for Store {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RequestHandover, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog.request_handover(msg.id)
    }
}

/// Claim orphaned live sessions; see [`Leases::claim_orphans`].
#[derive(Message)]
#[rtype(result = "Result<Vec<SessionRecord>, StoreError>")]
pub struct ClaimOrphans {
    /// This replica.
    pub owner: String,
    /// The lease's length, in milliseconds.
    pub ttl_ms: u64,
    /// How long a session must have been unowned, in milliseconds.
    pub grace_ms: u64,
    /// Most sessions at once.
    pub limit: u32,
}

/// Claims.
impl Handler<ClaimOrphans> for Store {
    type Result = Result<Vec<SessionRecord>, StoreError>;

    fn handle(&mut self, msg: ClaimOrphans, _ctx: &mut SyncContext<Self>) -> Self::Result {
        self.catalog
            .claim_orphans(&msg.owner, msg.ttl_ms, msg.grace_ms, msg.limit)
    }
}
