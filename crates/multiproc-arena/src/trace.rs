//! The workspace's one switch for `tracing` events: [`event!`](crate::event).
//!
//! multiproc logs nothing by default. With the `tracing` feature (of this crate, or of any
//! crate above it, which forwards here) the rare moments an operator wants to see become
//! `tracing` events under the target `multiproc::<crate>`: a lock taken over from a dead
//! holder, a worker's death and replacement, a forkserver restart, a queue spill, an orphaned
//! segment removed, a failed authentication. Without the feature the macro expands to
//! nothing, so the calls cost nothing.

#[cfg(feature = "tracing")]
#[doc(hidden)]
pub use tracing as __tracing;

/// Emits a `tracing` event when the `tracing` feature is on; expands to nothing otherwise.
///
/// `event!(warn, target: "multiproc::lock", holder = id, "taken over from a dead holder")` —
/// the level (`error`, `warn`, `info`, `debug`, `trace`) and then `tracing`'s own syntax.
/// Arguments are not evaluated when the feature is off: pass plain values, not work.
#[cfg(feature = "tracing")]
#[macro_export]
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        $crate::trace::__tracing::$level!($($arg)+)
    };
}

/// Emits a `tracing` event when the `tracing` feature is on; expands to nothing otherwise.
///
/// `event!(warn, target: "multiproc::lock", holder = id, "taken over from a dead holder")` —
/// the level (`error`, `warn`, `info`, `debug`, `trace`) and then `tracing`'s own syntax.
/// Arguments are not evaluated when the feature is off: pass plain values, not work.
#[cfg(not(feature = "tracing"))]
#[macro_export]
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{}};
}
