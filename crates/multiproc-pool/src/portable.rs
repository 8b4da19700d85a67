//! Naming a function so that another process running the same executable can call it.
//!
//! This is the crate's only `unsafe`: a spawned or forkserver worker receives a task's
//! function as an offset from an anchor function of this crate, and turns it back into a
//! function pointer; the function then materialises the zero-sized function item it stands
//! for. Both are sound because the worker runs the very binary the parent runs (spawn
//! re-executes `/proc/self/exe`; forkserver forks a re-execution of it; fork copies it), so
//! code offsets are equal, and a zero-sized function item or non-capturing closure has
//! exactly one value and no invariant.
#![allow(unsafe_code)]

use crate::func::{InitShim, ShimFn};

#[inline(never)]
fn anchor() -> u64 {
    0x6d70_706f_6f6c
}

fn anchor_addr() -> i64 {
    let f: fn() -> u64 = anchor;
    f as usize as i64
}

/// The offset of a task shim from the anchor.
pub(crate) fn shim_offset(f: ShimFn) -> i64 {
    (f as usize as i64).wrapping_sub(anchor_addr())
}

/// The offset of an initializer shim from the anchor.
pub(crate) fn init_offset(f: InitShim) -> i64 {
    (f as usize as i64).wrapping_sub(anchor_addr())
}

/// The task shim at `off` (an offset made by [`shim_offset`] in a process running this
/// same executable).
pub(crate) fn shim_at(off: i64) -> ShimFn {
    let addr = anchor_addr().wrapping_add(off) as usize;
    // SAFETY: `off` was computed by `shim_offset` from a `ShimFn` in a process running this
    // very executable (the pool sends offsets only to its own workers), so anchor + off is
    // the address of that same function here; the pointer type is the one it was made from.
    unsafe { std::mem::transmute::<usize, ShimFn>(addr) }
}

/// The initializer shim at `off` (see [`shim_at`]).
pub(crate) fn init_at(off: i64) -> InitShim {
    let addr = anchor_addr().wrapping_add(off) as usize;
    // SAFETY: as in `shim_at`: an offset of an `InitShim` of this executable.
    unsafe { std::mem::transmute::<usize, InitShim>(addr) }
}

/// The one value of the zero-sized type `F` (a function item or a non-capturing closure).
pub(crate) fn conjure<F>() -> F {
    assert_eq!(std::mem::size_of::<F>(), 0, "only zero-sized functions travel by name");
    // SAFETY: `F` is zero-sized (checked above), so it has no bytes to initialise; the
    // callers pass only function items and closures without captures (`Pool` checks the
    // size before it sends a function by name), whose single value carries no invariant.
    unsafe { std::mem::zeroed() }
}
