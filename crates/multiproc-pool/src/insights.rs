//! Per-worker counters: tasks, items, time busy and time waiting for work.

use crate::shm::{SlotShm, BUSY_NS, ITEMS, TASKS, WAIT_NS};
use multiproc_arena::sync::atomic::Ordering;
use std::time::Duration;

/// What one worker slot did since the pool started (summed over the processes that held
/// the slot: replacements continue the counts). From [`Pool::insights`](crate::Pool::insights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInsights {
    /// The slot's index (0..processes).
    pub index: usize,
    /// The pid of the process now in the slot (0 if none).
    pub pid: u32,
    /// Tasks (chunks) completed.
    pub tasks: u64,
    /// Items completed (a task carries `chunksize` items).
    pub items: u64,
    /// Time spent running tasks.
    pub busy: Duration,
    /// Time spent waiting for a task.
    pub waiting: Duration,
    /// Processes that ended in this slot and were replaced (deaths, timeouts,
    /// `max_tasks_per_child`).
    pub restarts: u64,
}

impl WorkerInsights {
    pub(crate) fn read(index: usize, pid: u32, restarts: u64, shm: &SlotShm) -> Self {
        let w = |i| shm.word(i).load(Ordering::Relaxed);
        WorkerInsights {
            index,
            pid,
            tasks: w(TASKS),
            items: w(ITEMS),
            busy: Duration::from_nanos(w(BUSY_NS)),
            waiting: Duration::from_nanos(w(WAIT_NS)),
            restarts,
        }
    }
}
