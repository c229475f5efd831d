//! Assembles the service: encoder pool, registry, HTTP routes, and the
//! running server with its drain.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::ServerHandle;
use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpRequest, HttpServer};
use flacstream_actors::metrics::DRAINING;
use flacstream_actors::registry::{
    Admit, AdmitAs, Drain, Lookup, RegistrySettings, Release, SessionId,
};
use flacstream_actors::session::InputFormat;
use flacstream_actors::store::{now_ms, Load, SessionStatus, Settle, Store, Unfinished};
use flacstream_actors::SessionSettings;
use flacstream_actors::{EncoderPool, Registry};
use flacstream_codec::flac::EncoderLevel;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::client_connections::{ClientConnections, ClientSlot};
use crate::client_ip::ClientIp;
use crate::config::Settings;
use crate::error::ApiError;
use crate::session_rate::{Charge, RateKey, SessionRate};
use crate::storage::SqliteCatalog;
use crate::transport::LeaveGuard;
use crate::{admin, audio, convert, health, metrics, page, sessions, socket, stream, tls, tokens};

/// Extra time, beyond the grace period and the stall timeout, that a drain
/// waits for sessions to flush before stopping regardless, in seconds. A
/// drain therefore ends at most grace + stall + this after it starts.
pub const DRAIN_FLUSH_MARGIN_SECONDS: u64 = 5;

/// How long a finished connection may take to shut down, in milliseconds
/// (actix's own default, kept on purpose). After a WebSocket's close frame
/// the server goes on reading and discarding what the client still sends for
/// up to this long before closing the socket. A shorter time (250 ms was
/// tried) lets a client that is still sending get a TCP reset, and a reset
/// makes its kernel discard the final `error`/`done` message it had not read
/// yet: measured, 90 of 100 fast-sending clients lost their error message.
/// The cost is that a client waiting for the server to close first sees the
/// close up to this long after `done`.
const CONNECTION_SHUTDOWN_TIMEOUT_MS: u64 = 1000;

