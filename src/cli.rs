//! The command line: serve (no subcommand, with [`Config`]) or one of the
//! small clients a container needs instead of a shell and curl: `probe`
//! and `drain` ([`probe`]), and `key`, which prints a new API key.

pub mod migrate;
pub mod probe;

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::legacy_env::{self, LegacyUse};
use crate::config::{Config, DEFAULT_DRAIN_GRACE_SECONDS, DEFAULT_OUTBOUND_STALL_SECONDS};
use crate::drain::DRAIN_FLUSH_MARGIN_SECONDS;

/// Default URL `flacstream probe` checks.
pub const DEFAULT_PROBE_URL: &str = "http://127.0.0.1:8080/healthz";

/// Default URL `flacstream probe` checks when given the server's certificate.
pub const DEFAULT_PROBE_URL_TLS: &str = "https://127.0.0.1:8080/healthz";

/// Default URL `flacstream drain` posts to and then polls.
pub const DEFAULT_DRAIN_URL: &str = "http://127.0.0.1:8080/admin/drain";

/// Default URL of `flacstream drain` when given the server's certificate.
pub const DEFAULT_DRAIN_URL_TLS: &str = "https://127.0.0.1:8080/admin/drain";

/// Default longest time `flacstream drain` waits for streams to end, in
/// seconds: the longest a drain with the default settings takes (grace +
/// stall + flush margin, 45 s) and 5 s more, so that with the defaults it
/// only returns early when something is wrong.
pub const DEFAULT_DRAIN_WAIT_SECONDS: u64 =
    DEFAULT_DRAIN_GRACE_SECONDS + DEFAULT_OUTBOUND_STALL_SECONDS + DRAIN_FLUSH_MARGIN_SECONDS + 5;

/// The whole command line: serve (no subcommand) or one of the clients.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flacstream",
    version,
    about = "Live WAV to FLAC over WebSocket",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A client to run instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The server's settings, used when there is no subcommand.
    #[command(flatten)]
    pub serve: Config,
}

impl Cli {
    /// Parses the process's command line and environment, reading each
    /// setting's old unprefixed environment name where only that one is set
    /// ([`crate::config::legacy_env`]); exits with clap's message on an error.
    /// The uses of old names are returned for the caller to log once logging
    /// is set up.
    pub fn parse_with_legacy_env() -> (Self, Vec<LegacyUse>) {
        let (command, found) = legacy_env::aliased(Self::command(), |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        });
        let matches = command.get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(cli) => (cli, found),
            Err(e) => e.exit(),
        }
    }
}

/// Clients of a running server, for containers without a shell.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Exit 0 if a URL answers HTTP 200, else 1 (a container health check).
    Probe(ProbeArgs),
    /// Start draining a local server and wait until its streams have ended
    /// (a Kubernetes preStop hook).
    ///
    /// Exit 0 once none is left or the server has stopped, 1 if the drain
    /// could not be started, 2 if streams were still open when the wait ran
    /// out.
    Drain(DrainArgs),
    /// Print a new random API key and the `--api-keys` entry that admits it.
    ///
    /// The key goes to the client; the entry (its SHA-256 only) to the
    /// server's --api-keys or --api-keys-file.
    Key(KeyArgs),
    /// Move a single-node install (SQLite + files) into scaled mode
    /// (PostgreSQL + object storage); see docs/scaling.md.
    Migrate(migrate::MigrateArgs),
}

/// Flags of `flacstream key`.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// The new key's id (1 to 64 of A-Z a-z 0-9 . _ -), named in its tokens
    /// and stored with the sessions it creates.
    #[arg(long, default_value = "default")]
    pub id: String,
}

/// How `probe` and `drain` trust a server that serves TLS.
#[derive(Debug, Clone, Args)]
pub struct ClientTls {
    /// The server's own certificate (PEM, the file of its --tls-cert): an
    /// https server must present exactly this certificate, whatever name it
    /// is for. Given, the default URL is https.
    #[arg(long, env = "FLACSTREAM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
}

/// Flags of `flacstream probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// URL to GET, http or (with --tls-cert) https [default: http://127.0.0.1:8080/healthz,
    /// https with --tls-cert]
    #[arg(long)]
    pub url: Option<String>,
    /// TLS trust.
    #[command(flatten)]
    pub tls: ClientTls,
}

impl ProbeArgs {
    /// The URL to check: the one given, else the default for the scheme.
    pub fn url(&self) -> &str {
        match (&self.url, &self.tls.tls_cert) {
            (Some(url), _) => url,
            (None, Some(_)) => DEFAULT_PROBE_URL_TLS,
            (None, None) => DEFAULT_PROBE_URL,
        }
    }
}

/// Flags of `flacstream drain`.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// The server's drain endpoint, on loopback [default: http://127.0.0.1:8080/admin/drain,
    /// https with --tls-cert]
    #[arg(long)]
    pub url: Option<String>,
    /// Longest time to wait for streams to end, in seconds.
    #[arg(long, default_value_t = DEFAULT_DRAIN_WAIT_SECONDS)]
    pub wait_seconds: u64,
    /// TLS trust.
    #[command(flatten)]
    pub tls: ClientTls,
}

impl DrainArgs {
    /// The drain endpoint: the one given, else the default for the scheme.
    pub fn url(&self) -> &str {
        match (&self.url, &self.tls.tls_cert) {
            (Some(url), _) => url,
            (None, Some(_)) => DEFAULT_DRAIN_URL_TLS,
            (None, None) => DEFAULT_DRAIN_URL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_serves_and_clients_parse() {
        let cli = Cli::parse_from(["flacstream", "--max-sessions", "7"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.max_sessions, 7);
        let cli = Cli::parse_from(["flacstream", "probe"]);
        let Some(Command::Probe(probe)) = cli.command else {
            panic!("probe expected");
        };
        assert_eq!(probe.url(), DEFAULT_PROBE_URL);
        let cli = Cli::parse_from(["flacstream", "drain", "--wait-seconds", "9"]);
        let Some(Command::Drain(drain)) = cli.command else {
            panic!("drain expected");
        };
        assert_eq!((drain.url(), drain.wait_seconds), (DEFAULT_DRAIN_URL, 9));
        assert!(Cli::try_parse_from(["flacstream", "--max-sessions", "7", "probe"]).is_err());
    }

    #[test]
    fn clients_use_https_with_a_certificate() {
        // The clients switch their default URL to https when given the certificate.
        let cli = Cli::parse_from(["flacstream", "probe", "--tls-cert", "c.pem"]);
        let Some(Command::Probe(probe)) = cli.command else {
            panic!("probe expected");
        };
        assert_eq!(probe.url(), DEFAULT_PROBE_URL_TLS);
        let cli = Cli::parse_from(["flacstream", "drain", "--tls-cert", "c.pem"]);
        let Some(Command::Drain(drain)) = cli.command else {
            panic!("drain expected");
        };
        assert_eq!(drain.url(), DEFAULT_DRAIN_URL_TLS);
    }
}
