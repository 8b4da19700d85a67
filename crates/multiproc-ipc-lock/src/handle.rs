//! The constructors and serde impls that every argument-free primitive of this crate shares
//! (a handle is one [`Shared`](multiproc_arena::Shared) block): one definition instead of a
//! copy per type, so `Lock`, `RLock`, `Event`, `Semaphore` and `BoundedSemaphore` cannot
//! drift apart.

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
