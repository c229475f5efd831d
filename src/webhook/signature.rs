//! The webhook signature: `Flacstream-Signature: t=<unix seconds>,v1=<hex>`
//! where `<hex>` is HMAC-SHA256, keyed with the shared secret, over the
//! timestamp, a `.`, and the body's exact bytes. A receiver recomputes it,
//! compares in constant time, and refuses a timestamp too far from its own
//! clock (a replayed request); [`verify`] does all three. The event id
//! (`Flacstream-Event-Id`, also the body's `id`) is the same on every
//! attempt: a receiver deduplicates on it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Flacstream-Signature";
/// The header that carries the event id.
pub const EVENT_ID_HEADER: &str = "Flacstream-Event-Id";
/// The header that carries the event type.
pub const EVENT_TYPE_HEADER: &str = "Flacstream-Event-Type";
/// The header that numbers the attempt (1 for the first).
pub const ATTEMPT_HEADER: &str = "Flacstream-Delivery-Attempt";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header's value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=…,v1=…`.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is further than the tolerance from now.
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// The HMAC does not match.
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks `header` against `body` at `now` (Unix seconds), allowing
/// `tolerance_seconds` of clock difference.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => tag = decode_hex(v),
            _ => {}
        }
    }
    let (Some(timestamp), Some(tag)) = (timestamp, tag) else {
        return Err(SignatureError::Malformed);
    };
    if now.abs_diff(timestamp) > tolerance_seconds.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    mac(secret, timestamp, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_is_refused() {
        let body = br#"{"id":"e1"}"#;
        let header = sign(b"secret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify(b"secret", &header, body, 1_700_000_100, 300), Ok(()));
        assert_eq!(
            verify(b"other", &header, body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", &header, br#"{"id":"e2"}"#, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", &header, body, 1_700_001_000, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(b"secret", "v1=00", body, 0, 300),
            Err(SignatureError::Malformed)
        );
        // Computed independently, with Python's hmac module:
        // hmac.new(secret, b'1700000000.{"id":"e1"}', hashlib.sha256).
        let header = sign(b"a-test-secret-of-32-bytes-length", 1_700_000_000, body);
        assert_eq!(
            header,
            "t=1700000000,v1=131aab83cafb451ee5781b34ab4cc011d5a34f2077cc04004a45fd5be54ab342"
        );
        assert_eq!(
            verify(
                b"secret",
                "t=-9223372036854775808,v1=00",
                body,
                i64::MAX,
                300
            ),
            Err(SignatureError::Stale)
        );
    }
}
