//! What the executor (client) and the worker host share: the authkey, the Redis client,
//! entry fields, thread start-up, and the lock helper.

use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The environment variable a client and a worker read their authkey from when none is
/// set in code.
pub const AUTHKEY_ENV: &str = "MULTIPROC_CLUSTER_AUTHKEY";

/// The setters an executor's builder and a worker host's builder share (fields `authkey:
/// Option<Vec<u8>>` and `namespace: String`): both sides must agree on them.
macro_rules! authkey_and_namespace_setters {
    () => {
        /// The key that signs tasks and results (default: the `MULTIPROC_CLUSTER_AUTHKEY`
        /// environment variable; one of them is required). Executors and workers must have
        /// the same key.
        pub fn authkey(mut self, key: impl AsRef<[u8]>) -> Self {
            self.authkey = Some(key.as_ref().to_vec());
            self
        }

        /// The prefix of every Redis key (default `multiproc`): executors and workers of one
        /// namespace work together, others never see each other.
        pub fn namespace(mut self, ns: impl Into<String>) -> Self {
            self.namespace = ns.into();
            self
        }
    };
}
pub(crate) use authkey_and_namespace_setters;

/// Locks `m`, recovering from poisoning (the state stays consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The authkey set in code, else the one in [`AUTHKEY_ENV`]; an error if neither, or if it
/// is empty.
pub(crate) fn authkey(set: Option<Vec<u8>>) -> Result<Vec<u8>> {
    let key = match set {
        Some(k) => k,
        None => std::env::var_os(AUTHKEY_ENV).map(|v| v.into_encoded_bytes()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("no authkey: set one with .authkey() or {AUTHKEY_ENV}"),
            )
        })?,
    };
    if key.is_empty() {
        return Err(Error::new(ErrorKind::InvalidArgument, "the authkey is empty"));
    }
    Ok(key)
}

/// The Redis client for `url` (no connection yet).
pub(crate) fn redis_client(url: &str) -> Result<redis::Client> {
    redis::Client::open(url).map_err(|e| Error::redis(e, format!("bad Redis URL {}", redact(url))))
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Field `k` of a stream entry, if it is a byte string.
pub(crate) fn field<'a>(map: &'a HashMap<String, redis::Value>, k: &str) -> Option<&'a [u8]> {
    match map.get(k) {
        Some(redis::Value::BulkString(b)) => Some(b),
        _ => None,
    }
}

/// Starts a named background thread running `f(arg)`.
pub(crate) fn spawn<A: Send + 'static>(
    name: &str,
    f: fn(A),
    arg: A,
    kind: ErrorKind,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || f(arg))
        .map_err(|e| Error::new(kind, format!("thread: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_printed_without_passwords() {
        assert_eq!(redact("redis://alice:secret@h:6379/0"), "redis://…@h:6379/0");
        assert_eq!(redact("redis+unix:///tmp/r.sock"), "redis+unix:///tmp/r.sock");
    }

    #[test]
    fn an_authkey_set_in_code_wins_and_an_empty_one_is_refused() {
        assert_eq!(authkey(Some(b"k".to_vec())).unwrap(), b"k");
        assert_eq!(authkey(Some(Vec::new())).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn only_byte_string_fields_are_read() {
        let mut m = HashMap::new();
        m.insert("m".to_string(), redis::Value::BulkString(b"x".to_vec()));
        m.insert("n".to_string(), redis::Value::Int(1));
        assert_eq!(field(&m, "m"), Some(&b"x"[..]));
        assert_eq!(field(&m, "n"), None);
        assert_eq!(field(&m, "s"), None);
    }
}
