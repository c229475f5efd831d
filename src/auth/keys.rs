//! API keys: configured as `<key-id>:sha256:<hex>` entries, kept only as
//! SHA-256 hashes, presented as `Authorization: Bearer <key>`.
//!
//! A plain SHA-256, not a slow password hash, on purpose: the keys are long
//! random strings (`flacstream key` makes 256-bit ones), so guessing a key
//! from its hash means searching 2^256 values however fast the hash is.
//! Stretching (argon2, bcrypt) only helps low-entropy secrets such as
//! passwords, and would cost every request milliseconds of CPU.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::digest::CtOutput;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Longest key id, in bytes. Ids are names (`backend-1`, `2025-rotation`),
/// carried in every token and stored with every session.
pub const MAX_KEY_ID_BYTES: usize = 64;

/// Longest API key accepted in a request, in bytes; a longer one is refused
/// before it is hashed.
pub const MAX_API_KEY_BYTES: usize = 256;

/// Random bytes in a key made by `flacstream key` (256 bits).
pub const NEW_KEY_RANDOM_BYTES: usize = 32;

/// What a key made by `flacstream key` starts with (recognisable in a
/// secret scanner; the server does not require it).
pub const NEW_KEY_PREFIX: &str = "fsk_";

/// Bytes of a key's fingerprint in the tokens it asks for
/// ([`KeyFingerprint`]): 64 bits, so a replaced key has the old one's by
/// chance once in 2^64.
pub const KEY_FINGERPRINT_BYTES: usize = 8;

const SCHEME: &str = "sha256";

/// Domain separation: the fingerprint is a digest of the key's hash no other
/// use of it produces.
const FINGERPRINT_DOMAIN: &[u8] = b"flacstream token key fingerprint\0";

/// A short digest of a configured key's hash, carried in every token the
/// key asks for and compared when the token is used: a key replaced under
/// the same id (a leaked one rotated) has another, so its tokens stop
/// working with it. It says nothing usable about the key: a digest of a
/// hash of 256 random bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFingerprint(pub [u8; KEY_FINGERPRINT_BYTES]);

/// Whether `id` can name a key: 1 to [`MAX_KEY_ID_BYTES`] of ASCII letters,
/// digits, `.`, `_` and `-`.
pub fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_BYTES).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// One configured key: its id and the hash of its secret.
#[derive(Clone)]
struct ApiKey {
    id: String,
    hash: CtOutput<Sha256>,
}

/// The configured keys.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.id))
            .finish()
    }
}

/// A key entry that cannot be read; the message never includes the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyEntryError {
    /// Not `<key-id>:sha256:<64 hex digits>`.
    #[error(
        "{place}: entry {index} is not <key-id>:sha256:<64 hex digits> \
         (key ids are 1 to {MAX_KEY_ID_BYTES} of A-Z a-z 0-9 . _ -)"
    )]
    Malformed {
        /// Where the entry came from (a flag or a file).
        place: String,
        /// Its position there, from 1.
        index: usize,
    },
    /// Two entries have the same id.
    #[error("{place}: key id {id} is given twice")]
    Duplicate {
        /// Where the second came from.
        place: String,
        /// The id.
        id: String,
    },
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hash(secret: &[u8]) -> CtOutput<Sha256> {
    CtOutput::new(Sha256::digest(secret))
}

impl ApiKeys {
    /// Adds entries: `source` names where they came from in errors, and
    /// each entry comes with its position there.
    pub fn add<'a>(
        &mut self,
        source: &str,
        entries: impl IntoIterator<Item = (usize, &'a str)>,
    ) -> Result<(), KeyEntryError> {
        for (index, entry) in entries {
            let malformed = || KeyEntryError::Malformed {
                place: source.to_string(),
                index,
            };
            let mut parts = entry.trim().splitn(3, ':');
            let (Some(id), Some(SCHEME), Some(hex)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed());
            };
            if !valid_key_id(id) {
                return Err(malformed());
            }
            let digest = parse_hex(hex).ok_or_else(malformed)?;
            if self.contains(id) {
                return Err(KeyEntryError::Duplicate {
                    place: source.to_string(),
                    id: id.to_string(),
                });
            }
            self.keys.push(ApiKey {
                id: id.to_string(),
                hash: CtOutput::new(digest.into()),
            });
        }
        Ok(())
    }

    /// Adds the entries of a keys file: one per line; blank lines and
    /// lines starting with `#` are skipped.
    pub fn add_file(&mut self, source: &str, text: &str) -> Result<(), KeyEntryError> {
        let entries = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
        self.add(source, entries)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key has this id (tokens name the key that asked for them;
    /// a key removed from the configuration takes its tokens with it).
    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// The fingerprint of the key with this id, if there is one.
    pub fn fingerprint(&self, id: &str) -> Option<KeyFingerprint> {
        let key = self.keys.iter().find(|k| k.id == id)?;
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_DOMAIN)
            .chain_update(key.hash.clone().into_bytes())
            .finalize();
        let mut out = [0; KEY_FINGERPRINT_BYTES];
        out.copy_from_slice(&digest[..KEY_FINGERPRINT_BYTES]);
        Some(KeyFingerprint(out))
    }

    /// The id of the key whose secret `presented` is, if any. Every entry is
    /// compared, each in constant time, so the time taken says nothing
    /// about which entry or how much of a hash matched.
    pub fn identify(&self, presented: &str) -> Option<&str> {
        if presented.is_empty() || presented.len() > MAX_API_KEY_BYTES {
            return None;
        }
        let presented = hash(presented.as_bytes());
        let mut found = None;
        for key in &self.keys {
            if key.hash == presented {
                found = Some(key.id.as_str());
            }
        }
        found
    }
}

