//! Request dispatch: the table requests, creation, and the synchronisation objects.

use super::objects::{gone, ListObj, Object, OrderedMap, QueueObj};
use super::session::refs_of;
use super::sync::{BarrierObj, CondObj, EventObj, LockObj, SemObj};
use super::wait::lock;
use super::{credit, fault, Cx, Shared};
use crate::error::ErrorKind;
use crate::protocol::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

impl Shared {
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
            Request::Set(id, op) => self.set(cx, id, op),
            Request::Dict(id, op) => self.dict(cx, id, op),
            Request::Namespace(id, op) => self.namespace(cx, id, op),
            Request::Value(id, op) => self.value(cx, id, op),
            Request::Queue(id, op) => self.queue(cx, id, op),
            Request::Lock(id, op) => self.on_object(id, pick!(Object::Lock), |_, l| match op {
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
            }),
            Request::Semaphore(id, op) => {
                self.on_object(id, pick!(Object::Semaphore), |_, s| match op {
                    SemOp::Acquire(wait) => s.acquire(wait, cx.probe),
                    SemOp::Release(n) => s.release(n),
                    SemOp::Value => s.value(),
                })
            }
            Request::Condition(id, op) => {
                self.on_object(id, pick!(Object::Condition), |_, c| match op {
                    CondOp::Acquire { owner, wait } => {
                        let r = c.acquire((cx.session, owner), wait, cx.probe)?;
                        self.note_lock(cx.session, id);
                        Ok(r)
                    }
                    CondOp::Release { owner } => c.release((cx.session, owner)),
                    CondOp::Wait { owner, wait } => c.wait((cx.session, owner), wait, cx.probe),
                    CondOp::Notify { owner, n } => c.notify((cx.session, owner), n),
                    CondOp::Locked => c.locked(),
                })
            }
            Request::Event(id, op) => self.on_object(id, pick!(Object::Event), |_, ev| match op {
                EventOp::Set => ev.set(true),
                EventOp::Clear => ev.set(false),
                EventOp::IsSet => ev.is_set(),
                EventOp::Wait(w) => ev.wait(w, cx.probe),
            }),
            Request::Barrier(id, op) => {
                self.on_object(id, pick!(Object::Barrier), |_, b| match op {
                    BarrierOp::Wait(w) => b.wait(w, cx.probe),
                    BarrierOp::Abort => b.abort(),
                    BarrierOp::Reset => b.reset(),
                    BarrierOp::Parties => b.parties(),
                    BarrierOp::NWaiting => b.n_waiting(),
                    BarrierOp::Broken => b.broken(),
                })
            }
            Request::Service(id, req) => self.on_object(id, pick!(Object::Service), |_, m| {
                let mut g = lock(m);
                match g.as_mut() {
                    Some(svc) => svc.call(&req).map(Reply::Bytes),
                    None => Err(gone(id)),
                }
            }),
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
                self.incoming(&refs_of(&items))?;
                (Kind::List, Object::List(Mutex::new(ListObj { items, version: 0 })))
            }
            Create::Dict(items) => {
                self.incoming(&refs_of(items.iter().map(|(_, s)| s)))?;
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
            Create::Set(items) => {
                let mut m = OrderedMap::default();
                for k in items {
                    m.insert(k, Stored::default());
                }
                (Kind::Set, Object::Set(Mutex::new(m)))
            }
            Create::Service { name, init } => {
                let svc = self.cfg.registry.create(&name, &init)?;
                (Kind::Service, Object::Service(Mutex::new(Some(svc))))
            }
        };
        Ok(Reply::Created(self.insert(session, kind, obj)))
    }
}
