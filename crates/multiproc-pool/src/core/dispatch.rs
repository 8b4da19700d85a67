//! Handing out tasks and collecting results: draining the result rings, the depth per
//! worker, moving pending tasks onto the task rings.

use super::death::Dead;
use super::{Core, Deliveries, Inner, PoolState, WorkerSlot};
use crate::error::{Error, ErrorKind};
use crate::func::{MSG_INIT_FAILED, MSG_READY, MSG_RESULT, MSG_TASK};
use crate::ring::{sleep_unless, Pop};
use crate::shm::{RES_SPACE, TASK_SPACE, TASK_WAITING, WAKE_AT};
use multiproc_arena::futex::Deadline;
use multiproc_arena::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Least time between two `waitpid` sweeps when results keep coming.
const CHECK_EVERY: Duration = Duration::from_millis(2);
/// Work queued ahead per worker, in time.
const DEPTH_BUDGET_NS: f64 = 2_000_000.0;
const MAX_DEPTH: usize = 256;

impl Inner {
    /// Collects results, looks after workers, hands out tasks. Skips if another thread is at
    /// it.
    pub(super) fn pump(&self, force_check: bool) {
        let Ok(mut core) = self.core.try_lock() else {
            return;
        };
        let mut d = Deliveries::default();
        self.drain_all(&mut core, &mut d);
        let now = Instant::now();
        if force_check || now.duration_since(core.last_check) >= CHECK_EVERY {
            core.last_check = now;
            self.check_workers(&mut core, &mut d);
        }
        self.dispatch(&mut core, &mut d);
        self.set_wake_hints(&core);
        self.note_work(&core);
        drop(core);
        if !d.is_empty() {
            d.run();
            self.global.ring_if_waiting();
        }
    }

    pub(super) fn drain_all(&self, core: &mut Core, d: &mut Deliveries) {
        for i in 0..core.workers.len() {
            self.drain(core, i, d);
        }
    }

    /// Reads every complete message on worker `i`'s result ring.
    pub(super) fn drain(&self, core: &mut Core, i: usize, d: &mut Deliveries) {
        let mut any = false;
        loop {
            let w = &mut core.workers[i];
            let mut msg = std::mem::take(&mut w.partial);
            let r = w.results.pop(&mut msg);
            if r == Pop::Empty {
                core.workers[i].partial = msg;
                break;
            }
            any = true;
            if r == Pop::Partial {
                core.workers[i].partial = msg;
                continue;
            }
            self.on_message(core, i, &msg, d);
            msg.clear();
            core.workers[i].partial = msg;
        }
        if any {
            self.slots[i].wake_if_waiting(RES_SPACE);
        }
    }

    fn on_message(&self, core: &mut Core, i: usize, msg: &[u8], d: &mut Deliveries) {
        match msg.first().copied() {
            Some(MSG_READY) => {
                let w = &mut core.workers[i];
                w.ready = true;
                w.early_deaths = 0;
            }
            Some(MSG_INIT_FAILED) => {
                let text = String::from_utf8_lossy(&msg[1..]).into_owned();
                let err = Error::new(ErrorKind::Initializer, text);
                self.break_pool(core, err, d);
            }
            Some(MSG_RESULT) if msg.len() >= crate::func::RESULT_HEADER => {
                let id = u64::from_le_bytes(msg[1..9].try_into().expect("8"));
                let busy = u64::from_le_bytes(msg[9..17].try_into().expect("8"));
                let Some(rec) = core.workers[i].inflight.pop_front() else {
                    return; // failed already (terminate/break): drop the late result
                };
                debug_assert_eq!(rec.seq, id, "results come back in order");
                core.avg_ns = core.avg_ns * 0.9 + busy as f64 * 0.1;
                let a = d.data.len();
                d.data.extend_from_slice(&msg[crate::func::RESULT_HEADER..]);
                d.items.push((rec.sink, rec.first, rec.count, a, d.data.len()));
            }
            _ => {}
        }
    }

    /// Work queued ahead per worker for the measured task time.
    fn depth(core: &Core) -> usize {
        ((DEPTH_BUDGET_NS / core.avg_ns.max(1.0)) as usize).clamp(2, MAX_DEPTH)
    }

