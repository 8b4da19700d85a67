//! Managed objects as the server holds them: containers of opaque values and the
//! synchronisation objects of [`super::sync`].

use super::sync::{BarrierObj, CondObj, EventObj, LockObj, SemObj};
use super::wait::{deadline, lock, wait_until, Outcome, Probe};
use crate::error::ErrorKind;
use crate::protocol::{Fault, Id, Kind, Stored, Wait};
use crate::service::ErasedService;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// A dict that keeps insertion order (as Python's does), keyed by encoded bytes.
#[derive(Debug, Default)]
pub(crate) struct OrderedMap {
    index: HashMap<Vec<u8>, usize>,
    entries: Vec<Option<(Vec<u8>, Stored)>>,
}

impl OrderedMap {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn get(&self, k: &[u8]) -> Option<&Stored> {
        self.index.get(k).and_then(|&i| self.entries[i].as_ref()).map(|(_, v)| v)
    }

    /// Inserts or replaces (keeping the key's position); returns the old value.
    pub(crate) fn insert(&mut self, k: Vec<u8>, v: Stored) -> Option<Stored> {
        if let Some(&i) = self.index.get(&k) {
            let slot = self.entries[i].as_mut().expect("indexed entries are live");
            return Some(std::mem::replace(&mut slot.1, v));
        }
        self.index.insert(k.clone(), self.entries.len());
        self.entries.push(Some((k, v)));
        None
    }

    pub(crate) fn remove(&mut self, k: &[u8]) -> Option<Stored> {
        let i = self.index.remove(k)?;
        let (_, v) = self.entries[i].take().expect("indexed entries are live");
        self.maybe_compact();
        Some(v)
    }

    pub(crate) fn pop_last(&mut self) -> Option<(Vec<u8>, Stored)> {
        while let Some(last) = self.entries.pop() {
            if let Some((k, v)) = last {
                self.index.remove(&k);
                return Some((k, v));
            }
        }
        None
    }

