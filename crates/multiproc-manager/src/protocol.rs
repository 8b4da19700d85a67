//! The wire protocol between proxies and the server: postcard-encoded messages in
//! length-prefixed frames.
//!
//! After the authkey handshake the client sends a [`Hello`] (magic, protocol version, the
//! session it joins) and the server answers a [`Welcome`]. Then each frame from the client is
//! one [`Request`] and the server answers each with one [`Response`], in order.
//!
//! Values are opaque to the server: a [`Stored`] is the postcard bytes of the proxy's type plus
//! the ids of the managed objects the value holds proxies to (so the server can keep them
//! alive). Equality (list `remove`/`index`, dict keys) compares the bytes.

use crate::error::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change of the messages below. New requests, operations, kinds
/// and replies are added at the end of their enums, and a message never changes meaning, so
/// that clients of an older build keep working (a newer client's new operation is answered
/// by an older server with a `Protocol` error).
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// First bytes of a [`Hello`].
pub(crate) const MAGIC: [u8; 4] = *b"MPMG";

/// Default largest frame, in bytes (requests and responses alike).
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// An object id on the server.
pub(crate) type Id = u64;

/// Sent by the client right after authentication.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub magic: [u8; 4],
    pub version: u32,
    /// `None` opens a new session; `Some(token)` adds this connection to that session.
    pub join: Option<u64>,
    pub pid: u32,
}

/// The server's answer to a [`Hello`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Welcome {
    Ok { version: u32, session: u64, server_id: u64, server_pid: u32 },
    Refused { version: u32, reason: String },
}

/// A value as the server stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// postcard bytes of the value.
    pub bytes: Vec<u8>,
    /// Objects the value holds proxies to, one entry per proxy.
    pub refs: Vec<Id>,
}

/// The kind of a managed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    List,
    Dict,
    Namespace,
    Value,
    Queue,
    Lock,
    RLock,
    Semaphore,
    Condition,
    Event,
    Barrier,
    Service,
    Set,
}

/// How long a blocking operation may wait: `None` forever, `Some(0)` not at all.
pub(crate) type Wait = Option<u64 /* microseconds */>;

/// What to create.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Create {
    List(Vec<Stored>),
    Dict(Vec<(Vec<u8>, Stored)>),
    Namespace,
    Value(Stored),
    Queue {
        maxsize: u64,
    },
    Lock,
    RLock,
    Semaphore {
        value: u64,
        bounded: bool,
    },
    Condition,
    Event,
    Barrier {
        parties: u64,
        timeout: Wait,
    },
    Service {
        name: String,
        init: Vec<u8>,
    },
    /// A set of encoded values (no proxies: they are compared by their bytes).
    Set(Vec<Vec<u8>>),
}

impl Create {
    /// The kind of object this creates.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Create::List(_) => Kind::List,
            Create::Dict(_) => Kind::Dict,
            Create::Namespace => Kind::Namespace,
            Create::Value(_) => Kind::Value,
            Create::Queue { .. } => Kind::Queue,
            Create::Lock => Kind::Lock,
            Create::RLock => Kind::RLock,
            Create::Semaphore { .. } => Kind::Semaphore,
            Create::Condition => Kind::Condition,
            Create::Event => Kind::Event,
            Create::Barrier { .. } => Kind::Barrier,
            Create::Service { .. } => Kind::Service,
            Create::Set(_) => Kind::Set,
        }
    }
}

