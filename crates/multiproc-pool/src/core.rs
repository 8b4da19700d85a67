//! The parent side of a process pool: which worker holds which task, and what happens when
//! one dies.
//!
//! # Bookkeeping
//! Every task (a chunk of items of one job) is a [`TaskRec`]. It waits in `pending` (FIFO)
//! until a worker has room, then moves to that worker's `inflight` queue and gets the
//! worker's next sequence number. A worker runs its tasks in order and answers in order, so a
//! result always belongs to the front of its `inflight`. The record keeps the encoded
//! arguments until the result is in, so a task can be sent again.
//!
//! # A worker's death
//! When a worker ends without being asked (found by `waitpid`, at most a few milliseconds
//! after the fact while work is in flight), the parent first collects every result it
//! published, then reads its `STARTED` word: the in-flight task whose sequence number is
//! `STARTED` was running, and fails with [`ErrorKind::WorkerDied`] naming the signal or exit
//! code (or [`ErrorKind::TaskTimedOut`] if the parent killed it for running too long). Tasks
//! after it were never started: they go back to the front of `pending`, in order, and run on
//! another worker — never twice, never lost. A new worker takes the slot. A worker that
//! dies before it is ready five times in a row (other than by SIGKILL, which is never the
//! worker's own doing), or whose initializer fails, breaks the pool: every task fails with
//! [`ErrorKind::Initializer`] instead of respawning forever.
//!
//! # Who collects results
//! No dedicated thread sits between the caller and the workers: a thread waiting for a
//! result (`Future::result`, `map`, `imap`'s `next`) collects results and hands out tasks
//! itself ([`Inner::drive_until`]). A background thread does the same only while work is in
//! flight and no caller is waiting, so callbacks of `apply_async` still run.
//!
//! # Depth
//! Each worker gets up to `depth` tasks queued ahead (2 at first; then about 2 ms of work by
//! the measured task time, at most 256), so short tasks stream without a round trip each,
//! while long tasks stay in the parent, where `cancel` can still take them back and an idle
//! worker can take them.

use crate::error::{Error, ErrorKind, Result, WorkerExit};
use crate::func::{
    FuncRef, InitFn, Runner, MSG_INIT_FAILED, MSG_READY, MSG_RESULT, MSG_STOP, MSG_TASK,
};
use crate::future::Driver;
use crate::launch::{Launcher, WorkerProc};
use crate::ring::{sleep_unless, Pop, Receiver, Sender};
use crate::shm::{GlobalShm, SlotShm, RES_SPACE, TASK_SPACE, TASK_WAITING, WAKE_AT};
use crate::worker::{WorkerBoot, WorkerLocal};
use multiproc_arena::futex::{self, Deadline, Wake};
use multiproc_arena::sync::atomic::Ordering;
use multiproc_arena::Arena;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

/// How often a waiting parent looks for dead workers while work is in flight.
const POLL: Duration = Duration::from_millis(10);
/// Least time between two `waitpid` sweeps when results keep coming.
const CHECK_EVERY: Duration = Duration::from_millis(2);
/// How long a waiting parent spins for results before sleeping.
const SPIN: Duration = Duration::from_micros(20);
/// Work queued ahead per worker, in time.
const DEPTH_BUDGET_NS: f64 = 2_000_000.0;
const MAX_DEPTH: usize = 256;
/// Consecutive deaths before `READY` that break the pool.
const MAX_EARLY_DEATHS: u32 = 5;
/// First wait before starting a worker again after the system ran short of processes,
/// memory or descriptors; doubled after each failure up to [`LAUNCH_BACKOFF_MAX`].
const LAUNCH_BACKOFF_MIN: Duration = Duration::from_millis(5);
const LAUNCH_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Where a job's results go.
pub(crate) trait Sink: Send + Sync {
    /// Items `first..first + count` finished; `data` holds their outcomes.
    fn deliver(&self, first: u64, count: u32, data: &[u8]);
    /// Items `first..first + count` failed with `err`.
    fn fail(&self, first: u64, count: u32, err: &Error);
    /// The task is being handed to a worker; false: drop it (cancelled).
    fn start(&self) -> bool {
        true
    }
    /// Whether a waiter wants each result as soon as it exists.
    fn eager(&self) -> bool {
        false
    }
    /// Items `first..first + count` were cancelled before they started.
    fn cancel(&self, first: u64, count: u32) {
        self.fail(first, count, &Error::kind_only(ErrorKind::Cancelled));
    }
}

