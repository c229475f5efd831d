//! Which webhook receivers may be reached (SSRF): a receiver's URL is
//! `http` or `https`, and none of the addresses it is reached at may be
//! loopback, link-local (169.254.169.254 is the cloud metadata service),
//! unspecified, multicast or broadcast, unless a network of
//! `--webhook-allowed-networks` covers it. Private networks (10/8,
//! 172.16/12, 192.168/16, fc00::/7) are allowed: in a cluster the receiver
//! is often a Service there.
//!
//! The check is on resolved addresses, at each delivery: [`CheckedResolver`]
//! is the HTTP client's resolver, so the connection goes only to addresses
//! that passed (a name cannot resolve to an allowed address for the check
//! and a refused one for the connection). A URL with an address literal is
//! checked by [`Targets::check_url`] (the resolver is not asked).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Why a receiver may not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an http(s) URL with a host.
    #[error("the webhook URL must be http:// or https:// with a host: {0}")]
    Url(String),
    /// Every address it resolves to is refused.
    #[error("the webhook receiver {host} resolves only to refused addresses ({addrs}); allow them with --webhook-allowed-networks")]
    Refused {
        /// The host name.
        host: String,
        /// What it resolved to.
        addrs: String,
    },
    /// The URL names a refused address itself: no lookup can change that.
    #[error(
        "the webhook receiver's address {0} is refused; allow it with --webhook-allowed-networks"
    )]
    RefusedLiteral(String),
    /// The name did not resolve.
    #[error("the webhook receiver {0} did not resolve")]
    Unresolved(String),
}

/// The receivers policy; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Networks allowed even though refused by class.
    pub allowed: Vec<IpNet>,
}

/// The IPv4 address an IPv6 one carries, if it is one of the forms that
/// reach an IPv4 host: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:wwxx:yyzz::/48`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// `ip`, or the IPv4 address it carries: what the rules and the allowed
/// networks are checked against.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` (canonical) is of a class refused by default.
fn refused_class(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fe80::/10, link-local unicast.
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                // AWS's instance metadata over IPv6.
                || v6 == Ipv6Addr::from([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254])
        }
    }
}

fn refused_v4(v4: Ipv4Addr) -> bool {
    v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.octets()[0] == 0
        || v4.is_multicast()
        || v4.is_broadcast()
        // Alibaba Cloud's instance metadata (in 100.64.0.0/10).
        || v4 == Ipv4Addr::new(100, 100, 100, 200)
}

impl Targets {
    /// Whether a connection to `ip` is refused.
    pub fn is_refused(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        refused_class(ip) && !self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Parses and checks a receiver's URL: its scheme, its host, and its
    /// address if the host is a literal one.
    pub fn check_url(&self, url: &str) -> Result<Url, TargetError> {
        let parsed = Url::parse(url).map_err(|_| TargetError::Url(url.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TargetError::Url(url.to_string()));
        }
        let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
            return Err(TargetError::Url(url.to_string()));
        };
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = literal.filter(|&ip| self.is_refused(ip)) {
            return Err(TargetError::RefusedLiteral(ip.to_string()));
        }
        Ok(parsed)
    }

    /// Keeps the addresses that may be reached; an error naming them all
    /// if none may.
    pub fn filter(
        &self,
        host: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, TargetError> {
        let all: Vec<SocketAddr> = addrs.into_iter().collect();
        if all.is_empty() {
            return Err(TargetError::Unresolved(host.to_string()));
        }
        let kept: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| !self.is_refused(a.ip()))
            .collect();
        if kept.is_empty() {
            let addrs = all
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(TargetError::Refused {
                host: host.to_string(),
                addrs,
            });
        }
        Ok(kept)
    }
}

/// The HTTP client's resolver: the system's lookup, then [`Targets::filter`].
#[derive(Debug, Clone)]
pub struct CheckedResolver(pub Arc<Targets>);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let targets = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| TargetError::Unresolved(host.clone()))?;
            let kept = targets.filter(&host, found)?;
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_and_the_like_are_refused_unless_allowed() {
        let strict = Targets::default();
        for refused in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "100.100.100.200",
        ] {
            assert!(strict.is_refused(refused.parse().unwrap()), "{refused}");
        }
        for fine in [
            "10.1.2.3",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "fd12::1",
        ] {
            assert!(!strict.is_refused(fine.parse().unwrap()), "{fine}");
        }
        let open = Targets {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(!open.is_refused("127.0.0.1".parse().unwrap()));
        assert!(!open.is_refused("::ffff:127.0.0.1".parse().unwrap()));
        assert!(open.is_refused("::1".parse().unwrap()));
        assert!(open.is_refused("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn urls_are_checked_for_scheme_host_and_literal_addresses() {
        let strict = Targets::default();
        assert!(strict.check_url("https://hooks.example/x").is_ok());
        assert!(matches!(
            strict.check_url("ftp://hooks.example/x"),
            Err(TargetError::Url(_))
        ));
        assert!(matches!(
            strict.check_url("http://127.0.0.1:9/"),
            Err(TargetError::RefusedLiteral(_))
        ));
        assert!(matches!(
            strict.check_url("http://[::1]:9/"),
            Err(TargetError::RefusedLiteral(_))
        ));
        assert!(matches!(
            strict.check_url("not a url"),
            Err(TargetError::Url(_))
        ));
        let localhost = [SocketAddr::from(([127, 0, 0, 1], 0))];
        assert!(matches!(
            strict.filter("localhost", localhost),
            Err(TargetError::Refused { .. })
        ));
        let mixed = [
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SocketAddr::from(([10, 0, 0, 7], 0)),
        ];
        assert_eq!(
            strict.filter("both", mixed).unwrap(),
            vec![SocketAddr::from(([10, 0, 0, 7], 0))]
        );
    }
}
