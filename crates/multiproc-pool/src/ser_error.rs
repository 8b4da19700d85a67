//! What a failed serialisation says: postcard keeps none of a `Serialize` impl's
//! `Error::custom(msg)` (its error is only "Serde Serialization Error"), so after a failure
//! the value is walked again with [`Walk`], a serializer that writes nothing and keeps the
//! message and the path to the part that refused (`.field[3]`).

use serde::ser::{self, Serialize};
use std::fmt;

/// Why a value could not be serialised: its type and the serializer's message.
#[derive(Debug, Clone)]
pub(crate) struct SerFailure {
    ty: &'static str,
    detail: String,
}

impl SerFailure {
    /// The failure of `v`, which postcard refused with `e`.
    pub(crate) fn of<T: Serialize + ?Sized>(v: &T, e: postcard::Error) -> Self {
        let ty = std::any::type_name::<T>();
        let detail = match e {
            postcard::Error::SerdeSerCustom => match v.serialize(&mut Walk) {
                Err(found) => found.to_string(),
                // Refused once, accepted now (a value that changes between calls).
                Ok(()) => e.to_string(),
            },
            e => e.to_string(),
        };
        SerFailure { ty, detail }
    }

    /// "cannot serialise {what} (type `T`): {message}".
    pub(crate) fn describe(&self, what: &str) -> String {
        format!("cannot serialise {what} (type `{}`): {}", self.ty, self.detail)
    }
}

/// A message from a `Serialize` impl, and where in the value (innermost part first).
#[derive(Debug)]
pub(crate) struct Found {
    msg: String,
    path: Vec<String>,
}

impl Found {
    fn at(mut self, part: impl FnOnce() -> String) -> Self {
        self.path.push(part());
        self
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return f.write_str(&self.msg);
        }
        f.write_str("at ")?;
        for p in self.path.iter().rev() {
            f.write_str(p)?;
        }
        write!(f, ": {}", self.msg)
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Found { msg: msg.to_string(), path: Vec::new() }
    }
}

/// A serializer that writes nothing and reports a `Serialize` impl's own error with its
/// path. It is not human-readable, as postcard is not, so impls take the same branch.
pub(crate) struct Walk;

/// The parts of a compound value, numbered for the path.
pub(crate) struct Parts<'a> {
    walk: &'a mut Walk,
    i: usize,
}

impl Parts<'_> {
    fn part<T: Serialize + ?Sized>(&mut self, v: &T, name: impl FnOnce(usize) -> String) -> R {
        let i = self.i;
        self.i += 1;
        v.serialize(&mut *self.walk).map_err(|e| e.at(|| name(i)))
    }
}

type R = Result<(), Found>;

macro_rules! leaves {
    ($($f:ident($t:ty)),* $(,)?) => {
        $(fn $f(self, _: $t) -> R { Ok(()) })*
    };
}

impl<'a> ser::Serializer for &'a mut Walk {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Parts<'a>;
    type SerializeTuple = Parts<'a>;
    type SerializeTupleStruct = Parts<'a>;
    type SerializeTupleVariant = Parts<'a>;
    type SerializeMap = Parts<'a>;
    type SerializeStruct = Parts<'a>;
    type SerializeStructVariant = Parts<'a>;

    leaves!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_none(self) -> R {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> R {
        v.serialize(self).map_err(|e| e.at(|| format!("::{variant}")))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Parts<'a>, Found> {
        Ok(Parts { walk: self, i: 0 })
    }
    fn serialize_tuple(self, _: usize) -> Result<Parts<'a>, Found> {
        Ok(Parts { walk: self, i: 0 })
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Parts<'a>, Found> {
        Ok(Parts { walk: self, i: 0 })
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Parts<'a>, Found> {
        Ok(Parts { walk: self, i: 0 })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Parts<'a>, Found> {
        Ok(Parts { walk: self, i: 0 })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Parts<'a>, Found> {
        Ok(Parts { walk: self, i: 0 })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Parts<'a>, Found> {
        Ok(Parts { walk: self, i: 0 })
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeSeq for Parts<'_> {
    type Ok = ();
    type Error = Found;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.part(v, |i| format!("[{i}]"))
    }
    fn end(self) -> R {
        Ok(())
    }
}

macro_rules! tuple_like {
    ($($tr:ident),*) => {$(
        impl ser::$tr for Parts<'_> {
            type Ok = ();
            type Error = Found;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
                self.part(v, |i| format!(".{i}"))
            }
            fn end(self) -> R {
                Ok(())
            }
        }
    )*};
}
tuple_like!(SerializeTupleStruct, SerializeTupleVariant);

impl ser::SerializeTuple for Parts<'_> {
    type Ok = ();
    type Error = Found;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.part(v, |i| format!(".{i}"))
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeMap for Parts<'_> {
    type Ok = ();
    type Error = Found;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        let i = self.i;
        k.serialize(&mut *self.walk).map_err(|e| e.at(|| format!("[key of entry {i}]")))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.part(v, |i| format!("[entry {i}]"))
    }
    fn end(self) -> R {
        Ok(())
    }
}

macro_rules! struct_like {
    ($($tr:ident),*) => {$(
        impl ser::$tr for Parts<'_> {
            type Ok = ();
            type Error = Found;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> R {
                self.part(v, |_| format!(".{key}"))
            }
            fn end(self) -> R {
                Ok(())
            }
        }
    )*};
}
struct_like!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Refuses(&'static str);

    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom(self.0))
        }
    }

    #[derive(serde::Serialize)]
    struct Outer {
        ok: u32,
        inner: Vec<(u8, Refuses)>,
    }

    #[derive(serde::Serialize)]
    enum E {
        V { m: BTreeMap<u8, Refuses> },
    }

    fn failure<T: Serialize>(v: &T) -> String {
        let e = postcard::to_allocvec(v).unwrap_err();
        SerFailure::of(v, e).describe("it")
    }

    #[test]
    fn the_message_and_its_path_survive() {
        let v = Outer { ok: 1, inner: vec![(0, Refuses("deep"))] };
        let ty = std::any::type_name::<Outer>();
        assert_eq!(failure(&v), format!("cannot serialise it (type `{ty}`): at .inner[0].1: deep"));
        assert!(failure(&Refuses("top")).ends_with("`): top"));
        let v = E::V { m: [(7, Refuses("in a map"))].into() };
        assert!(failure(&v).ends_with(": at .m[entry 0]: in a map"), "{}", failure(&v));
        // A refusal of postcard's own keeps postcard's message.
        struct NoLen;
        impl Serialize for NoLen {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                s.serialize_seq(None)?.end()
            }
        }
        let msg = failure(&NoLen);
        assert!(!msg.contains("Serde Serialization Error") && msg.contains("ength"), "{msg}");
    }
}
