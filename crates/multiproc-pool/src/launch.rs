//! Starting worker processes (through `multiproc-spawn`), kept behind a small trait so the
//! pool's bookkeeping does not depend on how a process is made.

use crate::error::WorkerExit;
use crate::worker::{WorkerBoot, WorkerLocal};
use multiproc_spawn::{JoinHandle, Process, StartMethod};
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
        self.0.exitcode().map(|c| if c < 0 { WorkerExit::Signal(-c) } else { WorkerExit::Code(c) })
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
    }
}

/// The entry of a spawned or forkserver worker.
fn worker_entry(boot: WorkerBoot) {
    crate::worker::run(boot, WorkerLocal::default());
}

impl Launcher for SpawnLauncher {
    fn launch(&self, boot: WorkerBoot, local: WorkerLocal) -> io::Result<Box<dyn WorkerProc>> {
        let b = Process::builder().name("PoolWorker").daemon(true).start_method(self.method);
        let started = if self.method == StartMethod::Fork {
            b.target_closure(move || {
                crate::worker::run(boot, local);
            })
            .start()
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
