//! What a failed serialisation says: postcard keeps none of a `Serialize` impl's
//! `Error::custom(msg)` (its error is only "Serde Serialization Error"), so after a failure
//! the value is walked again ([`multiproc_arena::describe::refusal`]) for the message and the
//! path to the part that refused (`.field[3]`).

use serde::ser::Serialize;

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
            postcard::Error::SerdeSerCustom => match multiproc_arena::describe::refusal(v) {
                Some(found) => found.to_string(),
                // Refused once, accepted now (a value that changes between calls).
                None => e.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::ser;

    /// A value whose `Serialize` refuses with a message.
    struct Nan;

    impl Serialize for Nan {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("ratio is NaN"))
        }
    }

    fn failure<T: Serialize>(v: &T) -> String {
        let e = postcard::to_allocvec(v).unwrap_err();
        SerFailure::of(v, e).describe("it")
    }

    #[test]
    fn the_type_message_and_path_survive() {
        let v = (1u8, vec![Nan]);
        let ty = std::any::type_name::<(u8, Vec<Nan>)>();
        assert_eq!(
            failure(&v),
            format!("cannot serialise it (type `{ty}`): at .1[0]: ratio is NaN")
        );
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
