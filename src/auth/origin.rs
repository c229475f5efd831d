//! The `Origin` allow-list: which web pages may open connections to the
//! service from a browser.
//!
//! Browsers send `Origin` with every WebSocket handshake and every
//! cross-origin POST, and a page cannot change it. A request whose `Origin`
//! is neither the service's own origin nor on `--allowed-origins` is refused
//! with 403 `origin_not_allowed`, whether authentication is on or off: it
//! stops another site's page from using a visitor's network position (or
//! token) against the service. Requests without `Origin` come from
//! non-browser clients and pass.
//!
//! The service's own origin is taken from the request only when its host is
//! an IP address or `localhost` ([`Origin::own`]): the scheme and `Host` the
//! request reached it by. A DNS name in `Host` proves nothing. With DNS
//! rebinding, a page at `http://rebind.attacker.example:8080` has its name
//! re-resolve to the service's address, and its requests then carry
//! `Host: rebind.attacker.example:8080` and the same `Origin`: the two
//! always match. So a page served under a name (`https://audio.example`)
//! must be listed in `--allowed-origins`; an IP literal cannot be rebound,
//! and browsers resolve `localhost` to loopback themselves.
//!
//! `X-Forwarded-Proto` and `X-Forwarded-Host` are read only from a peer in
//! `--trusted-proxies` (the right-most value, the one the nearest proxy
//! wrote), as for client addresses ([`crate::limits::client_ip`]); `Forwarded` is
//! not read. From anyone else they are ignored.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::error::ApiError;
use crate::limits::client_ip::TrustedProxies;

/// The headers a trusted proxy says the client's scheme and host in.
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// An origin: scheme, host and port, compared exactly (the host lower-cased,
/// the default port filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Splits `host[:port]` (a bracketed IPv6 address too) with `scheme`'s
/// default port; `None` if malformed.
fn host_port(scheme: &str, authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{addr}]"), port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b);
    if host.is_empty() || !host.bytes().all(valid) {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port(scheme)?,
    };
    Some((host.to_ascii_lowercase(), port))
}

impl Origin {
    /// Parses `scheme://host[:port]` as an `Origin` header or the allow-list
    /// writes it: `http` or `https`, no path, no user info.
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, authority) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        default_port(&scheme)?;
        let (host, port) = host_port(&scheme, authority)?;
        Some(Self { scheme, host, port })
    }

    /// The service's own origin as `req` reached it, if the request can
    /// vouch for it: its host is an IP address or `localhost`, which DNS
    /// rebinding cannot forge; see the module docs. `trusted` are the
    /// proxies whose `X-Forwarded-Proto` and `X-Forwarded-Host` are read.
    pub fn own(req: &HttpRequest, trusted: &TrustedProxies) -> Option<Self> {
        let from_proxy = req.peer_addr().is_some_and(|a| trusted.contains(a.ip()));
        let forwarded = |name: &str| {
            let value = req.headers().get(name).filter(|_| from_proxy)?;
            let last = value.to_str().ok()?.rsplit(',').next()?.trim();
            (!last.is_empty()).then_some(last)
        };
        let scheme = match forwarded(X_FORWARDED_PROTO) {
            Some(proto) => proto.to_ascii_lowercase(),
            None if req.app_config().secure() => "https".to_string(),
            None => "http".to_string(),
        };
        let authority = match forwarded(X_FORWARDED_HOST) {
            Some(host) => host,
            None => match req.headers().get(header::HOST) {
                Some(host) => host.to_str().ok()?,
                // HTTP/2 carries it in the request target.
                None => req.uri().authority()?.as_str(),
            },
        };
        let (host, port) = host_port(&scheme, authority)?;
        if !unrebindable(&host) {
            return None;
        }
        Some(Self { scheme, host, port })
    }
}

/// Whether `host` (lower-cased, an IPv6 address in brackets) is one no DNS
/// answer can point elsewhere: an IP literal, or `localhost`, which browsers
/// resolve to loopback without asking DNS.
fn unrebindable(host: &str) -> bool {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host == "localhost" || literal.parse::<IpAddr>().is_ok()
}

/// The configured allow-list (`--allowed-origins`), and the proxies whose
/// forwarded scheme and host are believed (`--trusted-proxies`).
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    list: Vec<Origin>,
    trusted: TrustedProxies,
}

