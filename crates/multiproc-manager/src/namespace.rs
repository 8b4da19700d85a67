//! The typed proxy of a managed namespace (Python's `Namespace`).

use crate::codec;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::{boolean, proxy, unexpected, unit};
use crate::protocol::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

proxy! {
    custom_debug
    /// A proxy of a namespace held by the manager (Python's `Namespace`): named fields, each of
    /// its own serde type.
    ///
    /// Its `Debug` lists the fields, as Python's `repr` does: `Namespace { name: "Bob", x: 1 }`
    /// — it asks the server (one request). The server stores serialised values, which do not
    /// say what they hold, so each value's text is rendered from its `Serialize` when it is
    /// set (`Debug`-like: strings quoted, structs with their field names; proxies inside show
    /// as their object ids; cut at 256 bytes with `…`). As in Python, fields whose names
    /// start with `_` are not listed. If the server cannot be reached, it shows the id, the
    /// manager's address and the error instead.
    pub struct Namespace: Kind::Namespace, Namespace(NsOp);
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// Writes a rendering as it is (no quotes added).
        struct Verbatim<'a>(Option<&'a str>);
        impl std::fmt::Debug for Verbatim<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0.unwrap_or("<not shown>"))
            }
        }
        match self.op(NsOp::Shown) {
            Ok(Reply::Shown(fields)) => {
                let mut d = f.debug_struct("Namespace");
                for (name, shown) in fields.iter().filter(|(n, _)| !n.starts_with('_')) {
                    d.field(name, &Verbatim(shown.as_deref()));
                }
                d.finish()
            }
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(r) => unexpected(&r).to_string(),
                };
                f.debug_struct("Namespace")
                    .field("id", &self.h.id)
                    .field("manager", &self.h.address().to_string())
                    .field("fields", &format_args!("<{why}>"))
                    .finish()
            }
        }
    }
}

impl Namespace {
    /// Sets field `name`.
    pub fn set<T: Serialize>(&self, name: &str, value: T) -> Result<()> {
        let (stored, shown) = codec::encode_shown(self.h.home(), &value)?;
        self.op(NsOp::SetShown(name.to_string(), stored, shown)).and_then(unit)
    }

    /// Field `name`, if set.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let r = self.op(NsOp::Get(name.to_string()))?;
        self.h.maybe(r)
    }

    /// Field `name`; [`ValueNotFound`](ErrorKind::ValueNotFound) if it is not set (Python's
    /// `AttributeError`).
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        self.get(name)?.ok_or_else(|| {
            Error::new(ErrorKind::ValueNotFound, format!("namespace has no field {name:?}"))
        })
    }

    /// Removes field `name`; whether it was set.
    pub fn remove(&self, name: &str) -> Result<bool> {
        self.op(NsOp::Remove(name.to_string())).and_then(boolean)
    }

    /// Whether field `name` is set.
    pub fn contains(&self, name: &str) -> Result<bool> {
        match self.op(NsOp::Get(name.to_string()))? {
            Reply::MaybeValue(v) => {
                let had = v.is_some();
                if let Some(s) = v {
                    self.h.client()?.decref(s.refs);
                }
                Ok(had)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The names of the set fields, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        match self.op(NsOp::Names)? {
            Reply::Names(ns) => Ok(ns),
            other => Err(unexpected(&other)),
        }
    }
}
