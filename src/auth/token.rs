//! Short-lived signed tokens, for clients that cannot send an
//! `Authorization` header (a browser's `WebSocket`).
//!
//! A token is `fst1_` followed by base64url (no padding) of a payload and its
//! HMAC-SHA256 under the token secret. The payload, version 2:
//!
//! | bytes | field |
//! | --- | --- |
//! | 1 | version (2) |
//! | 8 | expiry, Unix seconds, big-endian |
//! | 1 + n | the issuing API key's id: length, then bytes |
//! | 8 | the issuing key's fingerprint ([`KeyFingerprint`]) |
//! | 1 | scope flags: bit 0 a session id follows, bit 1 a user id follows |
//! | 16 | the session id (if bit 0) |
//! | 1 + n | the user id: length, then bytes (if bit 1) |
//!
//! The MAC is checked (in constant time) before any field is read, and a
//! token is refused whole: longer than [`MAX_TOKEN_CHARS`], any trailing
//! byte, a field out of bounds, an expiry passed or further ahead than
//! [`MAX_TOKEN_TTL_SECONDS`] allows.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use flacstream_actors::registry::SessionId;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::keys::{valid_key_id, KeyFingerprint, KEY_FINGERPRINT_BYTES};

/// Longest a token may live, in seconds (5 minutes, inclusive): it travels
/// in URLs and headers a browser shows, so a leaked one must expire soon. A
/// client asks for a new one per connection.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 300;

/// A token's lifetime when the request names none, in seconds.
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 60;

/// How far a token's expiry may lie beyond `now + MAX_TOKEN_TTL_SECONDS`,
/// in seconds: the allowance for clocks of replicas that share a secret
/// differing. A token signed with a later expiry is refused.
pub const CLOCK_SKEW_SECONDS: u64 = 30;

/// Longest token accepted, in characters. The longest valid one (a 64-byte
/// key id, a session and a 128-byte user id) is 352; anything longer is
/// refused before it is decoded.
pub const MAX_TOKEN_CHARS: usize = 512;

/// Longest user id a token can carry, in bytes (the same bound as the
/// `user_id` parameter of a new session).
pub const MAX_TOKEN_USER_ID_BYTES: usize = crate::ids::MAX_USER_ID_BYTES;

/// Shortest token secret accepted, in bytes: HMAC-SHA256's output size, the
/// strength the MAC can give.
pub const MIN_SECRET_BYTES: usize = 32;

/// What every token starts with; it tells a token from an API key in an
/// `Authorization: Bearer` header.
pub const TOKEN_PREFIX: &str = "fst1_";

/// Version 1 had no key fingerprint; its tokens are refused.
const VERSION: u8 = 2;
const MAC_BYTES: usize = 32;
const HAS_SESSION: u8 = 1;
const HAS_USER: u8 = 2;

type HmacSha256 = Hmac<Sha256>;

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The expiry of a token that lasts `ttl` seconds from now: rounded up to
/// the next whole second, so it lasts at least `ttl` (at most one more). A
/// token is valid while its expiry is after the current whole second, so
/// rounding down would let a one-second token issued late in a second
/// expire within milliseconds.
pub fn expiry_after(ttl: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() + u64::from(now.subsec_nanos() > 0) + ttl
}

/// Whether `user_id` may be carried in a token: 1 to
/// [`MAX_TOKEN_USER_ID_BYTES`] of ASCII letters, digits and `.`, `_`, `-`,
/// `@`, `+`, `:`. Narrow on purpose: it is compared, stored and shown, and
/// these cover account names, e-mail addresses and prefixed ids.
pub fn valid_user_id(user_id: &str) -> bool {
    (1..=MAX_TOKEN_USER_ID_BYTES).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+:".contains(&b))
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The API key that asked for the token; it owns what the token creates.
    pub key_id: String,
    /// That key's fingerprint when it asked: the token works only while the
    /// key with this id is still the same key.
    pub key_fingerprint: KeyFingerprint,
    /// The user the token acts for, if scoped to one.
    pub user_id: Option<String>,
    /// The one session the token reaches, if scoped to one.
    pub session_id: Option<SessionId>,
    /// When the token stops working, Unix seconds (exclusive).
    pub expires_at: u64,
}

/// The HMAC key tokens are signed with. All replicas behind one address need
/// the same one, or a token from one is refused by the others.
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl TokenSecret {
    /// A secret from bytes (a file's contents), at least [`MIN_SECRET_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, usize> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(bytes.len());
        }
        Ok(Self(bytes))
    }

    /// A random secret for this process only.
    pub fn random() -> Self {
        let mut bytes = vec![0; MIN_SECRET_BYTES];
        // ThreadRng is a CSPRNG seeded from the operating system.
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

/// Why a token was refused. The messages never include the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Over [`MAX_TOKEN_CHARS`].
    #[error("the token is longer than {MAX_TOKEN_CHARS} characters")]
    TooLong,
    /// Not a token of this service, or altered, or signed with another secret.
    #[error("the token is not valid")]
    Invalid,
    /// Its expiry has passed.
    #[error("the token has expired; ask for a new one")]
    Expired,
}

