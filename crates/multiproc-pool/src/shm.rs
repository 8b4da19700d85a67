//! The pool's shared memory: per worker slot, two rings and a few control words; for the
//! whole pool, the parent's doorbell.
//!
//! Everything lives in one private [`Arena`] per pool, so a killed worker (which never
//! drops its handles) leaks nothing beyond the pool's life, and a replacement worker reuses
//! its slot's memory after the parent [`reset`](SlotShm::reset)s it.
//!
//! Per slot: the task and result rings ([`RingMem`]s, see [`crate::ring`]), and words
//! (`Array<AtomicU64>`), each group on its own cache line:
//! - written by the worker: `STARTED` (seq of the last task it began; tasks are numbered
//!   from 1 per worker process), `STARTED_AT` (when, ns since the pool's epoch), `BUSY_NS`,
//!   `WAIT_NS`, `TASKS`, `ITEMS` (insights);
//! - written by the parent: `WAKE_AT` (ring the doorbell once the task with this seq is
//!   done, if the parent sleeps).
//!
//! Futex words (`Array<AtomicU32>`): `TASK_WAITING` (the worker sleeps for tasks),
//! `RES_SPACE` (the worker sleeps for room in a full result ring), `TASK_SPACE` (the parent
//! sleeps for room to stream a large task), the flags of [`crate::ring::sleep_unless`].
//! Global: `DOORBELL` (a counter the parent's threads sleep on) and `PARENT_WAITING` (how
//! many of them do).

use multiproc_arena::spsc::{RingMem, HEADER_WORDS};
use multiproc_arena::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use multiproc_arena::{Arena, Array};
use serde::{Deserialize, Serialize};

/// Data words per ring (128 KiB).
pub(crate) const RING_WORDS: usize = 1 << 14;

pub(crate) const STARTED: usize = 32;
pub(crate) const STARTED_AT: usize = 33;
pub(crate) const BUSY_NS: usize = 34;
pub(crate) const WAIT_NS: usize = 35;
pub(crate) const TASKS: usize = 36;
pub(crate) const ITEMS: usize = 37;
pub(crate) const WAKE_AT: usize = 40;
const CTL_WORDS: usize = 64;

pub(crate) const TASK_WAITING: usize = 0;
pub(crate) const RES_SPACE: usize = 16;
pub(crate) const TASK_SPACE: usize = 32;
const SLOT_FUTEXES: usize = 48;

pub(crate) const DOORBELL: usize = 0;
pub(crate) const PARENT_WAITING: usize = 16;
const GLOBAL_FUTEXES: usize = 32;

/// One worker slot's shared memory.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SlotShm {
    tasks: RingMem,
    results: RingMem,
    words: Array<AtomicU64>,
    futex: Array<AtomicU32>,
}

/// The pool-wide words.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct GlobalShm {
    futex: Array<AtomicU32>,
}

/// Bytes of arena a pool of `slots` workers needs.
pub(crate) fn arena_bytes(slots: usize) -> usize {
    // Generous: the allocator rounds blocks up to powers of two; untouched pages of a memfd
    // cost nothing.
    let ring = 2 * (HEADER_WORDS + RING_WORDS) * 8;
    slots * (2 * ring + 2 * (CTL_WORDS * 8 + SLOT_FUTEXES * 4) + 8192) + (1 << 20)
}

impl SlotShm {
    pub(crate) fn new(arena: &Arena) -> multiproc_arena::Result<Self> {
        Ok(SlotShm {
            tasks: RingMem::new_in(arena, RING_WORDS)?,
            results: RingMem::new_in(arena, RING_WORDS)?,
            words: Array::from_fn_in(arena, CTL_WORDS, |_| AtomicU64::new(0))?,
            futex: Array::from_fn_in(arena, SLOT_FUTEXES, |_| AtomicU32::new(0))?,
        })
    }

    /// The task ring (parent → worker).
    pub(crate) fn tasks(&self) -> &RingMem {
        &self.tasks
    }

    /// The result ring (worker → parent).
    pub(crate) fn results(&self) -> &RingMem {
        &self.results
    }

    pub(crate) fn word(&self, i: usize) -> &AtomicU64 {
        &self.words[i]
    }

    pub(crate) fn futex(&self, i: usize) -> &AtomicU32 {
        &self.futex[i]
    }

    /// Zeroes the control words for a new worker process in this slot (the parent empties
    /// the rings through its halves).
    pub(crate) fn reset(&self) {
        for i in [STARTED, STARTED_AT, WAKE_AT] {
            self.words[i].store(0, Ordering::SeqCst);
        }
        for i in [TASK_WAITING, RES_SPACE, TASK_SPACE] {
            self.futex[i].store(0, Ordering::SeqCst);
        }
    }

    /// Wakes the sleeper on futex word `i` if it flagged itself (after a `SeqCst` fence).
    pub(crate) fn wake_if_waiting(&self, i: usize) {
        crate::ring::wake_if_waiting(&self.futex[i]);
    }
}

impl GlobalShm {
    pub(crate) fn new(arena: &Arena) -> multiproc_arena::Result<Self> {
        Ok(GlobalShm { futex: Array::from_fn_in(arena, GLOBAL_FUTEXES, |_| AtomicU32::new(0))? })
    }

    pub(crate) fn doorbell(&self) -> &AtomicU32 {
        &self.futex[DOORBELL]
    }

    pub(crate) fn parent_waiting(&self) -> &AtomicU32 {
        &self.futex[PARENT_WAITING]
    }

    /// Rings the doorbell: wakes every parent thread asleep on it.
    pub(crate) fn ring(&self) {
        self.futex[DOORBELL].fetch_add(1, Ordering::SeqCst);
        multiproc_arena::futex::wake_all(&self.futex[DOORBELL]);
    }

    /// Rings the doorbell if a parent thread sleeps on it.
    pub(crate) fn ring_if_waiting(&self) {
        multiproc_arena::sync::atomic::fence(Ordering::SeqCst);
        if self.futex[PARENT_WAITING].load(Ordering::Relaxed) != 0 {
            self.ring();
        }
    }
}
