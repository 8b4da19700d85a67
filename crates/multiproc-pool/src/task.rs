//! What a pool accepts as a task function.
//!
//! A function item (`fn square(x: u64) -> u64`) or a closure without captures is
//! zero-sized: it is sent to workers by name and runs under every start method. So does a
//! function pointer `fn(T) -> R` (a value chosen at run time): it is sent as a checked
//! reference. A closure that captures, or a pointer that takes the worker state
//! (`fn(&mut S, T) -> R`), runs under fork only (workers forked after it was first used
//! see it).

use crate::error::{Error, ErrorKind, Result};
use crate::func::{fail_all, run_items, run_on_state, FuncRef, InitRef, ShimRef, TaskIo};
use multiproc_spawn::{FnRef, FNREF_LEN};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;

/// What crosses to a worker and back: a task's argument or result — owned (`'static`),
/// `Send`, and serde-serialisable both ways (postcard; handles travel with their
/// descriptors). Every such type is one; the trait names the bound once.
///
/// A type that is not one is refused at compile time with a message of this trait's own
/// rather than serde's (the blanket impl is `#[diagnostic::do_not_recommend]`, so rustc
/// reports `Payload` itself):
///
/// ```compile_fail,E0277
/// use multiproc_pool::{Executor, ProcessPoolExecutor};
///
/// struct NotSerialisable(u32); // no #[derive(Serialize, Deserialize)]
///
/// fn f(x: NotSerialisable) -> u32 {
///     x.0
/// }
///
/// let ex = ProcessPoolExecutor::new(1).unwrap();
/// // error[E0277]: `NotSerialisable` cannot cross to a worker process: a task's argument or
/// //               result must be owned and serialisable both ways
/// //   = note: pass owned data (`String` for `&str`, `Vec<T>` for `&[T]`); derive
/// //           `serde::Serialize` and `serde::Deserialize` for types of your own
/// let _ = ex.submit(f, NotSerialisable(1));
/// ```
///
/// A borrowed type (`&str`, `&[u8]`) is not one either, but that failure is a lifetime
/// error, which no trait's message can replace: rustc says "implementation of `Deserialize`
/// is not general enough". Pass `String` / `Vec<u8>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross to a worker process: a task's argument or result must be owned and serialisable both ways",
    label = "not an owned, serialisable value (`Serialize + DeserializeOwned + Send + 'static`)",
    note = "pass owned data (`String` for `&str`, `Vec<T>` for `&[T]`); derive `serde::Serialize` and `serde::Deserialize` for types of your own"
)]
pub trait Payload: Serialize + DeserializeOwned + Send + 'static {}

// Without this, rustc reports the failing serde bound under the impl instead of `Payload`,
// and the message above never shows (stable since Rust 1.85; an older compiler warns that it does not know it, and shows serde's).
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + 'static> Payload for T {}

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

/// `f`, if it is a function pointer `fn(T) -> R` (not zero-sized: its value is an address),
/// as a task function by name for every start method: [`run_pointer`] by name, with the
/// pointer's own checked reference ([`FnRef::new`]) in front of each task's payload. `None`
/// if `f` is not such a pointer; an error if it points outside the main executable.
pub(crate) fn pointer_ref<S, T, R, M, F>(f: &F) -> Option<Result<FuncRef>>
where
    T: DeserializeOwned + 'static,
    R: Serialize + 'static,
    F: TaskFn<S, T, R, M>,
{
    let p = (f as &dyn Any).downcast_ref::<fn(T) -> R>()?;
    let refs = FnRef::<T, R>::new(*p).and_then(|target| {
        Ok(FuncRef::Pointer(ShimRef::new(run_pointer::<T, R>)?, target.to_bytes()))
    });
    Some(refs.map_err(captures))
}

/// Whether `f` is a function pointer that takes the worker state, which cannot be named in
/// another process ([`FnRef`] names `fn(A) -> R` only).
pub(crate) fn is_stateful_pointer<S: 'static, T: 'static, R: 'static, F: 'static>(f: &F) -> bool {
    (f as &dyn Any).is::<fn(&mut S, T) -> R>()
}

/// The worker side of [`pointer_ref`]: resolves (checks) the reference that leads the
/// payload and runs the items after it; a reference that does not resolve fails each item.
fn run_pointer<T: DeserializeOwned + 'static, R: Serialize + 'static>(mut io: TaskIo) -> TaskIo {
    let TaskIo { input, count, out, .. } = &mut io;
    let f = match input.get(..FNREF_LEN).map(<[u8; FNREF_LEN]>::try_from) {
        Some(Ok(b)) => FnRef::<T, R>::from_bytes(b).resolve().map_err(|e| e.to_string()),
        _ => Err("the task has no function reference".to_string()),
    };
    match f {
        Ok(f) => run_items(&input[FNREF_LEN..], *count, out, f),
        Err(why) => fail_all(out, *count, &format!("bad task function: {why}")),
    }
    io
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::func::{encode_append, take_outcome, TAG_CODEC};

    fn run(target: [u8; FNREF_LEN], items: &[u32]) -> Vec<u8> {
        let mut input = target.to_vec();
        for x in items {
            encode_append(x, &mut input).unwrap();
        }
        let io = TaskIo { state: Box::new(()), input, count: items.len() as u32, out: Vec::new() };
        run_pointer::<u32, u32>(io).out
    }

    #[test]
    fn a_pointer_runs_by_reference_and_a_garbled_one_fails_its_items() {
        let f: fn(u32) -> u32 = |x| x + 1;
        let Some(Ok(FuncRef::Pointer(_, target))) = pointer_ref::<(), u32, u32, Plain, _>(&f)
        else {
            panic!("a fn pointer is named by reference");
        };
        let out = run(target, &[1, 2]);
        let mut d = &out[..];
        assert_eq!(take_outcome::<u32>(&mut d).unwrap(), Ok(2));
        assert_eq!(take_outcome::<u32>(&mut d).unwrap(), Ok(3));
        for i in [0, 9, 20] {
            let mut bad = target;
            bad[i] ^= 4;
            let out = run(bad, &[1, 2]);
            let mut d = &out[..];
            for _ in 0..2 {
                let (tag, msg) = take_outcome::<u32>(&mut d).unwrap().unwrap_err();
                assert_eq!(tag, TAG_CODEC);
                assert!(msg.starts_with("bad task function: "), "{msg}");
            }
        }
        // Not a pointer (zero-sized item): not this path.
        fn item(x: u32) -> u32 {
            x
        }
        assert!(pointer_ref::<(), u32, u32, Plain, _>(&item).is_none());
    }
}
