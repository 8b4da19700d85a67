//! The untyped core of every proxy: an object id on a server, the session it is counted in,
//! and how it crosses to another process.
//!
//! # Passing proxies to other processes
//!
//! A proxy is `Serialize`/`Deserialize` and needs no transfer context: it travels as data.
//! - Stored in a managed container of the same manager (a list proxy put in a dict proxy), it
//!   is written as its object id; the server counts the container's reference, so the object
//!   lives as long as the container holds it, whoever dropped their proxies.
//! - Anywhere else (a process argument, a message on a pipe or queue, a file), it is written
//!   as (address, authkey, object id, hold token). Serialising asks the server for a *hold*
//!   that keeps the object alive while the proxy is in transit; the receiver reconnects to the
//!   manager (once per process) and adopts the hold. A hold nobody adopts is dropped when the
//!   sender's session ends. Note the bytes carry the authkey: treat them as secret.
//! - A proxy inherited through `fork` (not serialised) notices the new process on first use,
//!   opens this process's own session and takes its own reference; if it is never used in the
//!   child, the child's drop does nothing.

use crate::authkey::AuthKey;
use crate::client::Client;
use crate::codec;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Id, Kind, Reply, Request};
use crate::server::wait::lock;
use crate::Address;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::{Arc, Mutex};

/// A reference to an object on a server, counted in one session.
pub(crate) struct Handle {
    pub(crate) id: Id,
    pub(crate) kind: Kind,
    home: Arc<Client>,
    /// This process's own session after a fork (see the module docs).
    forked: Mutex<Option<Arc<Client>>>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("manager", &self.home.address.to_string())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
enum Wire {
    Nested { id: Id, kind: Kind },
    Remote { address: Address, authkey: AuthKey, server_id: u64, id: Id, kind: Kind, hold: u64 },
}

impl Handle {
    /// Wraps a reference that `client`'s session already holds.
    pub(crate) fn new(client: Arc<Client>, id: Id, kind: Kind) -> Arc<Handle> {
        Arc::new(Handle { id, kind, home: client, forked: Mutex::new(None) })
    }

    /// The session to use from this process.
    pub(crate) fn client(&self) -> Result<Arc<Client>> {
        let pid = std::process::id();
        if self.home.pid == pid {
            return Ok(self.home.clone());
        }
        let mut g = lock(&self.forked);
        if let Some(c) = g.as_ref().filter(|c| c.pid == pid) {
            return Ok(c.clone());
        }
        let c = Client::for_process(&self.home.address, &self.home.authkey)?;
        c.call(&Request::Incref(self.id))?;
        *g = Some(c.clone());
        Ok(c)
    }

    pub(crate) fn call(&self, req: &Request) -> Result<Reply> {
        if self.home.pid == std::process::id() {
            self.home.call_here(req)
        } else {
            self.client()?.call(req)
        }
    }

    /// The session this proxy was made in (possibly of another process, after a fork).
    pub(crate) fn home(&self) -> &Client {
        &self.home
    }

    pub(crate) fn server_id(&self) -> u64 {
        self.home.server_id
    }

    pub(crate) fn address(&self) -> &Address {
        &self.home.address
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let pid = std::process::id();
        if self.home.pid == pid {
            self.home.decref(vec![self.id]);
        } else if let Some(c) = lock(&self.forked).take() {
            if c.pid == pid {
                c.decref(vec![self.id]);
            }
        }
    }
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if codec::push_nested(self.server_id(), self.id) {
            return Wire::Nested { id: self.id, kind: self.kind }.serialize(s);
        }
        let hold = self
            .call(&Request::Hold(self.id))
            .and_then(|r| match r {
                Reply::Hold(h) => Ok(h),
                other => Err(unexpected(&other)),
            })
            .map_err(serde::ser::Error::custom)?;
        Wire::Remote {
            address: self.home.address.clone(),
            authkey: self.home.authkey.clone(),
            server_id: self.server_id(),
            id: self.id,
            kind: self.kind,
            hold,
        }
        .serialize(s)
    }
}

pub(crate) fn unexpected(r: &Reply) -> Error {
    Error::new(ErrorKind::Protocol, format!("unexpected reply {r:?}"))
}

fn wrong_kind(want: Kind, got: Kind) -> Error {
    Error::new(ErrorKind::WrongKind, format!("expected a {want:?} proxy, got a {got:?}"))
}

