//! The manager server: the object table, sessions and their references, request dispatch,
//! and the connection threads.
//!
//! # References and lifetime
//!
//! Every object has a total reference count: references held by *sessions* (one session per
//! client process; a session may use several connections), references held by *values* stored
//! in containers (a dict holding a list proxy keeps that list alive), and *holds* (a proxy in
//! transit to another process). When a session's last connection closes — cleanly or because
//! the process died — its references and holds are dropped and the locks it held are released
//! and poisoned. An object whose count reaches zero is removed and emptied, which drops the
//! references its values held, and so on.
//!
//! Lock order: an object's own mutex may be held while taking the table mutex (to credit a
//! session with the references of a value it reads); the table mutex is never held while
//! taking an object's mutex.

/// The state of a kind of object in an [`Object`](objects::Object), as a [`Pick`]:
/// `pick!(Object::List)` is `Some(&list)` for a list and `None` for any other kind.
macro_rules! pick {
    ($variant:path) => {
        (|o| match o {
            $variant(x) => Some(x),
            _ => None,
        }) as $crate::server::Pick<_>
    };
}

mod conn;
mod containers;
mod dispatch;
pub(crate) mod objects;
mod session;
pub(crate) mod sync;
#[cfg(test)]
mod tests;
pub(crate) mod wait;

use self::objects::{Entry, Object};
use self::session::credit;
use self::wait::Probe;
use crate::authkey::AuthKey;
use crate::error::ErrorKind;
use crate::protocol::{Fault, Id, Kind};
use crate::service::Registry;
use crate::transport::Connection;
use crate::Address;
use multiproc_arena::sync::atomic::AtomicU32;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server is set up.
pub(crate) struct ServerConfig {
    pub authkey: AuthKey,
    pub max_frame: usize,
    pub handshake_timeout: Duration,
    pub registry: Registry,
    /// How long a connection's thread polls for the next request before it sleeps, while
    /// requests come that fast (see [`crate::spin`]).
    pub spin: Option<Duration>,
}

struct Slot {
    entry: Arc<Entry>,
    refs: usize,
}

#[derive(Default)]
struct Session {
    conns: usize,
    refs: HashMap<Id, usize>,
    holds: HashSet<u64>,
    locks: HashSet<Id>,
    /// The client said goodbye before closing (see `Request::Goodbye`).
    clean: bool,
}

#[derive(Default)]
struct State {
    objects: HashMap<Id, Slot>,
    next_id: Id,
    sessions: HashMap<u64, Session>,
    /// hold token -> (session, object)
    holds: HashMap<u64, (u64, Id)>,
}

/// Everything the connection threads share.
pub(crate) struct Shared {
    cfg: ServerConfig,
    state: Mutex<State>,
    server_id: u64,
    /// 0 while serving, 1 once stopped (a futex word: [`Shared::stop`] wakes the waiters of
    /// [`Shared::wait_stop_unless`]).
    shutdown: AtomicU32,
    conns: Mutex<HashMap<u64, Arc<Connection>>>,
    next_conn: AtomicU64,
    /// Connection threads awake and polling (see [`crate::spin::Gate`]).
    pollers: crate::spin::Gate,
    /// Connection threads running (a futex word: the last one out wakes
    /// [`Shared::wait_idle`]).
    active: AtomicU32,
    /// The public TCP address, if the server listens on one.
    tcp: Mutex<Option<Address>>,
    /// Named objects (`Request::Named`): name -> object. Locked before `state`, around a
    /// whole get-or-create, so that racing clients get one object.
    names: Mutex<HashMap<String, Id>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("server_id", &self.server_id).finish_non_exhaustive()
    }
}

/// Which kind of object a request needs: its state, or `None` for another kind.
pub(crate) type Pick<T> = fn(&Object) -> Option<&T>;

/// The context of one request: its session and a way to see whether its client left.
pub(crate) struct Cx<'a> {
    pub session: u64,
    pub probe: &'a mut dyn Probe,
}

fn fault(kind: ErrorKind, msg: impl Into<String>) -> Fault {
    Fault::new(kind, msg)
}

fn index_fault(i: i64, len: usize) -> Fault {
    fault(ErrorKind::IndexOutOfRange, format!("index {i} out of range for a list of length {len}"))
}

/// Python's list index: a negative one counts from the end; `None` if out of range.
fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let j = if i < 0 { i.checked_add(len)? } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

/// Python's `insert` position: clamped to `0..=len` (a negative index counts from the end).
fn insert_position(i: i64, len: usize) -> usize {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let j = if i < 0 { i.saturating_add(len).max(0) } else { i.min(len) };
    j as usize
}

fn kind_fault(id: Id, kind: Kind) -> Fault {
    fault(ErrorKind::WrongKind, format!("object {id} is a {kind:?}"))
}

impl Shared {
    pub(crate) fn new(cfg: ServerConfig) -> Arc<Shared> {
        Arc::new(Shared {
            cfg,
            state: Mutex::default(),
            server_id: multiproc_arena::random_u64(),
            shutdown: AtomicU32::new(0),
            conns: Mutex::default(),
            next_conn: AtomicU64::new(0),
            pollers: crate::spin::Gate::default(),
            active: AtomicU32::new(0),
            tcp: Mutex::default(),
            names: Mutex::default(),
        })
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire) != 0
    }
}
