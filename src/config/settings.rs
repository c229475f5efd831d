//! What a validated configuration is: [`Settings`], which the rest of the
//! service takes as proof, and [`ConfigError`] when a value cannot work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flacstream_actors::session::InputRateLimit;

use crate::auth::Auth;
use crate::limits::client_ip::TrustedProxies;
use crate::tls::TlsFiles;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of its range.
    #[error("{name} must be {expected}, got {got}")]
    OutOfRange {
        /// The setting's flag name.
        name: &'static str,
        /// The allowed range, in words.
        expected: &'static str,
        /// The value given.
        got: u64,
    },
    /// An authentication setting cannot work.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
    /// Only one of `--tls-cert` and `--tls-key` is given.
    #[error("--tls-cert and --tls-key go together: give both (TLS) or neither (plain HTTP)")]
    TlsHalfConfigured,
    /// The database URL is not PostgreSQL's.
    #[error("FLACSTREAM_DATABASE_URL must start with postgres:// or postgresql://")]
    DatabaseUrl,
    /// Replicas must be able to reach each other.
    #[error("FLACSTREAM_DATABASE_URL (scaled mode) needs FLACSTREAM_ADVERTISE_URL (e.g. http://$(POD_IP):8080) when --bind is an unspecified address: other replicas relay listeners to it")]
    AdvertiseUrl,
    /// A shared catalog needs shared recordings.
    #[error("FLACSTREAM_DATABASE_URL (scaled mode) needs FLACSTREAM_STORAGE_URL=s3://… too: replicas must share recordings as they share the catalog")]
    ScaledNeedsStorage,
    /// Listening beyond loopback with authentication off, not allowed.
    #[error(
        "refusing to listen on {0} with authentication off: anyone who can reach it could use \
         and delete every session. Turn authentication on (--auth, FLACSTREAM_AUTH=true, with \
         --api-keys), listen on loopback (--bind 127.0.0.1:8080), or, behind a proxy that \
         authenticates, pass --allow-public-without-auth \
         (FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH=true)"
    )]
    PublicWithoutAuth(SocketAddr),
    /// A job, webhook or retention setting cannot work.
    #[error("{0}")]
    Jobs(String),
    /// A rate is not a number, or below its minimum.
    #[error("{name} must be a number of at least {min}, got {got}")]
    RateTooLow {
        /// The setting's flag name.
        name: &'static str,
        /// The least value that works.
        min: f64,
        /// The value given.
        got: f64,
    },
}

/// Where the catalog and the recordings live; see [`crate::cluster`].
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// PostgreSQL (scaled mode), else SQLite in the data directory.
    pub database_url: Option<String>,
    /// Object storage for recordings, else files in the data directory.
    pub storage_url: Option<String>,
    /// This replica's address, for the lease rows.
    pub advertise_url: Option<String>,
    /// A session owner's lease.
    pub lease: Duration,
    /// How far `samples_durable` may lag live audio.
    pub durable_lag: Duration,
    /// Frame bytes per session not yet durable before the producer waits.
    pub max_undurable_bytes: usize,
    /// Longest one storage request may take.
    pub storage_timeout: Duration,
    /// How long a session's lease must have run out before another replica
    /// finalizes it (the resume window: a producer may still come back).
    pub orphan_grace: Duration,
}

/// Validated settings; see [`Config::validate`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// How [`Settings::bind`] was chosen, for the line logged at start.
    pub exposure: super::exposure::Exposure,
    /// Where the catalog and recordings are, and how replicas share them.
    pub cluster: ClusterSettings,
    /// Directory for recordings.
    pub data_dir: PathBuf,
    /// Largest frame and reassembled message, in bytes.
    pub max_message_size_bytes: usize,
    /// Idle timeout.
    pub connection_timeout: Duration,
    /// Session cap.
    pub max_sessions: usize,
    /// Encoder threads.
    pub encoder_threads: usize,
    /// Uploads decoded at once.
    pub decode_threads: usize,
    /// Analysis batches at once.
    pub analysis_threads: usize,
    /// Chunk silence level, dBFS.
    pub chunk_silence_dbfs: f64,
    /// Silence level, dBFS.
    pub silence_threshold_dbfs: f64,
    /// Shortest silence, ms.
    pub silence_min_ms: u64,
    /// Encoder queue capacity in blocks.
    pub encoder_queue: usize,
    /// Blocks in flight per stream.
    pub max_blocks_in_flight: usize,
    /// Frames a listener may fall behind.
    pub listener_queue_frames: usize,
    /// Slow-reader cut-off.
    pub outbound_stall: Duration,
    /// Drain grace period.
    pub drain_grace: Duration,
    /// Header bound in bytes.
    pub max_header_bytes: u64,
    /// HTTP workers.
    pub http_workers: usize,
    /// Connections per session.
    pub max_connections_per_session: usize,
    /// Resume window of recorded sessions.
    pub session_resume: Duration,
    /// Longest recorded session.
    pub max_session: Duration,
    /// Upload bound in bytes.
    pub max_upload_bytes: u64,
    /// Whether uploads' bytes are kept.
    pub keep_originals: bool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Long-lived connections per client address (inclusive).
    pub max_connections_per_ip: usize,
    /// New sessions per minute per key, also the burst.
    pub new_sessions_per_minute: u32,
    /// Input-rate bound of live recorded sessions.
    pub input_rate: InputRateLimit,
    /// Time a connection has to send its request head.
    pub header_timeout: Duration,
    /// Slowest average upload, in bytes per second; 0 for no bound.
    pub min_upload_bytes_per_second: u64,
    /// Authentication and the Origin allow-list.
    pub auth: Arc<Auth>,
    /// Certificate and key files when serving TLS; `None` for plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Time a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// TLS handshakes in progress per HTTP worker.
    pub tls_max_handshakes_per_worker: usize,
    /// Background jobs, webhooks and retention.
    pub jobs: super::JobSettings,
}
