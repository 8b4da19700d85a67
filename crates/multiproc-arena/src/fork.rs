//! The arena's one fork handler, and handles counted across any fork.
//!
//! Every `fork()` made through libc (the spawn crate's, `libc::fork`, nix's) runs the
//! handler registered here before `main` (one `pthread_atfork` registration for the whole
//! arena):
//! - *prepare* takes the handle registry's lock (so no thread is half way through an update
//!   when the address space is copied) and counts every handle the child will inherit in its
//!   block's shared reference count — before the fork, so that the parent, free to drop its
//!   own copies as soon as `fork` returns, can never free a block the child still holds;
//! - *parent* releases the lock;
//! - *child* releases it, bumps [`epoch`], and lets [`liveness`](crate::liveness) give the
//!   child an identity of its own.
//!
//! So parent and child may each drop their copies: the block is freed once, by the last.
//!
//! The price: a child that never gives its inherited references back keeps the objects
//! allocated — one that is SIGKILLed, or one that `exec`s another program after a plain
//! `fork()` (`posix_spawn`, which `std::process::Command` and the spawn start method use,
//! runs no fork handler and costs nothing; a `Command` with `pre_exec` falls back to fork).
//! The objects are never freed early; their memory comes back when the arena goes.
//!
//! The registry maps each block this process holds handles of (by the address of its
//! shared count) to how many it holds. A process that ends without dropping its handles —
//! killed, or `_exit` after a fork — leaks their references (the blocks stay allocated, never
//! freed early) unless it calls [`release_handles`] first, as the spawn crate's forked
//! children and [`testing::fork`](crate::testing::fork) do. A count that would fall below
//! zero aborts the process: a block is never freed twice.
//!
//! Everything the child half does is async-signal-safe: atomics, and a walk over a map that
//! allocates nothing.

use std::cell::UnsafeCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Changes in every forked child: per-process caches compare it to see they were inherited
/// (cheaper than a `getpid` system call).
#[inline]
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// What the registry keeps per shared object: the local handle count, the width of its
/// shared count, and what freeing needs.
pub(crate) struct Held {
    count: u32,
    wide: bool,
    release: Release,
}

/// How to give an object back when the last reference goes (for [`release_handles`]): the
/// arena blocks to free, as `(offset, size, align)`.
#[derive(Debug)]
pub struct Release {
    /// The arena holding the blocks (kept mapped while the registry holds a reference).
    pub arena: crate::Arena,
    /// The blocks, as allocated.
    pub blocks: Vec<(crate::Offset<u8>, usize, usize)>,
}

struct Registry {
    locked: AtomicBool,
    map: UnsafeCell<Option<HashMap<usize, Held>>>,
    /// Process-local claims (see [`claim`]).
    claims: UnsafeCell<Option<HashSet<usize>>>,
}

// SAFETY: `map` and `claims` are only touched while `locked` is held (acquire/release spin
// lock).
unsafe impl Sync for Registry {}

static REGISTRY: Registry = Registry {
    locked: AtomicBool::new(false),
    map: UnsafeCell::new(None),
    claims: UnsafeCell::new(None),
};

