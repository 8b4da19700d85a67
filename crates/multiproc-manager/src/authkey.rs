//! The shared secret that admits a client to a manager ([`AuthKey`]); it prints and parses,
//! so one program can tell another how to connect.

use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The secret a client must prove it holds before the server reads any request (an HMAC-SHA256
/// challenge in both directions, compared in constant time).
///
/// A manager gets a random 32-byte key unless one is given. `Display` prints it as hex and
/// `FromStr` parses hex back, so it can be handed to another program (in an environment
/// variable, say); `Debug` hides it.
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

    /// Parses a key from hex.
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

impl FromStr for AuthKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<AuthKey> {
        AuthKey::from_hex(s)
    }
}

impl From<&[u8]> for AuthKey {
    fn from(b: &[u8]) -> AuthKey {
        AuthKey(b.to_vec())
    }
}

impl From<Vec<u8>> for AuthKey {
    fn from(b: Vec<u8>) -> AuthKey {
        AuthKey(b)
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
        assert!(AuthKey::from_hex("abc").is_err());
        assert!(AuthKey::from_hex("zz").is_err());
        assert_eq!(AuthKey::from_hex("00ff").unwrap().as_bytes(), &[0, 255]);
    }
}
