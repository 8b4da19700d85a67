//! Self-describing values inside the postcard wire (feature `self-describing`).
//!
//! Every multiproc channel — a queue, a pipe, a pool's arguments and results, a process's
//! argument — carries values as postcard ([`transfer::encode_into`]).
//! Postcard is compact and fast but not *self-describing*: the bytes hold no field names and no
//! type markers, so a `Deserialize` that has to look at the data before knowing what it is
//! cannot work. These serialise without complaint and then fail to deserialise (the queue hands
//! such a message's bytes back in its `get` error):
//!
//! - internally tagged enums, `#[serde(tag = "...")]` (and adjacently tagged ones that are read
//!   out of order);
//! - untagged enums, `#[serde(untagged)]`;
//! - `#[serde(flatten)]` (this one already fails to serialise: postcard needs a map's length
//!   up front, flatten cannot tell it);
//! - `#[serde(skip_serializing_if = "...")]` (a skipped field shifts every byte after it);
//! - `serde_json::Value` and other "any" types.
//!
//! Wrap such a value in [`SelfDescribing`] and it travels as one postcard byte string holding
//! the value in [MessagePack](https://msgpack.org) with its field names (the encoding of
//! `rmp_serde::to_vec_named`), which every one of those attributes decodes from. Nothing else
//! changes: the channel's type becomes `SelfDescribing<T>`, and only the wrapped value pays for
//! the self-description (field names on the wire; measured on 1,000 small structs: 1.4 times
//! postcard's bytes and 1.6 times its encode-and-decode time; one small struct alone, 2–3
//! times the time).
//!
//! Handles inside the value (a lock, a queue, a connection, `Shared`) travel as usual: the
//! inner serialiser runs inside the message's transfer context, so their descriptors join the
//! message's. A handle's own error (say, [`NoTransferContext`](ErrorKind::NoTransferContext)
//! outside a context, or [`NoDescriptors`](ErrorKind::NoDescriptors)) keeps its kind.
//!
//! Errors name the type: an undecodable value is a [`Codec`](ErrorKind::Codec) error such as
//! ``cannot decode `app::Event` from its 12 MessagePack bytes: invalid type: …``.
//!
//! What even a self-describing format cannot carry (serde's limits, not MessagePack's): 128-bit
//! integers *inside* an internally tagged or untagged enum or a flattened struct (serde buffers
//! those without 128-bit numbers), and `Some(None)` of an `Option<Option<T>>` (it comes back
//! `None`). Outside those, `u128`/`i128`, non-finite floats, non-string map keys and nesting
//! up to 1,024 levels deep round-trip.
//!
//! ```
//! use multiproc_arena::codec::SelfDescribing;
//! use multiproc_arena::transfer;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(tag = "kind")]
//! enum Event {
//!     Start { at: u64 },
//!     Stop,
//! }
//!
//! // Postcard writes it, and cannot read it back:
//! let msg = transfer::encode(&Event::Start { at: 7 }).unwrap();
//! assert!(transfer::decode::<Event>(&msg.bytes, msg.fds).is_err());
//!
//! // Wrapped, it round-trips:
//! let msg = transfer::encode(&SelfDescribing(Event::Start { at: 7 })).unwrap();
//! let SelfDescribing(got): SelfDescribing<Event> = transfer::decode(&msg.bytes, msg.fds).unwrap();
//! assert_eq!(got, Event::Start { at: 7 });
//! ```

