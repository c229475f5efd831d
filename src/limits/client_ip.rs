//! Who a request comes from: the peer's address, or, only when the peer is
//! one of the configured trusted proxies (`--trusted-proxies`), the address
//! that proxy says it forwarded for in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is a list that every proxy appends its own peer to, so
//! only its right end can be believed: the entry the nearest proxy appended
//! is the address that connected to that proxy. Everything to its left was
//! written by that client and may be invented. So the list is read from the
//! right, skipping entries that are themselves trusted proxies (a chain of
//! them), and the first entry that is not one is the client. A client that
//! connects directly and sends its own `X-Forwarded-For` is not a trusted
//! proxy, so its header is ignored: it cannot pose as someone else.
//!
//! actix-web's `ConnectionInfo::realip_remote_addr` believes the left-most
//! entry of any request's header; it must not be used for limits.
//!
//! IPv6 clients are counted per /64 ([`ClientIp::limit_key`]): one host
//! usually holds a whole /64 and can pick any address in it, as a NAT'd
//! IPv4 office shares one address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;

/// Bits of an IPv6 address that name one client for per-client limits:
/// a /64, the smallest prefix an ISP hands a subscriber (RFC 6177).
pub const IPV6_CLIENT_PREFIX_BITS: u8 = 64;

/// Most `X-Forwarded-For` entries read, from the right. A legitimate chain
/// has one entry per proxy; this bounds the work a client's long header
/// causes when it reaches a trusted proxy that appends to it.
pub const MAX_FORWARDED_HOPS: usize = 16;

/// The header trusted proxies append the address they forwarded for to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or one address
/// (`192.0.2.7`, a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits cleared.
    network: IpAddr,
    /// Prefix length in bits: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
}

/// Why a `--trusted-proxies` entry is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR network (such as 10.0.0.0/8 or fd00::/8)")]
pub struct CidrError(String);