/// Store threads: catalog queries and recording appends. Two let one sync
/// wait while another proceeds; appends are serialised per session anyway.
const STORE_THREADS: usize = 2;

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
    /// Set once draining starts; `/readyz` reports it.
    pub draining: Arc<AtomicBool>,
    /// Starts a drain from a request (`POST /admin/drain`). Set once the
    /// server runs, before it accepts its first connection.
    pub stopper: Arc<OnceLock<Stopper>>,
    /// Renders `GET /metrics` (one recorder per process; see [`metrics`]).
    pub metrics: PrometheusHandle,
    /// Long-lived connections per client address.
    pub client_connections: ClientConnections,
    /// New sessions per minute per key.
    pub session_rate: SessionRate,
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
        let id = admitted.map_err(|e| ApiError::Unavailable(e.to_string()))??;
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

    /// A quick look, before a long upload is read, whether a client's id is
    /// free: 409 `session_exists` if a live or stored session has it. Only
    /// [`AppState::admit`] decides; this spares the client the upload.
    pub async fn check_unused(&self, id: SessionId) -> Result<(), ApiError> {
        let live = self
            .registry
            .send(Lookup::new(id))
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
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
            Err(e) => Err(ApiError::Unavailable(e.to_string())),
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
            max_duration: self.settings.max_session,
            // Only live sessions are bound; `audio::open` sets it.
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
            Err(e) => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// A started service. Dropping it does not stop it; call [`Service::drain`].
pub struct Service {
    /// The address actually bound (port 0 resolves here).
    pub addr: SocketAddr,
    /// The encoder pool, for its counters.
    pub pool: EncoderPool,
    /// The registry.
    pub registry: Addr<Registry>,
    /// Long-lived connections per client address, for their counts.
    pub client_connections: ClientConnections,
    /// The served certificate when TLS is on; [`tls::Certificates::reload`]
    /// reloads it at once.
    pub tls: Option<Arc<tls::Certificates>>,
    handle: ServerHandle,
    /// The running server; it only makes progress once polled, so it is
    /// spawned at start and awaited by [`Service::run`].
    server: Option<actix_web::rt::task::JoinHandle<io::Result<()>>>,
    draining: Arc<AtomicBool>,
    drain_deadline: Duration,
    grace: Duration,
}

impl Service {
    /// Binds and starts serving. Must run inside an actix system.
    pub fn start(settings: Settings) -> io::Result<Self> {
        // First: a certificate that cannot be served stops the start before
        // anything else is set up, with a message naming the file.
        let certificates = settings
            .tls
            .as_ref()
            .map(tls::Certificates::load)
            .transpose()?;
        std::fs::create_dir_all(&settings.data_dir)?;
        // Uploads a previous run was spooling when it died are of no use now.
        let spool_dir = settings.data_dir.join(crate::convert::SPOOL_DIR);
        if spool_dir.exists() {
            std::fs::remove_dir_all(&spool_dir)?;
        }
        let pool = EncoderPool::start(settings.encoder_threads, settings.encoder_queue);
        let catalog = SqliteCatalog::factory(&settings.data_dir).map_err(io::Error::other)?;
        let store = Store::start(STORE_THREADS, catalog);
        actix_web::rt::spawn(recover_unfinished(store.clone(), settings.data_dir.clone()));
        let registry = Registry::new(RegistrySettings {
            max_sessions: settings.max_sessions,
            idle_timeout: settings.connection_timeout,
        })
        .start();
        let draining = Arc::new(AtomicBool::new(false));
        let prometheus = metrics::install();
        ::metrics::gauge!(DRAINING).set(0.0);
        let stopper = Arc::new(OnceLock::new());
        let client_connections = ClientConnections::new(settings.max_connections_per_ip);
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            registry: registry.clone(),
            pool: pool.clone(),
            store: store.clone(),
            draining: Arc::clone(&draining),
            stopper: Arc::clone(&stopper),
            metrics: prometheus,
            client_connections: client_connections.clone(),
            session_rate: SessionRate::new(settings.new_sessions_per_minute),
        });
        let grace = settings.drain_grace;
        let drain_deadline =
            grace + settings.outbound_stall + Duration::from_secs(DRAIN_FLUSH_MARGIN_SECONDS);
        let kernel_cut_off =
            settings.outbound_stall + Duration::from_secs(socket::KERNEL_CUT_OFF_MARGIN_SECONDS);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/", web::get().to(page::index))
                .route("/app.js", web::get().to(page::app_js))
                .route(
                    "/recorder-worklet.js",
                    web::get().to(page::recorder_worklet_js),
                )
                .route("/style.css", web::get().to(page::style_css))
                .route("/stream", web::get().to(stream::stream))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(metrics::scrape))
                .route("/admin/drain", web::post().to(admin::drain))
                .route("/admin/drain", web::get().to(admin::drain_status))
                .route("/convert", web::post().to(convert::convert))
                .route("/upload", web::post().to(convert::upload))
                .route("/api/tokens", web::post().to(tokens::issue))
                .route("/api/ws/audio", web::get().to(audio::open))
                .route("/api/ws/audio/{id}", web::get().to(audio::join))
                .route("/api/audio/sessions", web::get().to(sessions::list))
                .route("/api/audio/sessions/{id}", web::get().to(sessions::get))
                .route(
                    "/api/audio/sessions/{id}",
                    web::delete().to(sessions::delete),
                )
                .route(
                    "/api/audio/sessions/{id}/close",
                    web::post().to(sessions::close),
                )
                .route(
                    "/api/audio/sessions/{id}/audio",
                    web::get().to(sessions::audio),
                )
        })
        .on_connect(move |connection, data| socket::attach(connection, data, kernel_cut_off))
        // Frames go out as they are encoded; with Nagle's algorithm a frame
        // written while the previous one is unacknowledged waits for that
        // ACK, which a client's delayed-ACK timer stretches to 40 ms.
        .tcp_nodelay(true)
        .workers(settings.http_workers)
        .disable_signals()
        .client_disconnect_timeout(Duration::from_millis(CONNECTION_SHUTDOWN_TIMEOUT_MS))
        .client_request_timeout(settings.header_timeout)
        // One request per connection: actix-web times only a connection's
        // first request head, so on a kept-alive connection a client could
        // trickle the next request's head forever (tried: still open after
        // 20 s). Without keep-alive every head is a first one. WebSockets
        // and streamed uploads are one request anyway.
        .keep_alive(KeepAlive::Disabled)
        .shutdown_timeout(DRAIN_FLUSH_MARGIN_SECONDS)
        .tls_handshake_timeout(settings.tls_handshake_timeout)
        // actix's default, 256, let a few hundred silent connections stop a
        // worker accepting anyone for the handshake timeout.
        .max_connection_rate(settings.tls_max_handshakes_per_worker);
        let server = match &certificates {
            Some(certs) => server.bind_rustls_0_23(
                settings.bind,
                certs.server_config().map_err(io::Error::other)?,
            )?,
            None => server.bind(settings.bind)?,
        };
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| io::Error::other("the server bound no address"))?;
        let server = server.run();
        log::info!(
            "Listening on {addr}{} with {} encoder threads.",
            if certificates.is_some() { " (TLS)" } else { "" },
            settings.encoder_threads
        );
        if settings.auth.secret_is_per_process() {
            log::warn!(
                "Authentication is on without --token-secret-file: tokens are signed with a \
                 random secret of this process and work only on this replica until it restarts."
            );
        }
        match &certificates {
            Some(certs) => actix_web::rt::spawn(Arc::clone(certs).watch()),
            None => actix_web::rt::spawn(tls::log_hangups()),
        };
        let service = Self {
            addr,
            pool,
            registry,
            client_connections,
            tls: certificates,
            handle: server.handle(),
            // Not polled yet, so no request can come before `stopper` is set.
            server: Some(actix_web::rt::spawn(server)),
            draining,
            drain_deadline,
            grace,
        };
        let _ = stopper.set(service.stopper());
        Ok(service)
    }

    /// Runs until the server stops (after [`Service::drain`] or a fatal error).
    pub async fn run(&mut self) -> io::Result<()> {
        match self.server.take() {
            Some(server) => server.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }

    /// A handle for stopping the service from another task.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            handle: self.handle.clone(),
            registry: self.registry.clone(),
            draining: Arc::clone(&self.draining),
            grace: self.grace,
            deadline: self.drain_deadline,
        }
    }

    /// Drains and stops; see [`Stopper::drain`].
    pub async fn drain(&self) {
        self.stopper().drain().await;
    }
}

