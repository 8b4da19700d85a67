//! A `Debug`-like rendering of any `Serialize` value (`"Bob"`, `[1, 2]`,
//! `Point { x: 1, y: 2 }`, `Some(Red)`), for showing a namespace's fields: the server keeps
//! only serialised bytes, which do not say what they hold, so each field's text is made when
//! it is set. Renderings longer than [`LIMIT`] bytes are cut short with `…`.

use serde::ser::{self, Serialize};
use std::fmt::{self, Display, Write};

/// The longest rendering kept, in bytes.
pub(crate) const LIMIT: usize = 256;

/// The rendering of `v`; `None` if its `Serialize` failed.
pub(crate) fn show<T: Serialize + ?Sized>(v: &T) -> Option<String> {
    let mut s = Show { out: String::new() };
    match v.serialize(&mut s) {
        Ok(()) => Some(s.out),
        Err(Stop::Full) => {
            let mut cut = LIMIT;
            while !s.out.is_char_boundary(cut) {
                cut -= 1;
            }
            s.out.truncate(cut);
            s.out.push('…');
            Some(s.out)
        }
        Err(Stop::Failed) => None,
    }
}

struct Show {
    out: String,
}

#[derive(Debug)]
enum Stop {
    /// Over [`LIMIT`]: what was written so far is kept.
    Full,
    /// The value's `Serialize` failed.
    Failed,
}

impl Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not shown")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: Display>(_: M) -> Self {
        Stop::Failed
    }
}

type R = Result<(), Stop>;

impl Show {
    fn put(&mut self, a: impl Display) -> R {
        let _ = write!(self.out, "{a}");
        if self.out.len() > LIMIT {
            Err(Stop::Full)
        } else {
            Ok(())
        }
    }

    fn open(
        &mut self,
        head: &str,
        open: &'static str,
        close: &'static str,
    ) -> Result<Seq<'_>, Stop> {
        self.put(head)?;
        self.put(open)?;
        Ok(Seq { s: self, first: true, close })
    }
}

/// A sequence, tuple, map or struct being written.
struct Seq<'a> {
    s: &'a mut Show,
    first: bool,
    close: &'static str,
}

impl Seq<'_> {
    fn sep(&mut self) -> R {
        if !std::mem::replace(&mut self.first, false) {
            self.s.put(", ")?;
        }
        Ok(())
    }

    fn item<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.sep()?;
        v.serialize(&mut *self.s)
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &str, v: &T) -> R {
        self.sep()?;
        self.s.put(format_args!("{name}: "))?;
        v.serialize(&mut *self.s)
    }

    fn close(self) -> R {
        self.s.put(self.close)
    }
}

macro_rules! plain {
    ($($f:ident($t:ty)),*) => {
        $(fn $f(self, v: $t) -> R { self.put(v) })*
    };
}

impl<'a> ser::Serializer for &'a mut Show {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Seq<'a>;
    type SerializeStruct = Seq<'a>;
    type SerializeStructVariant = Seq<'a>;

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

    fn serialize_f32(self, v: f32) -> R {
        self.put(format_args!("{v:?}"))
    }
    fn serialize_f64(self, v: f64) -> R {
        self.put(format_args!("{v:?}"))
    }
    fn serialize_char(self, v: char) -> R {
        self.put(format_args!("{v:?}"))
    }
    fn serialize_str(self, v: &str) -> R {
        self.put(format_args!("{v:?}"))
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        self.put(format_args!("{v:?}"))
    }
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
        let mut s = self.open(name, "(", ")")?;
        s.item(v)?;
        s.close()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> R {
        self.serialize_newtype_struct(variant, v)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Stop> {
        self.open("", "[", "]")
    }
    fn serialize_tuple(self, _: usize) -> Result<Seq<'a>, Stop> {
        self.open("", "(", ")")
    }
    fn serialize_tuple_struct(self, name: &'static str, _: usize) -> Result<Seq<'a>, Stop> {
        self.open(name, "(", ")")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Stop> {
        self.open(variant, "(", ")")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Seq<'a>, Stop> {
        self.open("", "{", "}")
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Seq<'a>, Stop> {
        self.open(name, " { ", " }")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Stop> {
        self.open(variant, " { ", " }")
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.item(v)
    }
    fn end(self) -> R {
        self.close()
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.item(v)
    }
    fn end(self) -> R {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.item(v)
    }
    fn end(self) -> R {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.item(v)
    }
    fn end(self) -> R {
        self.close()
    }
}

impl ser::SerializeMap for Seq<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        self.item(k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.s.put(": ")?;
        v.serialize(&mut *self.s)
    }
    fn end(self) -> R {
        self.close()
    }
}

impl ser::SerializeStruct for Seq<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, v: &T) -> R {
        self.field(name, v)
    }
    fn end(self) -> R {
        self.close()
    }
}

impl ser::SerializeStructVariant for Seq<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, v: &T) -> R {
        self.field(name, v)
    }
    fn end(self) -> R {
        self.close()
    }
}

#[cfg(test)]
mod tests {
    use super::show;
    use serde::Serialize;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Point {
        x: i32,
        y: f64,
    }

    #[derive(Serialize)]
    enum Shape {
        Dot,
        Circle(u8),
        Rect { w: u8, h: u8 },
    }

    #[test]
    fn renders_like_debug() {
        assert_eq!(show(&"Bob").unwrap(), "\"Bob\"");
        assert_eq!(show(&42u8).unwrap(), "42");
        assert_eq!(show(&-1.5f64).unwrap(), "-1.5");
        assert_eq!(show(&vec![1, 2]).unwrap(), "[1, 2]");
        assert_eq!(show(&(1, 'a')).unwrap(), "(1, 'a')");
        assert_eq!(show(&Some(None::<u8>)).unwrap(), "Some(None)");
        assert_eq!(show(&Point { x: 1, y: 2.0 }).unwrap(), "Point { x: 1, y: 2.0 }");
        assert_eq!(show(&vec![Shape::Dot, Shape::Circle(3)]).unwrap(), "[Dot, Circle(3)]");
        assert_eq!(show(&Shape::Rect { w: 1, h: 2 }).unwrap(), "Rect { w: 1, h: 2 }");
        assert_eq!(show(&BTreeMap::from([("k", 1)])).unwrap(), "{\"k\": 1}");
        let long = show(&vec![7u32; 1000]).unwrap();
        assert!(long.len() <= super::LIMIT + '…'.len_utf8() && long.ends_with('…'));
        assert!(long.starts_with("[7, 7, "));
    }
}