fn lock() {
    while REGISTRY
        .locked
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

fn unlock() {
    REGISTRY.locked.store(false, Ordering::Release);
}

/// Runs `f` on the map under the lock.
fn with_map<R>(f: impl FnOnce(&mut HashMap<usize, Held>) -> R) -> R {
    lock();
    // SAFETY: the lock is held, so this is the only reference to the map.
    let map = unsafe { &mut *REGISTRY.map.get() };
    let r = f(map.get_or_insert_with(HashMap::new));
    unlock();
    r
}

/// Claims `key` for this process (an object that must have one user per process, such as one
/// end of a [`spsc`](crate::spsc) ring, by its address here): `false` if it is claimed already.
/// Under the registry's lock, which the fork handler holds across a fork, so a forked child
/// inherits exactly the claims of the objects it inherits.
pub(crate) fn claim(key: usize) -> bool {
    with_claims(|c| c.insert(key))
}

/// Gives a [`claim`] back.
pub(crate) fn unclaim(key: usize) {
    with_claims(|c| c.remove(&key));
}

/// Whether `key` is claimed in this process.
pub(crate) fn claimed(key: usize) -> bool {
    with_claims(|c| c.contains(&key))
}

fn with_claims<R>(f: impl FnOnce(&mut HashSet<usize>) -> R) -> R {
    lock();
    // SAFETY: the lock is held, so this is the only reference to the set.
    let claims = unsafe { &mut *REGISTRY.claims.get() };
    let r = f(claims.get_or_insert_with(HashSet::new));
    unlock();
    r
}

/// This process took one more handle of the block whose shared count is `refs`.
pub(crate) fn acquired(refs: &AtomicU32, release: impl FnOnce() -> Release) {
    acquired_at(refs as *const AtomicU32 as usize, false, release)
}

/// This process took a reference (held through one handle) to an object whose shared count
/// is the 64-bit `refs` and whose memory is `release`'s blocks: counted for every forked
/// child from now on, until [`released_wide`]. For crates whose objects keep their own
/// count (the queue).
pub fn acquired_wide(refs: &AtomicU64, release: impl FnOnce() -> Release) {
    acquired_at(refs as *const AtomicU64 as usize, true, release)
}

fn acquired_at(key: usize, wide: bool, release: impl FnOnce() -> Release) {
    let fresh = with_map(|m| match m.get_mut(&key) {
        Some(h) => {
            h.count += 1;
            false
        }
        None => true,
    });
    if fresh {
        // Build what freeing needs outside the lock (it clones an Arc and allocates).
        let r = release();
        with_map(|m| m.entry(key).or_insert(Held { count: 0, wide, release: r }).count += 1);
    }
}

/// This process dropped one handle of the block whose shared count is `refs`.
pub(crate) fn released(refs: &AtomicU32) {
    released_at(refs as *const AtomicU32 as usize)
}

/// The counterpart of [`acquired_wide`].
pub fn released_wide(refs: &AtomicU64) {
    released_at(refs as *const AtomicU64 as usize)
}

fn released_at(key: usize) {
    let gone = with_map(|m| {
        let h = m.get_mut(&key)?;
        h.count -= 1;
        if h.count == 0 {
            m.remove(&key)
        } else {
            None
        }
    });
    drop(gone); // the Arena clone and the block list, outside the lock
}

/// Drops one reference of a 64-bit count: `true` when it was the last (the caller frees the
/// object). Aborts the process if the count was already zero.
pub fn drop_ref_wide(refs: &AtomicU64) -> bool {
    last_ref(refs.fetch_sub(1, Ordering::Release))
}

/// Drops one shared reference; `true` when it was the last (the caller frees the block).
/// Aborts the process if the count was already zero.
pub(crate) fn drop_ref(refs: &AtomicU32) -> bool {
    last_ref(refs.fetch_sub(1, Ordering::Release) as u64)
}

/// Whether the count that was `old` before a decrement held the last reference; aborts on
/// an underflow (a block is never freed twice).
fn last_ref(old: u64) -> bool {
    if old == 0 {
        eprintln!("multiproc-arena: a shared object's reference count fell below zero");
        std::process::abort();
    }
    if old == 1 {
        std::sync::atomic::fence(Ordering::Acquire);
        true
    } else {
        false
    }
}

/// Gives back every reference this process holds (the handles themselves must not be
/// dropped afterwards): for a forked child about to `_exit` without running destructors, so
/// that what it inherited is not leaked. Frees the blocks whose last reference it held.
pub fn release_handles() {
    let map = with_map(std::mem::take);
    for (key, h) in map {
        for _ in 0..h.count {
            let last = if h.wide {
                // SAFETY: the key is the address of a live object's count: the registry held
                // a reference (and an Arena clone keeping the mapping) until now.
                drop_ref_wide(unsafe { &*(key as *const AtomicU64) })
            } else {
                // SAFETY: as above.
                drop_ref(unsafe { &*(key as *const AtomicU32) })
            };
            if last {
                let r = &h.release;
                for &(off, size, align) in &r.blocks {
                    // SAFETY: the count reached zero, so no handle in any process uses the
                    // object; its blocks were allocated with these sizes and alignments.
                    unsafe { r.arena.free_raw(off, size, align) };
                }
                break;
            }
        }
    }
}

/// A process-local map from an identity to an object held weakly (the objects a process
/// opened once and shares between its handles: an arena's mapping, a spill file, a manager
/// session), safe across `fork`: it is guarded by the registry's lock, which the fork handler
/// holds across every fork, so a forked child never inherits it locked or half updated (a
/// `std::sync::Mutex` there deadlocks the child whose parent forked while another thread held
/// it). Hold it only for short lookups: every fork waits for it.
pub struct WeakMap<T> {
    items: UnsafeCell<Vec<(u64, std::sync::Weak<T>)>>,
}

// SAFETY: `items` is only touched under the registry's lock; what it holds (`Weak<T>`) is
// `Send + Sync` for `T: Send + Sync`.
unsafe impl<T: Send + Sync> Sync for WeakMap<T> {}

impl<T> WeakMap<T> {
    /// An empty map.
    pub const fn new() -> WeakMap<T> {
        WeakMap { items: UnsafeCell::new(Vec::new()) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Vec<(u64, std::sync::Weak<T>)>) -> R) -> R {
        lock();
        // SAFETY: the lock is held, so this is the only reference to the list.
        let r = f(unsafe { &mut *self.items.get() });
        unlock();
        r
    }

    /// The live object registered under `id`.
    pub fn get(&self, id: u64) -> Option<std::sync::Arc<T>> {
        // Only the entry that matches is upgraded: no strong count is dropped under the lock.
        self.with(|v| v.iter().filter(|(i, _)| *i == id).find_map(|(_, w)| w.upgrade()))
    }

    /// Registers `obj` under `id` (and forgets the entries whose objects are gone).
    pub fn insert(&self, id: u64, obj: &std::sync::Arc<T>) {
        let w = std::sync::Arc::downgrade(obj);
        // Dropping a `Weak` under the lock frees at most its allocation, never runs `T`'s drop.
        self.with(|v| {
            v.retain(|(_, w)| w.strong_count() > 0);
            v.push((id, w));
        });
    }

    /// The object registered under `id`, or `obj`, registered (`obj` is dropped outside the
    /// lock when one was there).
    pub fn adopt(&self, id: u64, obj: std::sync::Arc<T>) -> std::sync::Arc<T> {
        let w = std::sync::Arc::downgrade(&obj);
        let found = self.with(|v| {
            let found = v.iter().filter(|(i, _)| *i == id).find_map(|(_, w)| w.upgrade());
            if found.is_none() {
                v.retain(|(_, w)| w.strong_count() > 0);
                v.push((id, w));
            }
            found
        });
        found.unwrap_or(obj)
    }

    /// Every live object (strong handles, taken under the lock and dropped by the caller,
    /// outside it).
    pub fn live(&self) -> Vec<std::sync::Arc<T>> {
        self.with(|v| v.iter().filter_map(|(_, w)| w.upgrade()).collect())
    }
}

impl<T> Default for WeakMap<T> {
    fn default() -> Self {
        WeakMap::new()
    }
}

impl<T> std::fmt::Debug for WeakMap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakMap").field("entries", &self.with(|v| v.len())).finish()
    }
}

