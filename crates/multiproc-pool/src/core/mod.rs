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

mod death;
mod dispatch;
mod drive;

use self::drive::background;
use crate::error::{Error, ErrorKind, Result};
use crate::func::{FuncRef, InitFn, Runner};
use crate::future::Driver;
use crate::launch::{Launcher, WorkerProc};
use crate::ring::{Receiver, Sender};
use crate::shm::{GlobalShm, SlotShm};
use crate::worker::{WorkerBoot, WorkerLocal};
use multiproc_arena::sync::atomic::Ordering;
use multiproc_arena::Arena;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

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
    /// Start workers as tasks need them (none at first) instead of all at once.
    pub(crate) on_demand: bool,
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

impl Core {
    /// Kills every live worker (it is reaped later).
    fn kill_all(&mut self) {
        for w in self.workers.iter_mut() {
            if let Some(p) = w.proc.as_mut() {
                p.kill();
                w.killed = true;
            }
        }
    }

    /// Fails every queued and running task with `err` and kills the workers.
    fn fail_all(&mut self, err: &Error, d: &mut Deliveries) {
        for rec in self.pending.drain(..) {
            d.fail(rec, err.clone());
        }
        for w in self.workers.iter_mut() {
            for rec in w.inflight.drain(..) {
                d.fail(rec, err.clone());
            }
        }
        self.kill_all();
    }

    /// Waits up to `limit` for every worker to exit (killed already), then forgets them.
    fn reap_all(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        for w in self.workers.iter_mut() {
            while let Some(p) = w.proc.as_mut() {
                if p.try_wait().is_some() || Instant::now() >= deadline {
                    w.proc = None;
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
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
    /// The depth `dispatch` last used (tasks queued ahead per worker), for streaming jobs.
    depth_hint: AtomicUsize,
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
            depth_hint: AtomicUsize::new(2),
            weak: weak.clone(),
            _arena: arena,
        });
        {
            let mut core = lock(&inner.core);
            let upfront = if inner.cfg.on_demand { 0 } else { n };
            for i in 0..upfront {
                if let Err(e) = inner.launch(&mut core, i) {
                    // Do not leave the ones already started behind (Python's PO33).
                    core.kill_all();
                    core.reap_all(Duration::from_secs(5));
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

    /// Tasks the pool last queued ahead per worker: about 2 ms of work, 2 to 256.
    pub(crate) fn depth_hint(&self) -> usize {
        self.depth_hint.load(Ordering::Relaxed)
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
        if self.cfg.on_demand {
            self.start_workers(&mut core, &mut d);
        }
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
            core.fail_all(&err, &mut d);
        }
        core.reap_all(Duration::from_secs(5));
        core.bg_stop = true;
        drop(core);
        d.run();
        self.global.ring();
        self.bg_cv.notify_all();
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

impl Drop for Inner {
    fn drop(&mut self) {
        let core = self.core.get_mut().unwrap_or_else(|p| p.into_inner());
        core.kill_all();
        core.reap_all(Duration::from_secs(2));
    }
}
