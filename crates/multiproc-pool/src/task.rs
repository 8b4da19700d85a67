//! What a pool accepts as a task function.
//!
//! A function item (`fn square(x: u64) -> u64`) or a closure without captures is
//! zero-sized: it is sent to workers by name and runs under every start method. A closure
//! that captures runs under fork only (workers forked after it was first used see it).

use crate::func::{run_items, InitShim, ShimFn};
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

/// The shim that runs zero-sized `F` in a worker (see [`crate::portable`]).
pub(crate) fn shim<S, T, R, M, F>(state: &mut dyn Any, input: &[u8], count: u32, out: &mut Vec<u8>)
where
    S: 'static,
    T: DeserializeOwned,
    R: Serialize,
    F: TaskFn<S, T, R, M>,
{
    let f: F = crate::portable::conjure();
    let Some(state) = state.downcast_mut::<S>() else {
        crate::func::runner::<S, T, R, _>(move |s: &mut S, t: T| f.call(s, t))(
            state, input, count, out,
        );
        return;
    };
    run_items(input, count, out, |t| f.call(state, t));
}

/// `shim` as a function pointer.
pub(crate) fn shim_ptr<S, T, R, M, F>() -> ShimFn
where
    S: 'static,
    T: DeserializeOwned,
    R: Serialize,
    F: TaskFn<S, T, R, M>,
{
    shim::<S, T, R, M, F>
}

/// Builds a worker state with zero-sized `F` and its postcard-encoded argument.
pub(crate) fn init_shim<S: 'static, A: DeserializeOwned, F: Fn(A) -> S>(
    arg: &[u8],
) -> Box<dyn Any> {
    let f: F = crate::portable::conjure();
    let a: A = postcard::from_bytes(arg)
        .unwrap_or_else(|e| panic!("cannot decode the initializer's argument: {e}"));
    Box::new(f(a))
}

pub(crate) fn init_shim_ptr<S: 'static, A: DeserializeOwned, F: Fn(A) -> S>() -> InitShim {
    init_shim::<S, A, F>
}

/// Builds a worker state with zero-sized `F` that takes no argument.
pub(crate) fn init0_shim<S: 'static, F: Fn() -> S>(_: &[u8]) -> Box<dyn Any> {
    let f: F = crate::portable::conjure();
    Box::new(f())
}

pub(crate) fn init0_shim_ptr<S: 'static, F: Fn() -> S>() -> InitShim {
    init0_shim::<S, F>
}
