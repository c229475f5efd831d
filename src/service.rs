//! Assembles and runs the service: the encoder pool, the registry, the
//! store, the shared [`AppState`], the HTTP server over the route table, and
//! the drain that stops it.

mod recovery;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::ServerHandle;
use actix_web::http::KeepAlive;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpServer};
use flacstream_actors::metrics::DRAINING;
use flacstream_actors::registry::RegistrySettings;
use flacstream_actors::store::{JobPlan, Store};
use flacstream_actors::{EncoderPool, Registry};

use crate::api::fallback::{self, RouteTable};
use crate::api::openapi::ApiDocument;
use crate::auth::cors;
use crate::catalog::postgres::PostgresCatalog;
use crate::catalog::sqlite::SqliteCatalog;
use crate::cluster::{lease_keeper, orphan_sweep, Cluster};
use crate::config::Settings;
use crate::drain::{Draining, Stopper, DRAIN_FLUSH_MARGIN_SECONDS};
use crate::jobs::context::JobContext;
use crate::jobs::runner::JobRunner;
use crate::limits::client_connections::ClientConnections;
use crate::limits::session_rate::SessionRate;
use crate::state::AppState;
use crate::webhook::delivery::Deliverer;
use crate::websocket::socket;
use crate::{routes, tls};
use utoipa_actix_web::AppExt;

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

