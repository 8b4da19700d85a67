//! The error type of this crate.

use std::fmt;
use std::io;

crate::error_type! {
    /// The error type of `multiproc-arena`.
    pub struct Error {}

    /// What went wrong, without the details; see [`Error::kind`].
    pub enum ErrorKind {
        /// No segment has this name.
        NotFound => "no such shared-memory segment",
        /// A segment with this name exists already (creation uses `O_EXCL`).
        AlreadyExists => "a shared-memory segment with this name already exists",
        /// The name is empty, too long, or holds `/` or NUL after the optional leading `/`.
        InvalidName => "invalid shared-memory name",
        /// The object does not start with a multiproc segment header (wrong magic).
        InvalidHeader => "not a multiproc segment (bad magic)",
        /// The header was written by an incompatible layout version.
        VersionMismatch => "segment layout version mismatch",
        /// The object is shorter than its header says.
        Truncated => "segment is truncated",
        /// The creator has not finished initialising the segment.
        NotInitialized => "segment is still being initialised by its creator",
        /// The operating system refused access (file mode, another user).
        PermissionDenied => "permission denied",
        /// The arena has no free block large enough.
        ArenaFull => "arena is full",
        /// A size or alignment the arena cannot serve (zero-sized is fine; this is too large).
        InvalidLayout => "size or alignment not supported by the arena",
        /// A handle was serialised outside a transfer context, or its descriptors are missing.
        NoTransferContext => "a process handle can only be serialised inside a transfer context \
             (pass it as a process argument or over a Connection)",
        /// A received handle does not match what it claims to be (type, arena, offset).
        InvalidHandle => "received handle is invalid",
        /// A serialisation or deserialisation error.
        Codec => "serialisation error",
        /// The memory for a segment cannot be had: `/dev/shm` (a tmpfs) is full, or the memory
        /// limit was reached (`ENOSPC`, `ENOMEM`). Reported when the segment is created or grows,
        /// never later as a SIGBUS on first touch: the pages are reserved up front.
        NoSpace => "no memory left for shared memory (/dev/shm or the memory limit is full)",
        /// The process (`EMFILE`) or the system (`ENFILE`) has no file descriptors left.
        NoDescriptors => "no file descriptors left",
        /// A named object holds another type than the one asked for (or is no named object).
        WrongType => "the named object holds another type",
        /// Some other operating-system error; see [`Error::source`](std::error::Error::source).
        Io => "I/O error",
    }

    io {
        NotFound => NotFound,
        AlreadyExists => AlreadyExists,
        PermissionDenied => PermissionDenied,
        NoSpace => OutOfMemory,
        InvalidName => InvalidInput,
        InvalidLayout => InvalidInput,
    }
}

impl Error {
    pub(crate) fn io(err: io::Error, what: impl Into<String>) -> Self {
        let kind = match (err.raw_os_error(), err.kind()) {
            (Some(libc::ENOSPC | libc::ENOMEM), _) => ErrorKind::NoSpace,
            (Some(libc::EMFILE | libc::ENFILE), _) => ErrorKind::NoDescriptors,
            (_, io::ErrorKind::NotFound) => ErrorKind::NotFound,
            (_, io::ErrorKind::AlreadyExists) => ErrorKind::AlreadyExists,
            (_, io::ErrorKind::PermissionDenied) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Error::with_source(kind, what, err)
    }
}

/// The symbolic name of the `errno` values that mean "the machine ran short" (and a few
/// others worth naming), so that error messages say `ENOSPC` rather than only "os error 28".
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::ENOSPC => "ENOSPC",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EAGAIN => "EAGAIN",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOBUFS => "ENOBUFS",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return None,
    })
}

/// Whether an I/O error means the machine ran short of a resource (memory, `/dev/shm`
/// space, descriptors, processes): a condition that may pass, unlike a bad argument.
pub fn is_resource_shortage(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::ENOMEM
                | libc::EMFILE
                | libc::ENFILE
                | libc::EAGAIN
                | libc::ENOBUFS
        )
    )
}

