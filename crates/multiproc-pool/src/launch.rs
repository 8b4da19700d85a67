//! Starting worker processes (through `multiproc-spawn`), kept behind a small trait so the
//! pool's bookkeeping does not depend on how a process is made.

use crate::error::WorkerExit;
use crate::worker::{WorkerBoot, WorkerLocal};
use multiproc_spawn::{JoinHandle, Process, StartMethod};
use std::cell::RefCell;
use std::io;

/// A running worker process.
pub(crate) trait WorkerProc: Send {
    fn pid(&self) -> u32;
    /// How it ended, once it has (non-blocking).
    fn try_wait(&mut self) -> Option<WorkerExit>;
    /// Sends `SIGKILL`.
    fn kill(&mut self);
}

/// Starts workers.
pub(crate) trait Launcher: Send + Sync {
    fn launch(&self, boot: WorkerBoot, local: WorkerLocal) -> io::Result<Box<dyn WorkerProc>>;
    /// Whether workers see closures registered in this process before they start (fork).
    fn inherits_memory(&self) -> bool;
}

/// Starts daemonic workers with a `multiproc-spawn` start method.
pub(crate) struct SpawnLauncher {
    pub(crate) method: StartMethod,
}

struct Worker(JoinHandle<()>);

impl WorkerProc for Worker {
    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn try_wait(&mut self) -> Option<WorkerExit> {
        self.0.exitcode().map(|c| {
            if c < 0 {
                WorkerExit::Signal(multiproc_spawn::Signal(-c))
            } else {
                WorkerExit::Code(c)
            }
        })
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
    }
}

/// The entry of a spawned or forkserver worker (its `boot` was decoded here and owns its
/// references: dropping it at the end is right).
fn worker_entry(boot: WorkerBoot) {
    crate::worker::run(&boot, &WorkerLocal::default());
}

thread_local! {
    /// Hands a forked worker its boot without the fork closure owning it: the parent forgets
    /// the closure after a fork, and anything it owned (an arena handle) would leak there.
    static FORK_BOOT: RefCell<Option<(WorkerBoot, WorkerLocal)>> = const { RefCell::new(None) };
}

/// The forked child's side: takes the boot from the copy of the forking thread's slot and
/// runs; then forgets it, because inherited handles were never counted for this process.
fn forked_worker() {
    if let Some(b) = FORK_BOOT.with(|c| c.borrow_mut().take()) {
        crate::worker::run(&b.0, &b.1);
        std::mem::forget(b);
    }
}

impl Launcher for SpawnLauncher {
    fn launch(&self, boot: WorkerBoot, local: WorkerLocal) -> io::Result<Box<dyn WorkerProc>> {
        let b = Process::builder().name("PoolWorker").daemon(true).start_method(self.method);
        let started = if self.method == StartMethod::Fork {
            FORK_BOOT.with(|c| *c.borrow_mut() = Some((boot, local)));
            let r = b.target_closure(forked_worker).start();
            // The parent's copy goes normally (its references were taken for this launch).
            drop(FORK_BOOT.with(|c| c.borrow_mut().take()));
            r
        } else {
            b.target(worker_entry, boot).start()
        };
        let h = started.map_err(io::Error::other)?;
        Ok(Box::new(Worker(h)))
    }

    fn inherits_memory(&self) -> bool {
        self.method == StartMethod::Fork
    }
}
