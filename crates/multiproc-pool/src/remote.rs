//! Running tasks for another copy of this program: the pieces an executor across hosts
//! (`multiproc-cluster`) builds on.
//!
//! A task function travels as a [`RemoteFn`]: a [`multiproc_spawn::FnRef`] to its shim,
//! which means the same function only in a byte-identical executable. So it crosses a
//! process boundary only *sealed*: [`RemoteFn::seal`] binds the reference to this build's
//! identity ([`build_id`], a SHA-256 of the executable) with an HMAC under a key, and
//! [`RemoteFn::unseal`] gives it back only if the HMAC verifies under the same key and the
//! build is this one — a task from a different build, or bytes written by someone without
//! the key, are refused ([`ErrorKind::Refused`]), never run. [`Pool::submit_remote`] runs
//! an unsealed function on encoded items and hands back the encoded outcomes, which
//! [`decode_outcomes`] turns into values on the other side. [`Promise`] is the write side
//! of a [`Future`], for executors that finish futures themselves.

use crate::error::{Error, ErrorKind, Result};
use crate::func::{encode_append, FuncRef, ShimRef};
use crate::future::{Future, Slot};
use crate::pool::Pool;
use crate::sink::{decode_items, SingleSink};
use crate::task::{shim_ref, Plain};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Bytes of a sealed [`RemoteFn`]: build identity, offset, type hash, HMAC.
pub const SEALED_LEN: usize = multiproc_spawn::SEALED_FNREF_LEN;

/// This executable's identity: the SHA-256 of `/proc/self/exe`, computed once per process
/// (a few hundred milliseconds for a large debug binary). Two processes can exchange
/// [`RemoteFn`]s only if their identities are equal.
pub fn build_id() -> &'static [u8; 32] {
    multiproc_spawn::build_id()
}

/// A task function named for another process running this same executable (see the
/// [module docs](self)). Made with [`RemoteFn::of`]; sent with [`seal`](Self::seal);
/// received with [`unseal`](Self::unseal).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RemoteFn {
    func: ShimRef,
}

impl fmt::Debug for RemoteFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteFn").field("func", &self.func).finish()
    }
}

impl RemoteFn {
    /// `f` as a remote function of one argument. `f` must be a function item or a closure
    /// without captures ([`ErrorKind::Unsupported`] otherwise: a captured value cannot
    /// travel by name).
    pub fn of<T, R, F>(f: &F) -> Result<RemoteFn>
    where
        T: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        Ok(RemoteFn { func: shim_ref::<(), T, R, Plain, F>(f)? })
    }

    /// The sealed form: this build's identity, the function and an HMAC-SHA256 over both
    /// under `key`.
    pub fn seal(&self, key: &[u8]) -> [u8; SEALED_LEN] {
        self.func.seal(key).expect("a RemoteFn holds a reference checked in this process")
    }

    /// The function sealed in `bytes`, if they were sealed under `key` by a process running
    /// this very executable. [`ErrorKind::Refused`] for a different build (the error says
    /// both identities), a bad HMAC, or bytes of the wrong length.
    pub fn unseal(bytes: &[u8], key: &[u8]) -> Result<RemoteFn> {
        match ShimRef::unseal(bytes, key) {
            Ok(func) => Ok(RemoteFn { func }),
            Err(e) => Err(Error::new(ErrorKind::Refused, e.to_string())),
        }
    }
}

/// The first 8 bytes of an identity in hex.
pub fn short_hex(id: &[u8]) -> String {
    multiproc_spawn::short_hex(id)
}

/// Appends `item`'s encoding to `out` (items of a task lie back to back); on failure `out`
/// is unchanged and the error is [`ErrorKind::Codec`].
pub fn encode_item<T: Serialize>(item: &T, out: &mut Vec<u8>) -> Result<()> {
    encode_append(item, out).map_err(|e| Error::new(ErrorKind::Codec, e.describe("the argument")))
}

/// The outcomes of `count` items as [`Pool::submit_remote`] produced them: each a value,
/// or the item's [`ErrorKind::Panicked`] / [`ErrorKind::Codec`] error.
pub fn decode_outcomes<R: DeserializeOwned>(count: u32, data: &[u8]) -> Vec<Result<R>> {
    let mut out = Vec::with_capacity(count as usize);
    decode_items::<R>(count, data, |r| out.push(r));
    out
}