    /// Moves pending tasks onto workers' rings, least-loaded worker first.
    pub(super) fn dispatch(&self, core: &mut Core, _d: &mut Deliveries) {
        if !matches!(core.state, PoolState::Running | PoolState::Closed) {
            return;
        }
        let depth = Self::depth(core);
        self.depth_hint.store(depth, Ordering::Relaxed);
        let quota = self.cfg.max_tasks_per_child;
        let mut touched = 0u64;
        let mut scratch = std::mem::take(&mut core.scratch);
        while let Some(front) = core.pending.front() {
            let need_gen = front.func.needs_gen();
            let len = crate::func::TASK_HEADER + front.func.prefix().len() + front.payload.len();
            let mut best: Option<usize> = None;
            for (i, w) in core.workers.iter().enumerate() {
                if w.proc.is_none() || w.retiring || w.gen < need_gen || w.inflight.len() >= depth {
                    continue;
                }
                if quota != 0 && w.sent >= quota {
                    continue;
                }
                let fits = if len <= w.tasks.max_fragment() {
                    w.tasks.fits(len)
                } else {
                    w.inflight.is_empty()
                };
                if !fits {
                    continue;
                }
                if best.map_or(true, |b| core.workers[b].inflight.len() > w.inflight.len()) {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            let mut rec = core.pending.pop_front().expect("front exists");
            if !rec.sink.start() {
                continue; // cancelled
            }
            let w = &mut core.workers[i];
            let seq = w.sent + 1;
            scratch.clear();
            scratch.push(MSG_TASK);
            scratch.extend_from_slice(&seq.to_le_bytes());
            scratch.extend_from_slice(&rec.count.to_le_bytes());
            let (idx, off) = rec.func.encode();
            scratch.extend_from_slice(&idx.to_le_bytes());
            scratch.extend_from_slice(&off);
            scratch.extend_from_slice(rec.func.prefix());
            scratch.extend_from_slice(&rec.payload);
            let sent = if scratch.len() <= w.tasks.max_fragment() {
                w.tasks.try_push(&scratch)
            } else {
                self.stream(i, w, &scratch)
            };
            if !sent {
                // The worker died while we streamed: leave the task for the next sweep.
                core.pending.push_front(rec);
                break;
            }
            rec.seq = seq;
            w.sent = seq;
            w.inflight.push_back(rec);
            if quota != 0 && w.sent >= quota {
                w.retiring = true;
            }
            touched |= 1 << (i % 64);
        }
        core.scratch = scratch;
        for i in 0..core.workers.len() {
            if touched & (1 << (i % 64)) != 0 {
                self.slots[i].wake_if_waiting(TASK_WAITING);
            }
        }
    }

    /// Streams a message larger than a fragment onto an idle worker's ring (under the lock;
    /// rare). False if the worker died meanwhile.
    fn stream(&self, i: usize, w: &mut WorkerSlot, msg: &[u8]) -> bool {
        let slot = &self.slots[i];
        let max = w.tasks.max_fragment();
        let mut rest = msg;
        while !rest.is_empty() {
            let n = rest.len().min(max);
            let more = n < rest.len();
            while !w.tasks.try_push_record(&rest[..n], more) {
                slot.wake_if_waiting(TASK_WAITING);
                let mut dl = Deadline::after(Duration::from_millis(5));
                sleep_unless(slot.futex(TASK_SPACE), || w.tasks.fits(n), &mut dl, None);
                if let Some(p) = w.proc.as_mut() {
                    if let Some(exit) = p.try_wait() {
                        // Put the exit back for the sweep to handle: simplest is to remember
                        // it was dead; the sweep's try_wait would not see it again.
                        w.proc = Some(Box::new(Dead { pid: w.pid, exit }));
                        return false;
                    }
                }
            }
            rest = &rest[n..];
            slot.wake_if_waiting(TASK_WAITING);
        }
        true
    }

    /// Tells each worker when to ring the doorbell: at the first task someone waits on
    /// eagerly, else when half its queue is done.
    pub(super) fn set_wake_hints(&self, core: &Core) {
        for (i, w) in core.workers.iter().enumerate() {
            if let Some(front) = w.inflight.front() {
                let n = w.inflight.len();
                let mut at = front.seq + (n as u64 - 1) / 2;
                for rec in w.inflight.iter().take(n / 2 + 1) {
                    if rec.sink.eager() {
                        at = at.min(rec.seq);
                        break;
                    }
                }
                self.slots[i].word(WAKE_AT).store(at, Ordering::Relaxed);
            }
        }
    }
}
