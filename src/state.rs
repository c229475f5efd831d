//! The application state every endpoint shares: the validated settings, the
//! actors (registry, encoder pool, store), the per-client limits and the
//! drain. It also holds the admission steps several endpoints share (count
//! the client, charge the session rate, reserve a registry slot), so each
//! endpoint runs them in the same order.
//!
//! The state imports no endpoint: [`crate::routes`] names the endpoints,
//! [`crate::service`] builds this state and hands it to them.

use std::sync::{Arc, OnceLock};

use actix::Addr;
use actix_web::HttpRequest;
use flacstream_actors::registry::{Admit, AdmitAs, LeaveGuard, Lookup, Release, SessionId};
use flacstream_actors::session::InputFormat;
use flacstream_actors::store::{ClaimLease, LeaseClaim, Load, SessionStatus, Store};
use flacstream_actors::SessionSettings;
use flacstream_actors::{EncoderPool, Registry};
use flacstream_codec::flac::EncoderLevel;

use crate::cluster::Cluster;
use crate::config::Settings;
use crate::drain::{Draining, Stopper};
use crate::error::ApiError;
use crate::limits::client_connections::{ClientConnections, ClientSlot};
use crate::limits::client_ip::ClientIp;
use crate::limits::session_rate::{Charge, RateKey, SessionRate};

/// Shared by every request handler.
pub struct AppState {
    /// Validated settings.
    pub settings: Settings,
    /// The session registry.
    pub registry: Addr<Registry>,
    /// The encoder pool.
    pub pool: EncoderPool,
    /// The store: recordings and the session catalog.
    pub store: Addr<Store>,
    /// Set once draining starts; `/admin/drain` reports it.
    pub draining: Draining,
    /// Starts a drain from a request (`POST /admin/drain`). Set once the
    /// server runs, before it accepts its first connection.
    pub stopper: Arc<OnceLock<Stopper>>,
    /// Long-lived connections per client address.
    pub client_connections: ClientConnections,
    /// New sessions per minute per key.
    pub session_rate: SessionRate,
    /// Where recordings and leases live, and this replica's part.
    pub cluster: Arc<Cluster>,
    /// Places for decoding uploads (`--decode-threads`): each decode is
    /// synchronous and runs on a blocking thread while it holds one.
    pub decoding: Arc<tokio::sync::Semaphore>,
    /// How recorded sessions measure their chunks and audio
    /// (`--analysis-threads` and the silence levels).
    pub analysis: flacstream_actors::chunk_analysis::AnalysisSettings,
}

impl AppState {
    /// Counts a long-lived connection (a WebSocket, an upload) against its
    /// client's cap, `--max-connections-per-ip`: 429
    /// `too_many_connections_from_client` over it. The slot is held until
    /// the connection ends.
    pub fn enter_client(&self, req: &HttpRequest) -> Result<ClientSlot, ApiError> {
        let client = ClientIp::of(req, &self.settings.trusted_proxies);
        self.client_connections.enter(client)
    }

    /// Counts a new session against its key's allowance,
    /// `--new-sessions-per-minute`: 429 `rate_limited` with `Retry-After`
    /// over it. `principal` is the caller's rate key (`Access::rate_key`,
    /// `None` with authentication off); [`RateKey::choose`] decides. The
    /// charge goes to [`AppState::admit`], which gives it back if the
    /// session is refused.
    pub fn count_new_session(
        &self,
        principal: Option<&str>,
        client: &ClientSlot,
    ) -> Result<Charge, ApiError> {
        self.session_rate
            .charge(RateKey::choose(principal, client.client()))
    }

