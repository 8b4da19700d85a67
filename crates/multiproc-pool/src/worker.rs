//! The worker process's loop: take a task from the task ring, run it, put the outcome on
//! the result ring.
//!
//! Before running task number `seq` (1, 2, … per worker process) the worker stores `seq`
//! in its slot's `STARTED` word. That word is how the parent tells, after a death, the task
//! that was running (failed with the worker's exit) from the tasks still queued in the ring
//! (never started: handed to another worker).

use crate::func::{
    install_panic_hook, panic_message, InitFn, Runner, MSG_INIT_FAILED, MSG_READY, MSG_RESULT,
    MSG_STOP, MSG_TASK, RESULT_HEADER, TASK_HEADER,
};
use crate::ring::{sleep_unless, Pop, Receiver, Sender};
use crate::shm::{
    GlobalShm, SlotShm, BUSY_NS, ITEMS, RES_SPACE, STARTED, STARTED_AT, TASKS, TASK_SPACE,
    TASK_WAITING, WAIT_NS, WAKE_AT,
};
use multiproc_arena::futex::{Deadline, Wake};
use multiproc_arena::sync::atomic::Ordering;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a worker spins on an empty task ring before sleeping.
const IDLE_SPIN: Duration = Duration::from_micros(30);
/// How often a sleeping worker checks that its parent still exists.
const PARENT_CHECK: Duration = Duration::from_millis(100);

/// What a worker needs, in a form that crosses `exec` (spawn, forkserver).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct WorkerBoot {
    pub(crate) slot: SlotShm,
    pub(crate) global: GlobalShm,
    /// Exit (code 0) after this many tasks; 0: never.
    pub(crate) max_tasks: u64,
    /// The pool's epoch as nanoseconds since the Unix epoch (aligns the monotonic clocks).
    pub(crate) epoch_unix_ns: u64,
    /// The pool's process (pid, start time): the worker exits when it is gone. (Not
    /// `getppid`: a forkserver worker's parent is the server.)
    pub(crate) parent: (u32, u64),
    /// The state constructor by name, and its encoded argument (spawn, forkserver).
    pub(crate) init_off: Option<(crate::func::InitRef, Vec<u8>)>,
}

/// What a forked worker also gets, by inheritance: closures and the initializer.
#[derive(Clone, Default)]
pub(crate) struct WorkerLocal {
    pub(crate) table: Vec<Runner>,
    pub(crate) init: Option<InitFn>,
    pub(crate) epoch: Option<Instant>,
    /// Forked from a process that may have other threads: take no process-wide lock that
    /// one of them might have held at the fork (the panic-hook lock, for one).
    pub(crate) forked: bool,
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The pool's epoch on this process's monotonic clock.
fn local_epoch(boot: &WorkerBoot, local: &WorkerLocal) -> Instant {
    if let Some(e) = local.epoch {
        return e;
    }
    let now = Instant::now();
    let since = unix_ns(SystemTime::now()).saturating_sub(boot.epoch_unix_ns);
    now.checked_sub(Duration::from_nanos(since)).unwrap_or(now)
}

fn parent_alive(boot: &WorkerBoot) -> bool {
    multiproc_arena::ProcessId::from_parts(boot.parent.0, boot.parent.1).is_alive()
}

/// The worker's main loop; returns the exit code.
pub(crate) fn run(boot: &WorkerBoot, local: &WorkerLocal) -> i32 {
    // A forked worker inherited the hook from the parent (installed before the fork); a
    // fresh process (spawn, forkserver) installs it now, with no other thread around.
    if !local.forked {
        install_panic_hook();
    }
    crate::func::set_in_worker(true);
    let epoch = local_epoch(boot, local);
    // The parent holds the other halves; in a process of its own (or a forked child) these
    // are this process's only ones.
    let (Some(tasks), Some(results)) =
        (Receiver::new(boot.slot.tasks()), Sender::new(boot.slot.results()))
    else {
        eprintln!("multiproc-pool: a worker's rings are in use in this process already");
        return 1;
    };
    let mut w = Worker { tasks, results, boot, out: Vec::with_capacity(256) };
    let init: Option<crate::func::InitFn> = match (&local.init, &boot.init_off) {
        (Some(i), _) => Some(i.clone()),
        (None, Some((r, arg))) => Some(crate::func::portable_init(r, arg)),
        (None, None) => None,
    };
    let mut state: Box<dyn Any> = match &init {
        None => Box::new(()),
        Some(init) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init())) {
            Ok(s) => s,
            Err(p) => {
                let msg = panic_message(p);
                w.out.clear();
                w.out.push(MSG_INIT_FAILED);
                w.out.extend_from_slice(msg.as_bytes());
                w.send(0, true);
                return 3;
            }
        },
    };
    w.out.clear();
    w.out.push(MSG_READY);
    w.out.extend_from_slice(&std::process::id().to_le_bytes());
    w.send(0, true);

    let mut msg = Vec::with_capacity(256);
    let mut seq = 0u64;
    let slot = &boot.slot;
    let mut portable = crate::func::Portable::default();
    loop {
        msg.clear();
        let t_wait = Instant::now();
        if !w.recv(&mut msg) {
            return 0; // the parent is gone
        }
        let waited = t_wait.elapsed().as_nanos() as u64;
        slot.word(WAIT_NS).fetch_add(waited, Ordering::Relaxed);
        match msg.first() {
            Some(&MSG_TASK) if msg.len() >= TASK_HEADER => {}
            Some(&MSG_STOP) => return 0,
            _ => return 4, // cannot happen: the parent wrote it
        }
        let id = u64::from_le_bytes(msg[1..9].try_into().expect("8"));
        let count = u32::from_le_bytes(msg[9..13].try_into().expect("4"));
        let func = u32::from_le_bytes(msg[13..17].try_into().expect("4"));
        let fref = msg[17..TASK_HEADER].try_into().expect("a reference's bytes");
        seq += 1;
        slot.word(STARTED_AT).store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        slot.word(STARTED).store(seq, Ordering::SeqCst);
        let t0 = Instant::now();
        w.out.clear();
        w.out.push(MSG_RESULT);
        w.out.extend_from_slice(&id.to_le_bytes());
        w.out.extend_from_slice(&[0; 8]);
        w.out.extend_from_slice(&count.to_le_bytes());
        debug_assert_eq!(w.out.len(), RESULT_HEADER);
        let input = &msg[TASK_HEADER..];
        if func == u32::MAX {
            portable.run(fref, &mut state, input, count, &mut w.out);
        } else {
            match local.table.get(func as usize) {
                Some(r) => r(&mut *state, input, count, &mut w.out),
                None => {
                    for _ in 0..count {
                        w.out.push(crate::func::TAG_CODEC);
                        let m = "the task's function is not known to this worker";
                        crate::func::encode_append(m, &mut w.out).expect("string");
                    }
                }
            }
        }
        let busy = t0.elapsed().as_nanos() as u64;
        w.out[9..17].copy_from_slice(&busy.to_le_bytes());
        slot.word(BUSY_NS).fetch_add(busy, Ordering::Relaxed);
        slot.word(TASKS).fetch_add(1, Ordering::Relaxed);
        slot.word(ITEMS).fetch_add(count as u64, Ordering::Relaxed);
        let last = boot.max_tasks != 0 && seq >= boot.max_tasks;
        w.send(seq, last);
        if last {
            return 0;
        }
    }
}

