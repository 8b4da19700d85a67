//! The container requests: list, dict, namespace, value, queue.

use super::objects::{gone, Object, QueueFail};
use super::wait::lock;
use super::{fault, index_fault, kind_fault, Cx, Shared};
use crate::error::ErrorKind;
use crate::protocol::*;

impl Shared {
    pub(super) fn list(&self, cx: &mut Cx<'_>, id: Id, op: ListOp) -> Response {
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

    pub(super) fn dict(&self, cx: &mut Cx<'_>, id: Id, op: DictOp) -> Response {
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

    pub(super) fn namespace(&self, cx: &mut Cx<'_>, id: Id, op: NsOp) -> Response {
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

    pub(super) fn value(&self, cx: &mut Cx<'_>, id: Id, op: ValueOp) -> Response {
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

    pub(super) fn queue(&self, cx: &mut Cx<'_>, id: Id, op: QueueOp) -> Response {
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
}
