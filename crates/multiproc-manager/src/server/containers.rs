//! The container requests: list, dict, namespace, value, queue.

use super::objects::{gone, ListObj, Object, QueueFail};
use super::session::refs_of;
use super::wait::lock;
use super::{fault, index_fault, insert_position, resolve_index, Cx, Pick, Shared};
use crate::error::ErrorKind;
use crate::protocol::*;
use std::sync::Mutex;

impl Shared {
    pub(super) fn list(&self, cx: &mut Cx<'_>, id: Id, op: ListOp) -> Response {
        let s = cx.session;
        // The operations of older clients, as the current ones.
        let wide = |i: u64| i64::try_from(i).unwrap_or(i64::MAX);
        let op = match op {
            ListOp::Get(i) => ListOp::GetAt(wide(i)),
            ListOp::Set(i, v) => ListOp::SetAt(wide(i), v),
            ListOp::Pop(i) => ListOp::PopAt(i.map(wide)),
            op => op,
        };
        let incoming: Vec<Id> = match &op {
            ListOp::Append(v)
            | ListOp::Set(_, v)
            | ListOp::SetAt(_, v)
            | ListOp::Insert(_, v)
            | ListOp::InsertAt(_, v) => v.refs.clone(),
            ListOp::Extend(vs) => refs_of(vs),
            _ => Vec::new(),
        };
        // Every request that may change the list bumps its version (failed ones too); a
        // permutation only when it is applied.
        let changes = !matches!(
            op,
            ListOp::Get(_)
                | ListOp::GetAt(_)
                | ListOp::Len
                | ListOp::Index(_)
                | ListOp::Count(_)
                | ListOp::Snapshot
                | ListOp::Slice(..)
                | ListOp::VersionedSnapshot
                | ListOp::Permute { .. }
        );
        self.on_container(s, id, incoming, pick!(Object::List), |list, mv| {
            let ListObj { items: g, version } = list;
            if changes {
                *version += 1;
            }
            match op {
                ListOp::Append(v) => {
                    g.push(v);
                    Ok(Reply::Unit)
                }
                ListOp::Extend(vs) => {
                    g.extend(vs);
                    Ok(Reply::Unit)
                }
                ListOp::GetAt(i) => match resolve_index(i, g.len()) {
                    Some(at) => Ok(self.read_out(s, &g[at])),
                    None => Err(index_fault(i, g.len())),
                },
                ListOp::SetAt(i, v) => match resolve_index(i, g.len()).map(|at| &mut g[at]) {
                    Some(slot) => {
                        mv.released = std::mem::replace(slot, v).refs;
                        Ok(Reply::Unit)
                    }
                    None => {
                        mv.released = v.refs;
                        Err(index_fault(i, g.len()))
                    }
                },
                ListOp::Len => Ok(Reply::Count(g.len() as u64)),
                ListOp::PopAt(at) => {
                    let len = g.len();
                    let i = at.unwrap_or(-1);
                    match resolve_index(i, len) {
                        Some(at) => Ok(mv.give(g.remove(at))),
                        None if len == 0 => {
                            Err(fault(ErrorKind::IndexOutOfRange, "pop from an empty list"))
                        }
                        None => Err(index_fault(i, len)),
                    }
                }
                ListOp::InsertAt(i, v) => {
                    g.insert(insert_position(i, g.len()), v);
                    Ok(Reply::Unit)
                }
                ListOp::Insert(i, v) => {
                    if i as usize <= g.len() {
                        g.insert(i as usize, v);
                        Ok(Reply::Unit)
                    } else {
                        mv.released = v.refs;
                        Err(fault(
                            ErrorKind::IndexOutOfRange,
                            format!("insertion index {i} beyond the length {}", g.len()),
                        ))
                    }
                }
                ListOp::Get(_) | ListOp::Set(..) | ListOp::Pop(_) => {
                    Err(fault(ErrorKind::Protocol, "translated above"))
                }
                ListOp::Remove(b) => match g.iter().position(|v| v.bytes == b) {
                    Some(i) => {
                        mv.released = g.remove(i).refs;
                        Ok(Reply::Unit)
                    }
                    None => Err(fault(ErrorKind::ValueNotFound, "list.remove(x): x not in list")),
                },
                ListOp::Index(b) => match g.iter().position(|v| v.bytes == b) {
                    Some(i) => Ok(Reply::Count(i as u64)),
                    None => Err(fault(ErrorKind::ValueNotFound, "value is not in the list")),
                },
                ListOp::Count(b) => {
                    Ok(Reply::Count(g.iter().filter(|v| v.bytes == b).count() as u64))
                }
                ListOp::Clear => {
                    mv.released = std::mem::take(g).into_iter().flat_map(|v| v.refs).collect();
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
                        mv.released = g.drain(n as usize..).flat_map(|v| v.refs).collect();
                    }
                    Ok(Reply::Unit)
                }
                ListOp::VersionedSnapshot => {
                    self.copy_out_all(s, g.iter());
                    Ok(Reply::Versioned { version: *version, values: g.clone() })
                }
                ListOp::Permute { version: seen, order } => {
                    if seen != *version {
                        return Ok(Reply::Bool(false));
                    }
                    if !is_permutation(&order, g.len()) {
                        return Err(fault(
                            ErrorKind::InvalidInput,
                            "the order is not a permutation",
                        ));
                    }
                    let mut taken: Vec<Option<Stored>> = g.drain(..).map(Some).collect();
                    g.extend(order.iter().map(|&i| taken[i as usize].take().expect("checked")));
                    *version += 1;
                    Ok(Reply::Bool(true))
                }
            }
        })
    }

    pub(super) fn dict(&self, cx: &mut Cx<'_>, id: Id, op: DictOp) -> Response {
        let s = cx.session;
        let incoming: Vec<Id> = match &op {
            DictOp::Insert(_, v) | DictOp::SetDefault(_, v) => v.refs.clone(),
            DictOp::Update(kvs) => refs_of(kvs.iter().map(|(_, v)| v)),
            _ => Vec::new(),
        };
        self.on_container(s, id, incoming, pick!(Object::Dict), |g, mv| match op {
            DictOp::Get(k) => Ok(self.maybe_out(s, g.get(&k))),
            DictOp::Insert(k, v) => Ok(mv.give_maybe(g.insert(k, v))),
            DictOp::Remove(k) => Ok(mv.give_maybe(g.remove(&k))),
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
                        mv.released.extend(old.refs);
                    }
                }
                Ok(Reply::Unit)
            }
            DictOp::SetDefault(k, v) => {
                if g.get(&k).is_some() {
                    mv.released = v.refs;
                } else {
                    g.insert(k.clone(), v);
                }
                Ok(self.read_out(s, g.get(&k).expect("present")))
            }
            DictOp::PopItem => match g.pop_last() {
                Some((k, v)) => {
                    mv.given.clone_from(&v.refs);
                    Ok(Reply::Items(vec![(k, v)]))
                }
                None => Err(fault(ErrorKind::KeyNotFound, "popitem(): dictionary is empty")),
            },
            DictOp::Clear => {
                mv.released = g.take_all().into_iter().flat_map(|(_, v)| v.refs).collect();
                Ok(Reply::Unit)
            }
        })
    }

    pub(super) fn set(&self, cx: &mut Cx<'_>, id: Id, op: SetOp) -> Response {
        // A set holds no proxies: no references come in or go out.
        self.on_container(cx.session, id, Vec::new(), pick!(Object::Set), |g, _| match op {
            SetOp::Add(k) => Ok(Reply::Bool(g.insert(k, Stored::default()).is_none())),
            SetOp::Discard(k) => Ok(Reply::Bool(g.remove(&k).is_some())),
            SetOp::Contains(k) => Ok(Reply::Bool(g.get(&k).is_some())),
            SetOp::Len => Ok(Reply::Count(g.len() as u64)),
            SetOp::Clear => {
                g.take_all();
                Ok(Reply::Unit)
            }
            SetOp::Pop => match g.pop_last() {
                Some((k, _)) => Ok(Reply::Keys(vec![k])),
                None => Err(fault(ErrorKind::KeyNotFound, "pop from an empty set")),
            },
            SetOp::Snapshot => Ok(Reply::Keys(g.iter().map(|(k, _)| k.clone()).collect())),
            SetOp::Update(ks) => {
                for k in ks {
                    g.insert(k, Stored::default());
                }
                Ok(Reply::Unit)
            }
            SetOp::DifferenceUpdate(ks) => {
                for k in ks {
                    g.remove(&k);
                }
                Ok(Reply::Unit)
            }
            SetOp::IntersectionUpdate(ks) => {
                let keep: std::collections::HashSet<Vec<u8>> = ks.into_iter().collect();
                for (k, _) in g.take_all() {
                    if keep.contains(&k) {
                        g.insert(k, Stored::default());
                    }
                }
                Ok(Reply::Unit)
            }
            SetOp::SymmetricDifferenceUpdate(ks) => {
                let ks: std::collections::HashSet<Vec<u8>> = ks.into_iter().collect();
                for k in ks {
                    if g.remove(&k).is_none() {
                        g.insert(k, Stored::default());
                    }
                }
                Ok(Reply::Unit)
            }
        })
    }

    pub(super) fn namespace(&self, cx: &mut Cx<'_>, id: Id, op: NsOp) -> Response {
        let s = cx.session;
        let op = match op {
            NsOp::Set(name, v) => NsOp::SetShown(name, v, None),
            op => op,
        };
        let incoming = match &op {
            NsOp::Set(_, v) | NsOp::SetShown(_, v, _) => v.refs.clone(),
            _ => Vec::new(),
        };
        self.on_container(s, id, incoming, pick!(Object::Namespace), |g, mv| match op {
            NsOp::Get(name) => Ok(self.maybe_out(s, g.get(&name).map(|(v, _)| v))),
            NsOp::Set(..) => Err(fault(ErrorKind::Protocol, "translated above")),
            NsOp::SetShown(name, v, shown) => {
                if let Some((old, _)) = g.insert(name, (v, shown)) {
                    mv.released = old.refs;
                }
                Ok(Reply::Unit)
            }
            NsOp::Remove(name) => {
                let old = g.remove(&name);
                let had = old.is_some();
                if let Some((o, _)) = old {
                    mv.released = o.refs;
                }
                Ok(Reply::Bool(had))
            }
            NsOp::Names => Ok(Reply::Names(g.keys().cloned().collect())),
            NsOp::Items => {
                self.copy_out_all(s, g.values().map(|(v, _)| v));
                Ok(Reply::Fields(g.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect()))
            }
            NsOp::Shown => {
                Ok(Reply::Shown(g.iter().map(|(k, (_, sh))| (k.clone(), sh.clone())).collect()))
            }
        })
    }

    pub(super) fn value(&self, cx: &mut Cx<'_>, id: Id, op: ValueOp) -> Response {
        let s = cx.session;
        let incoming = match &op {
            ValueOp::Set(v) | ValueOp::Swap(v) | ValueOp::CompareAndSwap { new: v, .. } => {
                v.refs.clone()
            }
            ValueOp::Get => Vec::new(),
        };
        self.on_container(s, id, incoming, pick!(Object::Value), |g, mv| match op {
            ValueOp::Get => Ok(self.read_out(s, g)),
            ValueOp::Set(v) => {
                mv.released = std::mem::replace(g, v).refs;
                Ok(Reply::Unit)
            }
            ValueOp::Swap(v) => Ok(mv.give(std::mem::replace(g, v))),
            ValueOp::CompareAndSwap { current, new } => {
                if g.bytes == current {
                    mv.released = std::mem::replace(g, new).refs;
                    Ok(Reply::Cas(Ok(())))
                } else {
                    mv.released = new.refs;
                    self.copy_out(s, &g.refs);
                    Ok(Reply::Cas(Err(g.clone())))
                }
            }
        })
    }

    pub(super) fn queue(&self, cx: &mut Cx<'_>, id: Id, op: QueueOp) -> Response {
        self.on_object(id, pick!(Object::Queue), |e, q| match op {
            QueueOp::Put(v, wait) => {
                self.incoming(&v.refs)?;
                if e.is_dead() {
                    self.release(v.refs);
                    return Err(gone(id));
                }
                // `Some(0)` is a `try_put` (Full); a longer wait timed out (Timeout), as the
                // local queue reports them.
                let timed = wait.is_some_and(|w| w > 0);
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
                            QueueFail::Timeout if timed => {
                                fault(ErrorKind::Timeout, "queue is full")
                            }
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
                Err(QueueFail::Timeout) if wait.is_some_and(|w| w > 0) => {
                    Err(fault(ErrorKind::Timeout, "queue is empty"))
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
        })
    }
}

/// Whether `order` holds each of `0..len` once.
fn is_permutation(order: &[u64], len: usize) -> bool {
    let mut seen = vec![false; len];
    order.len() == len
        && order.iter().all(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| seen.get_mut(i))
                .is_some_and(|s| !std::mem::replace(s, true))
        })
}