/// One request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Creates an object; the session holds one reference.
    Create(Create),
    /// One more reference for this session.
    Incref(Id),
    /// Drops references of this session.
    Decref(Vec<Id>),
    /// Keeps the object alive for a proxy in transit; returns a hold token.
    Hold(Id),
    /// Takes a reference for this session, releasing the hold (if it still exists).
    Adopt {
        id: Id,
        hold: u64,
    },
    /// Server facts.
    Info,
    /// The client is closing cleanly (not crashing): plain locks it holds stay held, as in
    /// Python (anyone may release them); only a crash releases and poisons them.
    Goodbye,
    /// Stops the server.
    Shutdown,
    List(Id, ListOp),
    Dict(Id, DictOp),
    Namespace(Id, NsOp),
    Value(Id, ValueOp),
    Queue(Id, QueueOp),
    Lock(Id, LockOp),
    Semaphore(Id, SemOp),
    Condition(Id, CondOp),
    Event(Id, EventOp),
    Barrier(Id, BarrierOp),
    Service(Id, Vec<u8>),
    /// Gets the object registered under `name`, creating it with `create` (and registering
    /// it) if there is none: Python's `BaseManager.register` + `get_*` for processes that
    /// share no parent. The name holds a reference of its own, for the server's life.
    Named {
        name: String,
        create: Create,
    },
    Set(Id, SetOp),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ListOp {
    Append(Stored),
    Extend(Vec<Stored>),
    /// Indices from the start only (clients before negative indices); see `GetAt`.
    Get(u64),
    Set(u64, Stored),
    Len,
    Pop(Option<u64>),
    /// Out of range beyond the length (clients before `InsertAt`).
    Insert(u64, Stored),
    Remove(Vec<u8>),
    Index(Vec<u8>),
    Count(Vec<u8>),
    Clear,
    Snapshot,
    /// `start..end`; an `end` of `u64::MAX` is the length.
    Slice(u64, u64),
    Reverse,
    Truncate(u64),
    /// A copy of the whole list with its version (`Reply::Versioned`): the first half of a
    /// client-side sort.
    VersionedSnapshot,
    /// Reorders the list — the value at `order[i]` moves to `i` — if it is still at
    /// `version` (`Reply::Bool(true)`); `Reply::Bool(false)` if it changed meanwhile.
    Permute {
        version: u64,
        order: Vec<u64>,
    },
    /// Indices are Python's: a negative one counts from the end.
    GetAt(i64),
    SetAt(i64, Stored),
    /// `None` is the last value.
    PopAt(Option<i64>),
    /// Python's `insert`: the index is clamped to `0..=len` (after counting a negative one
    /// from the end), never out of range.
    InsertAt(i64, Stored),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum DictOp {
    Get(Vec<u8>),
    Insert(Vec<u8>, Stored),
    Remove(Vec<u8>),
    ContainsKey(Vec<u8>),
    Keys,
    Values,
    Items,
    Len,
    Update(Vec<(Vec<u8>, Stored)>),
    SetDefault(Vec<u8>, Stored),
    PopItem,
    Clear,
}

/// Set operations; values are encoded bytes, equal when their bytes are.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SetOp {
    /// Whether it was not there yet.
    Add(Vec<u8>),
    /// Whether it was there.
    Discard(Vec<u8>),
    Contains(Vec<u8>),
    Len,
    Clear,
    /// Removes and returns some value (the most recently added): `Reply::Keys` of one.
    Pop,
    /// Every value, oldest first: `Reply::Keys`.
    Snapshot,
    /// Adds every value (`|=`).
    Update(Vec<Vec<u8>>),
    /// Removes every value given (`-=`).
    DifferenceUpdate(Vec<Vec<u8>>),
    /// Keeps only the values given (`&=`).
    IntersectionUpdate(Vec<Vec<u8>>),
    /// Adds the values given that are absent and removes those present (`^=`).
    SymmetricDifferenceUpdate(Vec<Vec<u8>>),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum NsOp {
    Get(String),
    /// A field without a rendering (clients before `SetShown`).
    Set(String, Stored),
    Remove(String),
    Items,
    Names,
    /// Name, value, and the value's `Debug`-like rendering (if it could be made).
    SetShown(String, Stored, Option<String>),
    /// The names (sorted) and renderings of the fields: `Reply::Shown`.
    Shown,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ValueOp {
    Get,
    Set(Stored),
    Swap(Stored),
    CompareAndSwap { current: Vec<u8>, new: Stored },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum QueueOp {
    Put(Stored, Wait),
    Get(Wait),
    Len,
    TaskDone,
    Join(Wait),
}

/// Lock and RLock operations. `owner` names the calling thread of the calling session (an
/// RLock is owned by a thread; a Lock by the session, for poisoning).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LockOp {
    Acquire { owner: u64, wait: Wait },
    Release { owner: u64 },
    Locked,
    ClearPoison,
    IsPoisoned,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SemOp {
    Acquire(Wait),
    Release(u64),
    Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum CondOp {
    Acquire { owner: u64, wait: Wait },
    Release { owner: u64 },
    Wait { owner: u64, wait: Wait },
    Notify { owner: u64, n: u64 },
    Locked,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum EventOp {
    Set,
    Clear,
    IsSet,
    Wait(Wait),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum BarrierOp {
    Wait(Wait),
    Abort,
    Reset,
    Parties,
    NWaiting,
    Broken,
}

/// A successful answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Unit,
    Bool(bool),
    Count(u64),
    Created(Id),
    Adopted(Kind),
    Hold(u64),
    Value(Stored),
    MaybeValue(Option<Stored>),
    Values(Vec<Stored>),
    Keys(Vec<Vec<u8>>),
    Items(Vec<(Vec<u8>, Stored)>),
    Fields(Vec<(String, Stored)>),
    Names(Vec<String>),
    /// A lock acquisition: whether it was acquired, and whether the lock was poisoned.
    Acquired {
        acquired: bool,
        poisoned: bool,
    },
    /// Queue length and maxsize (0 = unbounded).
    QueueLen {
        len: u64,
        maxsize: u64,
    },
    /// Compare-and-swap: `Ok` swapped; `Err` holds the current value.
    Cas(Result<(), Stored>),
    Info(ServerInfo),
    Bytes(Vec<u8>),
    /// A namespace's field names and the renderings of their values.
    Shown(Vec<(String, Option<String>)>),
    /// A list's values and its version (bumped by every change).
    Versioned {
        version: u64,
        values: Vec<Stored>,
    },
}

/// What `Request::Info` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerInfo {
    pub pid: u32,
    pub server_id: u64,
    pub objects: u64,
    pub sessions: u64,
    pub tcp: Option<String>,
}

/// An error raised in the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Fault {
    pub kind: ErrorKind,
    pub message: String,
}

impl Fault {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Fault {
        Fault { kind, message: message.into() }
    }
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Error {
        Error::new(f.kind, f.message)
    }
}

/// One answer.
pub(crate) type Response = Result<Reply, Fault>;

/// Converts a wait to a server-side deadline.
/// A timed wait is at least 1 µs: `Some(0)` is a `try_` call's (it fails as "would
/// block", where a timed one fails as a timeout).
pub(crate) fn wait_from(d: Option<std::time::Duration>) -> Wait {
    d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let r = Request::List(7, ListOp::Append(Stored { bytes: vec![1, 2, 3], refs: vec![] }));
        let b = postcard::to_allocvec(&r).unwrap();
        let back: Request = postcard::from_bytes(&b).unwrap();
        assert!(matches!(back, Request::List(7, ListOp::Append(s)) if s.bytes == [1, 2, 3]));
        let resp: Response = Err(Fault::new(ErrorKind::IndexOutOfRange, "index 9, len 3"));
        let b = postcard::to_allocvec(&resp).unwrap();
        let back: Response = postcard::from_bytes(&b).unwrap();
        assert_eq!(back.unwrap_err().kind, ErrorKind::IndexOutOfRange);
        // Garbage is an error, not a panic.
        assert!(postcard::from_bytes::<Request>(&[250, 1, 2]).is_err());
    }
}
