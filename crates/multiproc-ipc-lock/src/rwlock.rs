//! [`RwLock`]: std's `RwLock<T>` for a `T` in shared memory, robust against a dead writer
//! or reader.

use crate::cell::ShmCell;
use crate::error::Result;
use crate::ident::{self, Me, ID_MASK};
use crate::lock::{to_lock_result, to_try_lock_result};
use crate::raw::{Acquire, RawLock, POISON, WAITERS};
use crate::wait::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use multiproc_arena::{Arena, Shared, ShmSafe};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{LockResult, TryLockResult};
use std::time::Duration;

/// Processes that can hold read locks at once (more wait for a free entry).
#[cfg(not(multiproc_loom))]
pub const RWLOCK_READER_SLOTS: usize = 32;
/// Processes that can hold read locks at once (small under loom).
#[cfg(multiproc_loom)]
pub const RWLOCK_READER_SLOTS: usize = 2;

/// The read-lock count in a reader entry's `count` word (the rest is the owner's tag).
const COUNT: u64 = 0xffff_ffff;

/// Between a SeqCst RMW and a SeqCst load of another word: nothing to do in the C++ model
/// (both are in the single SeqCst order), but loom treats SeqCst accesses as AcqRel, so
/// under loom this is the SeqCst fence that gives the models the same guarantee.
#[inline]
fn dekker_fence() {
    #[cfg(multiproc_loom)]
    fence(Ordering::SeqCst);
}

/// The tag a reader entry's `count` word carries for `id`: the identity's low 32 bits.
#[inline]
fn tag_of(id: u64) -> u64 {
    (id & 0xffff_ffff) << 32
}

/// One reading process.
///
/// - `id`: 0 = free; otherwise the owner's identity bits. Claimed by CAS from 0; given back
///   (CAS to 0) only after `count` was zeroed: by a reclaimer that has the kernel's proof
///   that the owner died, or by one that takes over an *idle* entry (`count` = the owner's
///   tag, no read locks).
/// - `count`: `tag << 32 | read locks held`, or 0 (free, or claimed and not counted yet).
///   Only the owner's threads change it while it carries their tag (CAS, so a reclaimer's
///   zeroing and an owner's increment are ordered); a zeroed `count` is never the owner's
///   again until it claims the entry anew.
#[repr(C)]
struct ReaderEntry {
    id: AtomicU64,
    count: AtomicU64,
}

#[repr(C)]
pub(crate) struct RwState<T> {
    /// The writer's lock (see `RawLock`): held from the moment a writer wants in, so new
    /// readers wait (writers are preferred); readers sleep on its word too, and a writer's
    /// release wakes everyone.
    w: RawLock,
    /// Bumped (and woken) by a reader leaving while a writer holds `w`: the writer sleeps
    /// here until the reader entries drain.
    drain: AtomicU32,
    /// Readers asleep on `drain` because every entry was in use: a reader whose entry goes
    /// idle then bumps `drain` and wakes them (they may take it over). Incremented (SeqCst)
    /// before the sleeper's last look at the entries; the leaver reads it (SeqCst) after
    /// its count went to zero: one of the two sees the other (Dekker).
    entry_waiters: AtomicU32,
    /// One entry per reading process (see [`ReaderEntry`]). A writer that waits `POLL` for
    /// readers clears the entries of processes the kernel proved dead, so a reader killed
    /// inside its read section does not block writers for ever.
    ///
    /// Readers: increment their entry's `count` (SeqCst RMW), then check `w` is free with a
    /// SeqCst load (else back off); writers: take `w`, a SeqCst RMW on it, then wait until
    /// every `count` reads zero locks with SeqCst loads. In the single order of SeqCst
    /// operations at least one side sees the other (Dekker).
    readers: [ReaderEntry; RWLOCK_READER_SLOTS],
    data: ShmCell<T>,
}

// SAFETY: repr(C) of atomics, a ShmSafe lock and a ShmSafe value.
unsafe impl<T: ShmSafe> ShmSafe for RwState<T> {}