/// Store threads with PostgreSQL: each waits on a network round trip, so
/// more of them keep saves from queueing behind one another.
const POSTGRES_STORE_THREADS: usize = 8;

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
    draining: Draining,
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
        let spool_dir = settings.data_dir.join(crate::api::convert::SPOOL_DIR);
        if spool_dir.exists() {
            std::fs::remove_dir_all(&spool_dir)?;
        }
        // So are the scratch files of jobs it was running (a recompression's
        // new file is written beside the recording until it replaces it).
        let scratch = settings.data_dir.join(crate::jobs::context::SCRATCH_DIR);
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch)?;
        }
        if let Ok(recordings) = std::fs::read_dir(settings.data_dir.join("recordings")) {
            for entry in recordings.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".archive.tmp")
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let pool = EncoderPool::start(settings.encoder_threads, settings.encoder_queue);
        let cluster =
            Arc::new(Cluster::new(&settings.cluster, settings.bind).map_err(io::Error::other)?);
        let (catalog, threads) = match &settings.cluster.database_url {
            Some(url) => (
                PostgresCatalog::factory(
                    url,
                    POSTGRES_STORE_THREADS,
                    settings.cluster.storage_timeout,
                ),
                POSTGRES_STORE_THREADS,
            ),
            None => (SqliteCatalog::factory(&settings.data_dir), STORE_THREADS),
        };
        let jobs = &settings.jobs;
        let plan = JobPlan {
            analysis: jobs.final_analysis,
            recompress_level: jobs.archive_level,
            webhook_url: jobs.webhooks.as_ref().and_then(|w| w.url.clone()),
            key_webhooks: jobs
                .webhooks
                .as_ref()
                .map(|w| w.per_key.clone())
                .unwrap_or_default(),
            max_attempts: jobs.max_attempts,
        };
        let store = Store::start(threads, catalog.map_err(io::Error::other)?, plan);
        let registry = Registry::new(RegistrySettings {
            max_sessions: settings.max_sessions,
            idle_timeout: settings.connection_timeout,
        })
        .start();
        if cluster.shared_catalog {
            // Other replicas may still own the live sessions: no start-up
            // recovery; the sweep finalizes those nobody owns.
            lease_keeper::spawn(Arc::clone(&cluster), store.clone(), registry.clone());
            orphan_sweep::spawn(Arc::clone(&cluster), store.clone());
        } else {
            actix_web::rt::spawn(recovery::recover_unfinished(
                store.clone(),
                settings.data_dir.clone(),
                Arc::clone(&cluster),
            ));
        }
        let draining = Draining::default();
        let prometheus = crate::metrics::install();
        metrics::gauge!(DRAINING).set(0.0);
        let stopper = Arc::new(OnceLock::new());
        let client_connections = ClientConnections::new(settings.max_connections_per_ip);
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            registry: registry.clone(),
            pool: pool.clone(),
            store: store.clone(),
            draining: draining.clone(),
            stopper: Arc::clone(&stopper),
            client_connections: client_connections.clone(),
            session_rate: SessionRate::new(settings.new_sessions_per_minute),
            cluster,
            decoding: Arc::new(tokio::sync::Semaphore::new(settings.decode_threads)),
            analysis: flacstream_actors::chunk_analysis::AnalysisSettings {
                threads: Arc::new(tokio::sync::Semaphore::new(settings.analysis_threads)),
                chunk_silence_dbfs: settings.chunk_silence_dbfs,
                silence_threshold_dbfs: settings.silence_threshold_dbfs,
                silence_min_ms: settings.silence_min_ms,
            },
        });
        let deliverer = settings
            .jobs
            .webhooks
            .as_ref()
            .map(|w| Deliverer::new(w.targets.clone(), Arc::clone(&w.secret), w.timeout))
            .transpose()
            .map_err(io::Error::other)?;
        let worker = format!(
            "{}/{}",
            state.cluster.replica,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        JobRunner::new(
            Arc::new(JobContext {
                store: store.clone(),
                data_dir: settings.data_dir.clone(),
                objects: state.cluster.objects.clone(),
                analysis: state.analysis.clone(),
                decoding: Arc::clone(&state.decoding),
                deliverer,
                settings: settings.jobs.clone(),
                stopping: {
                    let draining = draining.clone();
                    Box::new(move || draining.is_set())
                },
            }),
            worker,
        )
        .start();
        let cluster_lease = Arc::clone(&state.cluster.lease);
        let grace = settings.drain_grace;
        let drain_deadline =
            grace + settings.outbound_stall + Duration::from_secs(DRAIN_FLUSH_MARGIN_SECONDS);
        let kernel_cut_off =
            settings.outbound_stall + Duration::from_secs(socket::KERNEL_CUT_OFF_MARGIN_SECONDS);
        // The same Arc as the settings hold: `Data<Auth>`, what the `Access`
        // extractor looks for.
        let auth = web::Data::from(Arc::clone(&settings.auth));
        // What the narrow endpoints take instead of the whole state.
        let ready = web::Data::new(draining.clone());
        let lease = web::Data::from(Arc::clone(&cluster_lease));
        let prometheus = web::Data::new(prometheus);
        // The OpenAPI document, once: served at /openapi.json, and the
        // table of paths the 404/405 answers consult.
        let document = routes::document();
        let route_table = web::Data::new(RouteTable::new(&document));
        let document = web::Data::new(ApiDocument::new(&document));
        let server = HttpServer::new(move || {
            App::new()
                // Only with an allow-list: actix-cors adds some headers
                // to every answer, Origin or not.
                .wrap(Condition::new(
                    !auth.origins().is_empty(),
                    cors::middleware(auth.origins()),
                ))
                .app_data(state.clone())
                .app_data(auth.clone())
                .app_data(ready.clone())
                .app_data(lease.clone())
                .app_data(prometheus.clone())
                .app_data(document.clone())
                .app_data(route_table.clone())
                // A query that does not parse (an unknown or malformed
                // parameter) gets the JSON 400 every other refusal has.
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    crate::error::ApiError::BadParameter(format!("bad query parameters: {e}"))
                        .into()
                }))
                .into_utoipa_app()
                .configure(routes::configure)
                .default_service(web::to(fallback::unrouted))
                .into_app()
                // Last, so outermost: the access line times everything.
                .wrap(actix_web::middleware::from_fn(
                    crate::request_id::middleware,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::access_log::middleware,
                ))
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
        Stopper::new(
            self.handle.clone(),
            self.registry.clone(),
            self.draining.clone(),
            self.grace,
            self.drain_deadline,
        )
    }

    /// Drains and stops; see [`Stopper::drain`].
    pub async fn drain(&self) {
        self.stopper().drain().await;
    }
}