use crate::error::{Error, ErrorKind, Result};
use crate::transfer;
use serde::de::{DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// A value that crosses processes in a self-describing format (MessagePack with field names)
/// inside the postcard wire, so that serde attributes postcard cannot decode — internally
/// tagged and untagged enums, `flatten`, `skip_serializing_if`, `serde_json::Value` — work on
/// queues, pipes, pool arguments and results. See the [module docs](self).
///
/// It dereferences to `T`; [`into_inner`](Self::into_inner) or the public field unwraps it.
///
/// ```
/// use multiproc_arena::codec::SelfDescribing;
/// use multiproc_arena::transfer;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// #[serde(untagged)]
/// enum Id {
///     Number(u64),
///     Name(String),
/// }
///
/// let msg = transfer::encode(&SelfDescribing(vec![Id::Number(1), Id::Name("b".into())])).unwrap();
/// let ids: SelfDescribing<Vec<Id>> = transfer::decode(&msg.bytes, msg.fds).unwrap();
/// assert_eq!(ids.into_inner(), [Id::Number(1), Id::Name("b".into())]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct SelfDescribing<T>(pub T);

impl<T> SelfDescribing<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        SelfDescribing(value)
    }

    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for SelfDescribing<T> {
    fn from(value: T) -> Self {
        SelfDescribing(value)
    }
}

impl<T> Deref for SelfDescribing<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for SelfDescribing<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// The kind for an inner failure: a handle's own (recorded by it while the inner serialiser
/// ran), else [`Codec`](ErrorKind::Codec).
fn inner_kind() -> ErrorKind {
    transfer::take_recorded().map_or(ErrorKind::Codec, |(kind, _)| kind)
}

/// `value` as MessagePack with field names: the bytes [`SelfDescribing`] carries. Handles
/// inside serialise only within a transfer context (as in postcard).
///
/// # Errors
/// [`Codec`](ErrorKind::Codec) naming the type and the format's message, or a handle's own
/// error kind.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let _stale = transfer::take_recorded();
    rmp_serde::to_vec_named(value).map_err(|e| {
        Error::new(
            inner_kind(),
            format!("cannot encode `{}` as MessagePack: {e}", type_name::<T>()),
        )
    })
}

/// Decodes the bytes [`to_vec`] made. Every byte must belong to the value.
///
/// # Errors
/// [`Codec`](ErrorKind::Codec) naming the type and the format's message (trailing bytes
/// included), or a handle's own error kind.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let _stale = transfer::take_recorded();
    let mut rest = bytes;
    let res = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest));
    match res {
        Ok(v) if rest.is_empty() => Ok(v),
        Ok(_) => Err(Error::new(
            ErrorKind::Codec,
            format!(
                "cannot decode `{}` from its {} MessagePack bytes: {} trailing bytes after the \
                 value",
                type_name::<T>(),
                bytes.len(),
                rest.len()
            ),
        )),
        Err(e) => Err(Error::new(
            inner_kind(),
            format!(
                "cannot decode `{}` from its {} MessagePack bytes: {e}",
                type_name::<T>(),
                bytes.len()
            ),
        )),
    }
}

impl<T: Serialize> Serialize for SelfDescribing<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let bytes = to_vec(&self.0).map_err(transfer::ser_error)?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for SelfDescribing<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_bytes(BytesOf(PhantomData)).map(SelfDescribing)
    }
}

