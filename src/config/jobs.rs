//! The background jobs' settings (`crate::jobs`): how the queue runs, which
//! jobs an ended session gets, where webhooks go, how long recordings are
//! kept. Flags here, validated into [`JobSettings`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::settings::ConfigError;
use crate::webhook::target::Targets;

/// Jobs one replica runs at once: two keep a slow receiver or a long
/// analysis from holding up the rest without taking the encoders' cores.
pub const DEFAULT_JOB_WORKERS: usize = 2;
/// How often an idle replica looks for due jobs, in milliseconds: a job
/// starts within this of being due.
pub const DEFAULT_JOB_POLL_MS: u64 = 1000;
/// How long a claim holds without renewal, in seconds: a worker that dies
/// holds its jobs this long before another replica retries them. Renewed
/// at a third of it while a job runs.
pub const DEFAULT_JOB_LEASE_SECONDS: u64 = 60;
/// Attempts before a job fails: with the default backoff (10 s doubling to
/// an hour, half of each random) 20 attempts span 6 to 11 hours.
pub const DEFAULT_JOB_MAX_ATTEMPTS: u32 = 20;
/// Delay before the first retry, in milliseconds; doubled each attempt.
pub const DEFAULT_JOB_BACKOFF_MS: u64 = 10_000;
/// Longest delay between attempts, in seconds.
pub const DEFAULT_JOB_BACKOFF_MAX_SECONDS: u64 = 3600;
/// Longest one webhook attempt may take, in seconds.
pub const DEFAULT_WEBHOOK_TIMEOUT_SECONDS: u64 = 10;
/// Shortest webhook secret, in bytes: 128 bits.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 16;
/// How often retention looks for recordings past their age, in seconds.
pub const DEFAULT_RETENTION_CHECK_SECONDS: u64 = 3600;
/// Longest retention age, in days (ten years).
pub const MAX_RETENTION_DAYS: u64 = 3660;

/// The jobs' flags.
#[derive(Debug, Clone, clap::Args)]
pub struct JobFlags {
    /// Background jobs this replica runs at once.
    #[arg(long, env = "FLACSTREAM_JOB_WORKERS", default_value_t = DEFAULT_JOB_WORKERS)]
    pub job_workers: usize,

    /// How often an idle replica looks for due jobs, in milliseconds.
    #[arg(long, env = "FLACSTREAM_JOB_POLL_MS", default_value_t = DEFAULT_JOB_POLL_MS)]
    pub job_poll_ms: u64,

    /// How long a job's claim holds without renewal, in seconds.
    #[arg(long, env = "FLACSTREAM_JOB_LEASE_SECONDS", default_value_t = DEFAULT_JOB_LEASE_SECONDS)]
    pub job_lease_seconds: u64,

    /// Attempts before a job fails.
    #[arg(long, env = "FLACSTREAM_JOB_MAX_ATTEMPTS", default_value_t = DEFAULT_JOB_MAX_ATTEMPTS)]
    pub job_max_attempts: u32,

    /// Delay before a job's first retry, in milliseconds (doubled each time).
    #[arg(long, env = "FLACSTREAM_JOB_BACKOFF_MS", default_value_t = DEFAULT_JOB_BACKOFF_MS)]
    pub job_backoff_ms: u64,

    /// Longest delay between a job's attempts, in seconds.
    #[arg(long, env = "FLACSTREAM_JOB_BACKOFF_MAX_SECONDS", default_value_t = DEFAULT_JOB_BACKOFF_MAX_SECONDS)]
    pub job_backoff_max_seconds: u64,

    /// Run the analysis over the whole stored recording after a session
    /// ends (when the live one does not already cover it).
    #[arg(long, env = "FLACSTREAM_FINAL_ANALYSIS", default_value_t = true, action = clap::ArgAction::Set)]
    pub final_analysis: bool,

