//! The check every guarded endpoint starts with: the `Origin` allow-list,
//! then (with authentication on) the credential.
//!
//! A credential is one of:
//! - `Authorization: Bearer <API key or token>`;
//! - `?access_token=<token>` in the query (tokens only: a URL ends up in
//!   proxies' logs, so a long-lived key never belongs there);
//! - a `Sec-WebSocket-Protocol` entry `flacstream.token.<token>`, offered
//!   next to [`PROTOCOL`], which the server selects (a browser drops a
//!   connection whose server selects none of the offered protocols).
//!
//! More than one is refused (401), so no two can disagree. Refusals are
//! answered before any upgrade: 401 `unauthorized` with
//! `WWW-Authenticate: Bearer` (no credential, an unknown key, a token that
//! is invalid, expired or from a removed key), 403 `forbidden` (a valid
//! credential for something else), 403 `origin_not_allowed`.

use std::fmt;
use std::future::{ready, Ready};
use std::path::Path;

use actix_web::http::header;
use actix_web::{dev, web, FromRequest, HttpRequest};

use super::keys::{ApiKeys, KeyEntryError, KeyFingerprint};
use super::origin::AllowedOrigins;
use super::principal::{Access, Principal};
use super::token::{self, now_seconds, Claims, TokenError, TokenSecret, TOKEN_PREFIX};
use crate::error::ApiError;
use crate::limits::client_ip::{Cidr, TrustedProxies};

/// The WebSocket subprotocol the server selects when a client offers it.
pub const PROTOCOL: &str = "flacstream.v1";

/// A `Sec-WebSocket-Protocol` entry carrying a token starts with this.
pub const TOKEN_PROTOCOL_PREFIX: &str = "flacstream.token.";

/// The query parameter that carries a token.
pub const TOKEN_QUERY_PARAMETER: &str = "access_token";

/// A setting of authentication that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A key entry is malformed or repeated.
    #[error(transparent)]
    Key(#[from] KeyEntryError),
    /// `--auth` without any key.
    #[error("--auth needs at least one key in --api-keys or --api-keys-file")]
    NoKeys,
    /// A file could not be read.
    #[error("cannot read {flag} {path}: {error}")]
    Read {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The token secret is too short.
    #[error(
        "--token-secret-file holds {0} bytes; at least {min} are needed",
        min = token::MIN_SECRET_BYTES
    )]
    ShortSecret(usize),
    /// An allowed origin is not `scheme://host[:port]`.
    #[error("--allowed-origins: {0} is not an origin (http(s)://host[:port], no path)")]
    Origin(String),
}

/// The authentication settings, validated: see the module docs of
/// [`crate::auth`].
#[derive(Clone)]
pub struct Auth {
    enabled: bool,
    keys: ApiKeys,
    secret: TokenSecret,
    shared_secret: bool,
    origins: AllowedOrigins,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.enabled)
            .field("keys", &self.keys)
            .field("shared_secret", &self.shared_secret)
            .field("origins", &self.origins)
            .finish()
    }
}

/// The flags [`Auth::new`] reads, as given.
#[derive(Debug, Clone, Default)]
pub struct AuthFlags<'a> {
    /// `--auth`.
    pub enabled: bool,
    /// `--api-keys` entries.
    pub api_keys: &'a [String],
    /// `--api-keys-file`.
    pub api_keys_file: Option<&'a Path>,
    /// `--token-secret-file`.
    pub token_secret_file: Option<&'a Path>,
    /// `--allowed-origins` entries.
    pub allowed_origins: &'a [String],
    /// `--trusted-proxies`: whose `X-Forwarded-Proto` and `-Host` the
    /// Origin check believes.
    pub trusted_proxies: &'a [Cidr],
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|error| AuthConfigError::Read {
        flag,
        path: path.display().to_string(),
        error,
    })
}

