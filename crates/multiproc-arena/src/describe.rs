//! What a `Serialize` value holds, in words: a `Debug`-like rendering (`"Bob"`, `[1, 2]`,
//! `Point { x: 1, y: 2 }`, `Some(Red)`) for values kept only as bytes (a manager's namespace
//! fields), and, when a `Serialize` impl refuses, its own message and the path to the part
//! that refused (`at .inner[0].1: ratio is NaN`) — postcard keeps none of an
//! `Error::custom(msg)` (its error is only "Serde Serialization Error"), so the value is
//! walked again with this serializer.

use serde::ser::{self, Serialize};
use std::fmt::{self, Display, Write};

/// A `Serialize` impl's refusal: its message and where in the value.
#[derive(Debug, Clone)]
pub struct Refusal {
    msg: String,
    /// Innermost part first.
    path: Vec<String>,
}

impl Refusal {
    /// The impl's own message.
    pub fn message(&self) -> &str {
        &self.msg
    }

    /// The path to the refusing part (`.field[3]`; empty for the value itself).
    pub fn path(&self) -> String {
        self.path.iter().rev().map(String::as_str).collect()
    }
}

impl Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return f.write_str(&self.msg);
        }
        write!(f, "at {}: {}", self.path(), self.msg)
    }
}

/// Renders `v` like `Debug` (human-readable, as a text format would see it), cut after
/// `limit` bytes with `…`; the refusal if its `Serialize` fails.
pub fn render<T: Serialize + ?Sized>(v: &T, limit: usize) -> Result<String, Refusal> {
    let mut d = Describer { out: Some(String::new()), limit, human: true };
    match v.serialize(&mut d) {
        Ok(()) => Ok(d.out.unwrap_or_default()),
        Err(Stop::Full) => {
            let mut out = d.out.unwrap_or_default();
            let mut cut = limit.min(out.len());
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            Ok(out)
        }
        Err(Stop::Refused(r)) => Err(r),
    }
}

/// Walks `v` as a compact binary format (postcard) would, writing nothing: the refusal of
/// its `Serialize`, if any.
pub fn refusal<T: Serialize + ?Sized>(v: &T) -> Option<Refusal> {
    let mut d = Describer { out: None, limit: usize::MAX, human: false };
    match v.serialize(&mut d) {
        Err(Stop::Refused(r)) => Some(r),
        _ => None,
    }
}

struct Describer {
    /// `None`: walk only.
    out: Option<String>,
    limit: usize,
    human: bool,
}

#[derive(Debug)]
enum Stop {
    /// Over the limit: what was written so far is kept.
    Full,
    Refused(Refusal),
}

impl Stop {
    fn at(self, part: impl FnOnce() -> String) -> Self {
        match self {
            Stop::Refused(mut r) => {
                r.path.push(part());
                Stop::Refused(r)
            }
            full => full,
        }
    }
}

impl Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Full => f.write_str("rendering cut short"),
            Stop::Refused(r) => r.fmt(f),
        }
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: Display>(msg: M) -> Self {
        Stop::Refused(Refusal { msg: msg.to_string(), path: Vec::new() })
    }
}

type R = Result<(), Stop>;

impl Describer {
    fn put(&mut self, a: impl Display) -> R {
        let Some(out) = &mut self.out else { return Ok(()) };
        let _ = write!(out, "{a}");
        if out.len() > self.limit {
            Err(Stop::Full)
        } else {
            Ok(())
        }
    }

    fn open(
        &mut self,
        kind: Kind,
        head: &str,
        brackets: (&'static str, &'static str),
    ) -> Parts<'_> {
        let opened = self.put(head).and_then(|()| self.put(brackets.0));
        Parts { d: self, kind, i: 0, close: brackets.1, opened }
    }
}

/// How a compound value names its parts in a path.
#[derive(Clone, Copy)]
enum Kind {
    Seq,
    Tuple,
    Map,
    Struct,
}

/// A sequence, tuple, map or struct being walked.
struct Parts<'a> {
    d: &'a mut Describer,
    kind: Kind,
    i: usize,
    close: &'static str,
    /// Whether its opening fitted (the error is reported at the first part or the end).
    opened: R,
}

impl Parts<'_> {
    fn begin(&mut self) -> R {
        std::mem::replace(&mut self.opened, Ok(()))?;
        if self.i > 0 {
            self.d.put(", ")?;
        }
        Ok(())
    }

    fn part<T: Serialize + ?Sized>(&mut self, name: Option<&str>, v: &T) -> R {
        self.begin()?;
        let i = self.i;
        self.i += 1;
        if let Some(n) = name {
            self.d.put(format_args!("{n}: "))?;
        }
        let kind = self.kind;
        v.serialize(&mut *self.d).map_err(|e| {
            e.at(|| match (kind, name) {
                (Kind::Struct, Some(n)) => format!(".{n}"),
                (Kind::Seq, _) => format!("[{i}]"),
                (Kind::Map, _) => format!("[entry {i}]"),
                _ => format!(".{i}"),
            })
        })
    }

    fn key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        self.begin()?;
        let i = self.i;
        k.serialize(&mut *self.d).map_err(|e| e.at(|| format!("[key of entry {i}]")))
    }

    fn value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        let i = self.i;
        self.i += 1;
        self.d.put(": ")?;
        v.serialize(&mut *self.d).map_err(|e| e.at(|| format!("[entry {i}]")))
    }

    fn end(mut self) -> R {
        std::mem::replace(&mut self.opened, Ok(()))?;
        self.d.put(self.close)
    }
}

macro_rules! plain {
    ($($f:ident($t:ty)),*) => {
        $(fn $f(self, v: $t) -> R { self.put(v) })*
    };
}