    /// Re-encode recordings made below this level at it after they end
    /// (e.g. 8 for archives); off by default.
    #[arg(long, env = "FLACSTREAM_ARCHIVE_LEVEL", value_parser = clap::value_parser!(u8).range(0..=8))]
    pub archive_level: Option<u8>,

    /// Where webhooks go (sessions of a key with its own go there).
    #[arg(long, env = "FLACSTREAM_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Receivers per API key: `<key-id>=<url>`, comma-separated.
    #[arg(long, env = "FLACSTREAM_KEY_WEBHOOKS", value_delimiter = ',')]
    pub key_webhooks: Vec<String>,

    /// The webhook signing secret (at least 16 bytes).
    #[arg(long, env = "FLACSTREAM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// A file holding the webhook signing secret (instead of the variable).
    #[arg(long, env = "FLACSTREAM_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Networks webhook receivers may be in although loopback, link-local
    /// and the like are refused (e.g. `127.0.0.0/8` for a local receiver).
    #[arg(
        long,
        env = "FLACSTREAM_WEBHOOK_ALLOWED_NETWORKS",
        value_delimiter = ','
    )]
    pub webhook_allowed_networks: Vec<IpNet>,

    /// Longest one webhook attempt may take, in seconds.
    #[arg(long, env = "FLACSTREAM_WEBHOOK_TIMEOUT_SECONDS", default_value_t = DEFAULT_WEBHOOK_TIMEOUT_SECONDS)]
    pub webhook_timeout_seconds: u64,

    /// Delete recordings, originals and their metadata this many days after
    /// their session ended; off by default.
    #[arg(long, env = "FLACSTREAM_RETENTION_DAYS")]
    pub retention_days: Option<u64>,

    /// Retention per API key: `<key-id>=<days>`, comma-separated.
    #[arg(long, env = "FLACSTREAM_KEY_RETENTION_DAYS", value_delimiter = ',')]
    pub key_retention_days: Vec<String>,

    /// How often retention runs, in seconds.
    #[arg(long, env = "FLACSTREAM_RETENTION_CHECK_SECONDS", default_value_t = DEFAULT_RETENTION_CHECK_SECONDS)]
    pub retention_check_seconds: u64,
}

/// Where webhooks go and how they are signed.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The receiver for sessions without a key of their own.
    pub url: Option<String>,
    /// Receivers per API key id.
    pub per_key: HashMap<String, String>,
    /// The signing secret.
    pub secret: Arc<[u8]>,
    /// Which receivers may be reached.
    pub targets: Targets,
    /// One attempt's bound.
    pub timeout: Duration,
}

/// How long recordings are kept.
#[derive(Debug, Clone, Default)]
pub struct RetentionSettings {
    /// For sessions of no key with its own.
    pub default: Option<Duration>,
    /// Per API key id.
    pub per_key: HashMap<String, Duration>,
    /// How often it runs.
    pub check: Duration,
}

impl RetentionSettings {
    /// Whether anything is ever deleted.
    pub fn enabled(&self) -> bool {
        self.default.is_some() || !self.per_key.is_empty()
    }
}

/// Validated job settings.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs at once per replica.
    pub workers: usize,
    /// Poll interval.
    pub poll: Duration,
    /// Claim lease.
    pub lease: Duration,
    /// Attempts per job.
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Whether ended sessions get a final analysis.
    pub final_analysis: bool,
    /// The archive level, if recompression is on.
    pub archive_level: Option<u8>,
    /// Webhooks, if any receiver is configured.
    pub webhooks: Option<WebhookSettings>,
    /// Retention.
    pub retention: RetentionSettings,
}

fn pairs(name: &'static str, entries: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    entries
        .iter()
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| {
                    ConfigError::Jobs(format!("{name} entries are <key-id>=<value>, got {e:?}"))
                })
        })
        .collect()
}

