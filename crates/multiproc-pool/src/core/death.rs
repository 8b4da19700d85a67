//! Looking after workers: reaping the dead (failing or re-queueing their tasks), killing
//! late tasks, retiring and restarting workers, breaking the pool.

use super::{Core, Deliveries, Inner, PoolState};
use crate::error::{Error, ErrorKind, WorkerExit};
use crate::func::MSG_STOP;
use crate::launch::WorkerProc;
use crate::shm::TASK_WAITING;
use std::time::{Duration, Instant};

/// Consecutive deaths before `READY` that break the pool.
const MAX_EARLY_DEATHS: u32 = 5;
/// First wait before starting a worker again after the system ran short of processes,
/// memory or descriptors; doubled after each failure up to [`LAUNCH_BACKOFF_MAX`].
const LAUNCH_BACKOFF_MIN: Duration = Duration::from_millis(5);
const LAUNCH_BACKOFF_MAX: Duration = Duration::from_millis(500);

impl Inner {
    /// Marks the pool broken: every queued and running task fails with `err`; workers go.
    pub(super) fn break_pool(&self, core: &mut Core, err: Error, d: &mut Deliveries) {
        if matches!(core.state, PoolState::Broken(_) | PoolState::Terminated) {
            return;
        }
        core.state = PoolState::Broken(err.clone());
        core.fail_all(&err, d);
    }

    /// Reaps dead workers (failing or re-queueing their tasks), kills late tasks, stops
    /// idle workers of a closing pool, starts replacements.
    pub(super) fn check_workers(&self, core: &mut Core, d: &mut Deliveries) {
        let need_gen = core.pending.front().map(|r| r.func.needs_gen()).unwrap_or(0);
        let closing = matches!(core.state, PoolState::Closed) && core.pending.is_empty();
        for i in 0..core.workers.len() {
            let exit = match core.workers[i].proc.as_mut() {
                Some(p) => p.try_wait(),
                None => None,
            };
            if let Some(exit) = exit {
                self.on_death(core, i, exit, d);
            }
            let w = &mut core.workers[i];
            if w.proc.is_none() {
                continue;
            }
            // A task past its time: kill the worker; its death is handled on the next sweep.
            if let (Some(limit), None) = (self.cfg.task_timeout, w.timed_out) {
                if let Some(front) = w.inflight.front() {
                    let (started, at) = crate::worker::started(&w.shm);
                    if started >= front.seq {
                        let now = self.epoch.elapsed().as_nanos() as u64;
                        if now.saturating_sub(at) > limit.as_nanos() as u64 {
                            w.timed_out = Some(started);
                            if let Some(p) = w.proc.as_mut() {
                                p.kill();
                            }
                        }
                    }
                }
            }
            // Old closure table, or the pool is closing and idle: ask it to stop.
            if w.gen < need_gen || closing {
                w.retiring = true;
            }
            let at_quota =
                self.cfg.max_tasks_per_child != 0 && w.sent >= self.cfg.max_tasks_per_child;
            if w.retiring
                && !at_quota
                && w.inflight.is_empty()
                && !w.stop_sent
                && w.tasks.try_push(&[MSG_STOP])
            {
                w.stop_sent = true;
                w.shm.wake_if_waiting(TASK_WAITING);
            }
        }
        self.start_workers(core, d);
    }

    /// How many workers should be alive: every slot, or with on-demand start (the
    /// executor's, CPython's `ProcessPoolExecutor` outside fork) one per queued or running
    /// task, up to every slot; never fewer than are alive (idle workers are kept).
    fn wanted_workers(&self, core: &Core) -> usize {
        if !self.cfg.on_demand {
            return core.workers.len();
        }
        let live = core.workers.iter().filter(|w| w.proc.is_some()).count();
        let tasks =
            core.pending.len() + core.workers.iter().map(|w| w.inflight.len()).sum::<usize>();
        live.max(tasks).min(core.workers.len())
    }

