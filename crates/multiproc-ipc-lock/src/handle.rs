//! The constructors and serde impls that every argument-free primitive of this crate shares
//! (a handle is one [`Shared`](multiproc_arena::Shared) block): one definition instead of a
//! copy per type, so `Lock`, `RLock`, `Event`, `Semaphore` and `BoundedSemaphore` cannot
//! drift apart. [`value_lock!`] does the same for the two locks around a value, `Mutex<T>`
//! and `RwLock<T>`.

/// For `$T { $field: Shared<_> }` whose fresh state is `$init` (which may use `?` and the
/// constructor arguments): `new`, `new_in`, the named constructors (`create_named`, `open`,
/// `open_or_create`, `persist_name`) and serde.
macro_rules! shared_handle {
    ($T:ident, $field:ident, $what:literal, || $init:expr) => {
        crate::handle::shared_handle!($T, $field, $what, | | $init);
    };
    ($T:ident, $field:ident, $what:literal, |$($arg:ident: $aty:ty),*| $init:expr) => {
        impl $T {
            #[doc = concat!("A new ", $what, " in the [global arena](Arena::global).")]
            pub fn new($($arg: $aty),*) -> Result<$T> {
                Ok($T { $field: Shared::new($init)? })
            }

            #[doc = concat!("A new ", $what, " in `arena`.")]
            pub fn new_in(arena: &Arena, $($arg: $aty),*) -> Result<$T> {
                Ok($T { $field: Shared::new_in(arena, $init)? })
            }

            #[doc = concat!("Creates a ", $what, " under `name` that unrelated processes of the")]
            /// user can [`open`](Self::open) (a named segment in `/dev/shm`, mode 0600). The
            /// name goes when the last process using it drops it, or is SIGKILLed (then the
            /// next `multiproc_arena::cleanup_orphans` removes it). `AlreadyExists` if the name
            /// is taken.
            #[cfg(not(multiproc_loom))]
            pub fn create_named(name: &str, $($arg: $aty),*) -> Result<$T> {
                Ok($T { $field: Shared::create_named(name, $init)? })
            }

            #[doc = concat!("Opens the ", $what, " another process created under `name`:")]
            /// `NotFound` if there is none, `WrongType` if the name holds another kind of
            /// object.
            #[cfg(not(multiproc_loom))]
            pub fn open(name: &str) -> Result<$T> {
                Ok($T { $field: Shared::open_named(name)? })
            }

            /// Keeps the name after every user is gone (a named object only; remove it with
            /// `multiproc_arena::Segment::unlink_name`).
            #[cfg(not(multiproc_loom))]
            pub fn persist_name(&self) {
                self.$field.persist_name()
            }

            /// Opens `name`, creating it with these arguments if it does not exist (one of
            /// several racing processes creates it; the others open what it made).
            #[cfg(not(multiproc_loom))]
            pub fn open_or_create(name: &str, $($arg: $aty),*) -> Result<$T> {
                let fresh = $init;
                Ok($T { $field: Shared::open_or_create_named(name, move || fresh)? })
            }
        }

        impl serde::Serialize for $T {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                self.$field.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $T {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                Ok($T { $field: Shared::deserialize(d)? })
            }
        }
    };
}

pub(crate) use shared_handle;