/// Writes a crate's error scaffolding once: the `ErrorKind` enum with its messages, the
/// `Error` struct (kind, optional detail, optional shared source, plus any extra fields; cheap
/// to clone), the
/// crate's `Result`, `Display` (`kind: detail (ENAME: source)`), `Debug`,
/// `std::error::Error`, `From<ErrorKind>` and `From<Error> for std::io::Error`.
///
/// Every crate of the workspace declares its error through this macro, so the shape is the
/// same everywhere; crate-specific constructors and queries go in a plain `impl Error` next
/// to it. Generated: `pub fn new(kind, detail)`, `pub fn kind()`, `pub fn detail()`, and
/// `is_timeout()`, `is_would_block()`, `is_disconnected()` (from the optional `classes`
/// section; also through [`api::OpError`](crate::api::OpError)), and
/// crate-private `kind_only(kind)` and `with_source(kind, detail, source)` (an empty detail
/// is left out of the message). A source whose text equals the detail is not repeated.
#[doc(hidden)]
#[macro_export]
macro_rules! error_type {
    (
        $(#[$emeta:meta])*
        pub struct $Error:ident { $($field:ident : $fty:ty = $finit:expr),* $(,)? }

        $(#[$kmeta:meta])*
        pub enum $Kind:ident {
            $( $(#[$vmeta:meta])* $V:ident => $msg:expr ),+ $(,)?
        }

        io { $( $IoK:ident => $io:ident ),* $(,)? }
        $(
            classes {
                timeout: [ $( $TK:ident ),* $(,)? ],
                would_block: [ $( $WK:ident ),* $(,)? ],
                disconnected: [ $( $DK:ident ),* $(,)? ] $(,)?
            }
        )?
    ) => {
        $(#[$kmeta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $Kind {
            $( $(#[$vmeta])* $V, )+
        }

        impl ::std::fmt::Display for $Kind {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(match self { $( $Kind::$V => $msg, )+ })
            }
        }

        $(#[$emeta])*
        #[derive(Clone)]
        pub struct $Error {
            kind: $Kind,
            detail: ::std::option::Option<::std::string::String>,
            source: ::std::option::Option<
                ::std::sync::Arc<dyn ::std::error::Error + Send + Sync + 'static>,
            >,
            $( $field: $fty, )*
        }

        /// `Result` with this crate's error.
        pub type Result<T, E = $Error> = ::std::result::Result<T, E>;

        #[allow(dead_code)]
        impl $Error {
            /// An error of `kind` with a human-readable detail.
            pub fn new(kind: $Kind, detail: impl Into<::std::string::String>) -> Self {
                let detail = detail.into();
                $Error {
                    kind,
                    detail: (!detail.is_empty()).then_some(detail),
                    source: None,
                    $( $field: $finit, )*
                }
            }

            /// What kind of error this is.
            pub fn kind(&self) -> $Kind {
                self.kind
            }

            /// The detail message, if any.
            pub fn detail(&self) -> ::std::option::Option<&str> {
                self.detail.as_deref()
            }

            /// Whether a deadline passed: the `_timeout` call gave up (nothing was done).
            pub fn is_timeout(&self) -> bool {
                #[allow(unreachable_patterns)]
                match self.kind {
                    $( $( $Kind::$TK => true, )* )?
                    _ => false,
                }
            }

            /// Whether a `try_` call found it could not proceed now (nothing was done).
            pub fn is_would_block(&self) -> bool {
                #[allow(unreachable_patterns)]
                match self.kind {
                    $( $( $Kind::$WK => true, )* )?
                    _ => false,
                }
            }

            /// Whether the other side (a peer, a server, a closed object) is gone: retrying
            /// the same call cannot succeed.
            pub fn is_disconnected(&self) -> bool {
                #[allow(unreachable_patterns)]
                match self.kind {
                    $( $( $Kind::$DK => true, )* )?
                    _ => false,
                }
            }

            pub(crate) fn kind_only(kind: $Kind) -> Self {
                $Error { kind, detail: None, source: None, $( $field: $finit, )* }
            }

            pub(crate) fn with_source(
                kind: $Kind,
                detail: impl Into<::std::string::String>,
                source: impl ::std::error::Error + Send + Sync + 'static,
            ) -> Self {
                let mut e = $Error::new(kind, detail);
                e.source = Some(::std::sync::Arc::new(source));
                e
            }

            /// The source, if it is an `E`.
            pub(crate) fn source_as<E: ::std::error::Error + 'static>(
                &self,
            ) -> ::std::option::Option<&E> {
                self.source.as_deref()?.downcast_ref::<E>()
            }
        }

        impl ::std::fmt::Display for $Error {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::write!(f, "{}", self.kind)?;
                if let Some(d) = &self.detail {
                    ::std::write!(f, ": {d}")?;
                }
                if let Some(s) = &self.source {
                    $crate::write_source(f, &**s, self.detail.as_deref())?;
                }
                Ok(())
            }
        }

        impl ::std::fmt::Debug for $Error {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let mut d = f.debug_struct(::std::stringify!($Error));
                d.field("kind", &self.kind);
                if let Some(x) = &self.detail {
                    d.field("detail", x);
                }
                if let Some(s) = &self.source {
                    d.field("source", s);
                }
                d.finish_non_exhaustive()
            }
        }

        impl ::std::error::Error for $Error {
            fn source(&self) -> ::std::option::Option<&(dyn ::std::error::Error + 'static)> {
                self.source.as_deref().map(|e| e as _)
            }
        }

        $crate::op_error_by_inherent!($Error);

        impl ::std::convert::From<$Kind> for $Error {
            fn from(kind: $Kind) -> Self {
                $Error::kind_only(kind)
            }
        }

        impl ::std::convert::From<$Error> for ::std::io::Error {
            fn from(e: $Error) -> ::std::io::Error {
                #[allow(unreachable_patterns)]
                let kind = match e.kind {
                    $( $Kind::$IoK => ::std::io::ErrorKind::$io, )*
                    _ => ::std::io::ErrorKind::Other,
                };
                ::std::io::Error::new(kind, e)
            }
        }
    };
}

/// Implements [`api::OpError`](crate::api::OpError) for `$T` by its inherent `is_timeout`,
/// `is_would_block` and `is_disconnected` methods; `[generics]` first for a generic type:
/// `op_error_by_inherent!([T: Send + Sync + 'static] PutError<T>)`. Used by
/// [`error_type!`](crate::error_type) and by the error types made without it.
#[doc(hidden)]
#[macro_export]
macro_rules! op_error_by_inherent {
    ([$($generics:tt)*] $T:ty) => {
        impl<$($generics)*> $crate::api::OpError for $T {
            fn is_timeout(&self) -> bool {
                <$T>::is_timeout(self)
            }
            fn is_would_block(&self) -> bool {
                <$T>::is_would_block(self)
            }
            fn is_disconnected(&self) -> bool {
                <$T>::is_disconnected(self)
            }
        }
    };
    ($T:ty) => {
        $crate::op_error_by_inherent!([] $T);
    };
}

/// Writes an error's source after its kind and detail: ` (ENAME: text)` for an OS error with
/// a named errno, ` (text)` otherwise, nothing when the text repeats the detail. For
/// [`error_type!`].
#[doc(hidden)]
pub fn write_source(
    f: &mut fmt::Formatter<'_>,
    source: &(dyn std::error::Error + Send + Sync + 'static),
    detail: Option<&str>,
) -> fmt::Result {
    let text = source.to_string();
    if detail == Some(text.as_str()) {
        return Ok(());
    }
    let errno = source.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error);
    match errno.and_then(errno_name) {
        Some(name) => write!(f, " ({name}: {text})"),
        None => write!(f, " ({text})"),
    }
}