impl Cidr {
    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        32.. => bits,
        p => bits & (u32::MAX << (32 - u32::from(p))),
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        128.. => bits,
        p => bits & (u128::MAX << (128 - u32::from(p))),
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`), as nginx's
    /// `set_real_ip_from` does.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(text.to_string());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let ip = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take a sign.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        let network = match ip {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(v4), prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(v6), prefix))),
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed; empty by default, when
/// every request is counted under its peer's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts the given networks.
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(networks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The address a request is counted under for per-client limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(IpAddr);

impl ClientIp {
    /// The client of `req`; see the module docs. A request with no peer
    /// address (not over TCP: only in-process tests) counts as
    /// `0.0.0.0`.
    pub fn of(req: &HttpRequest, trusted: &TrustedProxies) -> Self {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        Self::resolve(peer, req.headers(), trusted)
    }

    /// The client of a request from `peer` with `headers`.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let peer = peer.to_canonical();
        if !trusted.contains(peer) {
            return Self(peer);
        }
        // Several header lines form one list, in order (RFC 9110, 5.3).
        // Split the bytes, not the text: a line with one byte that is not
        // ASCII (which the client may put in its own entry) is still a list
        // whose other entries, the ones the proxies wrote, are addresses.
        let lines: Vec<&[u8]> = headers
            .get_all(X_FORWARDED_FOR)
            .map(|v| v.as_bytes())
            .collect();
        let entries = lines
            .iter()
            .rev()
            .flat_map(|line| line.rsplit(|b| *b == b','));
        // The nearest hop whose address we can vouch for.
        let mut nearest = peer;
        for entry in entries.take(MAX_FORWARDED_HOPS) {
            // An entry that is not an address was not written by a trusted
            // proxy (they write the peer they saw): nothing left of it can
            // be believed, so the client is the nearest trusted hop.
            let Some(ip) = parse_entry(entry) else {
                return Self(nearest);
            };
            if !trusted.contains(ip) {
                return Self(ip);
            }
            nearest = ip;
        }
        // Every entry read is a trusted proxy (the request started inside
        // the proxy tier), or the header is absent or too long.
        Self(nearest)
    }

    /// The address.
    pub fn ip(self) -> IpAddr {
        self.0
    }

    /// What per-client limits count under: the address, or for IPv6 its
    /// /64 ([`IPV6_CLIENT_PREFIX_BITS`]).
    pub fn limit_key(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(_) => self.0,
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(
                u128::from(v6),
                IPV6_CLIENT_PREFIX_BITS,
            ))),
        }
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`, as some proxies write it).
/// One list entry as an address; `None` for anything else, text that is not
/// UTF-8 included.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = IpAddr::from_str(entry) {
        return Some(ip.to_canonical());
    }
    std::net::SocketAddr::from_str(entry)
        .ok()
        .map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in xff {
            map.append(
                HeaderName::from_static(X_FORWARDED_FOR),
                HeaderValue::from_str(line).unwrap(),
            );
        }
        map
    }

    fn client(peer: &str, xff: &[&str], proxies: &[&str]) -> String {
        ClientIp::resolve(peer.parse().unwrap(), &headers(xff), &trusted(proxies)).to_string()
    }

    #[test]
    fn cidrs_parse_normalise_and_match() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains("10.255.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        // An IPv4-mapped IPv6 peer is its IPv4 address.
        assert!(net.contains("::ffff:10.0.0.9".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.1".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12:3456::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "10.0.0.0/31".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/31"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/8/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        // A client connecting directly cannot pose as another address.
        assert_eq!(client("203.0.113.5", &["198.51.100.1"], &[]), "203.0.113.5");
        assert_eq!(
            client("203.0.113.5", &["198.51.100.1"], &["10.0.0.0/8"]),
            "203.0.113.5"
        );
        assert_eq!(client("203.0.113.5", &[], &["10.0.0.0/8"]), "203.0.113.5");
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
        let proxies = ["10.0.0.0/8"];
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1"], &proxies),
            "198.51.100.1"
        );
        // What the client wrote itself is left of what the proxy appended.
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1, 198.51.100.1"], &proxies),
            "198.51.100.1"
        );
        // A chain of trusted proxies is walked through.
        assert_eq!(
            client(
                "10.0.0.2",
                &["1.1.1.1, 198.51.100.1, 10.0.0.3, 10.9.9.9"],
                &proxies
            ),
            "198.51.100.1"
        );
        // Header lines are one list in order.
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1", "198.51.100.1, 10.0.0.3"], &proxies),
            "198.51.100.1"
        );
        // Ports and IPv6, with and without brackets.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1:4711"], &proxies),
            "198.51.100.1"
        );
        assert_eq!(
            client("10.0.0.2", &["[2001:db8::7]:4711"], &proxies),
            "2001:db8::7"
        );
        assert_eq!(
            client("10.0.0.2", &[" 2001:db8::7 "], &proxies),
            "2001:db8::7"
        );
        // A mapped IPv6 peer is matched as IPv4.
        assert_eq!(
            client("::ffff:10.0.0.2", &["198.51.100.1"], &proxies),
            "198.51.100.1"
        );
    }

    #[test]
    fn a_byte_that_is_not_ascii_spoils_only_its_own_entry() {
        // What `proxy_add_x_forwarded_for` (or an ALB) sends: the client's
        // own header, then the address the proxy saw.
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static(X_FORWARDED_FOR),
            HeaderValue::from_bytes(b"\xff, 198.51.100.1").unwrap(),
        );
        let c = ClientIp::resolve("10.0.0.2".parse().unwrap(), &h, &trusted(&["10.0.0.0/8"]));
        assert_eq!(c.to_string(), "198.51.100.1");
        // Where the proxy's own entry is spoiled, nothing beyond it is believed.
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static(X_FORWARDED_FOR),
            HeaderValue::from_bytes(b"198.51.100.1, 10.0.0.3\xff").unwrap(),
        );
        let c = ClientIp::resolve("10.0.0.2".parse().unwrap(), &h, &trusted(&["10.0.0.0/8"]));
        assert_eq!(c.to_string(), "10.0.0.2");
    }

    #[test]
    fn missing_all_trusted_or_malformed_chains_stop_at_the_nearest_trusted_hop() {
        let proxies = ["10.0.0.0/8"];
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.2", &[], &proxies), "10.0.0.2");
        // Only proxies: the left-most of them.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.4, 10.0.0.3"], &proxies),
            "10.0.0.4"
        );
        // Garbage where the proxy's entry should be: nothing beyond is believed.
        for garbage in ["unknown", "", "1.1.1.1, not-an-ip", "999.1.1.1", "1.1.1.1,"] {
            assert_eq!(
                client("10.0.0.2", &[garbage], &proxies),
                "10.0.0.2",
                "{garbage:?}"
            );
        }
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1, bogus, 10.0.0.3"], &proxies),
            "10.0.0.3"
        );
        // A header longer than MAX_FORWARDED_HOPS trusted entries is cut.
        let long = vec!["10.0.0.9"; MAX_FORWARDED_HOPS + 4].join(", ");
        assert_eq!(
            client("10.0.0.2", &[&format!("1.1.1.1, {long}")], &proxies),
            "10.0.0.9"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_per_slash_64() {
        let a = ClientIp("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientIp("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = ClientIp("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a.limit_key(), b.limit_key());
        assert_ne!(a.limit_key(), c.limit_key());
        assert_eq!(a.limit_key().to_string(), "2001:db8:1:2::");
        let v4 = ClientIp("192.0.2.1".parse().unwrap());
        assert_eq!(v4.limit_key(), v4.ip());
    }
}