impl Auth {
    /// Reads and checks the flags (and the files they name).
    pub fn new(flags: AuthFlags<'_>) -> Result<Self, AuthConfigError> {
        let mut keys = ApiKeys::default();
        keys.add(
            "--api-keys",
            flags
                .api_keys
                .iter()
                .map(String::as_str)
                .filter(|e| !e.trim().is_empty())
                .enumerate()
                .map(|(i, e)| (i + 1, e)),
        )?;
        if let Some(path) = flags.api_keys_file {
            let text = read("--api-keys-file", path)?;
            keys.add_file(&path.display().to_string(), &String::from_utf8_lossy(&text))?;
        }
        if flags.enabled && keys.is_empty() {
            return Err(AuthConfigError::NoKeys);
        }
        let (secret, shared_secret) = match flags.token_secret_file {
            Some(path) => {
                let bytes = strip_line_ending(read("--token-secret-file", path)?);
                let secret = TokenSecret::new(bytes).map_err(AuthConfigError::ShortSecret)?;
                (secret, true)
            }
            None => (TokenSecret::random(), false),
        };
        let origins = AllowedOrigins::parse(flags.allowed_origins.iter().map(String::as_str))
            .map_err(AuthConfigError::Origin)?
            .trusting(TrustedProxies::new(flags.trusted_proxies.to_vec()));
        Ok(Self {
            enabled: flags.enabled,
            keys,
            secret,
            shared_secret,
            origins,
        })
    }

    /// The `Origin` allow-list.
    pub fn origins(&self) -> &AllowedOrigins {
        &self.origins
    }

    /// Off, with no allow-list: what the defaults give.
    pub fn off() -> Self {
        Self {
            enabled: false,
            keys: ApiKeys::default(),
            secret: TokenSecret::random(),
            shared_secret: false,
            origins: AllowedOrigins::default(),
        }
    }

    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// With authentication on and no `--token-secret-file`, tokens are
    /// signed with a random secret of this process: a token works only on
    /// the replica that issued it, and not after a restart.
    pub fn secret_is_per_process(&self) -> bool {
        self.enabled && !self.shared_secret
    }

    /// The check every guarded endpoint starts with; see the module docs.
    pub fn check(&self, req: &HttpRequest) -> Result<Access, ApiError> {
        self.origins.check(req)?;
        if !self.enabled {
            return Ok(Access::Open);
        }
        self.principal(req, now_seconds()).map(Access::Principal)
    }

    fn principal(&self, req: &HttpRequest, now: u64) -> Result<Principal, ApiError> {
        let mut found = Vec::with_capacity(1);
        for value in req.headers().get_all(header::AUTHORIZATION) {
            let bearer = value
                .to_str()
                .ok()
                .and_then(bearer_credential)
                .ok_or_else(|| {
                    unauthorized("the Authorization header must be Bearer <credential>")
                })?;
            found.push(Credential::Bearer(bearer));
        }
        for value in req.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL) {
            let entries = value.to_str().unwrap_or_default().split(',');
            found.extend(
                entries
                    .filter_map(|p| p.trim().strip_prefix(TOKEN_PROTOCOL_PREFIX))
                    .map(|t| Credential::Token(t.to_string())),
            );
        }
        found.extend(query_tokens(req).into_iter().map(Credential::Token));
        let credential =
            match found.len() {
                0 => return Err(unauthorized(
                    "authentication is required: send Authorization: Bearer <API key or token>, \
                     or a token as access_token or a flacstream.token.<token> WebSocket protocol",
                )),
                1 => found.remove(0),
                _ => return Err(unauthorized("send one credential, not several")),
            };
        match credential {
            Credential::Bearer(b) if !b.starts_with(TOKEN_PREFIX) => self
                .keys
                .identify(b)
                .map(|key_id| Principal {
                    key_id: key_id.to_string(),
                    user_id: None,
                    session_id: None,
                    via_token: false,
                })
                .ok_or_else(|| unauthorized("the API key is not valid")),
            Credential::Bearer(t) => self.token(t, now),
            Credential::Token(t) => self.token(&t, now),
        }
    }

    fn token(&self, token: &str, now: u64) -> Result<Principal, ApiError> {
        let claims = token::verify(token, &self.secret, now).map_err(|e| match e {
            TokenError::TooLong | TokenError::Invalid | TokenError::Expired => {
                ApiError::Unauthorized(e.to_string())
            }
        })?;
        // Removed, or replaced under the same id: either way not the key
        // that asked for the token.
        if self.keys.fingerprint(&claims.key_id) != Some(claims.key_fingerprint) {
            return Err(unauthorized(
                "the key this token was issued to is no longer valid",
            ));
        }
        Ok(Principal {
            key_id: claims.key_id,
            user_id: claims.user_id,
            session_id: claims.session_id,
            via_token: true,
        })
    }

    /// The fingerprint a token of the key `key_id` carries; `None` for no
    /// such key.
    pub fn key_fingerprint(&self, key_id: &str) -> Option<KeyFingerprint> {
        self.keys.fingerprint(key_id)
    }

    /// Signs a token for `claims` (already checked by the caller).
    pub fn issue(&self, claims: &Claims) -> String {
        token::encode(claims, &self.secret)
    }
}

