//! The environment names six settings had before every name took the
//! `FLACSTREAM_` prefix, still read so that no deployment breaks on
//! upgrade. The prefixed name wins when both are set; either way the
//! operator is told once, at start, which name to move to.

use clap::Command;

/// One setting's old environment name and its new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyEnv {
    /// The clap argument id (the `Config` field).
    pub arg: &'static str,
    /// The name it had, without the prefix.
    pub old: &'static str,
    /// The name it has now.
    pub new: &'static str,
}

/// Every setting whose environment name changed.
pub const LEGACY_ENV: &[LegacyEnv] = &[
    LegacyEnv {
        arg: "max_message_size_bytes",
        old: "MAX_MESSAGE_SIZE_BYTES",
        new: "FLACSTREAM_MAX_MESSAGE_SIZE_BYTES",
    },
    LegacyEnv {
        arg: "connection_timeout_seconds",
        old: "CONNECTION_TIMEOUT_SECONDS",
        new: "FLACSTREAM_CONNECTION_TIMEOUT_SECONDS",
    },
    LegacyEnv {
        arg: "max_connections_per_session",
        old: "MAX_CONNECTIONS_PER_SESSION",
        new: "FLACSTREAM_MAX_CONNECTIONS_PER_SESSION",
    },
    LegacyEnv {
        arg: "session_resume_seconds",
        old: "SESSION_RESUME_SECONDS",
        new: "FLACSTREAM_SESSION_RESUME_SECONDS",
    },
    LegacyEnv {
        arg: "max_session_seconds",
        old: "MAX_SESSION_SECONDS",
        new: "FLACSTREAM_MAX_SESSION_SECONDS",
    },
    LegacyEnv {
        arg: "max_upload_bytes",
        old: "MAX_UPLOAD_BYTES",
        new: "FLACSTREAM_MAX_UPLOAD_BYTES",
    },
];

/// What was found for one setting whose old name is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyUse {
    /// Only the old name is set: it is read.
    Read(LegacyEnv),
    /// Both are set: the prefixed one is read, the old one ignored.
    Ignored(LegacyEnv),
}

impl LegacyUse {
    /// The deprecation note logged at start.
    pub fn note(&self) -> String {
        match self {
            Self::Read(e) => format!(
                "The environment variable {} is deprecated and will be removed; rename it to {}.",
                e.old, e.new
            ),
            Self::Ignored(e) => format!(
                "The environment variable {} is deprecated and ignored because {} is set too; \
                 remove it.",
                e.old, e.new
            ),
        }
    }
}

/// Which old names are in use, looking variables up with `lookup` (the
/// process environment in [`aliased`], a map in tests).
pub fn uses(lookup: impl Fn(&str) -> Option<String>) -> Vec<LegacyUse> {
    LEGACY_ENV
        .iter()
        .filter(|e| lookup(e.old).is_some())
        .map(|e| {
            if lookup(e.new).is_some() {
                LegacyUse::Ignored(*e)
            } else {
                LegacyUse::Read(*e)
            }
        })
        .collect()
}

/// `command` with each setting whose only environment name set is its old
/// one reading that name instead, so clap parses and checks the value as it
/// does any other; and what was found, for the notes to log once the
/// logger is up. Flags on the command line still win over both names.
pub fn aliased(
    command: Command,
    lookup: impl Fn(&str) -> Option<String>,
) -> (Command, Vec<LegacyUse>) {
    let found = uses(lookup);
    let command = found.iter().fold(command, |command, found| match found {
        LegacyUse::Read(e) => command.mut_arg(e.arg, |arg| arg.env(e.old)),
        LegacyUse::Ignored(_) => command,
    });
    (command, found)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::config::Config;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn every_old_name_is_unprefixed_and_its_new_name_is_the_args_env() {
        let command = Config::command();
        for e in LEGACY_ENV {
            assert_eq!(e.new, format!("FLACSTREAM_{}", e.old));
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == e.arg)
                .unwrap_or_else(|| panic!("no argument {}", e.arg));
            assert_eq!(arg.get_env().and_then(|v| v.to_str()), Some(e.new));
        }
    }

    #[test]
    fn the_old_name_is_read_only_when_the_new_one_is_unset() {
        assert!(uses(lookup(&[])).is_empty());
        let found = uses(lookup(&[("MAX_UPLOAD_BYTES", "5")]));
        assert!(matches!(&found[..], [LegacyUse::Read(e)] if e.old == "MAX_UPLOAD_BYTES"));
        assert!(found[0]
            .note()
            .contains("rename it to FLACSTREAM_MAX_UPLOAD_BYTES"));
        let found = uses(lookup(&[
            ("MAX_UPLOAD_BYTES", "5"),
            ("FLACSTREAM_MAX_UPLOAD_BYTES", "6"),
        ]));
        assert!(matches!(&found[..], [LegacyUse::Ignored(e)] if e.old == "MAX_UPLOAD_BYTES"));
        assert!(found[0].note().contains("ignored"));
    }

    #[test]
    fn an_aliased_argument_reads_the_old_name() {
        // Only the argument's env name is changed; which value clap then
        // reads from the process is checked end to end in tests/it/config.rs.
        let (command, _) = aliased(
            Config::command(),
            lookup(&[("SESSION_RESUME_SECONDS", "9")]),
        );
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == "session_resume_seconds")
            .unwrap();
        assert_eq!(
            arg.get_env().and_then(|v| v.to_str()),
            Some("SESSION_RESUME_SECONDS")
        );
        let matches = command.try_get_matches_from(["flacstream"]).unwrap();
        assert!(Config::from_arg_matches(&matches).is_ok());
    }
}
