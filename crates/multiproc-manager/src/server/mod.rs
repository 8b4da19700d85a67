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

pub(crate) mod objects;
pub(crate) mod sync;
pub(crate) mod wait;

use self::objects::{gone, Entry, Object, OrderedMap, QueueFail, QueueObj};
use self::sync::{BarrierObj, CondObj, EventObj, LockObj, SemObj};
#[cfg(test)]
use self::wait::NeverGone;
use self::wait::{lock, Probe};
use crate::authkey::AuthKey;
use crate::error::{ErrorKind, Result};
use crate::protocol::*;
use crate::service::Registry;
use crate::transport::{self, pipe_error, Connection, Listener};
use crate::Address;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 4096;

/// Longest an unauthenticated connection may take to prove its key.
const PRE_AUTH_LIMIT: Duration = Duration::from_secs(2);
/// How often the accept loops look at the shutdown flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// How the server is set up.
pub(crate) struct ServerConfig {
    pub authkey: AuthKey,
    pub max_frame: usize,
    pub handshake_timeout: Duration,
    pub registry: Registry,
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
    shutdown: AtomicBool,
    conns: Mutex<HashMap<u64, Arc<Connection>>>,
    next_conn: AtomicU64,
    active: AtomicUsize,
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

/// The context of one request: its session and a way to see whether its client left.
pub(crate) struct Cx<'a> {
    pub session: u64,
    pub probe: &'a mut dyn Probe,
}

fn fault(kind: ErrorKind, msg: impl Into<String>) -> Fault {
    Fault::new(kind, msg)
}