fn payload(claims: &Claims) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    out.extend_from_slice(&claims.expires_at.to_be_bytes());
    out.push(claims.key_id.len() as u8);
    out.extend_from_slice(claims.key_id.as_bytes());
    out.extend_from_slice(&claims.key_fingerprint.0);
    let flags = if claims.session_id.is_some() {
        HAS_SESSION
    } else {
        0
    } | if claims.user_id.is_some() {
        HAS_USER
    } else {
        0
    };
    out.push(flags);
    if let Some(id) = claims.session_id {
        out.extend_from_slice(id.as_bytes());
    }
    if let Some(user) = &claims.user_id {
        out.push(user.len() as u8);
        out.extend_from_slice(user.as_bytes());
    }
    out
}

/// Signs `claims`. The caller has checked them: a valid key id and user id
/// (see [`valid_user_id`]) and an expiry at most [`MAX_TOKEN_TTL_SECONDS`]
/// ahead.
pub fn encode(claims: &Claims, secret: &TokenSecret) -> String {
    debug_assert!(valid_key_id(&claims.key_id));
    debug_assert!(claims.user_id.as_deref().is_none_or(valid_user_id));
    let mut body = payload(claims);
    let mut mac = secret.mac();
    mac.update(&body);
    body.extend_from_slice(&mac.finalize().into_bytes());
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(body))
}

/// Checks a token's signature, form and expiry at `now` (Unix seconds).
pub fn verify(token: &str, secret: &TokenSecret, now: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::TooLong);
    }
    let encoded = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenError::Invalid)?;
    let body = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Invalid)?;
    if body.len() < MAC_BYTES {
        return Err(TokenError::Invalid);
    }
    let (payload, tag) = body.split_at(body.len() - MAC_BYTES);
    let mut mac = secret.mac();
    mac.update(payload);
    mac.verify_slice(tag).map_err(|_| TokenError::Invalid)?;
    let claims = parse(payload).ok_or(TokenError::Invalid)?;
    if claims.expires_at <= now {
        return Err(TokenError::Expired);
    }
    if claims.expires_at > now + MAX_TOKEN_TTL_SECONDS + CLOCK_SKEW_SECONDS {
        return Err(TokenError::Invalid);
    }
    Ok(claims)
}

