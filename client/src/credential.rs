//! The credential the client presents: an API key or a token, each sent as
//! `Authorization: Bearer <credential>` (docs/protocol.md, section 12.2).
//!
//! Never printed: `Debug` shows only which kind it is, the header value is
//! marked sensitive, and no error message carries it.

use std::fmt;

use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::error::ClientError;

/// Longest API key the server accepts, in bytes (protocol.md 12.2).
pub const MAX_API_KEY_BYTES: usize = 256;

/// Longest token the server accepts, in characters (protocol.md 12.2).
pub const MAX_TOKEN_CHARS: usize = 512;

/// A credential as it comes from the command line or the environment,
/// before it is checked; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// One credential; the server refuses a request that carries two.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A long-lived API key (`fsk_…`), from `--api-key` or `FLACSTREAM_API_KEY`.
    ApiKey(String),
    /// A short-lived token (`fst1_…`), from `--token` or `FLACSTREAM_TOKEN`.
    Token(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential::{}(<redacted>)", self.kind())
    }
}

impl Credential {
    /// At most one of the two, checked: values the server would refuse by
    /// length, and characters a header cannot carry, are usage errors here
    /// rather than a 401 later. Empty values count as not given.
    pub fn from_flags(
        api_key: Option<&str>,
        token: Option<&str>,
    ) -> Result<Option<Self>, ClientError> {
        // An empty value (`FLACSTREAM_TOKEN=` left exported) is no credential.
        let api_key = api_key.map(str::trim).filter(|s| !s.is_empty());
        let token = token.map(str::trim).filter(|s| !s.is_empty());
        let credential = match (api_key, token) {
            (Some(_), Some(_)) => {
                return Err(ClientError::Usage(
                    "give either an API key (--api-key, FLACSTREAM_API_KEY) or a token \
                     (--token, FLACSTREAM_TOKEN), not both: the server refuses two credentials"
                        .into(),
                ))
            }
            (Some(key), None) => Self::ApiKey(key.to_string()),
            (None, Some(token)) => Self::Token(token.to_string()),
            (None, None) => return Ok(None),
        };
        let (value, max, flag) = match &credential {
            Self::ApiKey(k) => (k, MAX_API_KEY_BYTES, "--api-key"),
            Self::Token(t) => (t, MAX_TOKEN_CHARS, "--token"),
        };
        if value.len() > max {
            return Err(ClientError::Usage(format!(
                "{flag} is {} bytes long; the server accepts at most {max}",
                value.len()
            )));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::Usage(format!(
                "{flag} holds characters a credential cannot have (spaces, control or non-ASCII)"
            )));
        }
        Ok(Some(credential))
    }

    /// `api key` or `token`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey(_) => "API key",
            Self::Token(_) => "token",
        }
    }

    /// The `Authorization` header value, marked sensitive.
    pub fn header_value(&self) -> HeaderValue {
        let secret = match self {
            Self::ApiKey(s) | Self::Token(s) => s,
        };
        // Cannot fail: from_flags admitted only visible ASCII, which a header holds.
        let mut value = HeaderValue::from_str(&format!("Bearer {secret}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_credential_at_most_and_never_printed() {
        assert_eq!(Credential::from_flags(None, None).unwrap(), None);
        assert!(Credential::from_flags(Some("a"), Some("b")).is_err());
        assert_eq!(Credential::from_flags(Some(" "), Some("")).unwrap(), None);
        assert!(Credential::from_flags(Some("a b"), None).is_err());
        assert!(Credential::from_flags(None, Some(&"t".repeat(513))).is_err());
        let key = Credential::from_flags(Some("fsk_secret\n"), None)
            .unwrap()
            .unwrap();
        assert_eq!(key, Credential::ApiKey("fsk_secret".into()));
        assert!(!format!("{key:?}").contains("secret"));
        let value = key.header_value();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer fsk_secret");
        assert!(!format!("{value:?}").contains("secret"));
    }
}