/// Drains and stops a [`Service`] from anywhere.
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    registry: Addr<Registry>,
    draining: Arc<AtomicBool>,
    grace: Duration,
    deadline: Duration,
}

impl Stopper {
    /// Stops taking streams (`/readyz` turns 503, new streams get 503
    /// `draining`), lets open streams run for the grace period, then flushes
    /// and closes the rest with 1001, and stops the server. A drain already
    /// under way is not started again: this returns at once.
    pub async fn drain(&self) {
        if self.begin() {
            self.finish().await;
        }
    }

    /// Starts the drain in the background and returns at once, `/readyz`
    /// already answering 503; false if a drain was already under way.
    pub fn start_drain(&self) -> bool {
        if !self.begin() {
            return false;
        }
        let stopper = self.clone();
        actix_web::rt::spawn(async move { stopper.finish().await });
        true
    }

    /// Marks the service draining; true for the one caller that started it.
    fn begin(&self) -> bool {
        ::metrics::gauge!(DRAINING).set(1.0);
        !self.draining.swap(true, Ordering::SeqCst)
    }

    async fn finish(&self) {
        log::info!("Draining: no new streams; {:?} grace.", self.grace);
        let drained = self.registry.send(Drain { grace: self.grace });
        if tokio::time::timeout(self.deadline, drained).await.is_err() {
            log::warn!("Drain deadline passed with streams still open; stopping anyway.");
        }
        self.handle.stop(true).await;
    }
}

/// Finalizes sessions a previous run left live (it crashed or was killed):
/// each recording is repaired from its own frames and closed.
async fn recover_unfinished(store: Addr<Store>, data_dir: std::path::PathBuf) {
    let unfinished = match store.send(Unfinished).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return log::error!("Cannot list unfinished sessions: {e}."),
        Err(e) => return log::error!("Cannot list unfinished sessions: {e}."),
    };
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