/// The extractor form of [`Auth::check`]: an endpoint that takes an
/// [`Access`] argument cannot run without the check, and cannot forget it.
/// The app must carry the [`Auth`] as `web::Data<Auth>`
/// ([`crate::routes::configure`] says so); without it every request is
/// refused (503), never let through.
impl FromRequest for Access {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        ready(match req.app_data::<web::Data<Auth>>() {
            Some(auth) => auth.check(req),
            None => Err(ApiError::Unavailable(
                "authentication is not configured on this server".into(),
            )),
        })
    }
}

enum Credential<'a> {
    Bearer(&'a str),
    Token(String),
}

/// The credential of an `Authorization: Bearer <credential>` value. The
/// scheme name is case-insensitive (RFC 9110, 11.1: `BEARER`, `bearer`).
fn bearer_credential(value: &str) -> Option<&str> {
    let (scheme, credential) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}

/// A secret file's contents less one line ending (`\n` or `\r\n`) that an
/// editor or `echo` adds. Only one: the other bytes of a binary secret
/// (`head -c 32 /dev/urandom`), whitespace included, are the secret.
fn strip_line_ending(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    bytes
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_string())
}

/// Every `access_token` in the query (a malformed query has none; the
/// endpoint's own parsing refuses it).
fn query_tokens(req: &HttpRequest) -> Vec<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| {
            q.into_inner()
                .into_iter()
                .filter(|(name, _)| name == TOKEN_QUERY_PARAMETER)
                .map(|(_, value)| value)
                .collect()
        })
        .unwrap_or_default()
}

/// The `access_token` query parameter as the endpoints' parameter structs
/// see it: accepted, and dropped unread ([`Auth::check`] reads it). Nothing
/// of it is kept, so no `Debug` of a parameter struct can print it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenParameter;

