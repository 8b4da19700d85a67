//! Who "I" am in a shared lock word, and whether a recorded holder is dead.
//!
//! A lock word names its holder by its whole arena [`Identity`](multiproc_arena::Identity)
//! (`registry << 32 | token`, bits 30 and 31 free for flags), written by the very CAS that
//! acquires, so a waiter never finds a holder half recorded. Whether a recorded process died
//! is the arena's question ([`multiproc_arena::liveness`]): a proof from the kernel, never a
//! guess from `/proc` or a pid, so a live holder in another PID namespace, behind `hidepid`,
//! or seen by a process out of descriptors is never taken over. Reading our own identity
//! costs one relaxed load (the arena caches it and forgets it in a forked child).
//!
//! Under `--cfg multiproc_loom` every loom thread is a "process" with its own small id, and
//! [`loom_support::die`](crate::loom_support::die) marks the calling thread dead.

/// Bits of a lock word that hold the holder's identity (all but bits 30 and 31).
pub(crate) const ID_MASK: u64 = !(3 << 30);

/// The caller's identity as stored in shared words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Me {
    /// The identity's bits: never 0, bits 30 and 31 clear.
    pub(crate) id: u64,
}

impl Me {
    /// The token (30 bits): a small number that differs between live processes, for hashing.
    pub(crate) fn token(self) -> u32 {
        (self.id & ((1 << 30) - 1)) as u32
    }
}

pub(crate) use imp::{alive, me, thread_tag};

#[cfg(not(multiproc_loom))]
mod imp {
    use super::Me;
    use multiproc_arena::Identity;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The calling process: one relaxed load once known.
    #[inline]
    pub(crate) fn me() -> Me {
        Me { id: Identity::current().bits() }
    }

    /// Whether the process recorded as `id` (identity bits) may still run: `false` only
    /// when the kernel proved it dead. 0 (nothing recorded yet) counts as alive.
    pub(crate) fn alive(id: u64) -> bool {
        match Identity::from_bits(id) {
            Some(i) => !i.is_dead(),
            None => true,
        }
    }

    static NEXT_TAG: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TAG: Cell<u64> = const { Cell::new(0) };
    }

    /// A number naming the calling thread, unique within the process (and kept by the one
    /// thread of a forked child, whose identity differs).
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
    use super::Me;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub(crate) struct Registry {
        next: AtomicU32,
        dead: std::sync::Mutex<Vec<u64>>,
    }

    loom::lazy_static! {
        pub(crate) static ref REGISTRY: Registry =
            Registry { next: AtomicU32::new(1), dead: std::sync::Mutex::new(Vec::new()) };
    }
    loom::thread_local! {
        static ID: Cell<u64> = Cell::new(0);
    }

    /// Model "processes" share one registry (fingerprint 1) with tokens 1, 2, …
    pub(crate) fn me() -> Me {
        let id = ID.with(|c| {
            if c.get() == 0 {
                let token = REGISTRY.next.fetch_add(1, Ordering::Relaxed) as u64;
                c.set(1 << 32 | token);
            }
            c.get()
        });
        Me { id }
    }

    pub(crate) fn alive(id: u64) -> bool {
        !REGISTRY.dead.lock().unwrap().contains(&id)
    }

    pub(crate) fn mark_dead(id: u64) {
        REGISTRY.dead.lock().unwrap().push(id);
    }

    pub(crate) fn thread_tag() -> u64 {
        me().id
    }
}

#[cfg(multiproc_loom)]
pub(crate) use imp::mark_dead;

#[cfg(all(test, not(multiproc_loom)))]
mod tests {
    #[test]
    fn me_is_this_process() {
        let me = super::me();
        assert_eq!(super::me(), me);
        assert_eq!(me.id & !super::ID_MASK, 0, "flag bits are free");
        assert_ne!(me.token(), 0);
        assert!(super::alive(me.id));
        assert!(super::alive(0), "nothing recorded is not a proof of death");
        // Another registry's process: no proof, so alive.
        assert!(super::alive(me.id ^ (0x5a << 32)));
    }
}