/// One task: a chunk of items of a job.
pub(crate) struct TaskRec {
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) func: FuncRef,
    /// The encoded arguments (kept until the result is in, to resend after a death).
    pub(crate) payload: Vec<u8>,
    seq: u64,
}

impl TaskRec {
    pub(crate) fn new(
        sink: Arc<dyn Sink>,
        first: u64,
        count: u32,
        func: FuncRef,
        payload: Vec<u8>,
    ) -> Self {
        TaskRec { sink, first, count, func, payload, seq: 0 }
    }
}

/// The pool's settings.
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) max_tasks_per_child: u64,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) launcher: Arc<dyn Launcher>,
    pub(crate) init: Option<InitFn>,
    pub(crate) init_off: Option<(crate::func::InitRef, Vec<u8>)>,
}

#[derive(Debug, Clone)]
enum PoolState {
    Running,
    Closed,
    Terminated,
    Broken(Error),
}

struct WorkerSlot {
    shm: SlotShm,
    /// The parent's halves of the slot's rings.
    tasks: Sender,
    results: Receiver,
    proc: Option<Box<dyn WorkerProc>>,
    pid: u32,
    ready: bool,
    /// Length of the closure table when this worker was forked.
    gen: usize,
    /// Tasks sent to this process (the last sequence number).
    sent: u64,
    inflight: VecDeque<TaskRec>,
    /// No more tasks for this process: it stops (or exits at its quota) once drained.
    retiring: bool,
    stop_sent: bool,
    /// We killed it: the task with this sequence number ran too long.
    timed_out: Option<u64>,
    /// We killed it on purpose (terminate): not an early death.
    killed: bool,
    /// A fragmented result being put together.
    partial: Vec<u8>,
    early_deaths: u32,
    restarts: u64,
}

pub(crate) struct Core {
    state: PoolState,
    workers: Vec<WorkerSlot>,
    pending: VecDeque<TaskRec>,
    table: Vec<Runner>,
    avg_ns: f64,
    last_check: Instant,
    scratch: Vec<u8>,
    bg_stop: bool,
    /// The system ran short when a worker was last started (no process, memory or
    /// descriptor): when to try again, and how long to wait after the next failure.
    launch_retry: Option<(Instant, Duration)>,
}

type ItemBatch = (Arc<dyn Sink>, u64, u32, usize, usize);

/// Results collected under the lock, handed to sinks after it is released.
#[derive(Default)]
struct Deliveries {
    data: Vec<u8>,
    /// (sink, first item, count, byte range in `data`)
    items: Vec<ItemBatch>,
    fails: Vec<(Arc<dyn Sink>, u64, u32, Error)>,
}

impl Deliveries {
    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.fails.is_empty()
    }

    fn fail(&mut self, rec: TaskRec, err: Error) {
        self.fails.push((rec.sink, rec.first, rec.count, err));
    }

    fn run(self) {
        for (sink, first, count, a, b) in &self.items {
            sink.deliver(*first, *count, &self.data[*a..*b]);
        }
        for (sink, first, count, err) in &self.fails {
            sink.fail(*first, *count, err);
        }
    }
}