/// Rebuilds a handle of kind `want` from its wire form.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    d: D,
    want: Kind,
) -> std::result::Result<Arc<Handle>, D::Error> {
    use serde::de::Error as _;
    match Wire::deserialize(d)? {
        Wire::Nested { id, kind } => {
            if kind != want {
                return Err(D::Error::custom(wrong_kind(want, kind)));
            }
            let client = codec::take_nested(id).ok_or_else(|| {
                D::Error::custom(Error::new(
                    ErrorKind::Codec,
                    "a nested proxy can only be decoded from a value read from its manager",
                ))
            })?;
            Ok(Handle::new(client, id, kind))
        }
        Wire::Remote { address, authkey, server_id, id, kind, hold } => {
            if kind != want {
                return Err(D::Error::custom(wrong_kind(want, kind)));
            }
            let adopt = || -> Result<Arc<Handle>> {
                let client = match Client::find_by_server(server_id) {
                    Some(c) => c,
                    None => Client::for_process(&address, &authkey)?,
                };
                match client.call(&Request::Adopt { id, hold })? {
                    Reply::Adopted(k) if k == kind => Ok(Handle::new(client, id, kind)),
                    Reply::Adopted(k) => Err(wrong_kind(kind, k)),
                    other => Err(unexpected(&other)),
                }
            };
            adopt().map_err(D::Error::custom)
        }
    }
}

/// A proxy type: made from a handle that its session already counts.
pub(crate) trait FromHandle {
    fn from_handle(h: Arc<Handle>) -> Self;
}

/// The reply of a request that answers nothing.
pub(crate) fn unit(r: Reply) -> Result<()> {
    match r {
        Reply::Unit => Ok(()),
        other => Err(unexpected(&other)),
    }
}

/// The reply of a yes/no question.
pub(crate) fn boolean(r: Reply) -> Result<bool> {
    match r {
        Reply::Bool(b) => Ok(b),
        other => Err(unexpected(&other)),
    }
}

/// The reply of a request that answers a count (a length, an index, a permit count).
pub(crate) fn count(r: Reply) -> Result<usize> {
    match r {
        Reply::Count(n) => Ok(n as usize),
        other => Err(unexpected(&other)),
    }
}

/// Defines a proxy type: a `{ h: Arc<Handle>, _t: PhantomData<..> }` struct with `Clone`,
/// `Debug` (id and manager; not with a leading `custom_debug`), `Serialize`, `Deserialize`, [`FromHandle`] and `id`/`address`; with
/// `Variant(OpType)` also `fn op(&self, OpType)`, the proxy's request to its object
/// (`Request::Variant(id, op)`).
macro_rules! proxy {
    (
        $(#[$doc:meta])*
        pub struct $name:ident $(<$($p:ident),*>)?: $kind:expr $(, $req:ident($op:ty))?;
    ) => {
        crate::handle::proxy! {
            custom_debug
            $(#[$doc])*
            pub struct $name $(<$($p),*>)?: $kind $(, $req($op))?;
        }
        impl $(<$($p),*>)? std::fmt::Debug for $name $(<$($p),*>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("id", &self.h.id)
                    .field("manager", &self.h.address().to_string())
                    .finish()
            }
        }
    };
    (
        custom_debug
        $(#[$doc:meta])*
        pub struct $name:ident $(<$($p:ident),*>)?: $kind:expr $(, $req:ident($op:ty))?;
    ) => {
        $(#[$doc])*
        pub struct $name $(<$($p),*>)? {
            h: std::sync::Arc<crate::handle::Handle>,
            _t: std::marker::PhantomData<fn() -> ($($($p,)*)?)>,
        }

        impl $(<$($p),*>)? Clone for $name $(<$($p),*>)? {
            fn clone(&self) -> Self {
                Self { h: self.h.clone(), _t: std::marker::PhantomData }
            }
        }
        impl $(<$($p),*>)? serde::Serialize for $name $(<$($p),*>)? {
            fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> std::result::Result<Ser::Ok, Ser::Error> {
                self.h.serialize(s)
            }
        }
        impl<'de $(, $($p),*)?> serde::Deserialize<'de> for $name $(<$($p),*>)? {
            fn deserialize<De: serde::Deserializer<'de>>(d: De) -> std::result::Result<Self, De::Error> {
                Ok(Self { h: crate::handle::deserialize(d, $kind)?, _t: std::marker::PhantomData })
            }
        }
        impl $(<$($p),*>)? crate::handle::FromHandle for $name $(<$($p),*>)? {
            fn from_handle(h: std::sync::Arc<crate::handle::Handle>) -> Self {
                Self { h, _t: std::marker::PhantomData }
            }
        }
        impl $(<$($p),*>)? $name $(<$($p),*>)? {
            /// The object's id on its server (stable for the object's life).
            pub fn id(&self) -> u64 {
                self.h.id
            }

            /// The address of the manager holding the object.
            pub fn manager_address(&self) -> &crate::Address {
                self.h.address()
            }

            /// Whether `self` and `other` are proxies of the same object.
            pub fn same_object(&self, other: &Self) -> bool {
                self.h.id == other.h.id && self.h.server_id() == other.h.server_id()
            }
            $(
            fn op(&self, op: $op) -> crate::error::Result<crate::protocol::Reply> {
                self.h.call(&crate::protocol::Request::$req(self.h.id, op))
            }
            )?
        }
    };
}
pub(crate) use proxy;
