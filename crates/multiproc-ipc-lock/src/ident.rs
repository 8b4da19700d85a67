//! Who "I" am in a shared lock word, and whether a recorded holder is still alive.
//!
//! A lock word names its holder by pid (30 bits; Linux pids stay below 2^22). A side word next
//! to it holds `pid << 32 | low 32 bits of the start time`, so a waiter can tell the holder
//! from a later process that reused its pid. Reading our own pid must cost nothing on the
//! uncontended path (a `getpid` system call is several times the whole acquire), so it is
//! cached in a static and invalidated in the child by a `pthread_atfork` handler.
//!
//! Under `--cfg multiproc_loom` every loom thread is a "process" with its own small id, and
//! [`loom_support::die`](crate::loom_support::die) marks the calling thread dead.

/// Bits of a lock word that hold the holder's id.
pub(crate) const ID_MASK: u32 = (1 << 30) - 1;

/// The caller's identity as stored in shared words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    /// The pid (under loom: the model thread's id), never 0, within [`ID_MASK`].
    pub(crate) id: u32,
    /// `pid << 32 | start_time as u32`; 0 when unknown.
    pub(crate) side: u64,
}

#[cfg(not(multiproc_loom))]
pub(crate) use imp::register_at_fork;
pub(crate) use imp::{alive, me, thread_tag};

/// Whether process `pid`, whose start time's low `bits` bits were `start`, is alive.
/// A `pid` of 0 (not recorded yet) counts as alive, a `start` of 0 (unknown) is not checked.
pub(crate) fn alive_start_bits(pid: u32, start: u64, bits: u32) -> bool {
    pid == 0 || imp::alive_with(pid, |t| start == 0 || t & ((1u64 << bits) - 1) == start)
}

#[cfg(not(multiproc_loom))]
mod imp {
    use super::{Me, ID_MASK};
    use multiproc_arena::{pid_alive, ProcessId};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    static ME_ID: AtomicU32 = AtomicU32::new(0);
    static ME_SIDE: AtomicU64 = AtomicU64::new(0);

    /// The calling process: two relaxed loads once initialised.
    #[inline]
    pub(crate) fn me() -> Me {
        let id = ME_ID.load(Ordering::Relaxed);
        if id != 0 {
            return Me { id, side: ME_SIDE.load(Ordering::Relaxed) };
        }
        me_slow()
    }

    /// Set once the fork handler below is registered; the cache is used only then.
    static AT_FORK_READY: AtomicU32 = AtomicU32::new(0);

    unsafe extern "C" fn forget_after_fork() {
        ME_ID.store(0, Ordering::Relaxed);
        ME_SIDE.store(0, Ordering::Relaxed);
    }

    /// Registers the fork handler. Runs from `.init_array` (before `main`, while the
    /// process has one thread), so no thread can fork between the first cached identity
    /// and the registration, and a forked child never finds a registration half done.
    pub(crate) extern "C" fn register_at_fork() {
        if AT_FORK_READY.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            crate::sys::at_fork_child(forget_after_fork);
            AT_FORK_READY.store(2, Ordering::Release);
        }
    }

    #[cfg(test)]
    pub(crate) fn at_fork_state() -> u32 {
        AT_FORK_READY.load(Ordering::Relaxed)
    }

    #[cold]
    fn me_slow() -> Me {
        // Normally done before main; a binary whose init section was dropped registers here.
        register_at_fork();
        let p = ProcessId::current();
        let id = p.pid();
        assert!(id != 0 && id <= ID_MASK, "pid {id} does not fit a lock word");
        let side = ((id as u64) << 32) | (p.start_time() & 0xffff_ffff);
        if AT_FORK_READY.load(Ordering::Acquire) == 2 {
            ME_SIDE.store(side, Ordering::Relaxed);
            ME_ID.store(id, Ordering::Relaxed);
        }
        Me { id, side }
    }

    /// Whether the process `id`, whose side word read `side`, is still running.
    ///
    /// When `side` belongs to `id` it also checks the start time (a recycled pid is dead);
    /// otherwise (the holder is between its acquiring CAS and its side store) the pid alone.
    pub(crate) fn alive(id: u32, side: u64) -> bool {
        if id == me().id {
            return true;
        }
        let start = side as u32;
        if (side >> 32) as u32 == id && start != 0 {
            ProcessId::of_pid(id).is_some_and(|p| p.start_time() as u32 == start)
        } else {
            pid_alive(id)
        }
    }

    /// Whether `pid` is alive and its start time passes `check` (`start == 0`: unknown).
    pub(crate) fn alive_with(pid: u32, check: impl Fn(u64) -> bool) -> bool {
        if pid == me().id {
            return true;
        }
        ProcessId::of_pid(pid).is_some_and(|p| check(p.start_time()))
    }

    static NEXT_TAG: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TAG: Cell<u64> = const { Cell::new(0) };
    }

    /// A number naming the calling thread, unique within the process (and kept by the one
    /// thread of a forked child, whose pid differs).
    #[inline]
    pub(crate) fn thread_tag() -> u64 {
        TAG.with(|t| {
            let v = t.get();
            if v != 0 {
                return v;
            }
            let v = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
            t.set(v);
            v
        })
    }
}

#[cfg(multiproc_loom)]
mod imp {
    use super::{Me, ID_MASK};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub(crate) struct Registry {
        next: AtomicU32,
        dead: std::sync::Mutex<Vec<u32>>,
    }

    loom::lazy_static! {
        pub(crate) static ref REGISTRY: Registry =
            Registry { next: AtomicU32::new(1), dead: std::sync::Mutex::new(Vec::new()) };
    }
    loom::thread_local! {
        static ID: Cell<u32> = Cell::new(0);
    }

    /// Whether any model thread died.
    pub(crate) fn any_dead() -> bool {
        !REGISTRY.dead.lock().unwrap().is_empty()
    }

    pub(crate) fn me() -> Me {
        let id = ID.with(|c| {
            if c.get() == 0 {
                c.set(REGISTRY.next.fetch_add(1, Ordering::Relaxed) & ID_MASK);
            }
            c.get()
        });
        Me { id, side: (id as u64) << 32 }
    }

    pub(crate) fn alive(id: u32, _side: u64) -> bool {
        !REGISTRY.dead.lock().unwrap().contains(&id)
    }

    pub(crate) fn alive_with(pid: u32, _check: impl Fn(u64) -> bool) -> bool {
        alive(pid, 0)
    }

    pub(crate) fn mark_dead(id: u32) {
        REGISTRY.dead.lock().unwrap().push(id);
    }

    pub(crate) fn thread_tag() -> u64 {
        me().id as u64
    }
}

#[cfg(multiproc_loom)]
pub(crate) use imp::{any_dead, mark_dead};

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    #[test]
    fn fork_handler_is_registered_before_main() {
        assert_eq!(super::imp::at_fork_state(), 2);
    }

    #[test]
    fn me_is_this_process() {
        let me = super::me();
        assert_eq!(super::me(), me);
        assert_eq!(super::imp::at_fork_state(), 2, "identity is cached");
        assert_eq!(me.id, std::process::id());
        assert_eq!(me.side >> 32, me.id as u64);
        assert!(super::alive(me.id, me.side));
        assert!(!super::alive(4_194_303, 0), "no such pid");
    }
}