/// The pool, shared by its handles, futures and background thread.
pub(crate) struct Inner {
    core: Mutex<Core>,
    bg_cv: Condvar,
    global: GlobalShm,
    slots: Vec<SlotShm>,
    cfg: Config,
    epoch: Instant,
    epoch_sys: SystemTime,
    fg_active: AtomicUsize,
    /// Whether work is queued or running (or workers must still be stopped): kept by
    /// whoever holds the core lock, read without it.
    work: AtomicBool,
    /// The background thread sleeps on `bg_cv` with nothing to do (so a notification is
    /// worth a syscall; in its grace wait it looks again by itself).
    bg_idle: AtomicBool,
    weak: Weak<Inner>,
    _arena: Arena,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Allocates the shared memory, starts the workers and the background thread.
    pub(crate) fn start(cfg: Config) -> Result<Arc<Inner>> {
        let n = cfg.processes;
        let arena = Arena::new(crate::shm::arena_bytes(n)).map_err(|e| {
            Error::io(ErrorKind::Spawn, e.into(), "cannot create the pool's memory")
        })?;
        let shm_err = |e: multiproc_arena::Error| {
            Error::io(ErrorKind::Spawn, e.into(), "cannot allocate the pool's rings")
        };
        let global = GlobalShm::new(&arena).map_err(shm_err)?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push(SlotShm::new(&arena).map_err(shm_err)?);
        }
        let mut workers = Vec::with_capacity(n);
        for s in &slots {
            let (Some(tasks), Some(results)) = (Sender::new(s.tasks()), Receiver::new(s.results()))
            else {
                unreachable!("fresh rings have no halves yet");
            };
            workers.push(WorkerSlot {
                shm: s.clone(),
                tasks,
                results,
                proc: None,
                pid: 0,
                ready: false,
                gen: 0,
                sent: 0,
                inflight: VecDeque::new(),
                retiring: false,
                stop_sent: false,
                timed_out: None,
                killed: false,
                partial: Vec::new(),
                early_deaths: 0,
                restarts: 0,
            });
        }
        let inner = Arc::new_cyclic(|weak| Inner {
            core: Mutex::new(Core {
                state: PoolState::Running,
                workers,
                pending: VecDeque::new(),
                table: Vec::new(),
                avg_ns: 1e6,
                last_check: Instant::now(),
                scratch: Vec::new(),
                bg_stop: false,
                launch_retry: None,
            }),
            bg_cv: Condvar::new(),
            global,
            slots,
            cfg,
            epoch: Instant::now(),
            epoch_sys: SystemTime::now(),
            fg_active: AtomicUsize::new(0),
            work: AtomicBool::new(false),
            bg_idle: AtomicBool::new(false),
            weak: weak.clone(),
            _arena: arena,
        });
        {
            let mut core = lock(&inner.core);
            for i in 0..n {
                if let Err(e) = inner.launch(&mut core, i) {
                    // Do not leave the ones already started behind (Python's PO33).
                    for w in core.workers.iter_mut() {
                        if let Some(p) = w.proc.as_mut() {
                            p.kill();
                        }
                    }
                    inner.reap_all(&mut core, Duration::from_secs(5));
                    core.state = PoolState::Terminated;
                    core.bg_stop = true;
                    return Err(e);
                }
            }
        }
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("multiproc-pool".into())
            .spawn(move || background(weak))
            .map_err(|e| Error::io(ErrorKind::Spawn, e, "cannot start the pool's thread"))?;
        Ok(inner)
    }

    pub(crate) fn driver(&self) -> Weak<dyn Driver> {
        let w: Weak<dyn Driver> = self.weak.clone();
        w
    }

    fn launch(&self, core: &mut Core, i: usize) -> Result<()> {
        let boot = WorkerBoot {
            slot: self.slots[i].clone(),
            global: self.global.clone(),
            max_tasks: self.cfg.max_tasks_per_child,
            epoch_unix_ns: crate::worker::epoch_unix_ns(self.epoch_sys),
            parent: {
                let me = multiproc_arena::ProcessId::current();
                (me.pid(), me.identity_bits())
            },
            init_off: self.cfg.init_off.clone(),
        };
        let local = WorkerLocal {
            table: core.table.clone(),
            init: self.cfg.init.clone(),
            epoch: Some(self.epoch),
            forked: self.cfg.launcher.inherits_memory(),
        };
        let w = &mut core.workers[i];
        w.shm.reset();
        // The previous worker is gone: what it left in the rings goes (its tasks are back in
        // `pending` or failed, its results were collected).
        let reclaimed = w.tasks.reclaim();
        debug_assert!(reclaimed, "the parent holds no task consumer");
        w.results.skip_all();
        let p = self
            .cfg
            .launcher
            .launch(boot, local)
            .map_err(|e| Error::io(ErrorKind::Spawn, e, format!("cannot start worker {i}")))?;
        w.pid = p.pid();
        w.proc = Some(p);
        w.ready = false;
        w.gen = core.table.len();
        w.sent = 0;
        w.retiring = false;
        w.stop_sent = false;
        w.timed_out = None;
        w.killed = false;
        w.partial.clear();
        Ok(())
    }

    /// Registers a closure (fork: inherited by the workers started after this; older ones
    /// are replaced once they are idle).
    pub(crate) fn register(&self, runner: Runner) -> Result<FuncRef> {
        if !self.cfg.launcher.inherits_memory() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a closure that captures needs the fork start method; \
                 pass a function item or a closure without captures",
            ));
        }
        let mut core = lock(&self.core);
        let i = core.table.len() as u32;
        core.table.push(runner);
        Ok(FuncRef::Table(i))
    }

    pub(crate) fn processes(&self) -> usize {
        self.cfg.processes
    }

    /// Queues tasks and hands out what fits.
    pub(crate) fn submit(&self, recs: impl IntoIterator<Item = TaskRec>) -> Result<()> {
        let mut core = lock(&self.core);
        match &core.state {
            PoolState::Running => {}
            PoolState::Broken(e) => return Err(e.clone()),
            _ => return Err(Error::new(ErrorKind::NotRunning, "the pool was closed")),
        }
        core.pending.extend(recs);
        let mut d = Deliveries::default();
        self.dispatch(&mut core, &mut d);
        self.set_wake_hints(&core);
        self.note_work(&core);
        drop(core);
        d.run();
        self.kick_bg();
        Ok(())
    }

    fn note_work(&self, core: &Core) {
        self.work.store(Self::busy(core), Ordering::SeqCst);
    }

    /// Wakes the background thread if it sleeps while work waits and no caller drives.
    fn kick_bg(&self) {
        if self.bg_idle.load(Ordering::SeqCst)
            && self.work.load(Ordering::SeqCst)
            && self.fg_active.load(Ordering::SeqCst) == 0
        {
            self.bg_cv.notify_all();
        }
    }

    /// Why the pool takes no new work, if it does not.
    pub(crate) fn state_error(&self) -> Option<Error> {
        match &lock(&self.core).state {
            PoolState::Running => None,
            PoolState::Broken(e) => Some(e.clone()),
            _ => Some(Error::new(ErrorKind::NotRunning, "the pool was closed")),
        }
    }

    /// Collects results, looks after workers, hands out tasks. Skips if another thread is at
    /// it.
    fn pump(&self, force_check: bool) {
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

    fn drain_all(&self, core: &mut Core, d: &mut Deliveries) {
        for i in 0..core.workers.len() {
            self.drain(core, i, d);
        }
    }

    /// Reads every complete message on worker `i`'s result ring.
    fn drain(&self, core: &mut Core, i: usize, d: &mut Deliveries) {
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

    /// Marks the pool broken: every queued and running task fails with `err`; workers go.
    fn break_pool(&self, core: &mut Core, err: Error, d: &mut Deliveries) {
        if matches!(core.state, PoolState::Broken(_) | PoolState::Terminated) {
            return;
        }
        core.state = PoolState::Broken(err.clone());
        for rec in core.pending.drain(..) {
            d.fail(rec, err.clone());
        }
        for w in core.workers.iter_mut() {
            for rec in w.inflight.drain(..) {
                d.fail(rec, err.clone());
            }
            if let Some(p) = w.proc.as_mut() {
                p.kill();
                w.killed = true;
            }
        }
    }

    /// Reaps dead workers (failing or re-queueing their tasks), kills late tasks, stops
    /// idle workers of a closing pool, starts replacements.
    fn check_workers(&self, core: &mut Core, d: &mut Deliveries) {
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
        // Start workers for empty slots.
        let want = match core.state {
            PoolState::Running => true,
            PoolState::Closed => !core.pending.is_empty(),
            _ => false,
        };
        if want {
            if let Some((at, _)) = core.launch_retry {
                if Instant::now() < at {
                    return; // the system was short a moment ago: back off
                }
            }
            for i in 0..core.workers.len() {
                if core.workers[i].proc.is_none() {
                    match self.launch(core, i) {
                        Ok(()) => core.launch_retry = None,
                        // Short of processes (EAGAIN under RLIMIT_NPROC), memory or
                        // descriptors: a condition that passes. The tasks wait in `pending`
                        // (their callers' timeouts bound them) and the start is retried with
                        // backoff; the pool is not broken.
                        Err(e) if e.is_resource_shortage() => {
                            let wait = core.launch_retry.map_or(LAUNCH_BACKOFF_MIN, |(_, w)| {
                                (w * 2).min(LAUNCH_BACKOFF_MAX)
                            });
                            core.launch_retry = Some((Instant::now() + wait, wait));
                            return;
                        }
                        Err(e) => {
                            if core.workers.iter().all(|w| w.proc.is_none()) {
                                self.break_pool(core, e, d);
                                return;
                            }
                        }
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
            && exit != WorkerExit::Signal(9);
        w.ready = false;
        w.restarts += 1;
        if early {
            w.early_deaths += 1;
        }
        let early_deaths = w.early_deaths;
        let pid = w.pid;
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

    /// Work queued ahead per worker for the measured task time.
    fn depth(core: &Core) -> usize {
        ((DEPTH_BUDGET_NS / core.avg_ns.max(1.0)) as usize).clamp(2, MAX_DEPTH)
    }

    /// Moves pending tasks onto workers' rings, least-loaded worker first.
    fn dispatch(&self, core: &mut Core, _d: &mut Deliveries) {
        if !matches!(core.state, PoolState::Running | PoolState::Closed) {
            return;
        }
        let depth = Self::depth(core);
        let quota = self.cfg.max_tasks_per_child;
        let mut touched = 0u64;
        let mut scratch = std::mem::take(&mut core.scratch);
        while let Some(front) = core.pending.front() {
            let need_gen = front.func.needs_gen();
            let len = crate::func::TASK_HEADER + front.payload.len();
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
    fn set_wake_hints(&self, core: &Core) {
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

    fn results_waiting(&self) -> bool {
        self.slots.iter().any(|s| s.results().used_words() > 0)
    }

    fn results_waiting_seqcst(&self) -> bool {
        multiproc_arena::sync::atomic::fence(Ordering::SeqCst);
        self.slots.iter().any(|s| !s.results().is_empty_seqcst())
    }

    /// Drives the pool on this thread until `cond()` or the deadline.
    fn drive(
        &self,
        cond: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
        foreground: bool,
    ) -> bool {
        struct Fg<'a>(&'a Inner, bool);
        impl Drop for Fg<'_> {
            fn drop(&mut self) {
                if self.1 && self.0.fg_active.fetch_sub(1, Ordering::SeqCst) == 1 {
                    self.0.kick_bg();
                }
            }
        }
        if foreground {
            self.fg_active.fetch_add(1, Ordering::SeqCst);
        }
        let _fg = Fg(self, foreground);
        let mut timed_out_sleep = false;
        loop {
            if cond() {
                return true;
            }
            self.pump(timed_out_sleep);
            if cond() {
                return true;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            // Spin briefly: a short task's result is usually a microsecond away.
            let spin_end = now + SPIN;
            let mut found = false;
            while Instant::now() < spin_end {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
                if self.results_waiting() {
                    found = true;
                    break;
                }
            }
            if found {
                timed_out_sleep = false;
                continue;
            }
            timed_out_sleep = self.sleep(cond, deadline);
        }
    }

    /// Sleeps on the doorbell; true if it woke by timeout (time to look at the workers).
    fn sleep(&self, cond: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        let bell = self.global.doorbell();
        let seq = bell.load(Ordering::SeqCst);
        self.global.parent_waiting().fetch_add(1, Ordering::SeqCst);
        let mut timed_out = false;
        if !self.results_waiting_seqcst() && !cond() {
            let mut wait = POLL;
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            let wake = futex::park(bell, seq, &mut Deadline::after(wait), None);
            timed_out = wake == Wake::TimedOut || bell.load(Ordering::SeqCst) == seq;
        }
        self.global.parent_waiting().fetch_sub(1, Ordering::SeqCst);
        timed_out
    }

    /// Whether any work is queued, running, or any worker must still be stopped or reaped.
    fn busy(core: &Core) -> bool {
        !core.pending.is_empty()
            || core.workers.iter().any(|w| !w.inflight.is_empty())
            || (!matches!(core.state, PoolState::Running)
                && core.workers.iter().any(|w| w.proc.is_some()))
    }

    /// Cancels every task that has not been handed to a worker.
    pub(crate) fn cancel_pending(&self) {
        let recs: Vec<TaskRec> = lock(&self.core).pending.drain(..).collect();
        for r in recs {
            r.sink.cancel(r.first, r.count);
        }
    }

    /// Drives the pool on the calling thread until `cond()` or `deadline`.
    pub(crate) fn drive_fg(
        &self,
        cond: &mut dyn FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        self.drive(cond, deadline, true)
    }

    /// `close()`: no new work; workers stop once everything queued is done.
    pub(crate) fn close(&self) {
        let mut core = lock(&self.core);
        if matches!(core.state, PoolState::Running) {
            core.state = PoolState::Closed;
        }
        drop(core);
        self.global.ring();
        self.bg_cv.notify_all();
    }

    /// `terminate()`: kills the workers now; queued and running tasks fail with
    /// [`ErrorKind::Terminated`].
    pub(crate) fn terminate(&self) {
        let mut core = lock(&self.core);
        let mut d = Deliveries::default();
        if !matches!(core.state, PoolState::Terminated) {
            let err = Error::new(ErrorKind::Terminated, "the pool was terminated");
            if !matches!(core.state, PoolState::Broken(_)) {
                core.state = PoolState::Terminated;
            }
            for rec in core.pending.drain(..) {
                d.fail(rec, err.clone());
            }
            for w in core.workers.iter_mut() {
                for rec in w.inflight.drain(..) {
                    d.fail(rec, err.clone());
                }
                if let Some(p) = w.proc.as_mut() {
                    p.kill();
                    w.killed = true;
                }
            }
        }
        self.reap_all(&mut core, Duration::from_secs(5));
        core.bg_stop = true;
        drop(core);
        d.run();
        self.global.ring();
        self.bg_cv.notify_all();
    }

    fn reap_all(&self, core: &mut Core, limit: Duration) {
        let deadline = Instant::now() + limit;
        for w in core.workers.iter_mut() {
            while let Some(p) = w.proc.as_mut() {
                if p.try_wait().is_some() || Instant::now() >= deadline {
                    w.proc = None;
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// `join()`: waits until every worker exited (after `close` or `terminate`).
    pub(crate) fn join(&self, deadline: Option<Instant>) -> Result<()> {
        if matches!(lock(&self.core).state, PoolState::Running) {
            return Err(ErrorKind::StillRunning.into());
        }
        let mut done = || {
            let core = lock(&self.core);
            core.workers.iter().all(|w| w.proc.is_none())
        };
        if self.drive(&mut done, deadline, true) {
            lock(&self.core).bg_stop = true;
            self.bg_cv.notify_all();
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Timeout, "workers still running"))
        }
    }

    /// Per-worker counters.
    pub(crate) fn insights(&self) -> Vec<crate::insights::WorkerInsights> {
        let core = lock(&self.core);
        core.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                crate::insights::WorkerInsights::read(i, w.pid, w.restarts, &self.slots[i])
            })
            .collect()
    }

    /// Pids of the live workers.
    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        let core = lock(&self.core);
        core.workers.iter().filter(|w| w.proc.is_some()).map(|w| w.pid).collect()
    }
}

/// A worker found dead while streaming to it: reports its exit to the next sweep.
struct Dead {
    pid: u32,
    exit: WorkerExit,
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

impl Driver for Inner {
    fn drive_until(&self, cond: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        self.drive(cond, deadline, true)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let core = self.core.get_mut().unwrap_or_else(|p| p.into_inner());
        for w in core.workers.iter_mut() {
            if let Some(p) = w.proc.as_mut() {
                p.kill();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for w in core.workers.iter_mut() {
            while let Some(p) = w.proc.as_mut() {
                if p.try_wait().is_some() || Instant::now() >= deadline {
                    w.proc = None;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

/// How long the background thread leaves new work to a caller that may be about to wait
/// for it (so `submit` + `result` costs no thread hand-off).
const BG_GRACE: Duration = Duration::from_millis(2);

/// The background thread: drives the pool while work is in flight and nobody waits.
fn background(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        {
            let mut core = lock(&inner.core);
            let mut grace_until: Option<Instant> = None;
            loop {
                if core.bg_stop {
                    return;
                }
                let busy = Inner::busy(&core);
                inner.work.store(busy, Ordering::SeqCst);
                let timeout = if busy && inner.fg_active.load(Ordering::SeqCst) == 0 {
                    let until = *grace_until.get_or_insert_with(|| Instant::now() + BG_GRACE);
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    until - now
                } else {
                    grace_until = None;
                    Duration::from_millis(100)
                };
                inner.bg_idle.store(grace_until.is_none(), Ordering::SeqCst);
                let (c, t) =
                    inner.bg_cv.wait_timeout(core, timeout).unwrap_or_else(|p| p.into_inner());
                inner.bg_idle.store(false, Ordering::SeqCst);
                core = c;
                if t.timed_out() && grace_until.is_none() {
                    // Idle: look at the workers now and then (deaths, replacements).
                    let mut d = Deliveries::default();
                    inner.check_workers(&mut core, &mut d);
                    drop(core);
                    d.run();
                    core = lock(&inner.core);
                }
            }
        }
        let mut cond = || {
            inner.fg_active.load(Ordering::SeqCst) > 0 || {
                let core = lock(&inner.core);
                core.bg_stop || !Inner::busy(&core)
            }
        };
        inner.drive(&mut cond, None, false);
    }
}
