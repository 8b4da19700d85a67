//! The raw libc calls of this crate (one: `pthread_atfork`), and the constructor that makes
//! it before `main`.
#![allow(clippy::disallowed_methods)]

/// Registers `child` to run in the child after every `fork()` made through libc.
pub(crate) fn at_fork_child(child: unsafe extern "C" fn()) {
    // SAFETY: registers a handler with no prepare/parent parts; `child` only stores to
    // atomics, which is async-signal-safe as the child of a multi-threaded fork requires.
    let r = unsafe { libc::pthread_atfork(None, None, Some(child)) };
    assert_eq!(r, 0, "pthread_atfork failed");
}

/// Runs before `main` (and before any thread exists) in every binary linking this crate.
#[used]
#[link_section = ".init_array"]
static REGISTER_AT_FORK: extern "C" fn() = crate::ident::register_at_fork;
