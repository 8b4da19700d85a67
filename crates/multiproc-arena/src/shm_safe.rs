//! [`ShmSafe`]: the marker for types that may live in shared memory.

/// Types that may be placed in shared memory and used from several processes at once.
///
/// Each process maps a segment at its own address, and any process may be killed at any
/// instant, so a type placed there must:
/// - hold no pointers or references (they would point into one process's address space) —
///   use [`Offset`](crate::Offset) instead;
/// - need no `Drop` that touches process-local state (no `Box`, `Vec`, `String`, `Arc`, fds);
/// - have a fixed layout: `#[repr(C)]` or `#[repr(transparent)]` for your own structs;
/// - be valid for the all-zero bit pattern is *not* required, but every bit pattern another
///   process can store must be a valid value (plain integers, atomics, arrays of them).
///
/// It is implemented for the integer and float primitives, atomics, arrays and `Offset`. Not
/// for `bool` or `char`: another process can store any byte there, and a `bool` that is
/// neither 0 nor 1 is undefined behaviour — use `AtomicBool` or a `u8` flag. Mark your own `#[repr(C)]` struct whose fields are all `ShmSafe`:
///
/// ```
/// use multiproc_arena::ShmSafe;
/// use std::sync::atomic::AtomicU64;
///
/// #[repr(C)]
/// struct Counters {
///     hits: AtomicU64,
///     misses: AtomicU64,
/// }
/// // SAFETY: repr(C), every field is ShmSafe, no pointers, no Drop.
/// unsafe impl ShmSafe for Counters {}
/// ```
///
/// Pointers, boxes and references are not `ShmSafe`:
///
/// ```compile_fail
/// fn needs<T: multiproc_arena::ShmSafe>() {}
/// needs::<*const u8>();
/// ```
///
/// ```compile_fail
/// fn needs<T: multiproc_arena::ShmSafe>() {}
/// needs::<Box<u64>>();
/// ```
///
/// ```compile_fail
/// fn needs<T: multiproc_arena::ShmSafe>() {}
/// needs::<&'static u64>();
/// ```
///
/// Nor are types with invalid bit patterns:
///
/// ```compile_fail
/// fn needs<T: multiproc_arena::ShmSafe>() {}
/// needs::<bool>();
/// ```
///
/// # Safety
///
/// Implement it only for types meeting every point above; the crates of multiproc copy and
/// reinterpret such values across process boundaries.
pub unsafe trait ShmSafe: Send + Sync + 'static {}

macro_rules! shm_safe {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: a plain value type with no pointers and no Drop.
            unsafe impl ShmSafe for $t {}
        )*
    };
}

shm_safe!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64, ());
shm_safe!(
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI8,
    std::sync::atomic::AtomicI16,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicIsize,
);

#[cfg(multiproc_loom)]
shm_safe!(
    loom::sync::atomic::AtomicBool,
    loom::sync::atomic::AtomicU32,
    loom::sync::atomic::AtomicU64,
    loom::sync::atomic::AtomicUsize,
);

// SAFETY: an array of ShmSafe values is ShmSafe (same layout rules, no pointers).
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// Asserts at compile time where each field of a shared-memory struct lies, and its size and
/// alignment: the layout other processes (and other builds) rely on.
///
/// ```
/// #[repr(C)]
/// struct Header {
///     magic: u64,
///     len: u32,
///     flags: u32,
/// }
/// multiproc_arena::assert_layout!(Header { magic: 0, len: 8, flags: 12 }, size 16, align u64);
/// ```
#[macro_export]
macro_rules! assert_layout {
    ($T:ty { $($field:ident: $off:expr),+ $(,)? }, size $size:expr, align $align:ty) => {
        const _: () = {
            $( assert!(::std::mem::offset_of!($T, $field) == $off); )+
            assert!(::std::mem::size_of::<$T>() == $size);
            assert!(::std::mem::align_of::<$T>() == ::std::mem::align_of::<$align>());
        };
    };
}

/// Builder setters, one line each: `fn name(mut self, arg: Type) { self.field = arg }`
/// becomes `pub fn name(mut self, arg: Type) -> Self` that runs the body and returns `self`.
/// Every builder of the workspace writes its plain setters through it, so they all take
/// `self` by value and chain the same way. Doc comments and attributes are kept.
///
/// ```
/// #[derive(Debug, Default)]
/// pub struct Builder {
///     size: usize,
///     name: Option<String>,
/// }
///
/// impl Builder {
///     multiproc_arena::setters! {
///         /// The size.
///         fn size(mut self, bytes: usize) { self.size = bytes }
///         /// The name.
///         fn name(mut self, name: impl Into<String>) { self.name = Some(name.into()) }
///     }
/// }
///
/// let b = Builder::default().size(4).name("x");
/// assert_eq!((b.size, b.name.as_deref()), (4, Some("x")));
/// ```
#[macro_export]
macro_rules! setters {
    ($(
        $(#[$meta:meta])*
        fn $name:ident(mut $this:ident, $arg:ident: $ty:ty) { $($body:tt)* }
    )*) => {
        $(
            $(#[$meta])*
            pub fn $name(mut $this, $arg: $ty) -> Self {
                $($body)*;
                $this
            }
        )*
    };
}

/// A `Debug` body listing a struct's fields by name: `field` prints `self.field`,
/// `name: expr` prints `expr` (a renamed, computed or redacted field); a trailing `..` ends
/// with `finish_non_exhaustive` (fields left out on purpose, such as a secret).
///
/// ```
/// use std::fmt;
///
/// struct Job {
///     id: u32,
///     key: Vec<u8>,
///     items: Vec<u32>,
/// }
///
/// impl fmt::Debug for Job {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         multiproc_arena::debug_fields!(f, self, "Job" { id, items: self.items.len() } ..)
///     }
/// }
///
/// let j = Job { id: 7, key: b"secret".to_vec(), items: vec![1, 2] };
/// assert_eq!(format!("{j:?}"), "Job { id: 7, items: 2, .. }");
/// ```
#[macro_export]
macro_rules! debug_fields {
    ($f:expr, $this:ident, $name:literal { $($body:tt)* } ..) => {
        $crate::debug_fields!(@build $f, $this, $name, finish_non_exhaustive, $($body)*)
    };
    ($f:expr, $this:ident, $name:literal { $($body:tt)* }) => {
        $crate::debug_fields!(@build $f, $this, $name, finish, $($body)*)
    };
    (@build $f:expr, $this:ident, $name:literal, $finish:ident,
        $($field:ident $(: $val:expr)?),* $(,)?) => {
        $f.debug_struct($name)
            $(.field(
                ::std::stringify!($field),
                &$crate::debug_fields!(@value $this, $field $(, $val)?),
            ))*
            .$finish()
    };
    (@value $this:ident, $field:ident) => { $this.$field };
    (@value $this:ident, $field:ident, $val:expr) => { $val };
}
