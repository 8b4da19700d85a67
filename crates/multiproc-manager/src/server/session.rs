//! Sessions and the reference counts of the object table.

use super::objects::{gone, Entry, Object};
use super::wait::lock;
use super::{kind_fault, Pick, Session, Shared, Slot, State};
use crate::protocol::{Fault, Id, Kind, Response, Stored};
use std::sync::Arc;

impl Shared {
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

    pub(super) fn lookup(&self, id: Id) -> Result<Arc<Entry>, Fault> {
        lock(&self.state).objects.get(&id).map(|s| s.entry.clone()).ok_or_else(|| gone(id))
    }

    /// Runs `f` on object `id` with its state as `pick` finds it; a
    /// [`WrongKind`](crate::ErrorKind::WrongKind) fault if it is another kind of object.
    pub(super) fn on_object<T>(
        &self,
        id: Id,
        pick: Pick<T>,
        f: impl FnOnce(&Entry, &T) -> Response,
    ) -> Response {
        let e = self.lookup(id)?;
        let obj = pick(&e.obj).ok_or_else(|| kind_fault(id, e.kind))?;
        f(&e, obj)
    }

    pub(super) fn insert(&self, session: u64, kind: Kind, obj: Object) -> Id {
        let mut st = lock(&self.state);
        st.next_id += 1;
        let id = st.next_id;
        st.objects.insert(id, Slot { entry: Arc::new(Entry::new(kind, obj)), refs: 1 });
        credit(&mut st, session, id);
        id
    }

    /// Counts references for values arriving in a request (the container will own them).
    pub(super) fn incoming(&self, refs: &[Id]) -> Result<(), Fault> {
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
    pub(super) fn release(&self, mut ids: Vec<Id>) {
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
    pub(super) fn give(&self, session: u64, refs: &[Id]) {
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
    pub(super) fn copy_out(&self, session: u64, refs: &[Id]) {
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

    pub(super) fn copy_out_all<'a>(
        &self,
        session: u64,
        vals: impl IntoIterator<Item = &'a Stored>,
    ) {
        self.copy_out(session, &refs_of(vals));
    }

    pub(super) fn note_lock(&self, session: u64, id: Id) {
        if let Some(s) = lock(&self.state).sessions.get_mut(&session) {
            s.locks.insert(id);
        }
    }

    #[cfg(test)]
    pub(crate) fn num_objects(&self) -> usize {
        lock(&self.state).objects.len()
    }
}

pub(super) fn credit(st: &mut State, session: u64, id: Id) {
    if let Some(s) = st.sessions.get_mut(&session) {
        *s.refs.entry(id).or_insert(0) += 1;
    }
}

/// The references held by `vals`.
pub(super) fn refs_of<'a>(vals: impl IntoIterator<Item = &'a Stored>) -> Vec<Id> {
    vals.into_iter().flat_map(|s| s.refs.iter().copied()).collect()
}
