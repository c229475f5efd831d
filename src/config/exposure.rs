//! Who can reach the server: safe by default. Without authentication the
//! server listens on loopback unless told otherwise, and refuses to listen
//! beyond it unless the operator says, in so many words, that this is
//! meant (`--allow-public-without-auth`), e.g. behind an authenticating
//! proxy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::ConfigError;

/// Port of the default address.
pub const DEFAULT_PORT: u16 = 8080;

/// Default address without authentication: this host only.
pub const DEFAULT_BIND_WITHOUT_AUTH: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);

/// Default address with authentication: every interface.
pub const DEFAULT_BIND_WITH_AUTH: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT);

/// How the listening address was chosen, for the line logged at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Given by the operator, and safe: loopback, or authentication on.
    Chosen,
    /// Not given, authentication off: loopback by default.
    LoopbackByDefault,
    /// Beyond loopback without authentication, allowed explicitly.
    PublicWithoutAuth,
}

/// The address to listen on and how it was chosen, from `--bind` (if
/// given), `--auth` and `--allow-public-without-auth`.
pub fn resolve(
    bind: Option<SocketAddr>,
    auth: bool,
    allow_public_without_auth: bool,
) -> Result<(SocketAddr, Exposure), ConfigError> {
    let Some(bind) = bind else {
        return Ok(if auth {
            (DEFAULT_BIND_WITH_AUTH, Exposure::Chosen)
        } else {
            (DEFAULT_BIND_WITHOUT_AUTH, Exposure::LoopbackByDefault)
        });
    };
    if auth || bind.ip().is_loopback() {
        return Ok((bind, Exposure::Chosen));
    }
    if allow_public_without_auth {
        return Ok((bind, Exposure::PublicWithoutAuth));
    }
    Err(ConfigError::PublicWithoutAuth(bind))
}

impl Exposure {
    /// The line to log at start, if any, with its level.
    pub fn notice(self, bind: SocketAddr) -> Option<(log::Level, String)> {
        match self {
            Self::Chosen => None,
            Self::LoopbackByDefault => Some((
                log::Level::Info,
                format!(
                    "Authentication is off, so the server listens on {bind} (this host only) by \
                     default; to serve other hosts turn authentication on (--auth, \
                     FLACSTREAM_AUTH) and set --bind (FLACSTREAM_BIND), e.g. 0.0.0.0:8080."
                ),
            )),
            Self::PublicWithoutAuth => Some((
                log::Level::Warn,
                format!(
                    "SERVING {bind} WITHOUT AUTHENTICATION (--allow-public-without-auth): anyone \
                     who can reach this address can record, read and delete sessions. Only do \
                     this behind a proxy or network that authenticates."
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_depends_on_auth() {
        assert_eq!(
            resolve(None, false, false).unwrap(),
            (addr("127.0.0.1:8080"), Exposure::LoopbackByDefault)
        );
        assert_eq!(
            resolve(None, true, false).unwrap(),
            (addr("0.0.0.0:8080"), Exposure::Chosen)
        );
    }

    #[test]
    fn beyond_loopback_without_auth_needs_the_explicit_flag() {
        for public in ["0.0.0.0:8080", "[::]:80", "192.168.1.2:8080"] {
            let err = resolve(Some(addr(public)), false, false).unwrap_err();
            assert!(
                err.to_string().contains("--allow-public-without-auth"),
                "{err}"
            );
            assert_eq!(
                resolve(Some(addr(public)), false, true).unwrap(),
                (addr(public), Exposure::PublicWithoutAuth)
            );
            assert_eq!(
                resolve(Some(addr(public)), true, false).unwrap(),
                (addr(public), Exposure::Chosen)
            );
        }
        for local in ["127.0.0.1:0", "[::1]:8080", "127.0.0.2:9"] {
            assert_eq!(
                resolve(Some(addr(local)), false, false).unwrap().1,
                Exposure::Chosen
            );
        }
    }

    #[test]
    fn notices() {
        let bind = addr("127.0.0.1:8080");
        assert!(Exposure::Chosen.notice(bind).is_none());
        let (level, text) = Exposure::LoopbackByDefault.notice(bind).unwrap();
        assert_eq!(level, log::Level::Info);
        assert!(text.contains("FLACSTREAM_BIND"));
        let (level, _) = Exposure::PublicWithoutAuth.notice(bind).unwrap();
        assert_eq!(level, log::Level::Warn);
    }
}