/// Reads a signed payload; `None` if anything is out of place.
fn parse(payload: &[u8]) -> Option<Claims> {
    let mut rest = payload;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    if take(1)? != [VERSION] {
        return None;
    }
    let expires_at = u64::from_be_bytes(take(8)?.try_into().ok()?);
    let key_len = usize::from(take(1)?[0]);
    let key_id = String::from_utf8(take(key_len)?.to_vec()).ok()?;
    let key_fingerprint = KeyFingerprint(take(KEY_FINGERPRINT_BYTES)?.try_into().ok()?);
    let flags = take(1)?[0];
    if flags & !(HAS_SESSION | HAS_USER) != 0 {
        return None;
    }
    let session_id = if flags & HAS_SESSION != 0 {
        Some(SessionId::from_slice(take(16)?).ok()?)
    } else {
        None
    };
    let user_id = if flags & HAS_USER != 0 {
        let len = usize::from(take(1)?[0]);
        Some(String::from_utf8(take(len)?.to_vec()).ok()?)
    } else {
        None
    };
    if !rest.is_empty() || !valid_key_id(&key_id) || !user_id.as_deref().is_none_or(valid_user_id) {
        return None;
    }
    Some(Claims {
        key_id,
        key_fingerprint,
        user_id,
        session_id,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn secret(byte: u8) -> TokenSecret {
        TokenSecret::new(vec![byte; MIN_SECRET_BYTES]).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            key_id: "backend-1".into(),
            key_fingerprint: KeyFingerprint([9; KEY_FINGERPRINT_BYTES]),
            user_id: Some("ann@example.com".into()),
            session_id: Some(SessionId::new_v4()),
            expires_at: NOW + 60,
        }
    }

    #[test]
    fn round_trips_every_scope() {
        let s = secret(7);
        let mut c = claims();
        assert_eq!(verify(&encode(&c, &s), &s, NOW), Ok(c.clone()));
        c.user_id = None;
        assert_eq!(verify(&encode(&c, &s), &s, NOW), Ok(c.clone()));
        c.session_id = None;
        c.user_id = Some("u".into());
        assert_eq!(verify(&encode(&c, &s), &s, NOW), Ok(c));
    }

    #[test]
    fn the_longest_token_fits_the_bound() {
        let c = Claims {
            key_id: "k".repeat(super::super::keys::MAX_KEY_ID_BYTES),
            key_fingerprint: KeyFingerprint([9; KEY_FINGERPRINT_BYTES]),
            user_id: Some("u".repeat(MAX_TOKEN_USER_ID_BYTES)),
            session_id: Some(SessionId::new_v4()),
            expires_at: NOW + MAX_TOKEN_TTL_SECONDS,
        };
        let t = encode(&c, &secret(1));
        assert_eq!(t.len(), 352);
        assert!(t.len() <= MAX_TOKEN_CHARS);
        assert_eq!(verify(&t, &secret(1), NOW), Ok(c));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let s = secret(7);
        let t = encode(&claims(), &s);
        let mut body = URL_SAFE_NO_PAD.decode(&t[TOKEN_PREFIX.len()..]).unwrap();
        // Every single bit flipped anywhere: payload or MAC.
        for i in 0..body.len() {
            for bit in 0..8 {
                body[i] ^= 1 << bit;
                let forged = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&body));
                assert_eq!(
                    verify(&forged, &s, NOW),
                    Err(TokenError::Invalid),
                    "{i}/{bit}"
                );
                body[i] ^= 1 << bit;
            }
        }
        // A longer expiry spliced in without re-signing.
        body[1..9].copy_from_slice(&(NOW + 100_000).to_be_bytes());
        let forged = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(&body));
        assert_eq!(verify(&forged, &s, NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn another_secret_is_refused() {
        let t = encode(&claims(), &secret(7));
        assert_eq!(verify(&t, &secret(8), NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn expiry_is_exclusive_and_bounded_ahead() {
        let s = secret(7);
        let mut c = claims();
        let t = encode(&c, &s);
        assert!(verify(&t, &s, c.expires_at - 1).is_ok());
        assert_eq!(verify(&t, &s, c.expires_at), Err(TokenError::Expired));
        assert_eq!(
            verify(&t, &s, c.expires_at + 3600),
            Err(TokenError::Expired)
        );
        // Signed with the secret, but for longer than any token may live.
        c.expires_at = NOW + MAX_TOKEN_TTL_SECONDS + CLOCK_SKEW_SECONDS + 1;
        assert_eq!(verify(&encode(&c, &s), &s, NOW), Err(TokenError::Invalid));
        c.expires_at = NOW + MAX_TOKEN_TTL_SECONDS + CLOCK_SKEW_SECONDS;
        assert!(verify(&encode(&c, &s), &s, NOW).is_ok());
    }

    #[test]
    fn overlong_and_malformed_tokens_are_refused() {
        let s = secret(7);
        let long = format!("{TOKEN_PREFIX}{}", "A".repeat(MAX_TOKEN_CHARS));
        assert_eq!(verify(&long, &s, NOW), Err(TokenError::TooLong));
        let t = encode(&claims(), &s);
        for bad in [
            "",
            TOKEN_PREFIX,
            &t[TOKEN_PREFIX.len()..],     // no prefix
            &format!("fst2_{}", &t[5..]), // another version's prefix
            &format!("{t}="),             // padding
            &format!("{t}A"),             // a trailing character
            &t[..t.len() - 1],            // cut short
            "fst1_!!!!",
        ] {
            assert_eq!(verify(bad, &s, NOW), Err(TokenError::Invalid), "{bad}");
        }
        // A payload correctly signed but with a trailing byte.
        let mut body = payload(&claims());
        body.push(0);
        let mut mac = s.mac();
        mac.update(&body);
        body.extend_from_slice(&mac.finalize().into_bytes());
        let trailing = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(body));
        assert_eq!(verify(&trailing, &s, NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_has_one_spelling() {
        // The last base64 character carries unused bits; another value of
        // them would be a second spelling of the same signed token.
        let s = secret(7);
        let t = encode(&claims(), &s);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = alphabet
            .iter()
            .position(|&b| Some(&b) == t.as_bytes().last());
        let mut other = t[..t.len() - 1].to_string();
        other.push(char::from(alphabet[last.unwrap() ^ 1]));
        assert_eq!(verify(&other, &s, NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn user_ids_are_narrow() {
        assert!(valid_user_id("ann@example.com"));
        assert!(valid_user_id("tenant:42+x_y-z.w"));
        for bad in ["", "ann smith", "a/b", "ünï", "a\nb", &"u".repeat(129)] {
            assert!(!valid_user_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert_eq!(TokenSecret::new(vec![1; 31]).unwrap_err(), 31);
        assert!(format!("{:?}", secret(7)).contains("redacted"));
    }
}