/// Reads the byte string (or, from a format that writes bytes as a sequence, the sequence of
/// bytes) and decodes a `T` from it.
struct BytesOf<T>(PhantomData<fn() -> T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for BytesOf<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the MessagePack bytes of a `SelfDescribing<{}>`", type_name::<T>())
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<T, E> {
        from_slice(v).map_err(transfer::de_error)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<T, A::Error> {
        // Never trust a peer's length for the allocation.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        self.visit_bytes(&v)
    }
}

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    use super::*;
    use crate::Shared;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(tag = "kind")]
    enum Tagged {
        Text { body: String },
        Number { n: u64 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Untagged {
        Num(i64),
        Text(String),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        x: i32,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Flat {
        id: u32,
        #[serde(flatten)]
        inner: Inner,
        #[serde(flatten)]
        extra: BTreeMap<String, String>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sparse {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        note: Option<u32>,
        name: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Wide {
        big: u128,
        neg: i128,
        small: f64,
        inf: f64,
        keys: BTreeMap<(u8, u8), char>,
    }

    /// Through the transfer codec: raw fails (to decode, or for `flatten` already to encode),
    /// wrapped round-trips.
    fn both_ways<T>(v: T)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        if let Ok(raw) = transfer::encode(&v) {
            assert!(transfer::decode::<T>(&raw.bytes, raw.fds).is_err(), "{v:?} decoded raw");
        }
        let msg = transfer::encode(&SelfDescribing(&v)).expect("wrapped");
        let got: SelfDescribing<T> = transfer::decode(&msg.bytes, msg.fds).expect("wrapped");
        assert_eq!(got.0, v);
    }

    #[test]
    fn the_traps_round_trip_wrapped_and_fail_raw() {
        both_ways(vec![Tagged::Text { body: "hi".into() }, Tagged::Number { n: u64::MAX }]);
        both_ways(vec![Untagged::Num(-5), Untagged::Text("x".into())]);
        both_ways(Flat {
            id: 1,
            inner: Inner { x: -3 },
            extra: [("k".to_string(), "v".to_string())].into(),
        });
        both_ways(vec![
            Sparse { note: None, name: "a".into() },
            Sparse { note: Some(4), name: "b".into() },
        ]);
    }

    #[test]
    fn what_postcard_carries_also_round_trips_wrapped() {
        let w = Wide {
            big: u128::MAX,
            neg: i128::MIN,
            small: 0.1,
            inf: f64::NEG_INFINITY,
            keys: [((1, 2), 'é')].into(),
        };
        let msg = transfer::encode(&SelfDescribing(&w)).unwrap();
        let got: SelfDescribing<Wide> = transfer::decode(&msg.bytes, msg.fds).unwrap();
        assert_eq!(got.0, w);
        let nan: f64 = from_slice(&to_vec(&f64::NAN).unwrap()).unwrap();
        assert!(nan.is_nan());
    }

    #[test]
    fn a_decode_error_names_the_type_and_the_format_message() {
        let msg = transfer::encode(&SelfDescribing(Untagged::Text("x".into()))).unwrap();
        let e = transfer::decode::<SelfDescribing<Tagged>>(&msg.bytes, msg.fds).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Codec);
        let text = e.to_string();
        assert!(text.contains("Tagged"), "{text}");
        assert!(text.contains("MessagePack"), "{text}");
        assert!(text.contains("invalid type"), "{text}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut b = to_vec(&5u32).unwrap();
        b.push(0xc0);
        let e = from_slice::<u32>(&b).unwrap_err();
        assert!(e.to_string().contains("1 trailing bytes"), "{e}");
    }

    #[test]
    fn bytes_as_a_sequence_decode_too() {
        // A format that writes bytes as a sequence of numbers (JSON, say) reaches the
        // visitor's sequence path.
        use serde::de::value::{Error as VErr, SeqDeserializer};
        let b = to_vec(&Tagged::Number { n: 3 }).unwrap();
        let d = SeqDeserializer::<_, VErr>::new(b.into_iter());
        let got: Tagged = BytesOf(PhantomData).visit_seq(d).unwrap();
        assert_eq!(got, Tagged::Number { n: 3 });
    }

    #[test]
    fn a_handle_inside_travels_with_its_descriptor() {
        let v = Shared::new(AtomicU64::new(7)).unwrap();
        let value = SelfDescribing((Untagged::Text("h".into()), v.clone()));
        let msg = transfer::encode(&value).unwrap();
        assert_eq!(msg.fds.len(), 1, "the arena's descriptor joins the message");
        let got: SelfDescribing<(Untagged, Shared<AtomicU64>)> =
            transfer::decode(&msg.bytes, msg.fds).unwrap();
        assert_eq!(got.0 .0, Untagged::Text("h".into()));
        got.0 .1.fetch_add(1, Ordering::Relaxed);
        assert_eq!(v.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn a_handle_outside_a_context_keeps_its_error_kind() {
        let v = Shared::new(AtomicU64::new(7)).unwrap();
        let e = to_vec(&(1u8, v)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoTransferContext, "{e}");
        assert!(e.to_string().contains("cannot encode"), "{e}");
    }
}
