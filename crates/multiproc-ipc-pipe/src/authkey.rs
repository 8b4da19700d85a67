//! [`AuthKey`]: the shared secret of the [`Listener`](crate::Listener) /
//! [`Client`](crate::Client) handshake (and of `multiproc-manager`, which re-exports it).

use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The secret a client must prove it holds before a listener reads any message (an
/// HMAC-SHA256 challenge in both directions, compared in constant time): Python's `authkey`.
/// Any length, empty included.
///
/// Made from bytes in any of the usual forms — `AuthKey::from(b"secret")`, `&[u8]`,
/// `Vec<u8>`, and from `&str` / `String` (their UTF-8 bytes) — so builders that take
/// `impl Into<AuthKey>` accept them all. `Display` prints the key as hex and `FromStr`
/// parses hex back (note the difference: `"00ff".parse::<AuthKey>()` is the two bytes
/// `[0x00, 0xff]`, `AuthKey::from("00ff")` the four bytes of the text), so a key can be
/// handed to another program in an environment variable; `Debug` shows only its length.
///
/// ```
/// use multiproc_ipc_pipe::AuthKey;
/// let k = AuthKey::from(b"secret");
/// assert_eq!(k, AuthKey::from("secret"));
/// assert_eq!(k.to_string().parse::<AuthKey>().unwrap(), k);
/// assert_eq!(format!("{k:?}"), "AuthKey(<6 bytes>)");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthKey(Vec<u8>);

impl AuthKey {
    /// A fresh random 32-byte key.
    pub fn random() -> AuthKey {
        let mut k = Vec::with_capacity(32);
        for _ in 0..4 {
            k.extend_from_slice(&multiproc_arena::random_u64().to_le_bytes());
        }
        AuthKey(k)
    }

    /// A key of these bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> AuthKey {
        AuthKey(bytes.into())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key in lowercase hex (what `Display` prints).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses a key from hex (surrounding whitespace ignored); anything else is an
    /// [`ErrorKind::InvalidInput`] error.
    pub fn from_hex(s: &str) -> Result<AuthKey> {
        let bad =
            || Error::new(ErrorKind::InvalidInput, "an authkey is an even number of hex digits");
        let s = s.trim();
        if s.len() % 2 != 0 || !s.is_ascii() {
            return Err(bad());
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad()))
            .collect::<Result<Vec<u8>>>()
            .map(AuthKey)
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey(<{} bytes>)", self.0.len())
    }
}

impl fmt::Display for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Hex (see [`AuthKey::from_hex`]).
impl FromStr for AuthKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<AuthKey> {
        AuthKey::from_hex(s)
    }
}

impl AsRef<[u8]> for AuthKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for AuthKey {
    fn from(b: &[u8]) -> AuthKey {
        AuthKey(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for AuthKey {
    fn from(b: &[u8; N]) -> AuthKey {
        AuthKey(b.to_vec())
    }
}

impl From<Vec<u8>> for AuthKey {
    fn from(b: Vec<u8>) -> AuthKey {
        AuthKey(b)
    }
}

/// The text's UTF-8 bytes (not hex: that is [`FromStr`]).
impl From<&str> for AuthKey {
    fn from(s: &str) -> AuthKey {
        AuthKey(s.as_bytes().to_vec())
    }
}

/// The text's UTF-8 bytes (not hex: that is [`FromStr`]).
impl From<String> for AuthKey {
    fn from(s: String) -> AuthKey {
        AuthKey(s.into_bytes())
    }
}

impl From<&AuthKey> for AuthKey {
    fn from(k: &AuthKey) -> AuthKey {
        k.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authkey_hex_round_trips_and_debug_hides_it() {
        let k = AuthKey::random();
        assert_eq!(k.as_bytes().len(), 32);
        assert_eq!(k.to_string().parse::<AuthKey>().unwrap(), k);
        assert_ne!(AuthKey::random(), k);
        assert!(!format!("{k:?}").contains(&k.to_hex()));
        assert_eq!(format!("{k:?}"), "AuthKey(<32 bytes>)");
        assert_eq!(AuthKey::from_hex("abc").unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(AuthKey::from_hex("zz").is_err());
        assert!(AuthKey::from_hex("é1").is_err());
        assert_eq!(AuthKey::from_hex(" 00ff\n").unwrap().as_bytes(), &[0, 255]);
    }

    #[test]
    fn authkey_from_every_byte_form() {
        let want = AuthKey::from_bytes(b"key".to_vec());
        assert_eq!(AuthKey::from(b"key"), want);
        assert_eq!(AuthKey::from(&b"key"[..]), want);
        assert_eq!(AuthKey::from(b"key".to_vec()), want);
        assert_eq!(AuthKey::from("key"), want);
        assert_eq!(AuthKey::from("key".to_string()), want);
        assert_eq!(AuthKey::from(&want), want);
        assert_eq!(want.as_ref(), b"key");
        // Text is its bytes; parsing is hex.
        assert_eq!(AuthKey::from("00ff").as_bytes(), b"00ff");
        assert_eq!("00ff".parse::<AuthKey>().unwrap().as_bytes(), &[0, 255]);
        assert!(AuthKey::from("").as_bytes().is_empty());
    }
}