impl<'de> serde::Deserialize<'de> for TokenParameter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::new_key;
    use actix_web::test::TestRequest;
    use flacstream_actors::registry::SessionId;

    fn auth(entries: &[String]) -> Auth {
        Auth::new(AuthFlags {
            enabled: true,
            api_keys: entries,
            ..AuthFlags::default()
        })
        .unwrap()
    }

    #[test]
    fn each_credential_source_is_read() {
        let (key, entry) = new_key("k1");
        let auth = auth(&[entry]);
        let bearer = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {key}")))
            .to_http_request();
        let p = auth.principal(&bearer, now_seconds()).unwrap();
        assert_eq!((p.key_id.as_str(), p.via_token), ("k1", false));

        let session = SessionId::new_v4();
        let token = auth.issue(&Claims {
            key_id: "k1".into(),
            key_fingerprint: auth.key_fingerprint("k1").unwrap(),
            user_id: None,
            session_id: Some(session),
            expires_at: now_seconds() + 60,
        });
        let in_query =
            TestRequest::with_uri(&format!("/s?level=5&access_token={token}")).to_http_request();
        let in_protocol = TestRequest::default()
            .insert_header((
                header::SEC_WEBSOCKET_PROTOCOL,
                format!("{PROTOCOL}, {TOKEN_PROTOCOL_PREFIX}{token}"),
            ))
            .to_http_request();
        let in_header = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_http_request();
        for req in [in_query, in_protocol, in_header] {
            let p = auth.principal(&req, now_seconds()).unwrap();
            assert_eq!((p.session_id, p.via_token), (Some(session), true));
        }

        let both = TestRequest::with_uri(&format!("/s?access_token={token}"))
            .insert_header((header::AUTHORIZATION, format!("Bearer {key}")))
            .to_http_request();
        assert_eq!(
            auth.principal(&both, now_seconds()).unwrap_err().code(),
            "unauthorized"
        );
        // A key is no token: not in the query.
        let key_in_query =
            TestRequest::with_uri(&format!("/s?access_token={key}")).to_http_request();
        assert!(auth.principal(&key_in_query, now_seconds()).is_err());
    }

    #[test]
    fn a_removed_or_replaced_key_takes_its_tokens_with_it() {
        let (_, entry) = new_key("k1");
        let (_, other) = new_key("k2");
        let (_, replaced) = new_key("k1");
        let mut auth = auth(&[entry]);
        let token = auth.issue(&Claims {
            key_id: "k1".into(),
            key_fingerprint: auth.key_fingerprint("k1").unwrap(),
            user_id: Some("ann".into()),
            session_id: None,
            expires_at: now_seconds() + 60,
        });
        let req = TestRequest::with_uri(&format!("/s?access_token={token}")).to_http_request();
        assert!(auth.principal(&req, now_seconds()).is_ok());
        for now_configured in [other, replaced] {
            auth.keys = ApiKeys::default();
            auth.keys
                .add("test", [(1, now_configured.as_str())])
                .unwrap();
            let e = auth.principal(&req, now_seconds()).unwrap_err();
            assert_eq!(e.code(), "unauthorized");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr  abc "] {
            assert_eq!(bearer_credential(value), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearerabc", "Bearer", "Token abc"] {
            assert_eq!(bearer_credential(value), None, "{value}");
        }
    }

    #[test]
    fn a_secret_file_loses_one_line_ending_only() {
        assert_eq!(strip_line_ending(b"secret\n".to_vec()), b"secret");
        assert_eq!(strip_line_ending(b"secret\r\n".to_vec()), b"secret");
        assert_eq!(strip_line_ending(b"secret".to_vec()), b"secret");
        // Binary bytes that happen to be whitespace are the secret's own.
        let binary = b"\x01\x02\t \x0b\x0c\r\n\n".to_vec();
        assert_eq!(strip_line_ending(binary), b"\x01\x02\t \x0b\x0c\r\n");
        assert_eq!(strip_line_ending(b" \t\x0c".to_vec()), b" \t\x0c");
    }

    #[test]
    fn settings_are_checked() {
        let on = |keys: &[String]| {
            Auth::new(AuthFlags {
                enabled: true,
                api_keys: keys,
                ..AuthFlags::default()
            })
        };
        assert!(matches!(on(&[]), Err(AuthConfigError::NoKeys)));
        let (_, entry) = new_key("k1");
        let a = on(std::slice::from_ref(&entry)).unwrap();
        assert!(a.secret_is_per_process());
        let debug = format!("{a:?}");
        assert!(!debug.contains(entry.split(':').nth(2).unwrap()), "{debug}");
        // Off by default, keys or not.
        let off = Auth::new(AuthFlags {
            api_keys: &[entry],
            ..AuthFlags::default()
        })
        .unwrap();
        assert!(!off.enabled() && !off.secret_is_per_process());
        let bad_origin = Auth::new(AuthFlags {
            allowed_origins: &["example.com".to_string()],
            ..AuthFlags::default()
        });
        assert!(matches!(bad_origin, Err(AuthConfigError::Origin(_))));
    }

    /// The extractor is the check: with the app's `Data<Auth>` it answers
    /// as [`Auth::check`] does, and without one it refuses (503), never
    /// lets a request through.
    #[actix_rt::test]
    async fn the_access_extractor_checks_and_fails_closed_without_auth() {
        let (key, entry) = new_key("a");
        let on = web::Data::new(auth(&[entry]));
        let req = TestRequest::default()
            .app_data(on.clone())
            .to_http_request();
        let refused = Access::extract(&req).await.unwrap_err();
        assert_eq!(refused.code(), "unauthorized");
        let req = TestRequest::default()
            .app_data(on)
            .insert_header((header::AUTHORIZATION, format!("Bearer {key}")))
            .to_http_request();
        let access = Access::extract(&req).await.unwrap();
        assert_eq!(access.principal().map(|p| p.key_id.as_str()), Some("a"));
        let off = web::Data::new(Auth::off());
        let req = TestRequest::default().app_data(off).to_http_request();
        assert_eq!(Access::extract(&req).await.unwrap(), Access::Open);
        // An Arc<Auth> is not a Data<Auth>: the app must register the latter.
        let wrong = web::Data::new(std::sync::Arc::new(Auth::off()));
        let req = TestRequest::default().app_data(wrong).to_http_request();
        assert_eq!(
            Access::extract(&req).await.unwrap_err().code(),
            "unavailable"
        );
    }
}
