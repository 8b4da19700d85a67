//! [`PoolBuilder`]: a pool's settings, its initializer or worker state, and `build`.

use crate::core::{Config, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::func::{encode_append, InitFn, InitRef};
use crate::launch::SpawnLauncher;
use crate::pool::{cpu_count, Pool};
use crate::task::{init0_ref, init_ref};
use multiproc_spawn::StartMethod;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Settings for a [`Pool`]; from [`Pool::builder`].
pub struct PoolBuilder<S = ()> {
    processes: Option<usize>,
    method: Option<StartMethod>,
    max_tasks_per_child: Option<usize>,
    task_timeout: Option<Duration>,
    init: Option<InitFn>,
    /// The initializer by name and its encoded argument, if it can be named (spawn and
    /// forkserver workers need it).
    init_ref: Option<(InitRef, Vec<u8>)>,
    /// Workers start as tasks need them (the executor's, outside fork).
    on_demand: bool,
    _state: PhantomData<fn() -> S>,
}

impl<S> fmt::Debug for PoolBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "PoolBuilder" {
            processes,
            start_method: self.method,
            max_tasks_per_child,
            task_timeout,
            initializer: self.init.is_some()
        })
    }
}

impl Pool {
    /// A pool of [`cpu_count`] workers with the default start method.
    pub fn new() -> Result<Pool> {
        Pool::builder().build()
    }

    /// A builder with default settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            method: None,
            max_tasks_per_child: None,
            task_timeout: None,
            init: None,
            init_ref: None,
            on_demand: false,
            _state: PhantomData,
        }
    }
}

impl PoolBuilder<()> {
    /// Runs `f` once in each worker before its first task (Python's `initializer`). A panic
    /// in it is an [`ErrorKind::Initializer`] error for every task, not a hang.
    pub fn initializer<F: Fn() + Send + Sync + 'static>(self, f: F) -> Self {
        let b = self.worker_state(f);
        PoolBuilder { _state: PhantomData, ..b }
    }

    /// Runs `f(arg)` once in each worker before its first task (Python's `initializer` with
    /// `initargs`); `arg` is serialised for spawn and forkserver workers.
    pub fn initializer_with<A, F>(self, f: F, arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn(A) + Send + Sync + 'static,
    {
        let b = self.worker_state_with(f, arg);
        PoolBuilder { _state: PhantomData, ..b }
    }

    /// Builds a state in each worker, once, with `init`; tasks of the form
    /// `Fn(&mut S, T) -> R` receive it (load a model or open a database once per worker,
    /// not once per task). A panic in `init` is an [`ErrorKind::Initializer`] error.
    pub fn worker_state<S2: 'static, F: Fn() -> S2 + Send + Sync + 'static>(
        self,
        init: F,
    ) -> PoolBuilder<S2> {
        let init_ref = init0_ref::<S2, F>(&init).ok().map(|r| (r, Vec::new()));
        let f: InitFn = Arc::new(move || Box::new(init()) as Box<dyn Any>);
        self.with_init(f, init_ref)
    }

    /// [`worker_state`](Self::worker_state) with an argument: `init(arg)` builds each
    /// worker's state (the path of a model to load, say); `arg` is serialised for spawn and
    /// forkserver workers.
    pub fn worker_state_with<S2, A, F>(self, init: F, arg: A) -> PoolBuilder<S2>
    where
        S2: 'static,
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Fn(A) -> S2 + Send + Sync + 'static,
    {
        let mut bytes = Vec::new();
        let encoded = encode_append(&arg, &mut bytes).is_ok();
        let init_ref = init_ref::<S2, A, F>(&init).ok().filter(|_| encoded).map(|r| (r, bytes));
        let f: InitFn = Arc::new(move || Box::new(init(arg.clone())) as Box<dyn Any>);
        self.with_init(f, init_ref)
    }

    fn with_init<S2>(self, f: InitFn, init_ref: Option<(InitRef, Vec<u8>)>) -> PoolBuilder<S2> {
        PoolBuilder {
            processes: self.processes,
            method: self.method,
            max_tasks_per_child: self.max_tasks_per_child,
            task_timeout: self.task_timeout,
            init: Some(f),
            init_ref,
            on_demand: self.on_demand,
            _state: PhantomData,
        }
    }
}

impl<S: 'static> PoolBuilder<S> {
    multiproc_arena::setters! {
        /// Number of worker processes (default: [`cpu_count`]); 0 is an error at `build`.
        fn processes(mut self, n: usize) { self.processes = Some(n) }

        /// How workers are started (default: `multiproc_spawn::get_start_method()`).
        /// Closures that capture run under [`StartMethod::Fork`] only.
        fn start_method(mut self, method: StartMethod) { self.method = Some(method) }

        /// Replaces a worker after it ran this many tasks (chunks); 0 is an error at `build`.
        /// No task is lost or run twice: the parent never gives a worker more than its quota.
        fn max_tasks_per_child(mut self, n: usize) { self.max_tasks_per_child = Some(n) }

        /// Fails a task that runs longer than `d` with [`ErrorKind::TaskTimedOut`], killing its
        /// worker (a new one takes its place). Measured from the task's start in the worker, to
        /// within about 10 ms.
        fn task_timeout(mut self, d: Duration) { self.task_timeout = Some(d) }
    }

    /// Starts workers as tasks need them (none at `build`, then one per queued or running
    /// task up to `processes`), as CPython's `ProcessPoolExecutor` does outside fork.
    pub(crate) fn on_demand(mut self, on: bool) -> Self {
        self.on_demand = on;
        self
    }

    /// The start method `build` uses.
    pub(crate) fn method(&self) -> StartMethod {
        self.method.unwrap_or_else(multiproc_spawn::get_start_method)
    }

    /// Whether workers are recycled (`max_tasks_per_child`) under the fork start method,
    /// which CPython's `ProcessPoolExecutor` refuses.
    pub(crate) fn recycles_under_fork(&self) -> bool {
        self.max_tasks_per_child.is_some()
            && self.method.unwrap_or_else(multiproc_spawn::get_start_method) == StartMethod::Fork
    }

    /// Starts the workers. If one cannot be started, those already started are killed and
    /// the error is returned.
    pub fn build(self) -> Result<Pool<S>> {
        let processes = self.processes.unwrap_or_else(cpu_count);
        Error::at_least_one("processes", processes)?;
        if processes > 64 * 64 {
            return Err(Error::invalid("too many processes"));
        }
        if let Some(n) = self.max_tasks_per_child {
            Error::at_least_one("max_tasks_per_child", n)?;
        }
        let method = self.method.unwrap_or_else(multiproc_spawn::get_start_method);
        if method != StartMethod::Fork && self.init.is_some() && self.init_ref.is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "an initializer that captures (or whose argument cannot be serialised) \
                 needs the fork start method",
            ));
        }
        let cfg = Config {
            processes,
            max_tasks_per_child: self.max_tasks_per_child.unwrap_or(0) as u64,
            task_timeout: self.task_timeout,
            launcher: Arc::new(SpawnLauncher { method }),
            init: if method == StartMethod::Fork { self.init } else { None },
            init_off: if method == StartMethod::Fork { None } else { self.init_ref },
            on_demand: self.on_demand,
        };
        if method == StartMethod::Fork {
            // Before any fork: see `install_panic_hook`.
            crate::func::install_panic_hook();
        }
        let inner = Inner::start(cfg)?;
        Ok(Pool { inner, method, closure_ok: method == StartMethod::Fork, _state: PhantomData })
    }
}