impl<T> RwState<T> {
    fn new(value: T) -> Self {
        RwState {
            w: RawLock::new(),
            drain: AtomicU32::new(0),
            entry_waiters: AtomicU32::new(0),
            readers: std::array::from_fn(|_| ReaderEntry {
                id: AtomicU64::new(0),
                count: AtomicU64::new(0),
            }),
            data: ShmCell::new(value),
        }
    }

    /// Counts one more read lock of `me` in the first entry from its home slot that is its
    /// own or free, else in an entry taken over from a dead or idle process (a process may
    /// end up with two entries; each guard knows its own); the entry's index, or `None` if
    /// every entry is in use by another live process.
    fn enter(&self, me: Me) -> Option<usize> {
        let n = self.readers.len();
        let first = me.token() as usize % n;
        for pass in 0..2 {
            for k in 0..n {
                let i = (first + k) % n;
                if let Some(i) = self.enter_at(i, me) {
                    return Some(i);
                }
            }
            if pass == 0 && !(0..n).any(|k| self.reclaim((first + k) % n, true)) {
                return None;
            }
        }
        None
    }

    /// One more read lock in entry `i` if it is `me`'s (and counting) or free.
    fn enter_at(&self, i: usize, me: Me) -> Option<usize> {
        let e = &self.readers[i];
        let tag = tag_of(me.id);
        let id = e.id.load(Ordering::Acquire);
        if id == me.id {
            let mut c = e.count.load(Ordering::Relaxed);
            // Not our tag: being claimed by another of our threads, or taken over.
            while c & !COUNT == tag && c & COUNT < COUNT {
                match e.count.compare_exchange_weak(c, c + 1, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => return Some(i),
                    Err(x) => c = x,
                }
            }
            None
        } else if id == 0
            && e.id.compare_exchange(0, me.id, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            // `count` is 0 whenever `id` is (a reclaimer zeroes it first, with Release).
            e.count
                .compare_exchange(0, tag | 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
                .then_some(i)
        } else {
            None
        }
    }

    /// Counts one read lock of entry `i` less — if the entry is `me`'s (a guard inherited by
    /// a forked child must not release its parent's read lock). The entry stays `me`'s.
    fn leave(&self, i: usize, me: Me) {
        let e = &self.readers[i];
        let tag = tag_of(me.id);
        let mut c = e.count.load(Ordering::Relaxed);
        loop {
            if c & !COUNT != tag || c & COUNT == 0 || e.id.load(Ordering::Relaxed) != me.id {
                return;
            }
            match e.count.compare_exchange_weak(c, c - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(x) => c = x,
            }
        }
        dekker_fence();
        let idle_wanted = c & COUNT == 1 && self.entry_waiters.load(Ordering::SeqCst) != 0;
        if idle_wanted || self.w.word().load(Ordering::SeqCst) & ID_MASK != 0 {
            self.drain.fetch_add(1, Ordering::Release);
            wait::wake_all(&self.drain);
        }
    }

    fn no_readers(&self) -> bool {
        self.readers.iter().all(|e| e.count.load(Ordering::SeqCst) & COUNT == 0)
    }

    /// Whether `enter` could now find an entry: `me`'s, a free one, or an idle one.
    fn any_enterable(&self, me: Me) -> bool {
        self.readers.iter().any(|e| {
            let id = e.id.load(Ordering::SeqCst);
            let c = e.count.load(Ordering::SeqCst);
            id == 0 || id == me.id || c == tag_of(id)
        })
    }

    /// Frees entry `i` if its owner is proved dead, or (`take_idle`) holds no read lock in
    /// it; whether it freed it.
    fn reclaim(&self, i: usize, take_idle: bool) -> bool {
        let e = &self.readers[i];
        let id = e.id.load(Ordering::Acquire);
        if id == 0 {
            return false;
        }
        let c = e.count.load(Ordering::SeqCst);
        let idle = take_idle && c == tag_of(id);
        // An entry claimed but not counted yet (count 0) is taken only from the dead: its
        // owner is between its two CASes.
        if !idle && ident::alive(id) {
            return false;
        }
        if c != 0 && e.count.compare_exchange(c, 0, Ordering::SeqCst, Ordering::Relaxed).is_err() {
            return false;
        }
        let freed = e.id.compare_exchange(id, 0, Ordering::Release, Ordering::Relaxed).is_ok();
        if freed && !idle {
            multiproc_arena::event!(
                info,
                target: "multiproc::lock",
                dead_reader = id,
                "rwlock read entry of a dead reader reclaimed"
            );
        }
        freed
    }

    /// Clears the entries of reading processes the kernel proved dead.
    fn reclaim_dead_readers(&self) {
        for (i, e) in self.readers.iter().enumerate() {
            if e.count.load(Ordering::Relaxed) & COUNT != 0 {
                self.reclaim(i, false);
            }
        }
    }

    fn read(&self, block: bool, dl: &mut Deadline) -> (Acquire, usize) {
        let me = ident::me();
        loop {
            let v = self.w.word().load(Ordering::Relaxed);
            if v & ID_MASK == 0 {
                match self.enter(me) {
                    Some(i) => {
                        dekker_fence();
                        let v2 = self.w.word().load(Ordering::SeqCst);
                        if v2 & ID_MASK == 0 {
                            let a =
                                if v2 & POISON != 0 { Acquire::Poisoned } else { Acquire::Clean };
                            return (a, i);
                        }
                        // A writer came in: make way for it.
                        self.leave(i, me);
                        continue;
                    }
                    None => {
                        // Every entry is taken by another process.
                        if !block || dl.passed() {
                            return (Acquire::Busy, 0);
                        }
                        self.reclaim_dead_readers();
                        self.entry_waiters.fetch_add(1, Ordering::SeqCst);
                        let g = self.drain.load(Ordering::SeqCst);
                        dekker_fence();
                        let woke = if self.any_enterable(me) {
                            Wake::Woken
                        } else {
                            wait::wait(&self.drain, g, dl, true)
                        };
                        self.entry_waiters.fetch_sub(1, Ordering::Relaxed);
                        if woke == Wake::TimedOut {
                            return (Acquire::Busy, 0);
                        }
                        continue;
                    }
                }
            }
            // A writer holds or wants the lock.
            if !block || dl.passed() {
                if !self.writer_dead_released(v) {
                    return (Acquire::Busy, 0);
                }
                continue;
            }
            if !wait::flag64(self.w.word(), v, WAITERS) {
                continue;
            }
            match wait::wait64(self.w.word(), v | WAITERS, dl, true) {
                Wake::Woken => {}
                Wake::Poll => {
                    self.writer_dead_released(v | WAITERS);
                }
                Wake::TimedOut => return (Acquire::Busy, 0),
            }
        }
    }

    /// If the writer named in `v` is dead, releases its lock (poisoned) for everyone.
    fn writer_dead_released(&self, v: u64) -> bool {
        let holder = v & ID_MASK;
        if holder == 0 || ident::alive(holder) {
            return false;
        }
        let ok =
            self.w.word().compare_exchange(v, POISON, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        if ok {
            multiproc_arena::event!(
                warn,
                target: "multiproc::lock",
                dead_holder = holder,
                "rwlock write lock released for a dead writer (poisoned)"
            );
            wait::wake_all64(self.w.word());
        }
        ok
    }

    fn write(&self, block: bool, dl: &mut Deadline) -> Acquire {
        let me = ident::me();
        let a = if block { self.w.lock(me, dl) } else { self.w.try_lock(me) };
        if !a.acquired() {
            return a;
        }
        // A SeqCst RMW on the word (it changes nothing) orders our hold of it before the
        // SeqCst loads of the reader entries: see `dekker_fence`.
        self.w.word().fetch_or(0, Ordering::SeqCst);
        dekker_fence();
        loop {
            let g = self.drain.load(Ordering::Acquire);
            if self.no_readers() {
                fence(Ordering::Acquire);
                return a;
            }
            let outcome = if block {
                wait::wait(&self.drain, g, dl, true)
            } else {
                self.reclaim_dead_readers();
                if self.no_readers() {
                    continue;
                }
                Wake::TimedOut
            };
            match outcome {
                Wake::Woken => {}
                Wake::Poll => self.reclaim_dead_readers(),
                Wake::TimedOut => {
                    self.reclaim_dead_readers();
                    if self.no_readers() {
                        continue;
                    }
                    self.w.unlock(me, false, true);
                    return Acquire::Busy;
                }
            }
        }
    }
}

/// A readers–writer lock over a `T` in shared memory (std's `RwLock` for processes; not in
/// Python).
///
/// Any number of readers, or one writer. Writers are preferred: once a writer waits, new
/// readers wait too (so a thread that takes a second read lock while a writer waits can
/// deadlock, as std warns). When a process dies holding the write lock, the next reader or
/// writer gets it within 100 ms, poisoned; a thread panicking with the write guard poisons it
/// too. A process that dies holding read locks stops blocking writers within 100 ms (its
/// reader entry is cleared). Read locks are counted per process in [`RWLOCK_READER_SLOTS`]
/// entries; readers from more processes at once wait for an entry.
///
/// ```
/// use multiproc_ipc_lock::RwLock;
/// let cfg = RwLock::new([0u32; 4]).unwrap();
/// cfg.write().unwrap()[0] = 7;
/// let (a, b) = (cfg.read().unwrap(), cfg.read().unwrap());
/// assert_eq!(a[0] + b[0], 14);
/// ```
pub struct RwLock<T: ShmSafe> {
    state: Shared<RwState<T>>,
}

/// Shared access to an [`RwLock`]'s value; released on drop.
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ShmSafe> {
    lock: &'a RwLock<T>,
    entry: usize,
    _not_send: PhantomData<*const ()>,
}

/// Exclusive access to an [`RwLock`]'s value; released on drop.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ShmSafe> {
    lock: &'a RwLock<T>,
    panicking: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: shared guards only give `&T`, and T: ShmSafe is Sync.
unsafe impl<T: ShmSafe> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe> Sync for RwLockWriteGuard<'_, T> {}

impl<T: ShmSafe> RwLock<T> {
    fn read_guard(&self, entry: usize) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard { lock: self, entry, _not_send: PhantomData }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard { lock: self, panicking: std::thread::panicking(), _not_send: PhantomData }
    }

    /// Locks for reading, blocking while a writer holds or waits for the lock.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let (a, i) = self.state.read(true, &mut Deadline::never());
        to_lock_result(a, self.read_guard(i))
    }

