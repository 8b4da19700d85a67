//! Encoding values for the server and decoding what it sends back, with the bookkeeping of
//! the proxies nested inside them.
//!
//! While a value is encoded for its manager, a thread-local context collects the ids of the
//! proxies (of the same manager) inside it; they become the value's `refs`. While a value read
//! from the server is decoded, the references the server credited to this session for it are
//! handed to the proxies that decode; any left over (the type held no proxy where the bytes
//! had one) are dropped.

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{Id, Stored};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::sync::Arc;

struct EncCtx {
    server_id: u64,
    refs: Vec<Id>,
}

struct DecCtx {
    client: Arc<Client>,
    pending: Vec<Id>,
}

thread_local! {
    static ENC: RefCell<Vec<EncCtx>> = const { RefCell::new(Vec::new()) };
    static DEC: RefCell<Vec<DecCtx>> = const { RefCell::new(Vec::new()) };
}

/// For a proxy being serialised: records it if a value is being encoded for its own manager.
pub(crate) fn push_nested(server_id: u64, id: Id) -> bool {
    ENC.with(|e| match e.borrow_mut().last_mut() {
        Some(ctx) if ctx.server_id == server_id => {
            ctx.refs.push(id);
            true
        }
        _ => false,
    })
}

/// For a proxy being deserialised from a value: takes the reference credited for it.
pub(crate) fn take_nested(id: Id) -> Option<Arc<Client>> {
    DEC.with(|d| {
        let mut d = d.borrow_mut();
        let ctx = d.last_mut()?;
        let i = ctx.pending.iter().position(|&p| p == id)?;
        ctx.pending.swap_remove(i);
        Some(ctx.client.clone())
    })
}

/// Encodes `v` for the manager `client` talks to.
pub(crate) fn encode<T: Serialize + ?Sized>(client: &Client, v: &T) -> Result<Stored> {
    ENC.with(|e| e.borrow_mut().push(EncCtx { server_id: client.server_id, refs: Vec::new() }));
    let r = postcard::to_allocvec(v);
    let ctx = ENC.with(|e| e.borrow_mut().pop()).expect("pushed above");
    let bytes = r.map_err(Error::codec)?;
    if bytes.len() > client.max_frame() {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("value of {} bytes over the frame limit {}", bytes.len(), client.max_frame()),
        ));
    }
    Ok(Stored { bytes, refs: ctx.refs })
}

/// The longest rendering of a value kept for `Debug` (a namespace's fields), in bytes.
const SHOWN_LIMIT: usize = 256;

/// Encodes `v` as [`encode`] does, with its `Debug`-like rendering (see
/// [`multiproc_arena::describe`]; `None` when its `Serialize` refuses).
/// Proxies inside are rendered as their object ids, without taking holds on them.
pub(crate) fn encode_shown<T: Serialize + ?Sized>(
    client: &Client,
    v: &T,
) -> Result<(Stored, Option<String>)> {
    let stored = encode(client, v)?;
    // Proxies met while rendering record themselves as nested (no hold), and are forgotten.
    ENC.with(|e| e.borrow_mut().push(EncCtx { server_id: client.server_id, refs: Vec::new() }));
    let shown = multiproc_arena::describe::render(v, SHOWN_LIMIT).ok();
    ENC.with(|e| e.borrow_mut().pop());
    Ok((stored, shown))
}

/// Encodes a dict key (or a value to compare): the bytes only. A key may not hold proxies
/// (their encoding would not identify them across sessions).
pub(crate) fn encode_key<T: Serialize + ?Sized>(client: &Client, v: &T) -> Result<Vec<u8>> {
    let s = encode(client, v)?;
    if !s.refs.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a dict key or a set value cannot hold a proxy",
        ));
    }
    Ok(s.bytes)
}

/// Encodes a value only to compare it with stored ones (proxies inside compare by object).
pub(crate) fn encode_probe<T: Serialize + ?Sized>(client: &Client, v: &T) -> Result<Vec<u8>> {
    encode(client, v).map(|s| s.bytes)
}

/// Decodes a value read from the server; `s.refs` are references already credited to
/// `client`'s session.
pub(crate) fn decode<T: DeserializeOwned>(client: &Arc<Client>, s: Stored) -> Result<T> {
    decode_parts(client, &s.bytes, s.refs).map_err(decode_error)
}

/// [`decode`] of a value's bytes and references, leaving the bytes to the caller (a queue
/// proxy hands them back when they do not decode).
pub(crate) fn decode_parts<T: DeserializeOwned>(
    client: &Arc<Client>,
    bytes: &[u8],
    refs: Vec<Id>,
) -> std::result::Result<T, postcard::Error> {
    if refs.is_empty() {
        return postcard::from_bytes(bytes);
    }
    DEC.with(|d| d.borrow_mut().push(DecCtx { client: client.clone(), pending: refs }));
    let r = postcard::from_bytes(bytes);
    let ctx = DEC.with(|d| d.borrow_mut().pop()).expect("pushed above");
    client.decref(ctx.pending);
    r
}

/// Decodes a dict key.
pub(crate) fn decode_key<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(decode_error)
}

fn decode_error(e: postcard::Error) -> Error {
    Error::new(
        ErrorKind::Codec,
        format!("stored value does not decode as the proxy's type ({e}); was it written with another type?"),
    )
}
