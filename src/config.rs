//! Configuration: embedded defaults, overridden by environment variables,
//! overridden by command-line flags (clap with `env`). Validated once into
//! [`Settings`], which the rest of the service takes as proof.
//!
//! [`Config`] is the server's part of the command line ([`crate::cli`]
//! holds the rest).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use flacstream_actors::encoder::pool::DEFAULT_QUEUE_PER_THREAD;
use flacstream_actors::session::{
    InputRateLimit, DEFAULT_INPUT_BURST_SECONDS, DEFAULT_LISTENER_QUEUE_FRAMES,
    DEFAULT_MAX_BLOCKS_IN_FLIGHT, DEFAULT_MAX_INPUT_RATE,
};
use flacstream_codec::wav::DEFAULT_MAX_HEADER_BYTES;

use crate::auth::{Auth, AuthFlags};
use crate::limits::client_connections::DEFAULT_MAX_CONNECTIONS_PER_IP;
use crate::limits::client_ip::{Cidr, TrustedProxies};
use crate::limits::session_rate::DEFAULT_NEW_SESSIONS_PER_MINUTE;
use crate::logging::LogFormat;
use crate::tls::TlsFiles;

mod defaults;
pub mod exposure;
mod jobs;
pub mod legacy_env;
mod settings;

pub use defaults::*;
pub use jobs::{JobFlags, JobSettings, RetentionSettings, WebhookSettings};
pub use settings::{ClusterSettings, ConfigError, Settings};

/// The server's flags and environment variables.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flacstream",
    version,
    about = "Live WAV to FLAC over WebSocket"
)]
pub struct Config {
    /// Address to listen on [default: 127.0.0.1:8080, or 0.0.0.0:8080 with
    /// --auth]. Beyond loopback without --auth needs
    /// --allow-public-without-auth.
    #[arg(long, env = "FLACSTREAM_BIND")]
    pub bind: Option<SocketAddr>,

    /// Allow --bind beyond loopback with authentication off (e.g. behind a
    /// proxy that authenticates); a loud warning is logged at start.
    #[arg(
        long,
        env = "FLACSTREAM_ALLOW_PUBLIC_WITHOUT_AUTH",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub allow_public_without_auth: bool,

    /// Log lines as plain text or as one JSON object per line (timestamp,
    /// level, target, message, fields). RUST_LOG still chooses what is logged.
    #[arg(long, env = "FLACSTREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Directory for recordings (created if missing).
    #[arg(long, env = "FLACSTREAM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Largest WebSocket frame and reassembled message, in bytes.
    #[arg(long, env = "FLACSTREAM_MAX_MESSAGE_SIZE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_SIZE_BYTES)]
    pub max_message_size_bytes: usize,

    /// Seconds without audio before a stream is closed.
    #[arg(long, env = "FLACSTREAM_CONNECTION_TIMEOUT_SECONDS", default_value_t = DEFAULT_CONNECTION_TIMEOUT_SECONDS)]
    pub connection_timeout_seconds: u64,

    /// Concurrent sessions at most; more are refused with HTTP 503.
    #[arg(long, env = "FLACSTREAM_MAX_SESSIONS", default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,

    /// Encoder threads (default: one per core).
    #[arg(long, env = "FLACSTREAM_ENCODER_THREADS")]
    pub encoder_threads: Option<NonZeroUsize>,

    /// Uploads decoded at once (MP3, AAC, …; not WAV), each on a blocking
    /// thread of its own (default: one per core).
    #[arg(long, env = "FLACSTREAM_DECODE_THREADS")]
    pub decode_threads: Option<NonZeroUsize>,

    /// Recorded sessions' chunk metadata and loudness measured at once, each
    /// batch on a blocking thread (default: one per core).
    #[arg(long, env = "FLACSTREAM_ANALYSIS_THREADS")]
    pub analysis_threads: Option<NonZeroUsize>,

    /// A chunk is `silent` when every channel's peak is below this, dBFS.
    #[arg(long, env = "FLACSTREAM_CHUNK_SILENCE_DBFS", default_value_t = DEFAULT_SILENCE_DBFS, allow_hyphen_values = true)]
    pub chunk_silence_dbfs: f64,

    /// Silences in the session analysis: every channel below this level,
    /// dBFS (as ffmpeg's `silencedetect` noise)…
    #[arg(long, env = "FLACSTREAM_SILENCE_THRESHOLD_DBFS", default_value_t = DEFAULT_SILENCE_DBFS, allow_hyphen_values = true)]
    pub silence_threshold_dbfs: f64,