/// The references a container operation moved, settled once the container's lock is dropped.
#[derive(Default)]
struct Moves {
    /// Given up by the container and dropped.
    released: Vec<Id>,
    /// Given up by the container to the client, with the value it takes out.
    given: Vec<Id>,
}

impl Moves {
    /// A value taken out of the container, for the client.
    fn give(&mut self, v: Stored) -> Reply {
        self.given.clone_from(&v.refs);
        Reply::Value(v)
    }

    /// A value that was replaced or removed, if any, for the client.
    fn give_maybe(&mut self, old: Option<Stored>) -> Reply {
        if let Some(o) = &old {
            self.given.clone_from(&o.refs);
        }
        Reply::MaybeValue(old)
    }
}

impl Shared {
    /// Runs `op` on container `id` under its lock. `pick` says which kind of object it must
    /// be; the references of the values coming in are counted first and given back if the
    /// object is freed meanwhile; the references `op` moves are settled after the lock.
    fn on_container<T>(
        &self,
        session: u64,
        id: Id,
        incoming: Vec<Id>,
        pick: Pick<Mutex<T>>,
        op: impl FnOnce(&mut T, &mut Moves) -> Response,
    ) -> Response {
        self.on_object(id, pick, |e, m| {
            self.incoming(&incoming)?;
            let mut g = lock(m);
            if e.is_dead() {
                drop(g);
                self.release(incoming);
                return Err(gone(id));
            }
            let mut mv = Moves::default();
            let r = op(&mut g, &mut mv);
            drop(g);
            self.give(session, &mv.given);
            self.release(mv.released);
            r
        })
    }

    /// A copy of a value the container keeps, for `session` (which gets its references).
    fn read_out(&self, session: u64, v: &Stored) -> Reply {
        self.copy_out(session, &v.refs);
        Reply::Value(v.clone())
    }

    /// [`read_out`](Self::read_out) of a value that may be absent.
    fn maybe_out(&self, session: u64, v: Option<&Stored>) -> Reply {
        if let Some(v) = v {
            self.copy_out(session, &v.refs);
        }
        Reply::MaybeValue(v.cloned())
    }
}
