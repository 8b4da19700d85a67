//! The one place that swaps std for loom (`--cfg multiproc_loom`).
//!
//! Crates above use `multiproc_arena::sync` for every atomic that a shared-memory algorithm
//! runs on, so `cargo xtask loom` model-checks the same code that ships.

/// Atomics, `spin_loop` and `yield_now`: std normally, loom under `--cfg multiproc_loom`.
pub mod sync {
    /// Atomic integer types and orderings.
    pub mod atomic {
        #[cfg(multiproc_loom)]
        pub use loom::sync::atomic::{
            fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        };
        #[cfg(not(multiproc_loom))]
        pub use std::sync::atomic::{
            fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        };
    }

    /// A CPU spin hint (under loom: a yield, so models with spin loops terminate).
    #[inline]
    pub fn spin_loop() {
        if cfg!(multiproc_loom) {
            yield_now()
        } else {
            std::hint::spin_loop()
        }
    }

    /// Yields the thread (under loom: a loom-visible yield).
    #[inline]
    pub fn yield_now() {
        #[cfg(multiproc_loom)]
        loom::thread::yield_now();
        #[cfg(not(multiproc_loom))]
        std::thread::yield_now();
    }
}