impl<S: 'static> Pool<S> {
    /// Runs `f` on `count` items encoded back to back in `payload` (with [`encode_item`]),
    /// as one task; the future holds the items' encoded outcomes (for
    /// [`decode_outcomes`]), or the task's error ([`ErrorKind::WorkerDied`],
    /// [`ErrorKind::TaskTimedOut`], …) that fails all of them. A pool with worker state runs
    /// `f` with a codec error per item: remote functions take no state.
    pub fn submit_remote(
        &self,
        f: RemoteFn,
        payload: Vec<u8>,
        count: u32,
    ) -> Result<Future<Vec<u8>>> {
        let slot = Slot::new(Some(self.inner().driver()));
        let fut = Future::from_slot(slot.clone());
        let sink: Arc<dyn crate::core::Sink> = Arc::new(SingleSink::raw(slot));
        self.inner().submit([crate::core::TaskRec::new(
            sink,
            0,
            count,
            FuncRef::Portable(f.func),
            payload,
        )])?;
        Ok(fut)
    }
}

/// The write side of a [`Future`]: whoever holds it finishes the future (an executor
/// that runs tasks elsewhere). Dropping it without finishing leaves the future pending.
pub struct Promise<R> {
    slot: Arc<Slot<R>>,
}

impl<R> fmt::Debug for Promise<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise").field("done", &self.is_done()).finish()
    }
}

impl<R> Promise<R> {
    /// A pending future and its promise.
    pub fn new() -> (Promise<R>, Future<R>) {
        let slot = Slot::new(None);
        (Promise { slot: slot.clone() }, Future::from_slot(slot))
    }

    /// Pending → running; false if the future was cancelled (do not run the task).
    pub fn set_running(&self) -> bool {
        self.slot.set_running()
    }

    /// Finishes the future with `r` (done-callbacks run on this thread); false, and `r`
    /// dropped, if it had already ended or was cancelled.
    pub fn complete(&self, r: Result<R>) -> bool {
        self.slot.complete(r)
    }

    /// Cancels the future if it has not started.
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    /// Whether the future was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.slot.is_cancelled()
    }

    /// Whether the future finished or was cancelled.
    pub fn is_done(&self) -> bool {
        self.slot.is_done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u64 {
        x as u64 * 2
    }

    #[test]
    fn seal_round_trips_and_refuses_other_keys_and_bytes() {
        let f = RemoteFn::of(&double).unwrap();
        let sealed = f.seal(b"key");
        assert_eq!(RemoteFn::unseal(&sealed, b"key").unwrap(), f);
        let e = RemoteFn::unseal(&sealed, b"other key").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.to_string().contains("signature"), "{e}");
        for i in [0, 35, 44, SEALED_LEN - 1] {
            let mut flipped = sealed;
            flipped[i] ^= 1;
            assert_eq!(RemoteFn::unseal(&flipped, b"key").unwrap_err().kind(), ErrorKind::Refused);
        }
        assert_eq!(RemoteFn::unseal(&sealed[1..], b"key").unwrap_err().kind(), ErrorKind::Refused);
    }

    #[test]
    fn capturing_closures_cannot_travel() {
        let k = 3u32;
        let e = RemoteFn::of(&move |x: u32| x + k).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn a_pool_runs_a_remote_fn_and_outcomes_decode() {
        let pool =
            Pool::builder().processes(1).start_method(crate::StartMethod::Fork).build().unwrap();
        let f = RemoteFn::unseal(&RemoteFn::of(&double).unwrap().seal(b"k"), b"k").unwrap();
        let mut payload = Vec::new();
        for x in [1u32, 2, 3] {
            encode_item(&x, &mut payload).unwrap();
        }
        let mut fut = pool.submit_remote(f, payload, 3).unwrap();
        let data = fut.result_timeout(std::time::Duration::from_secs(20)).unwrap();
        let outs: Vec<u64> =
            decode_outcomes::<u64>(3, &data).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(outs, [2, 4, 6]);
        let (p, fut) = Promise::<u8>::new();
        assert!(!p.is_done() && p.set_running() && p.complete(Ok(1)) && p.is_done());
        assert_eq!(fut.result().unwrap(), 1);
    }
}