impl AllowedOrigins {
    /// Parses the list; the error names the entry that is not an origin.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let list = entries
            .into_iter()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| Origin::parse(e).ok_or_else(|| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            list,
            trusted: TrustedProxies::default(),
        })
    }

    /// Reads `X-Forwarded-Proto` and `X-Forwarded-Host` from these proxies.
    pub fn trusting(self, trusted: TrustedProxies) -> Self {
        Self { trusted, ..self }
    }

    /// Whether no origin is listed.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether `value` (an `Origin` header) is on the configured list: the
    /// origins whose pages get CORS answers ([`crate::auth::cors`]). The
    /// service's own origin needs none: its requests are same-origin.
    pub fn listed(&self, value: &header::HeaderValue) -> bool {
        value
            .to_str()
            .ok()
            .and_then(Origin::parse)
            .is_some_and(|origin| self.list.contains(&origin))
    }

    /// Refuses (403 `origin_not_allowed`) a request whose `Origin` header
    /// is present and neither the service's own origin ([`Origin::own`])
    /// nor listed.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(value) = req.headers().get(header::ORIGIN) else {
            return Ok(());
        };
        // "null" (a sandboxed or file: page) parses as no origin at all.
        let origin = value.to_str().ok().and_then(Origin::parse);
        let allowed = origin.is_some_and(|origin| {
            Origin::own(req, &self.trusted).as_ref() == Some(&origin) || self.list.contains(&origin)
        });
        if allowed {
            Ok(())
        } else {
            Err(ApiError::OriginNotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(host: &str, origin: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().insert_header((header::HOST, host));
        if let Some(origin) = origin {
            req = req.insert_header((header::ORIGIN, origin));
        }
        req.to_http_request()
    }

    #[test]
    fn origins_parse_with_default_ports() {
        let o = |s| Origin::parse(s);
        assert_eq!(o("http://Example.com"), o("http://example.com:80"));
        assert_eq!(o("https://example.com"), o("https://example.com:443"));
        assert_ne!(o("http://example.com"), o("https://example.com"));
        assert!(o("http://[::1]:8080").is_some());
        for bad in [
            "example.com",
            "ftp://example.com",
            "http://",
            "http://a/b",
            "http://u@a",
            "http://a:x",
            "null",
        ] {
            assert_eq!(o(bad), None, "{bad}");
        }
        assert!(AllowedOrigins::parse(["https://ok.example", "nope"]).is_err());
    }

    #[test]
    fn own_origin_and_listed_origins_pass() {
        let allowed = AllowedOrigins::parse(["https://app.example"]).unwrap();
        assert!(allowed.check(&request("10.0.0.5:8080", None)).is_ok());
        for (host, own) in [
            ("10.0.0.5:8080", "http://10.0.0.5:8080"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("[::1]:8080", "http://[::1]:8080"),
            ("LocalHost:8080", "http://localhost:8080"),
        ] {
            assert!(allowed.check(&request(host, Some(own))).is_ok(), "{own}");
        }
        assert!(allowed
            .check(&request("10.0.0.5:8080", Some("https://app.example")))
            .is_ok());
        for refused in [
            "http://evil.example",
            "http://10.0.0.5:8081",
            "https://10.0.0.5:8080",
            "null",
            "https://app.example:444",
        ] {
            let e = allowed
                .check(&request("10.0.0.5:8080", Some(refused)))
                .unwrap_err();
            assert_eq!(e.code(), "origin_not_allowed", "{refused}");
        }
    }

    #[test]
    fn a_host_name_is_not_proof_of_the_own_origin() {
        // DNS rebinding: the attacker's name now points at the service, so
        // Host and Origin agree. Only the allow-list admits a name.
        let allowed = AllowedOrigins::parse(["https://audio.example"]).unwrap();
        for name in [
            "rebind.attacker.example:8080",
            "svc:8080",
            "localhost.attacker.example",
        ] {
            let e = allowed
                .check(&request(name, Some(&format!("http://{name}"))))
                .unwrap_err();
            assert_eq!(e.code(), "origin_not_allowed", "{name}");
        }
        let req = TestRequest::default()
            .insert_header((header::HOST, "audio.example"))
            .insert_header((header::ORIGIN, "https://audio.example"))
            .to_http_request();
        assert!(allowed.check(&req).is_ok());
    }

    fn forwarded(peer: &str, proto: &str, host: &str, origin: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr(peer.parse().unwrap())
            .insert_header((header::HOST, "10.0.0.5:8080"))
            .insert_header((X_FORWARDED_PROTO, proto))
            .insert_header((X_FORWARDED_HOST, host))
            .insert_header((header::ORIGIN, origin))
            .to_http_request()
    }

    #[test]
    fn forwarded_scheme_and_host_are_read_from_trusted_proxies_only() {
        let proxies = TrustedProxies::new(vec!["10.1.0.0/16".parse().unwrap()]);
        let allowed = AllowedOrigins::default().trusting(proxies);
        // A proxy that terminates TLS says so.
        let via_proxy = forwarded("10.1.0.2:4000", "https", "192.0.2.9", "https://192.0.2.9");
        assert!(allowed.check(&via_proxy).is_ok());
        // The right-most value is the nearest proxy's.
        let appended = forwarded(
            "10.1.0.2:4000",
            "http, https",
            "192.0.2.9",
            "https://192.0.2.9",
        );
        assert!(allowed.check(&appended).is_ok());
        // The same headers from any other peer are ignored.
        let direct = forwarded(
            "203.0.113.7:4000",
            "https",
            "192.0.2.9",
            "https://192.0.2.9",
        );
        assert_eq!(
            allowed.check(&direct).unwrap_err().code(),
            "origin_not_allowed"
        );
        // A proxy forwarding a name vouches for no more than Host would.
        let named = forwarded(
            "10.1.0.2:4000",
            "https",
            "svc.example",
            "https://svc.example",
        );
        assert!(allowed.check(&named).is_err());
    }
}
