//! The ring's futex waits and wakes: [`multiproc_arena::futex`] normally.
//!
//! Under `--cfg multiproc_loom` the waits are modelled exactly (the arena's loom futex is
//! only a yield, which hides lost wake-ups): a loom mutex and condvar stand for the kernel's
//! wait queue, so a sleeper that the protocol fails to wake is a loom deadlock. A wait with
//! a deadline stays a yield (the arena's model). A wait that also polls for dead parties (in
//! reality it sleeps at most a time slice) blocks until woken or until a model thread dies
//! (`model_death`, which wakes every sleeper); after a death such waits only yield, as the
//! real ones whose slice runs out.

#[cfg(not(multiproc_loom))]
pub(crate) use multiproc_arena::futex::wake_all;

/// Sleeps while `*word == expected`, until woken or `until`; `false` when `until` passed.
/// `poll`: the caller polls for dead parties (see the module docs).
#[cfg(not(multiproc_loom))]
#[inline]
pub(crate) fn wait(
    word: &multiproc_arena::sync::atomic::AtomicU32,
    expected: u32,
    until: Option<std::time::Instant>,
    _poll: bool,
) -> bool {
    multiproc_arena::futex::wait(word, expected, until)
}

#[cfg(multiproc_loom)]
pub(crate) use model::model_death;
#[cfg(multiproc_loom)]
pub(crate) use model::{wait, wake_all};

#[cfg(multiproc_loom)]
mod model {
    use loom::sync::{Condvar, Mutex};
    use multiproc_arena::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    struct Sleeper {
        addr: usize,
        ticket: u64,
        woken: bool,
    }

    struct Queue {
        sleepers: Vec<Sleeper>,
        next: u64,
        dead: bool,
    }

    struct Park {
        q: Mutex<Queue>,
        cv: Condvar,
    }

    loom::lazy_static! {
        static ref PARK: Park = Park {
            q: Mutex::new(Queue { sleepers: Vec::new(), next: 0, dead: false }),
            cv: Condvar::new(),
        };
    }

    /// See [`super`]: the exact model of a futex wait.
    pub(crate) fn wait(
        word: &AtomicU32,
        expected: u32,
        until: Option<Instant>,
        poll: bool,
    ) -> bool {
        if until.is_some() {
            return multiproc_arena::futex::wait(word, expected, until);
        }
        let addr = word as *const AtomicU32 as usize;
        let mut q = PARK.q.lock().unwrap();
        if poll && q.dead {
            drop(q);
            loom::thread::yield_now();
            return true;
        }
        // The kernel compares the word under its queue lock, which every waker takes after
        // changing the word: the same here.
        if word.load(Ordering::SeqCst) != expected {
            return true;
        }
        let ticket = q.next;
        q.next += 1;
        q.sleepers.push(Sleeper { addr, ticket, woken: false });
        loop {
            q = PARK.cv.wait(q).unwrap();
            let pos = q.sleepers.iter().position(|s| s.ticket == ticket).expect("own entry");
            if q.sleepers[pos].woken {
                q.sleepers.remove(pos);
                return true;
            }
        }
    }

    /// Wakes every sleeper on `word`.
    pub(crate) fn wake_all(word: &AtomicU32) -> usize {
        let addr = word as *const AtomicU32 as usize;
        let mut q = PARK.q.lock().unwrap();
        let mut n = 0;
        for s in q.sleepers.iter_mut().filter(|s| s.addr == addr && !s.woken) {
            s.woken = true;
            n += 1;
        }
        if n > 0 {
            PARK.cv.notify_all();
        }
        n
    }

    /// A model thread "died" (was marked dead): wake every sleeper, as the time slices of
    /// the real waits would; from now on polling waits only yield.
    pub(crate) fn model_death() {
        let mut q = PARK.q.lock().unwrap();
        q.dead = true;
        for s in q.sleepers.iter_mut() {
            s.woken = true;
        }
        PARK.cv.notify_all();
    }
}