struct Worker<'a> {
    tasks: Receiver,
    results: Sender,
    boot: &'a WorkerBoot,
    out: Vec<u8>,
}

impl Worker<'_> {
    /// Receives one whole message into `msg`; false if the parent died.
    fn recv(&mut self, msg: &mut Vec<u8>) -> bool {
        let slot = &self.boot.slot;
        loop {
            match self.tasks.pop(msg) {
                Pop::Complete => {
                    slot.wake_if_waiting(TASK_SPACE);
                    return true;
                }
                Pop::Partial => {
                    slot.wake_if_waiting(TASK_SPACE);
                    continue;
                }
                Pop::Empty => {}
            }
            let spin_until = Instant::now() + IDLE_SPIN;
            let mut found = false;
            'spin: while Instant::now() < spin_until {
                for _ in 0..64 {
                    if self.tasks.nonempty() {
                        found = true;
                        break 'spin;
                    }
                    std::hint::spin_loop();
                }
            }
            if found {
                continue;
            }
            let ready = || !slot.tasks().is_empty_seqcst();
            let wake = sleep_unless(
                slot.futex(TASK_WAITING),
                ready,
                &mut Deadline::never(),
                Some(PARENT_CHECK),
            );
            // Only a quiet spell is worth a look at /proc: a wake-up came from the parent.
            if wake == Wake::Poll && !parent_alive(self.boot) {
                return false;
            }
        }
    }

    /// Publishes `self.out` on the result ring (in fragments if large), then rings the
    /// parent's doorbell if it sleeps and wants this result (`urgent`, its `WAKE_AT`, or this
    /// worker running out of queued tasks).
    fn send(&mut self, seq: u64, urgent: bool) {
        let max = self.results.max_fragment();
        let mut rest: &[u8] = &self.out;
        loop {
            let (frag, more) = if rest.len() > max { (&rest[..max], true) } else { (rest, false) };
            while !self.results.try_push_record(frag, more) {
                if !self.wait_space(frag.len()) {
                    return;
                }
            }
            rest = &rest[frag.len()..];
            if !more {
                break;
            }
        }
        let g = &self.boot.global;
        multiproc_arena::sync::atomic::fence(Ordering::SeqCst);
        if g.parent_waiting().load(Ordering::Relaxed) != 0 {
            let wake_at = self.boot.slot.word(WAKE_AT).load(Ordering::Relaxed);
            if urgent
                || !self.tasks.nonempty()
                || seq >= wake_at
                || self.results.used_words() >= self.results.capacity_words() as u64 / 2
            {
                g.ring();
            }
        }
    }

    /// Sleeps until a fragment of `len` bytes fits on the result ring; false if the parent
    /// died.
    fn wait_space(&self, len: usize) -> bool {
        self.boot.global.ring();
        let flag = self.boot.slot.futex(RES_SPACE);
        let wake = sleep_unless(
            flag,
            || self.results.fits(len),
            &mut Deadline::never(),
            Some(PARENT_CHECK),
        );
        wake != Wake::Poll || parent_alive(self.boot)
    }
}

pub(crate) fn epoch_unix_ns(epoch_sys: SystemTime) -> u64 {
    unix_ns(epoch_sys)
}

/// `STARTED` as the parent reads it.
pub(crate) fn started(slot: &SlotShm) -> (u64, u64) {
    (slot.word(STARTED).load(Ordering::SeqCst), slot.word(STARTED_AT).load(Ordering::Relaxed))
}