fn index_fault(i: u64, len: usize) -> Fault {
    fault(ErrorKind::IndexOutOfRange, format!("index {i} out of range for a list of length {len}"))
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
            shutdown: AtomicBool::new(false),
            conns: Mutex::default(),
            next_conn: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            tcp: Mutex::default(),
            names: Mutex::default(),
        })
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    // ---- sessions and references -------------------------------------------------------

    /// Opens a session (or joins one): `None` if the session to join is unknown.
    pub(crate) fn session_open(&self, join: Option<u64>) -> Option<u64> {
        let mut st = lock(&self.state);
        match join {
            Some(tok) => {
                let s = st.sessions.get_mut(&tok)?;
                s.conns += 1;
                Some(tok)
            }
            None => loop {
                let tok = multiproc_arena::random_u64();
                if tok != 0 && !st.sessions.contains_key(&tok) {
                    st.sessions.insert(tok, Session { conns: 1, ..Default::default() });
                    break Some(tok);
                }
            },
        }
    }

    /// A connection of `session` closed; the last one ends the session.
    pub(crate) fn session_conn_closed(&self, session: u64) {
        let ended = {
            let mut st = lock(&self.state);
            match st.sessions.get_mut(&session) {
                Some(s) if s.conns > 1 => {
                    s.conns -= 1;
                    None
                }
                Some(_) => st.sessions.remove(&session),
                None => None,
            }
        };
        let Some(sess) = ended else { return };
        // Locks first (so waiters learn of the poison), then references.
        for id in &sess.locks {
            if let Ok(e) = self.lookup(*id) {
                e.release_dead(session, sess.clean);
            }
        }
        let mut drop_ids = Vec::new();
        {
            let mut st = lock(&self.state);
            for tok in &sess.holds {
                if let Some((_, id)) = st.holds.remove(tok) {
                    drop_ids.push(id);
                }
            }
        }
        for (id, n) in sess.refs {
            drop_ids.extend(std::iter::repeat(id).take(n));
        }
        self.release(drop_ids);
    }

    fn lookup(&self, id: Id) -> Result<Arc<Entry>, Fault> {
        lock(&self.state).objects.get(&id).map(|s| s.entry.clone()).ok_or_else(|| gone(id))
    }

    fn insert(&self, session: u64, kind: Kind, obj: Object) -> Id {
        let mut st = lock(&self.state);
        st.next_id += 1;
        let id = st.next_id;
        st.objects.insert(id, Slot { entry: Arc::new(Entry::new(kind, obj)), refs: 1 });
        credit(&mut st, session, id);
        id
    }

    /// Counts references for values arriving in a request (the container will own them).
    fn incoming(&self, refs: &[Id]) -> Result<(), Fault> {
        if refs.is_empty() {
            return Ok(());
        }
        let mut st = lock(&self.state);
        if let Some(id) = refs.iter().find(|id| !st.objects.contains_key(id)) {
            return Err(gone(*id));
        }
        for id in refs {
            st.objects.get_mut(id).expect("checked").refs += 1;
        }
        Ok(())
    }

    /// Drops references; frees (and empties) objects whose count reaches zero.
    fn release(&self, mut ids: Vec<Id>) {
        while !ids.is_empty() {
            let mut freed = Vec::new();
            {
                let mut st = lock(&self.state);
                for id in ids.drain(..) {
                    if let Some(slot) = st.objects.get_mut(&id) {
                        slot.refs -= 1;
                        if slot.refs == 0 {
                            freed.push(st.objects.remove(&id).expect("present").entry);
                        }
                    }
                }
            }
            for e in freed {
                ids.extend(e.drain());
            }
        }
    }

    /// Moves references that a container gave up to `session` (the value goes to its client).
    fn give(&self, session: u64, refs: &[Id]) {
        if refs.is_empty() {
            return;
        }
        let mut st = lock(&self.state);
        if st.sessions.contains_key(&session) {
            for id in refs {
                credit(&mut st, session, *id);
            }
        } else {
            drop(st);
            self.release(refs.to_vec());
        }
    }

    /// Gives `session` new references for a value it reads (the container keeps its own).
    /// Called with the container's lock held, so the objects cannot be freed meanwhile.
    fn copy_out(&self, session: u64, refs: &[Id]) {
        if refs.is_empty() {
            return;
        }
        let mut st = lock(&self.state);
        if !st.sessions.contains_key(&session) {
            return;
        }
        for id in refs {
            if let Some(slot) = st.objects.get_mut(id) {
                slot.refs += 1;
                credit(&mut st, session, *id);
            }
        }
    }

    fn copy_out_all<'a>(&self, session: u64, vals: impl IntoIterator<Item = &'a Stored>) {
        let refs: Vec<Id> = vals.into_iter().flat_map(|s| s.refs.iter().copied()).collect();
        self.copy_out(session, &refs);
    }

    fn note_lock(&self, session: u64, id: Id) {
        if let Some(s) = lock(&self.state).sessions.get_mut(&session) {
            s.locks.insert(id);
        }
    }

    #[cfg(test)]
    pub(crate) fn num_objects(&self) -> usize {
        lock(&self.state).objects.len()
    }

    // ---- dispatch ---------------------------------------------------------------------

    /// Answers one request.
    pub(crate) fn handle(&self, cx: &mut Cx<'_>, req: Request) -> Response {
        match req {
            Request::Create(c) => self.create(cx.session, c),
            Request::Named { name, create } => self.named(cx.session, name, create),
            Request::Incref(id) => {
                let mut st = lock(&self.state);
                let slot = st.objects.get_mut(&id).ok_or_else(|| gone(id))?;
                slot.refs += 1;
                let kind = slot.entry.kind;
                credit(&mut st, cx.session, id);
                Ok(Reply::Adopted(kind))
            }
            Request::Decref(ids) => {
                let mut drop_ids = Vec::new();
                {
                    let mut st = lock(&self.state);
                    if let Some(s) = st.sessions.get_mut(&cx.session) {
                        for id in ids {
                            if let Some(n) = s.refs.get_mut(&id) {
                                *n -= 1;
                                if *n == 0 {
                                    s.refs.remove(&id);
                                }
                                drop_ids.push(id);
                            }
                        }
                    }
                }
                self.release(drop_ids);
                Ok(Reply::Unit)
            }
            Request::Hold(id) => {
                let mut st = lock(&self.state);
                st.objects.get_mut(&id).ok_or_else(|| gone(id))?.refs += 1;
                let tok = loop {
                    let t = multiproc_arena::random_u64();
                    if t != 0 && !st.holds.contains_key(&t) {
                        break t;
                    }
                };
                st.holds.insert(tok, (cx.session, id));
                if let Some(s) = st.sessions.get_mut(&cx.session) {
                    s.holds.insert(tok);
                }
                Ok(Reply::Hold(tok))
            }
            Request::Adopt { id, hold } => {
                let mut st = lock(&self.state);
                let kind = st.objects.get(&id).ok_or_else(|| gone(id))?.entry.kind;
                match st.holds.get(&hold) {
                    Some(&(owner, hid)) if hid == id => {
                        st.holds.remove(&hold);
                        if let Some(s) = st.sessions.get_mut(&owner) {
                            s.holds.remove(&hold);
                        }
                    }
                    _ => st.objects.get_mut(&id).expect("checked").refs += 1,
                }
                credit(&mut st, cx.session, id);
                Ok(Reply::Adopted(kind))
            }
            Request::Info => {
                let st = lock(&self.state);
                Ok(Reply::Info(ServerInfo {
                    pid: std::process::id(),
                    server_id: self.server_id,
                    objects: st.objects.len() as u64,
                    sessions: st.sessions.len() as u64,
                    tcp: lock(&self.tcp).as_ref().map(|a| a.to_string()),
                }))
            }
            Request::Shutdown => Ok(Reply::Unit),
            Request::Goodbye => {
                if let Some(s) = lock(&self.state).sessions.get_mut(&cx.session) {
                    s.clean = true;
                }
                Ok(Reply::Unit)
            }
            Request::List(id, op) => self.list(cx, id, op),
            Request::Dict(id, op) => self.dict(cx, id, op),
            Request::Namespace(id, op) => self.namespace(cx, id, op),
            Request::Value(id, op) => self.value(cx, id, op),
            Request::Queue(id, op) => self.queue(cx, id, op),
            Request::Lock(id, op) => {
                let e = self.lookup(id)?;
                let Object::Lock(l) = &e.obj else { return Err(kind_fault(id, e.kind)) };
                match op {
                    LockOp::Acquire { owner, wait } => {
                        let r = l.acquire((cx.session, owner), wait, cx.probe)?;
                        if matches!(r, Reply::Acquired { acquired: true, .. }) {
                            self.note_lock(cx.session, id);
                        }
                        Ok(r)
                    }
                    LockOp::Release { owner } => l.release((cx.session, owner)),
                    LockOp::Locked => l.locked(),
                    LockOp::ClearPoison => l.clear_poison(),
                    LockOp::IsPoisoned => l.is_poisoned(),
                }
            }
            Request::Semaphore(id, op) => {
                let e = self.lookup(id)?;
                let Object::Semaphore(s) = &e.obj else { return Err(kind_fault(id, e.kind)) };
                match op {
                    SemOp::Acquire(wait) => s.acquire(wait, cx.probe),
                    SemOp::Release(n) => s.release(n),
                    SemOp::Value => s.value(),
                }
            }
            Request::Condition(id, op) => {
                let e = self.lookup(id)?;
                let Object::Condition(c) = &e.obj else { return Err(kind_fault(id, e.kind)) };
                match op {
                    CondOp::Acquire { owner, wait } => {
                        let r = c.acquire((cx.session, owner), wait, cx.probe)?;
                        self.note_lock(cx.session, id);
                        Ok(r)
                    }
                    CondOp::Release { owner } => c.release((cx.session, owner)),
                    CondOp::Wait { owner, wait } => c.wait((cx.session, owner), wait, cx.probe),
                    CondOp::Notify { owner, n } => c.notify((cx.session, owner), n),
                    CondOp::Locked => c.locked(),
                }
            }
            Request::Event(id, op) => {
                let e = self.lookup(id)?;
                let Object::Event(ev) = &e.obj else { return Err(kind_fault(id, e.kind)) };
                match op {
                    EventOp::Set => ev.set(true),
                    EventOp::Clear => ev.set(false),
                    EventOp::IsSet => ev.is_set(),
                    EventOp::Wait(w) => ev.wait(w, cx.probe),
                }
            }
            Request::Barrier(id, op) => {
                let e = self.lookup(id)?;
                let Object::Barrier(b) = &e.obj else { return Err(kind_fault(id, e.kind)) };
                match op {
                    BarrierOp::Wait(w) => b.wait(w, cx.probe),
                    BarrierOp::Abort => b.abort(),
                    BarrierOp::Reset => b.reset(),
                    BarrierOp::Parties => b.parties(),
                    BarrierOp::NWaiting => b.n_waiting(),
                    BarrierOp::Broken => b.broken(),
                }
            }
            Request::Service(id, req) => {
                let e = self.lookup(id)?;
                let Object::Service(m) = &e.obj else { return Err(kind_fault(id, e.kind)) };
                let mut g = lock(m);
                match g.as_mut() {
                    Some(svc) => svc.call(&req).map(Reply::Bytes),
                    None => Err(gone(id)),
                }
            }
        }
    }

    /// Gets (or creates and registers) the object named `name`, for `session`.
    fn named(&self, session: u64, name: String, c: Create) -> Response {
        let want = c.kind();
        let mut names = lock(&self.names);
        if let Some(&id) = names.get(&name) {
            let mut st = lock(&self.state);
            let slot = st.objects.get_mut(&id).ok_or_else(|| gone(id))?;
            if slot.entry.kind != want {
                let have = slot.entry.kind;
                return Err(fault(
                    ErrorKind::WrongKind,
                    format!("{name:?} is a {have:?}, not a {want:?}"),
                ));
            }
            slot.refs += 1;
            credit(&mut st, session, id);
            return Ok(Reply::Created(id));
        }
        let Reply::Created(id) = self.create(session, c)? else {
            return Err(fault(ErrorKind::Protocol, "create answered something else"));
        };
        // The name's own reference, for the server's life.
        if let Some(slot) = lock(&self.state).objects.get_mut(&id) {
            slot.refs += 1;
        }
        names.insert(name, id);
        Ok(Reply::Created(id))
    }

    fn create(&self, session: u64, c: Create) -> Response {
        let (kind, obj) = match c {
            Create::List(items) => {
                let refs: Vec<Id> = items.iter().flat_map(|s| s.refs.iter().copied()).collect();
                self.incoming(&refs)?;
                (Kind::List, Object::List(Mutex::new(items)))
            }
            Create::Dict(items) => {
                let refs: Vec<Id> =
                    items.iter().flat_map(|(_, s)| s.refs.iter().copied()).collect();
                self.incoming(&refs)?;
                let mut m = OrderedMap::default();
                let mut replaced = Vec::new();
                for (k, v) in items {
                    if let Some(old) = m.insert(k, v) {
                        replaced.extend(old.refs);
                    }
                }
                self.release(replaced);
                (Kind::Dict, Object::Dict(Mutex::new(m)))
            }
            Create::Namespace => (Kind::Namespace, Object::Namespace(Mutex::new(BTreeMap::new()))),
            Create::Value(v) => {
                self.incoming(&v.refs)?;
                (Kind::Value, Object::Value(Mutex::new(v)))
            }
            Create::Queue { maxsize } => (Kind::Queue, Object::Queue(QueueObj::new(maxsize))),
            Create::Lock => (Kind::Lock, Object::Lock(LockObj::new(false))),
            Create::RLock => (Kind::RLock, Object::Lock(LockObj::new(true))),
            Create::Semaphore { value, bounded } => {
                (Kind::Semaphore, Object::Semaphore(SemObj::new(value, bounded)))
            }
            Create::Condition => (Kind::Condition, Object::Condition(CondObj::default())),
            Create::Event => (Kind::Event, Object::Event(EventObj::default())),
            Create::Barrier { parties, timeout } => {
                if parties == 0 {
                    return Err(fault(
                        ErrorKind::InvalidInput,
                        "a barrier needs at least one party",
                    ));
                }
                (Kind::Barrier, Object::Barrier(BarrierObj::new(parties, timeout)))
            }
            Create::Service { name, init } => {
                let svc = self.cfg.registry.create(&name, &init)?;
                (Kind::Service, Object::Service(Mutex::new(Some(svc))))
            }
        };
        Ok(Reply::Created(self.insert(session, kind, obj)))
    }

    fn list(&self, cx: &mut Cx<'_>, id: Id, op: ListOp) -> Response {
        let e = self.lookup(id)?;
        let Object::List(m) = &e.obj else { return Err(kind_fault(id, e.kind)) };
        let s = cx.session;
        // Values coming in: count their references first; give them back on failure.
        let incoming: Vec<Id> = match &op {
            ListOp::Append(v) | ListOp::Set(_, v) | ListOp::Insert(_, v) => v.refs.clone(),
            ListOp::Extend(vs) => vs.iter().flat_map(|v| v.refs.iter().copied()).collect(),
            _ => Vec::new(),
        };
        self.incoming(&incoming)?;
        let mut g = lock(m);
        if e.is_dead() {
            drop(g);
            self.release(incoming);
            return Err(gone(id));
        }
        let mut released = Vec::new();
        let r = match op {
            ListOp::Append(v) => {
                g.push(v);
                Ok(Reply::Unit)
            }
            ListOp::Extend(vs) => {
                g.extend(vs);
                Ok(Reply::Unit)
            }
            ListOp::Get(i) => match g.get(i as usize) {
                Some(v) => {
                    self.copy_out(s, &v.refs);
                    Ok(Reply::Value(v.clone()))
                }
                None => Err(index_fault(i, g.len())),
            },
            ListOp::Set(i, v) => match g.get_mut(i as usize) {
                Some(slot) => {
                    released = std::mem::replace(slot, v).refs;
                    Ok(Reply::Unit)
                }
                None => {
                    released = v.refs;
                    Err(index_fault(i, g.len()))
                }
            },
            ListOp::Len => Ok(Reply::Count(g.len() as u64)),
            ListOp::Pop(at) => {
                let len = g.len();
                let i = at.unwrap_or(len.saturating_sub(1) as u64);
                if (i as usize) < len {
                    let v = g.remove(i as usize);
                    drop(g);
                    self.give(s, &v.refs);
                    return Ok(Reply::Value(v));
                }
                if len == 0 {
                    Err(fault(ErrorKind::IndexOutOfRange, "pop from an empty list"))
                } else {
                    Err(index_fault(i, len))
                }
            }
            ListOp::Insert(i, v) => {
                if i as usize <= g.len() {
                    g.insert(i as usize, v);
                    Ok(Reply::Unit)
                } else {
                    released = v.refs;
                    Err(fault(
                        ErrorKind::IndexOutOfRange,
                        format!("insertion index {i} beyond the length {}", g.len()),
                    ))
                }
            }
            ListOp::Remove(b) => match g.iter().position(|v| v.bytes == b) {
                Some(i) => {
                    released = g.remove(i).refs;
                    Ok(Reply::Unit)
                }
                None => Err(fault(ErrorKind::ValueNotFound, "list.remove(x): x not in list")),
            },
            ListOp::Index(b) => match g.iter().position(|v| v.bytes == b) {
                Some(i) => Ok(Reply::Count(i as u64)),
                None => Err(fault(ErrorKind::ValueNotFound, "value is not in the list")),
            },
            ListOp::Count(b) => Ok(Reply::Count(g.iter().filter(|v| v.bytes == b).count() as u64)),
            ListOp::Clear => {
                released = std::mem::take(&mut *g).into_iter().flat_map(|v| v.refs).collect();
                Ok(Reply::Unit)
            }
            ListOp::Snapshot => {
                self.copy_out_all(s, g.iter());
                Ok(Reply::Values(g.clone()))
            }
            ListOp::Slice(a, b) => {
                let len = g.len() as u64;
                let b = if b == u64::MAX { len } else { b };
                if a > b || b > len {
                    Err(fault(
                        ErrorKind::IndexOutOfRange,
                        format!("range {a}..{b} out of range for a list of length {len}"),
                    ))
                } else {
                    let part = &g[a as usize..b as usize];
                    self.copy_out_all(s, part.iter());
                    Ok(Reply::Values(part.to_vec()))
                }
            }
            ListOp::Reverse => {
                g.reverse();
                Ok(Reply::Unit)
            }
            ListOp::Truncate(n) => {
                if (n as usize) < g.len() {
                    released = g.drain(n as usize..).flat_map(|v| v.refs).collect();
                }
                Ok(Reply::Unit)
            }
        };
        drop(g);
        self.release(released);
        r
    }

    fn dict(&self, cx: &mut Cx<'_>, id: Id, op: DictOp) -> Response {
        let e = self.lookup(id)?;
        let Object::Dict(m) = &e.obj else { return Err(kind_fault(id, e.kind)) };
        let s = cx.session;
        let incoming: Vec<Id> = match &op {
            DictOp::Insert(_, v) | DictOp::SetDefault(_, v) => v.refs.clone(),
            DictOp::Update(kvs) => kvs.iter().flat_map(|(_, v)| v.refs.iter().copied()).collect(),
            _ => Vec::new(),
        };
        self.incoming(&incoming)?;
        let mut g = lock(m);
        if e.is_dead() {
            drop(g);
            self.release(incoming);
            return Err(gone(id));
        }
        let mut released = Vec::new();
        let mut given = Vec::new();
        let r = match op {
            DictOp::Get(k) => {
                let v = g.get(&k).cloned();
                if let Some(v) = &v {
                    self.copy_out(s, &v.refs);
                }
                Ok(Reply::MaybeValue(v))
            }
            DictOp::Insert(k, v) => {
                let old = g.insert(k, v);
                if let Some(o) = &old {
                    given.clone_from(&o.refs);
                }
                Ok(Reply::MaybeValue(old))
            }
            DictOp::Remove(k) => {
                let old = g.remove(&k);
                if let Some(o) = &old {
                    given.clone_from(&o.refs);
                }
                Ok(Reply::MaybeValue(old))
            }
            DictOp::ContainsKey(k) => Ok(Reply::Bool(g.get(&k).is_some())),
            DictOp::Keys => Ok(Reply::Keys(g.iter().map(|(k, _)| k.clone()).collect())),
            DictOp::Values => {
                self.copy_out_all(s, g.iter().map(|(_, v)| v));
                Ok(Reply::Values(g.iter().map(|(_, v)| v.clone()).collect()))
            }
            DictOp::Items => {
                self.copy_out_all(s, g.iter().map(|(_, v)| v));
                Ok(Reply::Items(g.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            }
            DictOp::Len => Ok(Reply::Count(g.len() as u64)),
            DictOp::Update(kvs) => {
                for (k, v) in kvs {
                    if let Some(old) = g.insert(k, v) {
                        released.extend(old.refs);
                    }
                }
                Ok(Reply::Unit)
            }
            DictOp::SetDefault(k, v) => {
                if g.get(&k).is_some() {
                    released = v.refs;
                } else {
                    g.insert(k.clone(), v);
                }
                let cur = g.get(&k).expect("present").clone();
                self.copy_out(s, &cur.refs);
                Ok(Reply::Value(cur))
            }
            DictOp::PopItem => match g.pop_last() {
                Some((k, v)) => {
                    given.clone_from(&v.refs);
                    Ok(Reply::Items(vec![(k, v)]))
                }
                None => Err(fault(ErrorKind::KeyNotFound, "popitem(): dictionary is empty")),
            },
            DictOp::Clear => {
                released = g.take_all().into_iter().flat_map(|(_, v)| v.refs).collect();
                Ok(Reply::Unit)
            }
        };
        drop(g);
        self.give(s, &given);
        self.release(released);
        r
    }

    fn namespace(&self, cx: &mut Cx<'_>, id: Id, op: NsOp) -> Response {
        let e = self.lookup(id)?;
        let Object::Namespace(m) = &e.obj else { return Err(kind_fault(id, e.kind)) };
        let incoming = match &op {
            NsOp::Set(_, v) => v.refs.clone(),
            _ => Vec::new(),
        };
        self.incoming(&incoming)?;
        let mut g = lock(m);
        if e.is_dead() {
            drop(g);
            self.release(incoming);
            return Err(gone(id));
        }
        let mut released = Vec::new();
        let r = match op {
            NsOp::Get(name) => {
                let v = g.get(&name).cloned();
                if let Some(v) = &v {
                    self.copy_out(cx.session, &v.refs);
                }
                Ok(Reply::MaybeValue(v))
            }
            NsOp::Set(name, v) => {
                if let Some(old) = g.insert(name, v) {
                    released = old.refs;
                }
                Ok(Reply::Unit)
            }
            NsOp::Remove(name) => {
                let old = g.remove(&name);
                let had = old.is_some();
                if let Some(o) = old {
                    released = o.refs;
                }
                Ok(Reply::Bool(had))
            }
            NsOp::Names => Ok(Reply::Names(g.keys().cloned().collect())),
            NsOp::Items => {
                self.copy_out_all(cx.session, g.values());
                Ok(Reply::Fields(g.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            }
        };
        drop(g);
        self.release(released);
        r
    }

    fn value(&self, cx: &mut Cx<'_>, id: Id, op: ValueOp) -> Response {
        let e = self.lookup(id)?;
        let Object::Value(m) = &e.obj else { return Err(kind_fault(id, e.kind)) };
        let incoming = match &op {
            ValueOp::Set(v) | ValueOp::Swap(v) | ValueOp::CompareAndSwap { new: v, .. } => {
                v.refs.clone()
            }
            ValueOp::Get => Vec::new(),
        };
        self.incoming(&incoming)?;
        let mut g = lock(m);
        if e.is_dead() {
            drop(g);
            self.release(incoming);
            return Err(gone(id));
        }
        let mut released = Vec::new();
        let mut given = Vec::new();
        let r = match op {
            ValueOp::Get => {
                self.copy_out(cx.session, &g.refs);
                Ok(Reply::Value(g.clone()))
            }
            ValueOp::Set(v) => {
                released = std::mem::replace(&mut *g, v).refs;
                Ok(Reply::Unit)
            }
            ValueOp::Swap(v) => {
                let old = std::mem::replace(&mut *g, v);
                given.clone_from(&old.refs);
                Ok(Reply::Value(old))
            }
            ValueOp::CompareAndSwap { current, new } => {
                if g.bytes == current {
                    released = std::mem::replace(&mut *g, new).refs;
                    Ok(Reply::Cas(Ok(())))
                } else {
                    released = new.refs;
                    self.copy_out(cx.session, &g.refs);
                    Ok(Reply::Cas(Err(g.clone())))
                }
            }
        };
        drop(g);
        self.give(cx.session, &given);
        self.release(released);
        r
    }

    fn queue(&self, cx: &mut Cx<'_>, id: Id, op: QueueOp) -> Response {
        let e = self.lookup(id)?;
        let Object::Queue(q) = &e.obj else { return Err(kind_fault(id, e.kind)) };
        match op {
            QueueOp::Put(v, wait) => {
                self.incoming(&v.refs)?;
                if e.is_dead() {
                    self.release(v.refs);
                    return Err(gone(id));
                }
                match q.put(v, wait, cx.probe) {
                    Ok(()) => {
                        // Freed meanwhile? Then the value's references must not leak.
                        if e.is_dead() {
                            let refs = e.drain();
                            self.release(refs);
                        }
                        Ok(Reply::Unit)
                    }
                    Err((v, why)) => {
                        self.release(v.refs);
                        Err(match why {
                            QueueFail::Timeout => fault(ErrorKind::Full, "queue is full"),
                            QueueFail::PeerGone => fault(ErrorKind::Disconnected, "client gone"),
                        })
                    }
                }
            }
            QueueOp::Get(wait) => match q.get(wait, cx.probe) {
                Ok(v) => {
                    self.give(cx.session, &v.refs);
                    Ok(Reply::Value(v))
                }
                Err(QueueFail::Timeout) => Err(fault(ErrorKind::Empty, "queue is empty")),
                Err(QueueFail::PeerGone) => Err(fault(ErrorKind::Disconnected, "client gone")),
            },
            QueueOp::Len => {
                let g = lock(&q.state);
                Ok(Reply::QueueLen { len: g.items.len() as u64, maxsize: g.maxsize })
            }
            QueueOp::TaskDone => q.task_done().map(|()| Reply::Unit),
            QueueOp::Join(wait) => match q.join(wait, cx.probe) {
                Ok(()) => Ok(Reply::Unit),
                Err(QueueFail::Timeout) => {
                    Err(fault(ErrorKind::Timeout, "unfinished tasks remain after the timeout"))
                }
                Err(QueueFail::PeerGone) => Err(fault(ErrorKind::Disconnected, "client gone")),
            },
        }
    }

    // ---- connections ------------------------------------------------------------------

    /// Stops serving: no new connections, every open one is shut down.
    pub(crate) fn stop(&self) {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        for c in lock(&self.conns).values() {
            let _ = c.shutdown();
        }
    }

    /// Serves one accepted (authenticated) connection until it closes.
    pub(crate) fn serve_conn(self: &Arc<Self>, conn: Connection) {
        let conn = Arc::new(conn);
        conn.set_max_message_size(self.cfg.max_frame);
        let Ok(buf) = conn.recv_bytes_timeout(self.cfg.handshake_timeout) else { return };
        let refuse = |reason: String| {
            let w = Welcome::Refused { version: PROTOCOL_VERSION, reason };
            if let Ok(b) = postcard::to_allocvec(&w) {
                let _ = conn.send_bytes(&b);
            }
        };
        let hello: Hello = match postcard::from_bytes(&buf) {
            Ok(h) => h,
            Err(_) => return refuse("malformed hello".into()),
        };
        if hello.magic != MAGIC || hello.version != PROTOCOL_VERSION {
            return refuse(format!(
                "protocol version {} is not this server's {PROTOCOL_VERSION}",
                hello.version
            ));
        }
        if self.is_shut_down() {
            return;
        }
        let Some(session) = self.session_open(hello.join) else {
            return refuse("unknown session".into());
        };
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        lock(&self.conns).insert(conn_id, conn.clone());
        let w = Welcome::Ok {
            version: PROTOCOL_VERSION,
            session,
            server_id: self.server_id,
            server_pid: std::process::id(),
        };
        let ok = postcard::to_allocvec(&w).map(|b| conn.send_bytes(&b).is_ok()).unwrap_or(false);
        if ok && !self.is_shut_down() {
            self.request_loop(&conn, session);
        }
        lock(&self.conns).remove(&conn_id);
        self.session_conn_closed(session);
    }

    fn request_loop(&self, conn: &Connection, session: u64) {
        let mut out = Vec::new();
        let max = self.cfg.max_frame;
        loop {
            let Ok(buf) = conn.recv_bytes() else { return };
            let req: Request = match postcard::from_bytes(&buf) {
                Ok(r) => r,
                Err(e) => {
                    // The frame is intact but is no request of ours: say so and close.
                    let resp: Response =
                        Err(fault(ErrorKind::Protocol, format!("bad request: {e}")));
                    if transport::encode(&resp, &mut out, max).is_ok() {
                        let _ = conn.send_bytes(&out);
                    }
                    return;
                }
            };
            drop(buf);
            let shutdown = matches!(req, Request::Shutdown);
            let resp = {
                // While a request blocks, a readable socket means the client closed it (or
                // broke the protocol by sending ahead): either way, abandon the request.
                let mut probe = || conn.poll(Duration::ZERO).unwrap_or(true);
                let mut cx = Cx { session, probe: &mut probe };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.handle(&mut cx, req)
                }));
                r.unwrap_or_else(|p| {
                    Err(fault(ErrorKind::Protocol, crate::service::panic_message(&*p)))
                })
            };
            if let Err(e) = transport::encode(&resp, &mut out, max) {
                let resp: Response = Err(fault(e.kind(), e.to_string()));
                if transport::encode(&resp, &mut out, max).is_err() {
                    return;
                }
            }
            if conn.send_bytes(&out).is_err() {
                return;
            }
            if out.capacity() > 1 << 20 {
                out = Vec::new();
            }
            if shutdown {
                self.stop();
                return;
            }
        }
    }

    /// Accepts connections until shutdown, a thread per connection.
    pub(crate) fn accept_loop(self: &Arc<Self>, listener: &Listener) {
        while !self.is_shut_down() {
            let conn = match listener.accept_timeout(ACCEPT_POLL) {
                Ok(c) => c,
                Err(e) => {
                    use multiproc_ipc_pipe::ErrorKind as P;
                    if !matches!(e.kind(), P::Timeout | P::Authentication | P::Disconnected) {
                        // EMFILE and friends: back off instead of spinning.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    continue;
                }
            };
            if self.is_shut_down() {
                return;
            }
            if self.active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                continue;
            }
            self.active.fetch_add(1, Ordering::AcqRel);
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("mpmgr-conn".into())
                .stack_size(1 << 20)
                .spawn(move || {
                    me.serve_conn(conn);
                    me.active.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                self.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Waits (bounded) for the connection threads to finish after a stop.
    pub(crate) fn wait_idle(&self, limit: Duration) {
        let t0 = Instant::now();
        while self.active.load(Ordering::Acquire) > 0 && t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Binds a listener on `address` (a Unix path or TCP), or in a new private directory.
    pub(crate) fn bind(&self, address: Option<&Address>) -> Result<Listener> {
        let b = Listener::builder()
            .authkey(self.cfg.authkey.as_bytes())
            // The server's pre-authentication deadline is short whatever the clients'
            // patience: an unauthenticated socket must not hold a slot for long.
            .handshake_timeout(self.cfg.handshake_timeout.min(PRE_AUTH_LIMIT))
            .max_message_size(self.cfg.max_frame);
        let what = match address {
            Some(a) => format!("binding {a}"),
            None => "binding a private Unix socket".to_string(),
        };
        let l = match address {
            Some(a) => b.bind(a.clone()),
            None => b.bind_private(),
        }
        .map_err(|e| pipe_error(e, &what))?;
        if let Address::Tcp(_) = l.address() {
            *lock(&self.tcp) = Some(l.address().clone());
        }
        Ok(l)
    }

    /// A request handled without a connection (tests of the dispatch).
    #[cfg(test)]
    pub(crate) fn handle_plain(&self, session: u64, req: Request) -> Response {
        self.handle(&mut Cx { session, probe: &mut NeverGone }, req)
    }
}

fn credit(st: &mut State, session: u64, id: Id) {
    if let Some(s) = st.sessions.get_mut(&session) {
        *s.refs.entry(id).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> (Arc<Shared>, u64) {
        let sh = Shared::new(ServerConfig {
            authkey: AuthKey::random(),
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(1),
            registry: Registry::default(),
        });
        let s = sh.session_open(None).unwrap();
        (sh, s)
    }

    fn v(b: u8) -> Stored {
        Stored { bytes: vec![b], refs: vec![] }
    }

    fn created(r: Response) -> Id {
        match r.unwrap() {
            Reply::Created(id) => id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_ops_and_errors() {
        let (sh, s) = server();
        let l = created(sh.handle_plain(s, Request::Create(Create::List(vec![v(1)]))));
        let op = |o| sh.handle_plain(s, Request::List(l, o));
        op(ListOp::Append(v(2))).unwrap();
        op(ListOp::Extend(vec![v(3), v(2)])).unwrap();
        assert!(matches!(op(ListOp::Len).unwrap(), Reply::Count(4)));
        assert!(matches!(op(ListOp::Count(vec![2])).unwrap(), Reply::Count(2)));
        assert!(matches!(op(ListOp::Index(vec![3])).unwrap(), Reply::Count(2)));
        assert_eq!(op(ListOp::Get(9)).unwrap_err().kind, ErrorKind::IndexOutOfRange);
        assert_eq!(op(ListOp::Remove(vec![7])).unwrap_err().kind, ErrorKind::ValueNotFound);
        op(ListOp::Remove(vec![2])).unwrap();
        assert!(
            matches!(op(ListOp::Snapshot).unwrap(), Reply::Values(vs) if vs == [v(1), v(3), v(2)])
        );
        assert!(matches!(op(ListOp::Pop(None)).unwrap(), Reply::Value(x) if x == v(2)));
        assert!(matches!(op(ListOp::Slice(0, 1)).unwrap(), Reply::Values(vs) if vs == [v(1)]));
        assert_eq!(op(ListOp::Slice(1, 5)).unwrap_err().kind, ErrorKind::IndexOutOfRange);
        op(ListOp::Clear).unwrap();
        assert_eq!(op(ListOp::Pop(None)).unwrap_err().kind, ErrorKind::IndexOutOfRange);
        // The wrong kind of request for the object is an error, not a panic.
        let r = sh.handle_plain(s, Request::Dict(l, DictOp::Len));
        assert_eq!(r.unwrap_err().kind, ErrorKind::WrongKind);
    }

    #[test]
    fn objects_live_while_referenced_by_sessions_and_containers() {
        let (sh, s) = server();
        let inner = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
        let outer = created(sh.handle_plain(s, Request::Create(Create::Dict(vec![]))));
        let holding = Stored { bytes: vec![0], refs: vec![inner] };
        sh.handle_plain(s, Request::Dict(outer, DictOp::Insert(vec![1], holding))).unwrap();
        // The session drops its own reference to the inner list: the dict keeps it alive.
        sh.handle_plain(s, Request::Decref(vec![inner])).unwrap();
        assert_eq!(sh.num_objects(), 2);
        // A second session reads the value: it gets its own reference.
        let s2 = sh.session_open(None).unwrap();
        sh.handle_plain(s2, Request::Dict(outer, DictOp::Get(vec![1]))).unwrap();
        sh.handle_plain(s, Request::Dict(outer, DictOp::Clear)).unwrap();
        assert_eq!(sh.num_objects(), 2, "s2 still holds the inner list");
        sh.session_conn_closed(s2);
        assert_eq!(sh.num_objects(), 1);
        sh.session_conn_closed(s);
        assert_eq!(sh.num_objects(), 0);
    }

    #[test]
    fn freeing_a_container_frees_what_it_held_and_cycles_do_not_crash() {
        let (sh, s) = server();
        let a = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
        let b = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
        let hold_b = Stored { bytes: vec![0], refs: vec![b] };
        sh.handle_plain(s, Request::List(a, ListOp::Append(hold_b))).unwrap();
        sh.handle_plain(s, Request::Decref(vec![b])).unwrap();
        sh.handle_plain(s, Request::Decref(vec![a])).unwrap();
        assert_eq!(sh.num_objects(), 0);
        // A self-containing list.
        let c = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
        let me = Stored { bytes: vec![0], refs: vec![c] };
        sh.handle_plain(s, Request::List(c, ListOp::Append(me))).unwrap();
        sh.handle_plain(s, Request::Decref(vec![c])).unwrap();
        // A value referring to an object that does not exist is refused whole.
        let d = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
        let bad = Stored { bytes: vec![0], refs: vec![d, 999_999] };
        let r = sh.handle_plain(s, Request::List(d, ListOp::Append(bad)));
        assert_eq!(r.unwrap_err().kind, ErrorKind::ObjectGone);
        sh.handle_plain(s, Request::Decref(vec![d])).unwrap();
        assert_eq!(sh.num_objects(), 1, "only the self-containing list remains");
    }

    #[test]
    fn holds_bridge_a_proxy_in_transit_and_die_with_their_session() {
        let (sh, s) = server();
        let l = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
        let Reply::Hold(h) = sh.handle_plain(s, Request::Hold(l)).unwrap() else { panic!() };
        sh.handle_plain(s, Request::Decref(vec![l])).unwrap();
        assert_eq!(sh.num_objects(), 1, "the hold keeps it alive");
        let s2 = sh.session_open(None).unwrap();
        let r = sh.handle_plain(s2, Request::Adopt { id: l, hold: h }).unwrap();
        assert!(matches!(r, Reply::Adopted(Kind::List)));
        sh.session_conn_closed(s);
        assert_eq!(sh.num_objects(), 1);
        sh.session_conn_closed(s2);
        assert_eq!(sh.num_objects(), 0);
        // An unadopted hold dies with its session.
        let s3 = sh.session_open(None).unwrap();
        let l = created(sh.handle_plain(s3, Request::Create(Create::List(vec![]))));
        sh.handle_plain(s3, Request::Hold(l)).unwrap();
        sh.session_conn_closed(s3);
        assert_eq!(sh.num_objects(), 0);
    }

    #[test]
    fn a_dead_session_releases_and_poisons_its_locks() {
        let (sh, s) = server();
        let l = created(sh.handle_plain(s, Request::Create(Create::Lock)));
        let s2 = sh.session_open(None).unwrap();
        sh.handle_plain(s2, Request::Incref(l)).unwrap();
        let acq = |sess| {
            sh.handle_plain(sess, Request::Lock(l, LockOp::Acquire { owner: 1, wait: Some(0) }))
                .unwrap()
        };
        assert!(matches!(acq(s2), Reply::Acquired { acquired: true, poisoned: false }));
        assert!(matches!(acq(s), Reply::Acquired { acquired: false, .. }));
        sh.session_conn_closed(s2);
        assert!(matches!(acq(s), Reply::Acquired { acquired: true, poisoned: true }));
    }

    #[test]
    fn a_clean_goodbye_leaves_a_plain_lock_held_but_releases_an_rlock() {
        let (sh, s) = server();
        let l = created(sh.handle_plain(s, Request::Create(Create::Lock)));
        let r = created(sh.handle_plain(s, Request::Create(Create::RLock)));
        let s2 = sh.session_open(None).unwrap();
        for id in [l, r] {
            let acq = LockOp::Acquire { owner: 1, wait: Some(0) };
            assert!(matches!(
                sh.handle_plain(s2, Request::Lock(id, acq)).unwrap(),
                Reply::Acquired { acquired: true, .. }
            ));
        }
        sh.handle_plain(s2, Request::Goodbye).unwrap();
        sh.session_conn_closed(s2);
        let locked = |id| sh.handle_plain(s, Request::Lock(id, LockOp::Locked)).unwrap();
        assert!(matches!(locked(l), Reply::Bool(true)), "Python: another process releases it");
        assert!(matches!(locked(r), Reply::Bool(false)));
        sh.handle_plain(s, Request::Lock(l, LockOp::Release { owner: 9 })).unwrap();
    }

    #[test]
    fn queue_full_and_empty_and_task_done() {
        let (sh, s) = server();
        let q = created(sh.handle_plain(s, Request::Create(Create::Queue { maxsize: 1 })));
        let op = |o| sh.handle_plain(s, Request::Queue(q, o));
        op(QueueOp::Put(v(5), Some(0))).unwrap();
        assert_eq!(op(QueueOp::Put(v(6), Some(1000))).unwrap_err().kind, ErrorKind::Full);
        assert!(matches!(op(QueueOp::Len).unwrap(), Reply::QueueLen { len: 1, maxsize: 1 }));
        assert!(matches!(op(QueueOp::Get(None)).unwrap(), Reply::Value(x) if x == v(5)));
        assert_eq!(op(QueueOp::Get(Some(0))).unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(op(QueueOp::Join(Some(0))).unwrap_err().kind, ErrorKind::Timeout);
        op(QueueOp::TaskDone).unwrap();
        op(QueueOp::Join(Some(0))).unwrap();
        assert_eq!(op(QueueOp::TaskDone).unwrap_err().kind, ErrorKind::TooManyReleases);
    }

    #[test]
    fn dict_setdefault_popitem_and_values_keep_order() {
        let (sh, s) = server();
        let d = created(sh.handle_plain(s, Request::Create(Create::Dict(vec![]))));
        let op = |o| sh.handle_plain(s, Request::Dict(d, o));
        op(DictOp::Update(vec![(vec![2], v(20)), (vec![1], v(10))])).unwrap();
        assert!(
            matches!(op(DictOp::SetDefault(vec![2], v(99))).unwrap(), Reply::Value(x) if x == v(20))
        );
        assert!(
            matches!(op(DictOp::SetDefault(vec![3], v(30))).unwrap(), Reply::Value(x) if x == v(30))
        );
        assert!(
            matches!(op(DictOp::Keys).unwrap(), Reply::Keys(k) if k == [vec![2], vec![1], vec![3]])
        );
        assert!(matches!(op(DictOp::PopItem).unwrap(), Reply::Items(i) if i[0].0 == [3]));
        assert!(
            matches!(op(DictOp::Insert(vec![1], v(11))).unwrap(), Reply::MaybeValue(Some(x)) if x == v(10))
        );
        assert!(matches!(op(DictOp::Remove(vec![9])).unwrap(), Reply::MaybeValue(None)));
        op(DictOp::Clear).unwrap();
        assert_eq!(op(DictOp::PopItem).unwrap_err().kind, ErrorKind::KeyNotFound);
    }

    #[test]
    fn value_cas() {
        let (sh, s) = server();
        let id = created(sh.handle_plain(s, Request::Create(Create::Value(v(1)))));
        let op = |o| sh.handle_plain(s, Request::Value(id, o));
        assert!(matches!(
            op(ValueOp::CompareAndSwap { current: vec![1], new: v(2) }).unwrap(),
            Reply::Cas(Ok(()))
        ));
        assert!(
            matches!(op(ValueOp::CompareAndSwap { current: vec![1], new: v(3) }).unwrap(), Reply::Cas(Err(x)) if x == v(2))
        );
        assert!(matches!(op(ValueOp::Swap(v(4))).unwrap(), Reply::Value(x) if x == v(2)));
        assert!(matches!(op(ValueOp::Get).unwrap(), Reply::Value(x) if x == v(4)));
    }

    #[test]
    fn unknown_service_is_a_typed_error() {
        let (sh, s) = server();
        let r = sh.handle_plain(
            s,
            Request::Create(Create::Service { name: "nope".into(), init: vec![] }),
        );
        assert_eq!(r.unwrap_err().kind, ErrorKind::NoSuchService);
    }
}
