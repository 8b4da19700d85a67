//! Helpers shared by the test binaries.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes serialised as one byte string (serde's default for `Vec<u8>` is a sequence of single
/// bytes: one large write into the queue instead of one per byte).
#[derive(Debug, PartialEq, Clone)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

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
        d.deserialize_bytes(V)
    }
}

/// A KiB.
#[allow(dead_code)] // not every test binary uses it
pub(crate) const KIB: usize = 1 << 10;

/// A 64 KiB message, every byte `i`: more than half of a 16 KiB ring, so it is spilled (or
/// streamed).
#[allow(dead_code)] // not every test binary uses it
pub(crate) fn big(i: u8) -> Bytes {
    Bytes(vec![i; 64 * KIB])
}