    /// Starts workers in empty slots, up to [`wanted_workers`](Self::wanted_workers).
    pub(super) fn start_workers(&self, core: &mut Core, d: &mut Deliveries) {
        let want = match core.state {
            PoolState::Running => true,
            PoolState::Closed => !core.pending.is_empty(),
            _ => false,
        };
        if !want {
            return;
        }
        if let Some((at, _)) = core.launch_retry {
            if Instant::now() < at {
                return; // the system was short a moment ago: back off
            }
        }
        let mut live = core.workers.iter().filter(|w| w.proc.is_some()).count();
        let mut wanted = self.wanted_workers(core);
        if self.cfg.on_demand && live < wanted {
            // A task counts as running until its result is collected: collect what is
            // there, so a worker that is in fact idle is reused rather than joined by a new
            // one (CPython's idle-worker semaphore).
            self.drain_all(core, d);
            wanted = self.wanted_workers(core);
        }
        for i in 0..core.workers.len() {
            if live >= wanted {
                return;
            }
            if core.workers[i].proc.is_some() {
                continue;
            }
            match self.launch(core, i) {
                Ok(()) => {
                    live += 1;
                    core.launch_retry = None;
                    let w = &core.workers[i];
                    if w.restarts > 0 {
                        multiproc_arena::event!(
                            info,
                            target: "multiproc::pool",
                            slot = i,
                            pid = w.pid,
                            restarts = w.restarts,
                            "replacement worker started"
                        );
                    }
                }
                // Short of processes (EAGAIN under RLIMIT_NPROC), memory or descriptors: a
                // condition that passes. The tasks wait in `pending` (their callers'
                // timeouts bound them) and the start is retried with backoff; the pool is
                // not broken.
                Err(e) if e.is_resource_shortage() => {
                    let wait = core
                        .launch_retry
                        .map_or(LAUNCH_BACKOFF_MIN, |(_, w)| (w * 2).min(LAUNCH_BACKOFF_MAX));
                    core.launch_retry = Some((Instant::now() + wait, wait));
                    return;
                }
                Err(e) => {
                    if live == 0 {
                        self.break_pool(core, e, d);
                        return;
                    }
                }
            }
        }
    }

    fn on_death(&self, core: &mut Core, i: usize, exit: WorkerExit, d: &mut Deliveries) {
        self.drain(core, i, d);
        let limit = self.cfg.task_timeout.unwrap_or_default();
        let w = &mut core.workers[i];
        w.proc = None;
        w.partial.clear();
        let (started, _) = crate::worker::started(&w.shm);
        let mut requeue = Vec::new();
        for rec in w.inflight.drain(..) {
            if rec.seq <= started {
                let err = if w.timed_out == Some(rec.seq) {
                    Error::task_timed_out(limit, w.pid)
                } else {
                    Error::worker_died(exit, w.pid)
                };
                d.fail(rec, err);
            } else {
                requeue.push(rec);
            }
        }
        // A death before READY counts towards breaking the pool unless it was a SIGKILL
        // (ours, the OOM killer's or a user's: not the worker's own failure).
        let early = !w.ready
            && !w.killed
            && w.timed_out.is_none()
            && exit != WorkerExit::Code(0)
            && exit != WorkerExit::Signal(multiproc_spawn::Signal::KILL);
        w.ready = false;
        w.restarts += 1;
        if early {
            w.early_deaths += 1;
        }
        let early_deaths = w.early_deaths;
        let pid = w.pid;
        if !w.retiring || exit != WorkerExit::Code(0) {
            multiproc_arena::event!(
                warn,
                target: "multiproc::pool",
                pid,
                exit = %exit,
                requeued = requeue.len(),
                "worker died; its slot gets a new worker"
            );
        }
        for rec in requeue.into_iter().rev() {
            core.pending.push_front(rec);
        }
        if early_deaths >= MAX_EARLY_DEATHS {
            let err = Error::new(
                ErrorKind::Initializer,
                format!(
                    "worker {pid} ended with {exit} before it was ready, {early_deaths} times in a row"
                ),
            );
            self.break_pool(core, err, d);
        }
    }
}

/// A worker found dead while streaming to it: reports its exit to the next sweep.
pub(super) struct Dead {
    pub(super) pid: u32,
    pub(super) exit: WorkerExit,
}

impl WorkerProc for Dead {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn try_wait(&mut self) -> Option<WorkerExit> {
        Some(self.exit)
    }
    fn kill(&mut self) {}
}
