//! [`Bytes`]: a byte buffer that crosses processes as one byte string.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `Vec<u8>` that serialises as one byte string (Python's `bytes` as it pickles): serde's
/// default for `Vec<u8>` is a sequence of single bytes, one call per byte — one copy here.
/// Send `Bytes` through a queue, a pipe or a pool for large binary payloads.
///
/// ```
/// use multiproc_arena::Bytes;
/// let b = Bytes(vec![1, 2, 3]);
/// let wire = postcard::to_allocvec(&b).unwrap();
/// assert_eq!(postcard::from_bytes::<Bytes>(&wire).unwrap(), b);
/// assert_eq!(&b[..], &[1, 2, 3]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bytes(pub Vec<u8>);

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes(v)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Vec<u8> {
        b.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}