    /// Reserves a slot for a new session, counting the caller's connection;
    /// refused over the cap (503 `server_busy`), while draining, or, for a
    /// `requested` id that a live or stored session has, with 409
    /// `session_exists`. Without `requested` the registry picks a random id.
    /// The guard gives the connection back unless the caller's loops take it
    /// over. A refused session gives back its `charge` from
    /// [`AppState::count_new_session`]: the client did not cause the
    /// refusal, and may well retry.
    pub async fn admit(
        &self,
        requested: Option<SessionId>,
        charge: Charge,
    ) -> Result<(SessionId, LeaveGuard), ApiError> {
        let admitted = self.admit_uncharged(requested).await;
        if admitted.is_err() {
            self.session_rate.refund(charge);
        }
        admitted
    }

    async fn admit_uncharged(
        &self,
        requested: Option<SessionId>,
    ) -> Result<(SessionId, LeaveGuard), ApiError> {
        let admitted = match requested {
            Some(id) => self.registry.send(AdmitAs { id }).await,
            None => self.registry.send(Admit).await,
        };
        let id = admitted??;
        if requested.is_some() {
            // The catalog is asked only once the registry holds the id: a
            // session stores its final row before it gives its id back, so
            // no session can end unseen between the two checks.
            if let Err(e) = self.not_stored(id).await {
                self.registry.do_send(Release { id, session: None });
                return Err(e);
            }
        }
        Ok((id, LeaveGuard::new(self.registry.clone(), id)))
    }

    /// Takes a new session's lease for this replica: in scaled mode its
    /// owner of record, renewed with the replica's other leases and checked
    /// by the session's final save. Another replica that admitted the same
    /// chosen id at the same moment holds it: 409 `session_exists`, and the
    /// slot is given back. One node: always granted.
    pub async fn claim_new_lease(&self, id: SessionId) -> Result<(), ApiError> {
        let claim = ClaimLease {
            id,
            owner: self.cluster.replica.clone(),
            ttl_ms: self.cluster.lease_ms(),
        };
        let refused = match self.store.send(claim).await {
            Ok(Ok(LeaseClaim::Claimed)) => return Ok(()),
            Ok(Ok(LeaseClaim::HeldBy { .. })) => ApiError::SessionExists(id),
            Ok(Err(e)) => e.into(),
            Err(e) => e.into(),
        };
        self.registry.do_send(Release { id, session: None });
        Err(refused)
    }

    /// A quick look, before a long upload is read, whether a client's id is
    /// free: 409 `session_exists` if a live or stored session has it. Only
    /// [`AppState::admit`] decides; this spares the client the upload.
    pub async fn check_unused(&self, id: SessionId) -> Result<(), ApiError> {
        let live = self.registry.send(Lookup::new(id)).await?;
        if live.is_some() {
            return Err(ApiError::SessionExists(id));
        }
        self.not_stored(id).await
    }

    /// 409 `session_exists` if the catalog has a row for `id`, whatever its
    /// status (also one a crashed run left live).
    async fn not_stored(&self, id: SessionId) -> Result<(), ApiError> {
        match self.store.send(Load { id }).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(_))) => Err(ApiError::SessionExists(id)),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Settings for a new session from its request's parameters.
    pub fn session_settings(
        &self,
        level: Option<u8>,
        block_size: Option<usize>,
        input: InputFormat,
    ) -> SessionSettings {
        SessionSettings {
            level: level.and_then(EncoderLevel::new).unwrap_or_default(),
            block_size,
            max_header_bytes: self.settings.max_header_bytes,
            max_blocks_in_flight: self.settings.max_blocks_in_flight,
            input,
            source: flacstream_codec::media::SourceCodec::Pcm,
            max_duration: self.settings.max_session,
            // Only live sessions are bound; `api::audio_socket::open` sets it.
            input_rate: None,
        }
    }

    /// Why a session that is not live cannot be used: 409 `session_closed`
    /// if it is stored as finished, else 404 `session_not_found`.
    pub async fn not_live(&self, id: SessionId) -> ApiError {
        match self.store.send(Load { id }).await {
            Ok(Ok(Some(r))) if r.status != SessionStatus::Live => ApiError::SessionClosed,
            Ok(Ok(_)) => ApiError::SessionNotFound,
            Ok(Err(e)) => e.into(),
            Err(e) => e.into(),
        }
    }
}