    /// …for at least this long, in milliseconds.
    #[arg(long, env = "FLACSTREAM_SILENCE_MIN_MS", default_value_t = DEFAULT_SILENCE_MIN_MS)]
    pub silence_min_ms: u64,

    /// Blocks queued or encoding across the pool (default: 64 per encoder thread).
    #[arg(long, env = "FLACSTREAM_ENCODER_QUEUE")]
    pub encoder_queue: Option<NonZeroUsize>,

    /// Blocks one stream may have encoding or waiting for its client.
    #[arg(long, env = "FLACSTREAM_MAX_BLOCKS_IN_FLIGHT", default_value_t = DEFAULT_MAX_BLOCKS_IN_FLIGHT)]
    pub max_blocks_in_flight: usize,

    /// FLAC frames a listener may fall behind the stream before it is closed.
    #[arg(long, env = "FLACSTREAM_LISTENER_QUEUE_FRAMES", default_value_t = DEFAULT_LISTENER_QUEUE_FRAMES)]
    pub listener_queue_frames: usize,

    /// Seconds a client may leave output unread before it is closed.
    #[arg(long, env = "FLACSTREAM_OUTBOUND_STALL_SECONDS", default_value_t = DEFAULT_OUTBOUND_STALL_SECONDS)]
    pub outbound_stall_seconds: u64,

    /// Seconds open streams may run on after SIGTERM.
    #[arg(long, env = "FLACSTREAM_DRAIN_GRACE_SECONDS", default_value_t = DEFAULT_DRAIN_GRACE_SECONDS)]
    pub drain_grace_seconds: u64,

    /// Bytes of WAV chunks allowed before the audio data.
    #[arg(long, env = "FLACSTREAM_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: u64,

    /// Connections (producer + listeners) one session may have at once.
    #[arg(long, env = "FLACSTREAM_MAX_CONNECTIONS_PER_SESSION", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_SESSION)]
    pub max_connections_per_session: usize,

    /// Seconds a recorded session waits for a connection to come back.
    #[arg(long, env = "FLACSTREAM_SESSION_RESUME_SECONDS", default_value_t = DEFAULT_SESSION_RESUME_SECONDS)]
    pub session_resume_seconds: u64,

    /// Longest a session (recorded, /stream or a conversion) may run, in seconds.
    #[arg(long, env = "FLACSTREAM_MAX_SESSION_SECONDS", default_value_t = DEFAULT_MAX_SESSION_SECONDS)]
    pub max_session_seconds: u64,

    /// Largest upload to /convert and /upload, in bytes.
    #[arg(long, env = "FLACSTREAM_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "FLACSTREAM_HTTP_WORKERS")]
    pub http_workers: Option<NonZeroUsize>,

    /// Proxies (IP addresses or CIDR networks, comma-separated) whose
    /// X-Forwarded-For is believed for per-client limits. Default: none.
    #[arg(long, env = "FLACSTREAM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Long-lived connections (WebSockets, uploads) one client address may
    /// have open; more get HTTP 429.
    #[arg(long, env = "FLACSTREAM_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,

    /// New sessions one key (API key; for a user's token, its key and user;
    /// else client address) may start per minute, all at once at most; more
    /// get HTTP 429 with Retry-After.
    #[arg(long, env = "FLACSTREAM_NEW_SESSIONS_PER_MINUTE", default_value_t = DEFAULT_NEW_SESSIONS_PER_MINUTE)]
    pub new_sessions_per_minute: u32,

    /// Fastest a live recorded session may receive audio, in multiples of
    /// real time (beyond the burst); faster producers are closed.
    #[arg(long, env = "FLACSTREAM_MAX_INPUT_RATE", default_value_t = DEFAULT_MAX_INPUT_RATE)]
    pub max_input_rate: f64,

    /// Seconds of audio a live recorded session may receive beyond its
    /// input rate, at any speed.
    #[arg(long, env = "FLACSTREAM_INPUT_BURST_SECONDS", default_value_t = DEFAULT_INPUT_BURST_SECONDS)]
    pub input_burst_seconds: u64,

