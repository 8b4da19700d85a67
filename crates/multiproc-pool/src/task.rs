//! What a pool accepts as a task function.
//!
//! A function item (`fn square(x: u64) -> u64`) or a closure without captures is
//! zero-sized: it is sent to workers by name and runs under every start method. A closure
//! that captures runs under fork only (workers forked after it was first used see it).

use crate::error::{Error, ErrorKind, Result};
use crate::func::{run_on_state, InitRef, ShimRef, TaskIo};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;

/// Marker: the task ignores the worker state (`Fn(T) -> R`).
#[derive(Debug)]
pub enum Plain {}

/// Marker: the task gets the worker state (`Fn(&mut S, T) -> R`).
#[derive(Debug)]
pub enum Stateful {}

/// A function a pool can run on an argument of type `T` in a worker with state `S`:
/// `Fn(T) -> R`, or `Fn(&mut S, T) -> R` for pools built with
/// [`worker_state`](crate::PoolBuilder::worker_state). `M` ([`Plain`] or [`Stateful`]) is
/// inferred.
pub trait TaskFn<S, T, R, M>: Send + Sync + 'static {
    /// Runs the task.
    fn call(&self, state: &mut S, arg: T) -> R;
}

impl<S, T, R, F> TaskFn<S, T, R, Plain> for F
where
    F: Fn(T) -> R + Send + Sync + 'static,
{
    fn call(&self, _state: &mut S, arg: T) -> R {
        self(arg)
    }
}

impl<S, T, R, F> TaskFn<S, T, R, Stateful> for F
where
    F: Fn(&mut S, T) -> R + Send + Sync + 'static,
{
    fn call(&self, state: &mut S, arg: T) -> R {
        self(state, arg)
    }
}

/// A function of several arguments for `starmap`: `Fn(A, B) -> R` takes `(A, B)` items,
/// and so on up to four.
pub trait StarFn<Args, R>: Send + Sync + 'static {
    /// Calls with the tuple spread out.
    fn call_star(&self, args: Args) -> R;
}

macro_rules! star {
    ($($a:ident),*) => {
        impl<F, R, $($a),*> StarFn<($($a,)*), R> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            #[allow(non_snake_case)]
            fn call_star(&self, ($($a,)*): ($($a,)*)) -> R {
                self($($a),*)
            }
        }
    };
}
star!(A);
star!(A, B);
star!(A, B, C);
star!(A, B, C, D);

/// Adapts a [`StarFn`] to a [`TaskFn`] over the tuple (zero-sized when `F` is).
pub(crate) struct Star<F, Args, R>(pub(crate) F, std::marker::PhantomData<fn(Args) -> R>);

impl<F, Args, R> Star<F, Args, R> {
    pub(crate) fn new(f: F) -> Self {
        Star(f, std::marker::PhantomData)
    }
}

impl<S, F, Args, R> TaskFn<S, Args, R, Plain> for Star<F, Args, R>
where
    F: StarFn<Args, R>,
    Args: 'static,
    R: 'static,
{
    fn call(&self, _state: &mut S, args: Args) -> R {
        self.0.call_star(args)
    }
}

/// `f` (zero-sized: a function item or a closure without captures) as a task function by
/// name, for workers started by any method; [`ErrorKind::Unsupported`] for a closure that
/// captures.
pub(crate) fn shim_ref<S, T, R, M, F>(f: &F) -> Result<ShimRef>
where
    S: 'static,
    T: DeserializeOwned + 'static,
    R: Serialize + 'static,
    F: TaskFn<S, T, R, M>,
{
    let run = |f: &F, mut io: TaskIo| {
        let (state, out) = (&mut *io.state, &mut io.out);
        run_on_state(state, &io.input, io.count, out, |s: &mut S, t: T| f.call(s, t));
        io
    };
    ShimRef::of_adapted(f, &run).map_err(captures)
}

/// `init` (zero-sized) as a state constructor by name that decodes its argument `A`.
pub(crate) fn init_ref<S, A, F>(init: &F) -> Result<InitRef>
where
    S: 'static,
    A: DeserializeOwned + 'static,
    F: Fn(A) -> S + Send + Sync + 'static,
{
    let run = |f: &F, arg: Vec<u8>| -> Box<dyn Any> {
        let a: A = postcard::from_bytes(&arg)
            .unwrap_or_else(|e| panic!("cannot decode the initializer's argument: {e}"));
        Box::new(f(a))
    };
    InitRef::of_adapted(init, &run).map_err(captures)
}

/// `init` (zero-sized, no argument) as a state constructor by name.
pub(crate) fn init0_ref<S, F>(init: &F) -> Result<InitRef>
where
    S: 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    InitRef::of_adapted(init, &|f: &F, _: Vec<u8>| -> Box<dyn Any> { Box::new(f()) })
        .map_err(captures)
}

/// A function that cannot be named across processes.
fn captures(e: multiproc_spawn::Error) -> Error {
    Error::new(ErrorKind::Unsupported, e.to_string())
}