/// A new random key and its configuration entry for `id`:
/// `(key, "<id>:sha256:<hex>")`.
pub fn new_key(id: &str) -> (String, String) {
    let mut random = [0u8; NEW_KEY_RANDOM_BYTES];
    // ThreadRng is a CSPRNG seeded from the operating system.
    rand::rng().fill_bytes(&mut random);
    let key = format!("{NEW_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let hex: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (key, format!("{id}:{SCHEME}:{hex}"))
}

/// `flacstream key`: prints a new key and its entry; exit 1 for a bad id.
pub fn print_new_key(id: &str) -> std::process::ExitCode {
    if !valid_key_id(id) {
        eprintln!("flacstream key: the id must be 1 to {MAX_KEY_ID_BYTES} of A-Z a-z 0-9 . _ -");
        return std::process::ExitCode::FAILURE;
    }
    let (key, entry) = new_key(id);
    println!("key (give it to the client; it is not stored anywhere): {key}");
    println!("entry (for --api-keys or --api-keys-file): {entry}");
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_identified_by_its_entry() {
        let (key, entry) = new_key("backend-1");
        assert!(key.starts_with(NEW_KEY_PREFIX));
        assert_eq!(key.len(), NEW_KEY_PREFIX.len() + 43);
        let (other, other_entry) = new_key("backend-2");
        let mut keys = ApiKeys::default();
        keys.add(
            "--api-keys",
            [(1, entry.as_str()), (2, other_entry.as_str())],
        )
        .unwrap();
        assert_eq!(keys.identify(&key), Some("backend-1"));
        assert_eq!(keys.identify(&other), Some("backend-2"));
        assert_eq!(keys.identify(&key[..key.len() - 1]), None);
        assert_eq!(keys.identify(""), None);
        assert_eq!(keys.identify(&"x".repeat(MAX_API_KEY_BYTES + 1)), None);
        // The key itself is never in the entry.
        assert!(!entry.contains(&key[NEW_KEY_PREFIX.len()..]));
        assert_eq!(format!("{keys:?}"), r#"["backend-1", "backend-2"]"#);
    }

    #[test]
    fn a_replaced_key_has_another_fingerprint() {
        let (_, old) = new_key("k1");
        let (_, new) = new_key("k1");
        let of = |entry: &str| {
            let mut keys = ApiKeys::default();
            keys.add("test", [(1, entry)]).unwrap();
            keys.fingerprint("k1").unwrap()
        };
        assert_eq!(of(&old), of(&old));
        assert_ne!(of(&old), of(&new));
        assert_eq!(ApiKeys::default().fingerprint("k1"), None);
    }

    #[test]
    fn entries_are_checked() {
        // sha256("abc")
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let mut keys = ApiKeys::default();
        keys.add_file(
            "keys.txt",
            &format!("# keys\n\n  ops:sha256:{hex}  \n# gone:sha256:{hex}\n"),
        )
        .unwrap();
        assert_eq!(keys.identify("abc"), Some("ops"));
        assert_eq!(keys.len(), 1);
        for bad in [
            format!("ops:{hex}"),
            format!("ops:sha1:{hex}"),
            format!(":sha256:{hex}"),
            format!("o p:sha256:{hex}"),
            format!("ops:sha256:{}", &hex[1..]),
            format!("ops:sha256:{}g", &hex[1..]),
            format!("{}:sha256:{hex}", "k".repeat(MAX_KEY_ID_BYTES + 1)),
        ] {
            let e = ApiKeys::default()
                .add("--api-keys", [(3, bad.as_str())])
                .unwrap_err();
            assert_eq!(
                e,
                KeyEntryError::Malformed {
                    place: "--api-keys".into(),
                    index: 3
                },
                "{bad}"
            );
        }
        let e = keys.add("--api-keys", [(1, &*format!("ops:sha256:{hex}"))]);
        assert!(matches!(e, Err(KeyEntryError::Duplicate { .. })));
    }
}