    /// Seconds a new connection has to send its request head (line and
    /// headers); then it gets 408 and is closed.
    #[arg(long, env = "FLACSTREAM_HEADER_TIMEOUT_SECONDS", default_value_t = DEFAULT_HEADER_TIMEOUT_SECONDS)]
    pub header_timeout_seconds: u64,

    /// Slowest an upload to /convert or /upload may arrive on average, in
    /// bytes per second (after a grace); 0 turns the bound off.
    #[arg(long, env = "FLACSTREAM_MIN_UPLOAD_BYTES_PER_SECOND", default_value_t = DEFAULT_MIN_UPLOAD_BYTES_PER_SECOND)]
    pub min_upload_bytes_per_second: u64,

    /// Keep each upload's bytes beside its FLAC (`GET
    /// /api/audio/sessions/{id}/original`); `false` stores only the FLAC.
    #[arg(long, env = "FLACSTREAM_KEEP_ORIGINALS", default_value_t = true, action = clap::ArgAction::Set)]
    pub keep_originals: bool,

    /// Require an API key or token on every endpoint but health, metrics
    /// and the page (needs at least one key). Off by default.
    #[arg(
        long,
        env = "FLACSTREAM_AUTH",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub auth: bool,

    /// API keys, comma-separated `<key-id>:sha256:<hex>` entries
    /// (`flacstream key` makes one).
    #[arg(
        long,
        env = "FLACSTREAM_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// A file of API keys, one `<key-id>:sha256:<hex>` per line (`#` comments).
    #[arg(long, env = "FLACSTREAM_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// The HMAC key tokens are signed with (at least 32 bytes; the same on
    /// every replica). Default: random per process.
    #[arg(long, env = "FLACSTREAM_TOKEN_SECRET_FILE")]
    pub token_secret_file: Option<PathBuf>,

    /// Origins (`https://host[:port]`, comma-separated) whose pages may
    /// connect. The service's own page needs no entry only when reached by
    /// an IP address or `localhost`; under a host name, list it here.
    #[arg(long, env = "FLACSTREAM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Serve TLS with this PEM certificate chain (needs --tls-key; reloaded
    /// on SIGHUP or when the file changes). Default: plain HTTP.
    #[arg(long, env = "FLACSTREAM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "FLACSTREAM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Seconds a TLS client has to finish its handshake; then it is dropped.
    #[arg(long, env = "FLACSTREAM_TLS_HANDSHAKE_TIMEOUT_SECONDS", default_value_t = DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECONDS)]
    pub tls_handshake_timeout_seconds: u64,

    /// TLS handshakes one HTTP worker runs at once; at the limit it accepts
    /// no connection until one finishes or times out.
    #[arg(long, env = "FLACSTREAM_TLS_MAX_HANDSHAKES_PER_WORKER", default_value_t = DEFAULT_TLS_MAX_HANDSHAKES_PER_WORKER)]
    pub tls_max_handshakes_per_worker: usize,

    /// The session catalog in PostgreSQL (`postgres://user:pass@host/db`):
    /// scaled mode, shared by every replica. Unset: SQLite in the data
    /// directory.
    #[arg(long, env = "FLACSTREAM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where recordings go: `s3://bucket/prefix` (endpoint and credentials
    /// from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP), `file:///dir`, or `memory:///` (tests).
    /// Unset: files in the data directory.
    #[arg(long, env = "FLACSTREAM_STORAGE_URL")]
    pub storage_url: Option<String>,

    /// This replica's address as other replicas and operators see it (e.g.
    /// `http://$(POD_IP):8080`); stored with the leases it holds.
    #[arg(long, env = "FLACSTREAM_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Scaled mode: a session's owner lease, in seconds.
    #[arg(long, env = "FLACSTREAM_LEASE_SECONDS", default_value_t = DEFAULT_LEASE_SECONDS)]
    pub lease_seconds: u64,

    /// Scaled mode: how far `samples_durable` may lag live audio, in seconds.
    #[arg(long, env = "FLACSTREAM_DURABLE_LAG_SECONDS", default_value_t = DEFAULT_DURABLE_LAG_SECONDS)]
    pub durable_lag_seconds: u64,

    /// Scaled mode: frame bytes per session not yet durable before its
    /// producer waits.
    #[arg(long, env = "FLACSTREAM_MAX_UNDURABLE_BYTES", default_value_t = DEFAULT_MAX_UNDURABLE_BYTES)]
    pub max_undurable_bytes: usize,