/// How many handles of shared objects this process holds (all blocks together).
pub fn handles_held() -> u64 {
    with_map(|m| m.values().map(|h| h.count as u64).sum())
}

/// Before the fork, in the parent: take the lock and count the child's copies of every
/// handle now, so that the parent, which may drop its own as soon as `fork` returns, can
/// never bring a count to zero while the child still holds the block. (If the fork then
/// fails, those counts are leaked: the blocks stay allocated, never freed early.)
extern "C" fn prepare() {
    lock();
    // SAFETY: the lock is held.
    if let Some(m) = unsafe { &*REGISTRY.map.get() } {
        for (&key, h) in m {
            let old = if h.wide {
                // SAFETY: this process holds `h.count` references to this live object (the
                // map entry proves it), so the count's address is valid.
                let refs = unsafe { &*(key as *const AtomicU64) };
                refs.fetch_add(h.count as u64, Ordering::Relaxed).min(u32::MAX as u64) as u32
            } else {
                // SAFETY: as above.
                let refs = unsafe { &*(key as *const AtomicU32) };
                refs.fetch_add(h.count, Ordering::Relaxed)
            };
            if old > u32::MAX / 2 {
                // Overflow is near: better an abort than a count that wraps to zero.
                std::process::abort();
            }
        }
    }
}

extern "C" fn parent() {
    unlock();
}

extern "C" fn child() {
    // `prepare` took the lock in the parent before the fork and counted this child's
    // handles; this thread (the only one in the child) holds the lock now.
    unlock();
    EPOCH.fetch_add(1, Ordering::Relaxed);
    crate::liveness::after_fork_in_child();
}

static REGISTERED: AtomicU32 = AtomicU32::new(0);

/// Registers the handler once; 2 when registered. Runs from `.init_array` (before `main`,
/// while the process has one thread), and again (a no-op) on first use.
pub(crate) extern "C" fn register() {
    if REGISTERED.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
        && crate::sys::at_fork(prepare, parent, child).is_ok()
    {
        REGISTERED.store(2, Ordering::Release);
    }
}

/// Whether the handler is registered (a forked child will drop its parent's identity).
pub(crate) fn registered() -> bool {
    register();
    REGISTERED.load(Ordering::Acquire) == 2
}

#[cfg(not(multiproc_loom))]
#[used]
#[link_section = ".init_array"]
static REGISTER_AT_FORK: extern "C" fn() = register;