fn range(name: &'static str, got: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if got < min || got > max {
        return Err(ConfigError::Jobs(format!(
            "{name} must be {min} to {max}, got {got}"
        )));
    }
    Ok(got)
}

impl JobFlags {
    /// Checks the flags.
    pub fn validate(self) -> Result<JobSettings, ConfigError> {
        let day = 86_400;
        range("--job-workers", self.job_workers as u64, 1, 64)?;
        range("--job-poll-ms", self.job_poll_ms, 10, 60_000)?;
        range("--job-lease-seconds", self.job_lease_seconds, 1, day)?;
        range(
            "--job-max-attempts",
            u64::from(self.job_max_attempts),
            1,
            1000,
        )?;
        range("--job-backoff-ms", self.job_backoff_ms, 1, day * 1000)?;
        range(
            "--job-backoff-max-seconds",
            self.job_backoff_max_seconds,
            1,
            day,
        )?;
        range(
            "--webhook-timeout-seconds",
            self.webhook_timeout_seconds,
            1,
            600,
        )?;
        range(
            "--retention-check-seconds",
            self.retention_check_seconds,
            1,
            day,
        )?;
        let targets = Targets {
            allowed: self.webhook_allowed_networks,
        };
        let per_key: HashMap<String, String> = pairs("--key-webhooks", &self.key_webhooks)?
            .into_iter()
            .collect();
        for url in self.webhook_url.iter().chain(per_key.values()) {
            // The URL's form and a literal address; a name's addresses are
            // checked at each delivery.
            use crate::webhook::target::TargetError;
            if let Err(e @ (TargetError::Url(_) | TargetError::RefusedLiteral(_))) =
                targets.check_url(url)
            {
                return Err(ConfigError::Jobs(e.to_string()));
            }
        }
        let webhooks = if self.webhook_url.is_some() || !per_key.is_empty() {
            let secret = match (&self.webhook_secret, &self.webhook_secret_file) {
                (Some(s), None) => s.clone().into_bytes(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Jobs(format!("cannot read {}: {e}", path.display())))?
                    .trim_end()
                    .as_bytes()
                    .to_vec(),
                _ => {
                    return Err(ConfigError::Jobs(
                        "webhooks need exactly one of FLACSTREAM_WEBHOOK_SECRET and \
                         --webhook-secret-file"
                            .into(),
                    ))
                }
            };
            if secret.len() < MIN_WEBHOOK_SECRET_BYTES {
                return Err(ConfigError::Jobs(format!(
                    "the webhook secret must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes"
                )));
            }
            Some(WebhookSettings {
                url: self.webhook_url,
                per_key,
                secret: secret.into(),
                targets,
                timeout: Duration::from_secs(self.webhook_timeout_seconds),
            })
        } else {
            None
        };
        let days = |name, d: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(
                range(name, d, 1, MAX_RETENTION_DAYS)? * day,
            ))
        };
        let mut retention = RetentionSettings {
            default: self
                .retention_days
                .map(|d| days("--retention-days", d))
                .transpose()?,
            per_key: HashMap::new(),
            check: Duration::from_secs(self.retention_check_seconds),
        };
        for (key, d) in pairs("--key-retention-days", &self.key_retention_days)? {
            let d: u64 = d.parse().map_err(|_| {
                ConfigError::Jobs(format!(
                    "--key-retention-days: {d:?} is not a number of days"
                ))
            })?;
            retention
                .per_key
                .insert(key, days("--key-retention-days", d)?);
        }
        Ok(JobSettings {
            workers: self.job_workers,
            poll: Duration::from_millis(self.job_poll_ms),
            lease: Duration::from_secs(self.job_lease_seconds),
            max_attempts: self.job_max_attempts,
            backoff: Duration::from_millis(self.job_backoff_ms),
            backoff_max: Duration::from_secs(self.job_backoff_max_seconds),
            final_analysis: self.final_analysis,
            archive_level: self.archive_level,
            webhooks,
            retention,
        })
    }
}