    /// Longest one object-storage or database request may take, in seconds.
    #[arg(long, env = "FLACSTREAM_STORAGE_TIMEOUT_SECONDS", default_value_t = DEFAULT_STORAGE_TIMEOUT_SECONDS)]
    pub storage_timeout_seconds: u64,

    /// Background jobs, webhooks and retention.
    #[command(flatten)]
    pub jobs: JobFlags,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

fn at_least_one(name: &'static str, got: u64) -> Result<(), ConfigError> {
    if got == 0 {
        return Err(ConfigError::OutOfRange {
            name,
            expected: "at least 1",
            got,
        });
    }
    Ok(())
}

fn at_most(
    name: &'static str,
    got: u64,
    max: u64,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if got > max {
        return Err(ConfigError::OutOfRange {
            name,
            expected,
            got,
        });
    }
    Ok(())
}

impl Config {
    /// The embedded defaults, as if no flag or variable were given.
    pub fn defaults() -> Self {
        Self::parse_from(["flacstream"])
    }

    fn cluster(&self, bind: SocketAddr) -> Result<ClusterSettings, ConfigError> {
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::DatabaseUrl);
            }
            let shared = self
                .storage_url
                .as_deref()
                .is_some_and(|s| !s.starts_with("file:"));
            if !shared {
                return Err(ConfigError::ScaledNeedsStorage);
            }
            if self.advertise_url.is_none() && bind.ip().is_unspecified() {
                return Err(ConfigError::AdvertiseUrl);
            }
        }
        if self.lease_seconds < MIN_LEASE_SECONDS {
            return Err(ConfigError::OutOfRange {
                name: "--lease-seconds",
                expected: "at least 3",
                got: self.lease_seconds,
            });
        }
        if self.durable_lag_seconds < MIN_DURABLE_LAG_SECONDS {
            return Err(ConfigError::OutOfRange {
                name: "--durable-lag-seconds",
                expected: "at least 2",
                got: self.durable_lag_seconds,
            });
        }
        at_least_one("--storage-timeout-seconds", self.storage_timeout_seconds)?;
        at_least_one("--max-undurable-bytes", self.max_undurable_bytes as u64)?;
        for (name, got) in [
            ("--lease-seconds", self.lease_seconds),
            ("--durable-lag-seconds", self.durable_lag_seconds),
            ("--storage-timeout-seconds", self.storage_timeout_seconds),
        ] {
            at_most(name, got, MAX_DURATION_SECONDS, "at most 86400 (a day)")?;
        }
        Ok(ClusterSettings {
            database_url: self.database_url.clone(),
            storage_url: self.storage_url.clone(),
            advertise_url: self.advertise_url.clone(),
            lease: Duration::from_secs(self.lease_seconds),
            durable_lag: Duration::from_secs(self.durable_lag_seconds),
            max_undurable_bytes: self.max_undurable_bytes,
            storage_timeout: Duration::from_secs(self.storage_timeout_seconds),
            orphan_grace: Duration::from_secs(self.session_resume_seconds),
        })
    }

    /// Checks every value once.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let (bind, exposure) =
            exposure::resolve(self.bind, self.auth, self.allow_public_without_auth)?;
        let cluster = self.cluster(bind)?;
        at_least_one(
            "--max-message-size-bytes",
            self.max_message_size_bytes as u64,
        )?;
        at_least_one(
            "--connection-timeout-seconds",
            self.connection_timeout_seconds,
        )?;
        at_least_one("--max-sessions", self.max_sessions as u64)?;
        at_least_one("--max-blocks-in-flight", self.max_blocks_in_flight as u64)?;
        at_least_one("--listener-queue-frames", self.listener_queue_frames as u64)?;
        at_least_one("--outbound-stall-seconds", self.outbound_stall_seconds)?;
        at_least_one(
            "--max-connections-per-session",
            self.max_connections_per_session as u64,
        )?;
        at_least_one("--max-session-seconds", self.max_session_seconds)?;
        at_least_one(
            "--max-connections-per-ip",
            self.max_connections_per_ip as u64,
        )?;
        at_least_one(
            "--new-sessions-per-minute",
            u64::from(self.new_sessions_per_minute),
        )?;
        // Below real time a live source could not keep up; NaN compares false.
        if !(self.max_input_rate >= MIN_INPUT_RATE && self.max_input_rate.is_finite()) {
            return Err(ConfigError::RateTooLow {
                name: "--max-input-rate",
                min: MIN_INPUT_RATE,
                got: self.max_input_rate,
            });
        }
        // With no burst, a session's second message would already be ahead
        // of its clock.
        at_least_one("--input-burst-seconds", self.input_burst_seconds)?;
        at_least_one("--header-timeout-seconds", self.header_timeout_seconds)?;
        at_least_one(
            "--tls-handshake-timeout-seconds",
            self.tls_handshake_timeout_seconds,
        )?;
        for (name, got) in [
            (
                "--connection-timeout-seconds",
                self.connection_timeout_seconds,
            ),
            ("--outbound-stall-seconds", self.outbound_stall_seconds),
            ("--drain-grace-seconds", self.drain_grace_seconds),
            ("--session-resume-seconds", self.session_resume_seconds),
            ("--input-burst-seconds", self.input_burst_seconds),
            ("--header-timeout-seconds", self.header_timeout_seconds),
            (
                "--tls-handshake-timeout-seconds",
                self.tls_handshake_timeout_seconds,
            ),
        ] {
            at_most(name, got, MAX_DURATION_SECONDS, "at most 86400 (a day)")?;
        }
        at_most(
            "--max-session-seconds",
            self.max_session_seconds,
            MAX_SESSION_SECONDS_LIMIT,
            "at most 31622400 (366 days)",
        )?;
        at_least_one(
            "--tls-max-handshakes-per-worker",
            self.tls_max_handshakes_per_worker as u64,
        )?;
        at_most(
            "--tls-max-handshakes-per-worker",
            self.tls_max_handshakes_per_worker as u64,
            MAX_TLS_HANDSHAKES_PER_WORKER as u64,
            "at most 1048576",
        )?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsHalfConfigured),
        };
        let auth = Auth::new(AuthFlags {
            enabled: self.auth,
            api_keys: &self.api_keys,
            api_keys_file: self.api_keys_file.as_deref(),
            token_secret_file: self.token_secret_file.as_deref(),
            allowed_origins: &self.allowed_origins,
            trusted_proxies: &self.trusted_proxies,
        })?;
        let encoder_threads = self.encoder_threads.map_or_else(cores, NonZeroUsize::get);
        Ok(Settings {
            bind,
            exposure,
            cluster,
            data_dir: self.data_dir,
            max_message_size_bytes: self.max_message_size_bytes,
            connection_timeout: Duration::from_secs(self.connection_timeout_seconds),
            max_sessions: self.max_sessions,
            encoder_threads,
            decode_threads: self.decode_threads.map_or_else(cores, NonZeroUsize::get),
            analysis_threads: self.analysis_threads.map_or_else(cores, NonZeroUsize::get),
            chunk_silence_dbfs: self.chunk_silence_dbfs,
            silence_threshold_dbfs: self.silence_threshold_dbfs,
            silence_min_ms: self.silence_min_ms,
            encoder_queue: self.encoder_queue.map_or(
                encoder_threads * DEFAULT_QUEUE_PER_THREAD,
                NonZeroUsize::get,
            ),
            max_blocks_in_flight: self.max_blocks_in_flight,
            listener_queue_frames: self.listener_queue_frames,
            outbound_stall: Duration::from_secs(self.outbound_stall_seconds),
            drain_grace: Duration::from_secs(self.drain_grace_seconds),
            max_header_bytes: self.max_header_bytes,
            http_workers: self.http_workers.map_or_else(cores, NonZeroUsize::get),
            max_connections_per_session: self.max_connections_per_session,
            session_resume: Duration::from_secs(self.session_resume_seconds),
            max_session: Duration::from_secs(self.max_session_seconds),
            max_upload_bytes: self.max_upload_bytes,
            keep_originals: self.keep_originals,
            jobs: self.jobs.validate()?,
            trusted_proxies: TrustedProxies::new(self.trusted_proxies),
            max_connections_per_ip: self.max_connections_per_ip,
            new_sessions_per_minute: self.new_sessions_per_minute,
            input_rate: InputRateLimit {
                max_rate: self.max_input_rate,
                burst: Duration::from_secs(self.input_burst_seconds),
            },
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            min_upload_bytes_per_second: self.min_upload_bytes_per_second,
            auth: Arc::new(auth),
            tls,
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_seconds),
            tls_max_handshakes_per_worker: self.tls_max_handshakes_per_worker,
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