    fn maybe_compact(&mut self) {
        if self.entries.len() > 16 && self.entries.len() > 2 * self.index.len() {
            self.entries.retain(Option::is_some);
            for (i, e) in self.entries.iter().enumerate() {
                let (k, _) = e.as_ref().expect("retained");
                *self.index.get_mut(k).expect("indexed") = i;
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Stored)> {
        self.entries.iter().flatten().map(|(k, v)| (k, v))
    }

    pub(crate) fn take_all(&mut self) -> Vec<(Vec<u8>, Stored)> {
        self.index.clear();
        std::mem::take(&mut self.entries).into_iter().flatten().collect()
    }
}

/// A managed list: its values and a version that every change bumps (so that a client-side
/// sort can apply its order only to the list it read).
#[derive(Debug, Default)]
pub(crate) struct ListObj {
    pub(crate) items: Vec<Stored>,
    pub(crate) version: u64,
}

#[derive(Debug, Default)]
pub(crate) struct QueueState {
    pub(crate) items: VecDeque<Stored>,
    pub(crate) maxsize: u64,
    pub(crate) unfinished: u64,
}

/// A manager `Queue` (with `task_done`/`join`, so also Python's `JoinableQueue`).
#[derive(Debug, Default)]
pub(crate) struct QueueObj {
    pub(crate) state: Mutex<QueueState>,
    cv: Condvar,
}

/// Why a queue operation did not complete.
pub(crate) enum QueueFail {
    Timeout,
    PeerGone,
}

impl QueueObj {
    pub(crate) fn new(maxsize: u64) -> Self {
        QueueObj {
            state: Mutex::new(QueueState { maxsize, ..Default::default() }),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn put(
        &self,
        v: Stored,
        wait: Wait,
        probe: &mut dyn Probe,
    ) -> Result<(), (Stored, QueueFail)> {
        let g = lock(&self.state);
        let (mut g, out) = wait_until(&self.cv, g, deadline(wait), probe, |s| {
            s.maxsize == 0 || (s.items.len() as u64) < s.maxsize
        });
        match out {
            Outcome::Ready => {
                g.items.push_back(v);
                g.unfinished += 1;
                self.cv.notify_all();
                Ok(())
            }
            Outcome::TimedOut => Err((v, QueueFail::Timeout)),
            Outcome::PeerGone => Err((v, QueueFail::PeerGone)),
        }
    }

    pub(crate) fn get(&self, wait: Wait, probe: &mut dyn Probe) -> Result<Stored, QueueFail> {
        let g = lock(&self.state);
        let (mut g, out) = wait_until(&self.cv, g, deadline(wait), probe, |s| !s.items.is_empty());
        match out {
            Outcome::Ready => {
                let v = g.items.pop_front().expect("checked non-empty");
                self.cv.notify_all();
                Ok(v)
            }
            Outcome::TimedOut => Err(QueueFail::Timeout),
            Outcome::PeerGone => Err(QueueFail::PeerGone),
        }
    }

    pub(crate) fn task_done(&self) -> Result<(), Fault> {
        let mut g = lock(&self.state);
        if g.unfinished == 0 {
            return Err(Fault::new(
                ErrorKind::TooManyReleases,
                "task_done() called too many times",
            ));
        }
        g.unfinished -= 1;
        if g.unfinished == 0 {
            self.cv.notify_all();
        }
        Ok(())
    }

    pub(crate) fn join(&self, wait: Wait, probe: &mut dyn Probe) -> Result<(), QueueFail> {
        let g = lock(&self.state);
        match wait_until(&self.cv, g, deadline(wait), probe, |s| s.unfinished == 0).1 {
            Outcome::Ready => Ok(()),
            Outcome::TimedOut => Err(QueueFail::Timeout),
            Outcome::PeerGone => Err(QueueFail::PeerGone),
        }
    }
}

/// One managed object.
pub(crate) enum Object {
    List(Mutex<ListObj>),
    Dict(Mutex<OrderedMap>),
    /// Fields: value and its rendering (for the proxy's `Debug`).
    Namespace(Mutex<BTreeMap<String, (Stored, Option<String>)>>),
    Value(Mutex<Stored>),
    Queue(QueueObj),
    Lock(LockObj),
    Semaphore(SemObj),
    Condition(CondObj),
    Event(EventObj),
    Barrier(BarrierObj),
    Service(Mutex<Option<Box<dyn ErasedService>>>),
    /// A set: the values are the map's keys (its values are empty).
    Set(Mutex<OrderedMap>),
}

/// A table entry: the object, its kind, and whether it has been freed (a request that looked
/// it up just before it was freed must not put values into it).
pub(crate) struct Entry {
    pub(crate) kind: Kind,
    pub(crate) obj: Object,
    dead: AtomicBool,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry").field("kind", &self.kind).finish_non_exhaustive()
    }
}

pub(crate) fn gone(id: Id) -> Fault {
    Fault::new(ErrorKind::ObjectGone, format!("object {id} no longer exists"))
}

impl Entry {
    pub(crate) fn new(kind: Kind, obj: Object) -> Entry {
        Entry { kind, obj, dead: AtomicBool::new(false) }
    }

    /// Checked while holding the object's own lock.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Empties a freed object; returns the references its values held.
    pub(crate) fn drain(&self) -> Vec<Id> {
        match &self.obj {
            Object::List(m) => self.empty(m, |l| std::mem::take(&mut l.items)),
            Object::Dict(m) | Object::Set(m) => {
                self.empty(m, |g| g.take_all().into_iter().map(|(_, v)| v))
            }
            Object::Namespace(m) => {
                self.empty(m, |g| std::mem::take(g).into_values().map(|(v, _)| v))
            }
            Object::Value(m) => self.empty(m, |g| [std::mem::take(g)]),
            Object::Queue(q) => self.empty(&q.state, |g| std::mem::take(&mut g.items)),
            Object::Service(m) => {
                let svc = lock(m).take();
                self.dead.store(true, Ordering::Release);
                // A user Drop that panics must not take the server down.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(svc)));
                Vec::new()
            }
            _ => {
                self.dead.store(true, Ordering::Release);
                Vec::new()
            }
        }
    }

    /// Marks the object dead under the lock of its state `m` (so no request puts values in
    /// after), takes its values out with `take`, and returns their references.
    fn empty<T, I: IntoIterator<Item = Stored>>(
        &self,
        m: &Mutex<T>,
        take: impl FnOnce(&mut T) -> I,
    ) -> Vec<Id> {
        let mut g = lock(m);
        self.dead.store(true, Ordering::Release);
        take(&mut g).into_iter().flat_map(|s| s.refs).collect()
    }

    /// Releases (and poisons) a lock held by a session that ended. After a clean goodbye a
    /// plain lock stays held (anyone may release it, as in Python); an owned one (RLock,
    /// Condition) cannot be released by anyone else, so it is released either way.
    pub(crate) fn release_dead(&self, session: u64, clean: bool) {
        match &self.obj {
            Object::Lock(_) if clean && self.kind == Kind::Lock => {}
            Object::Lock(l) => l.release_dead(session),
            Object::Condition(c) => c.release_dead(session),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: u8) -> Stored {
        Stored { bytes: vec![b], refs: vec![] }
    }

    #[test]
    fn ordered_map_keeps_insertion_order_through_removals() {
        let mut m = OrderedMap::default();
        for i in 0..40u8 {
            m.insert(vec![i], s(i));
        }
        for i in (0..40u8).filter(|i| i % 3 != 0) {
            assert_eq!(m.remove(&[i]), Some(s(i)));
        }
        assert_eq!(m.insert(vec![3], s(99)), Some(s(3)));
        let keys: Vec<u8> = m.iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, (0..40u8).filter(|i| i % 3 == 0).collect::<Vec<_>>());
        assert_eq!(m.get(&[3]), Some(&s(99)));
        assert_eq!(m.len(), 14);
        assert_eq!(m.pop_last().unwrap().0, vec![39]);
        m.insert(vec![1], s(1));
        assert_eq!(m.pop_last().unwrap().0, vec![1]);
        assert_eq!(m.take_all().len(), 13);
        assert_eq!(m.len(), 0);
        assert!(m.pop_last().is_none());
    }
}