/// For a lock around a value, `$T<T: ShmSafe> { state: Shared<$State<T>> }`, whose fresh state
/// is `$State::new(value)` and whose `state.$raw` is the `RawLock` that carries the poison and
/// the owner: the constructors (`new`, `new_in`, `create_named`, `open`, `persist_name`,
/// `open_or_create`), `is_poisoned`, `clear_poison`, the owner query (named and documented by
/// the caller), `same`, `Clone`, `Debug` for the lock (through its `$peek`, a `try_*` lock
/// method) and for its guards, `Deref`, `DerefMut` and `Drop` for its exclusive guard `$X`
/// (whose field `$xf` is the lock, and whose drop unlocks `$raw`, waking all its waiters if
/// `$wake_all`), and serde. Of the docs, `$what` names the type in prose ("mutex"), `$short`
/// in the short docs ("lock"), `$who` the one whose death poisons it ("holder"), and `$tail`
/// ends the sentence of `open_or_create`.
macro_rules! value_lock {
    (
        $T:ident($State:ident), raw: $raw:ident, peek: $peek:ident, guards: $($G:ident),+;
        exclusive: $X:ident.$xf:ident, wake_all: $wake_all:literal;
        docs: $what:literal, $short:literal, $who:literal, $tail:literal;
        $(#[$odoc:meta])* owner: $owner:ident
    ) => {
        impl<T: ShmSafe> $T<T> {
            /// Places `value` behind a new lock in the [global arena](Arena::global).
            pub fn new(value: T) -> Result<Self> {
                Ok($T { state: Shared::new($State::new(value))? })
            }

            /// Places `value` behind a new lock in `arena`.
            pub fn new_in(arena: &Arena, value: T) -> Result<Self> {
                Ok($T { state: Shared::new_in(arena, $State::new(value))? })
            }

            #[doc = concat!("Creates a ", $what, " holding `value` under `name` that unrelated")]
            /// processes of the user can [`open`](Self::open) (a named segment in `/dev/shm`,
            /// mode 0600). The name goes when the last process using it drops it, or is
            /// SIGKILLed (then the next `multiproc_arena::cleanup_orphans` removes it).
            /// `AlreadyExists` if the name is taken.
            #[cfg(not(multiproc_loom))]
            pub fn create_named(name: &str, value: T) -> Result<Self> {
                Ok($T { state: Shared::create_named(name, $State::new(value))? })
            }

            #[doc = concat!("Opens the ", $short, " another process created under `name`:")]
            /// `NotFound` if there is none, `WrongType` if the name holds another kind of
            /// object or another `T`.
            #[cfg(not(multiproc_loom))]
            pub fn open(name: &str) -> Result<Self> {
                Ok($T { state: Shared::open_named(name)? })
            }

            /// Keeps the name after every user is gone (a named object only; remove it with
            /// `multiproc_arena::Segment::unlink_name`).
            #[cfg(not(multiproc_loom))]
            pub fn persist_name(&self) {
                self.state.persist_name()
            }

            #[doc = concat!("Opens `name`, creating it with `init()` if it does not exist", $tail)]
            #[cfg(not(multiproc_loom))]
            pub fn open_or_create(name: &str, init: impl FnOnce() -> T) -> Result<Self> {
                Ok($T { state: Shared::open_or_create_named(name, || $State::new(init()))? })
            }

            #[doc = concat!("Whether a ", $who, " died or panicked since the last")]
            /// [`clear_poison`](Self::clear_poison).
            pub fn is_poisoned(&self) -> bool {
                self.state.$raw.is_poisoned()
            }

            /// Clears the poison.
            pub fn clear_poison(&self) {
                self.state.$raw.clear_poison()
            }

            $(#[$odoc])*
            pub fn $owner(&self) -> Option<u32> {
                self.state.$raw.holder()
            }

            #[doc = concat!("Whether two handles name the same ", $short, ".")]
            pub fn same(&self, other: &$T<T>) -> bool {
                std::ptr::eq(&*self.state, &*other.state)
            }
        }

        impl<T: ShmSafe> Clone for $T<T> {
            fn clone(&self) -> Self {
                $T { state: self.state.clone() }
            }
        }

        impl<T: ShmSafe + std::fmt::Debug> std::fmt::Debug for $T<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut d = f.debug_struct(stringify!($T));
                match self.$peek() {
                    Ok(g) => d.field("data", &&*g),
                    Err(std::sync::TryLockError::Poisoned(e)) => d.field("data", &&**e.get_ref()),
                    Err(std::sync::TryLockError::WouldBlock) => {
                        d.field("data", &format_args!("<locked>"))
                    }
                };
                d.field("poisoned", &self.is_poisoned()).finish()
            }
        }

        $(
            impl<T: ShmSafe + std::fmt::Debug> std::fmt::Debug for $G<'_, T> {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    std::fmt::Debug::fmt(&**self, f)
                }
            }
        )+

        impl<T: ShmSafe> std::ops::Deref for $X<'_, T> {
            type Target = T;
            fn deref(&self) -> &T {
                // SAFETY: the guard proves we hold the lock exclusively: this is the only
                // access to the value in any process until the guard is dropped.
                unsafe { &*self.$xf.state.data.get() }
            }
        }

        impl<T: ShmSafe> std::ops::DerefMut for $X<'_, T> {
            fn deref_mut(&mut self) -> &mut T {
                // SAFETY: as for `deref`.
                unsafe { &mut *self.$xf.state.data.get() }
            }
        }

        impl<T: ShmSafe> Drop for $X<'_, T> {
            #[inline]
            fn drop(&mut self) {
                let poison = !self.panicking && std::thread::panicking();
                self.$xf.state.$raw.unlock(crate::ident::me(), poison, $wake_all);
            }
        }

        impl<T: ShmSafe> serde::Serialize for $T<T> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                self.state.serialize(s)
            }
        }

        impl<'de, T: ShmSafe> serde::Deserialize<'de> for $T<T> {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                Ok($T { state: Shared::deserialize(d)? })
            }
        }
    };
}

pub(crate) use value_lock;