macro_rules! debug {
    ($($f:ident($t:ty)),*) => {
        $(fn $f(self, v: $t) -> R { self.put(format_args!("{v:?}")) })*
    };
}

impl<'a> ser::Serializer for &'a mut Describer {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Parts<'a>;
    type SerializeTuple = Parts<'a>;
    type SerializeTupleStruct = Parts<'a>;
    type SerializeTupleVariant = Parts<'a>;
    type SerializeMap = Parts<'a>;
    type SerializeStruct = Parts<'a>;
    type SerializeStructVariant = Parts<'a>;

    plain!(
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
        serialize_u128(u128)
    );
    debug!(
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8])
    );

    fn serialize_none(self) -> R {
        self.put("None")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        self.serialize_newtype_struct("Some", v)
    }
    fn serialize_unit(self) -> R {
        self.put("()")
    }
    fn serialize_unit_struct(self, name: &'static str) -> R {
        self.put(name)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> R {
        self.put(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> R {
        self.put(name)?;
        self.put("(")?;
        v.serialize(&mut *self)?;
        self.put(")")
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> R {
        self.serialize_newtype_struct(variant, v).map_err(|e| e.at(|| format!("::{variant}")))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Parts<'a>, Stop> {
        Ok(self.open(Kind::Seq, "", ("[", "]")))
    }
    fn serialize_tuple(self, _: usize) -> Result<Parts<'a>, Stop> {
        Ok(self.open(Kind::Tuple, "", ("(", ")")))
    }
    fn serialize_tuple_struct(self, name: &'static str, _: usize) -> Result<Parts<'a>, Stop> {
        Ok(self.open(Kind::Tuple, name, ("(", ")")))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Parts<'a>, Stop> {
        Ok(self.open(Kind::Tuple, variant, ("(", ")")))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Parts<'a>, Stop> {
        Ok(self.open(Kind::Map, "", ("{", "}")))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Parts<'a>, Stop> {
        Ok(self.open(Kind::Struct, name, (" { ", " }")))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Parts<'a>, Stop> {
        Ok(self.open(Kind::Struct, variant, (" { ", " }")))
    }
    fn is_human_readable(&self) -> bool {
        self.human
    }
}

/// The compound traits: elements and fields (named by `key` in structs) are
/// [`Parts::part`]s.
macro_rules! compound {
    ($($tr:ident :: $f:ident ($($key:ident)?)),*) => {$(
        impl ser::$tr for Parts<'_> {
            type Ok = ();
            type Error = Stop;
            fn $f<T: Serialize + ?Sized>(&mut self, $($key: &'static str,)? v: &T) -> R {
                self.part(None $(.or(Some($key)))?, v)
            }
            fn end(self) -> R {
                Parts::end(self)
            }
        }
    )*};
}
compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(key),
    SerializeStructVariant::serialize_field(key)
);

impl ser::SerializeMap for Parts<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        self.key(k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.value(v)
    }
    fn end(self) -> R {
        Parts::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Point {
        x: i32,
        y: f64,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Dot,
        Circle(u8),
        Rect { w: u8, h: u8 },
    }

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
        N(Refuses),
    }

    #[test]
    fn renders_like_debug() {
        let show = |v: &dyn erased::Show| v.show();
        assert_eq!(show(&"Bob"), "\"Bob\"");
        assert_eq!(show(&42u8), "42");
        assert_eq!(show(&-1.5f64), "-1.5");
        assert_eq!(show(&vec![1, 2]), "[1, 2]");
        assert_eq!(show(&(1, 'a')), "(1, 'a')");
        assert_eq!(show(&Some(None::<u8>)), "Some(None)");
        assert_eq!(show(&Point { x: 1, y: 2.0 }), "Point { x: 1, y: 2.0 }");
        assert_eq!(show(&vec![Shape::Dot, Shape::Circle(3)]), "[Dot, Circle(3)]");
        assert_eq!(show(&Shape::Rect { w: 1, h: 2 }), "Rect { w: 1, h: 2 }");
        assert_eq!(show(&BTreeMap::from([("k", 1)])), "{\"k\": 1}");
        assert_eq!(show(&Vec::<u8>::new()), "[]");
        let long = render(&vec![7u32; 1000], 256).unwrap();
        assert!(long.len() <= 256 + '…'.len_utf8() && long.ends_with('…'));
        assert!(long.starts_with("[7, 7, "));
        assert_eq!(render(&"é".repeat(10), 4).unwrap(), "\"é…");
    }

    #[test]
    fn a_refusal_keeps_its_message_and_path() {
        let v = Outer { ok: 1, inner: vec![(0, Refuses("deep"))] };
        let r = refusal(&v).unwrap();
        assert_eq!(r.to_string(), "at .inner[0].1: deep");
        assert_eq!((r.message(), r.path().as_str()), ("deep", ".inner[0].1"));
        assert_eq!(refusal(&Refuses("top")).unwrap().to_string(), "top");
        let v = E::V { m: [(7, Refuses("in a map"))].into() };
        assert_eq!(refusal(&v).unwrap().to_string(), "at .m[entry 0]: in a map");
        assert_eq!(refusal(&E::N(Refuses("n"))).unwrap().to_string(), "at ::N: n");
        assert!(refusal(&Point { x: 1, y: 2.0 }).is_none());
        // Rendering reports the same refusal.
        let v = Outer { ok: 1, inner: vec![(0, Refuses("deep"))] };
        assert_eq!(render(&v, 1000).unwrap_err().to_string(), "at .inner[0].1: deep");
    }

    mod erased {
        pub(super) trait Show {
            fn show(&self) -> String;
        }
        impl<T: serde::Serialize> Show for T {
            fn show(&self) -> String {
                super::render(self, 256).unwrap()
            }
        }
    }
}
