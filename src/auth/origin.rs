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
//! The service's own origin is the scheme and host the request reached it
//! by: actix-web's connection info, which reads `Forwarded`,
//! `X-Forwarded-Proto` and `X-Forwarded-Host` before the `Host` header and
//! the connection itself. A page cannot set those headers (a WebSocket
//! handshake carries no custom headers, and a cross-origin request with them
//! needs a CORS preflight this service never grants), so they cannot make a
//! foreign page look like the service's own. Behind a proxy that terminates
//! TLS, the proxy must send `X-Forwarded-Proto: https` (ingress-nginx does),
//! or the page's `https://` origin must be listed.

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::error::ApiError;

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

    /// The origin `req` reached the service at; see the module docs.
    pub fn of_request(req: &HttpRequest) -> Option<Self> {
        let info = req.connection_info();
        let scheme = match info.scheme() {
            "ws" => "http".to_string(),
            "wss" => "https".to_string(),
            other => other.to_ascii_lowercase(),
        };
        let (host, port) = host_port(&scheme, info.host())?;
        Some(Self { scheme, host, port })
    }
}

/// The configured allow-list (`--allowed-origins`).
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    list: Vec<Origin>,
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
        Ok(Self { list })
    }

    /// Refuses (403 `origin_not_allowed`) a request whose `Origin` header
    /// is present and neither the request's own origin nor listed.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(value) = req.headers().get(header::ORIGIN) else {
            return Ok(());
        };
        // "null" (a sandboxed or file: page) parses as no origin at all.
        let origin = value.to_str().ok().and_then(Origin::parse);
        let allowed = origin.is_some_and(|origin| {
            Origin::of_request(req).as_ref() == Some(&origin) || self.list.contains(&origin)
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
        assert!(allowed.check(&request("svc:8080", None)).is_ok());
        assert!(allowed
            .check(&request("svc:8080", Some("http://svc:8080")))
            .is_ok());
        assert!(allowed
            .check(&request("svc:8080", Some("https://app.example")))
            .is_ok());
        for refused in [
            "http://evil.example",
            "http://svc:8081",
            "https://svc:8080",
            "null",
            "https://app.example:444",
        ] {
            let e = allowed
                .check(&request("svc:8080", Some(refused)))
                .unwrap_err();
            assert_eq!(e.code(), "origin_not_allowed", "{refused}");
        }
    }

    #[test]
    fn a_proxy_that_terminates_tls_says_so() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "svc.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .insert_header((header::ORIGIN, "https://svc.example"))
            .to_http_request();
        assert!(AllowedOrigins::default().check(&req).is_ok());
    }
}