    /// Locks for reading if possible now.
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let (a, i) = self.state.read(false, &mut Deadline::never());
        to_try_lock_result(a, || self.read_guard(i))
    }

    /// Locks for reading, waiting at most `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> TryLockResult<RwLockReadGuard<'_, T>> {
        let (a, i) = self.state.read(true, &mut Deadline::after(timeout));
        to_try_lock_result(a, || self.read_guard(i))
    }

    /// Locks for writing, blocking until no reader or writer holds the lock.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let a = self.state.write(true, &mut Deadline::never());
        to_lock_result(a, self.write_guard())
    }

    /// Locks for writing if possible now.
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let a = self.state.write(false, &mut Deadline::never());
        to_try_lock_result(a, || self.write_guard())
    }

    /// Locks for writing, waiting at most `timeout`.
    pub fn try_write_for(&self, timeout: Duration) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        let a = self.state.write(true, &mut Deadline::after(timeout));
        to_try_lock_result(a, || self.write_guard())
    }
}

impl<T: ShmSafe> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard means no writer holds the lock (writers wait for every reader
        // entry to drain), so only shared references to the value exist.
        unsafe { &*self.lock.state.data.get() }
    }
}

impl<T: ShmSafe> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.state.leave(self.entry, ident::me());
    }
}

crate::handle::value_lock!(
    RwLock(RwState), raw: w, peek: try_read, guards: RwLockReadGuard, RwLockWriteGuard;
    exclusive: RwLockWriteGuard.lock, wake_all: true;
    docs: "readers-writer lock", "lock", "writer", ".";
    /// The pid of the process holding (or waiting for readers to leave) the write lock.
    owner: writer
);
