//! Typed proxies of the managed containers: list, dict, value, queue (the namespace is in
//! `namespace.rs`, the set in `set.rs`).

use crate::codec;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::{boolean, count, proxy, unexpected, unit, Handle};
use crate::protocol::*;
use multiproc_ipc_queue::{
    Error as QueueError, GetError, JoinableQueueOps, PutError, QueueOps, Result as QResult,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Borrow;
use std::ops::{Bound, RangeBounds};
use std::time::Duration;

/// Bounds a value type of a proxy must meet: serialisable both ways.
pub trait Data: Serialize + DeserializeOwned {}
impl<T: Serialize + DeserializeOwned> Data for T {}

impl Handle {
    /// Decodes a value read from the server (the session matters only for nested proxies).
    pub(crate) fn dec<T: DeserializeOwned>(&self, s: Stored) -> Result<T> {
        if s.refs.is_empty() {
            codec::decode_key(&s.bytes)
        } else {
            codec::decode(&self.client()?, s)
        }
    }

    fn value<T: DeserializeOwned>(&self, r: Reply) -> Result<T> {
        match r {
            Reply::Value(s) => self.dec(s),
            other => Err(unexpected(&other)),
        }
    }

    pub(crate) fn maybe<T: DeserializeOwned>(&self, r: Reply) -> Result<Option<T>> {
        match r {
            Reply::MaybeValue(Some(s)) => self.dec(s).map(Some),
            Reply::MaybeValue(None) => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    fn values<T: DeserializeOwned>(&self, r: Reply) -> Result<Vec<T>> {
        match r {
            Reply::Values(vs) => vs.into_iter().map(|s| self.dec(s)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    // Encoding needs only the server's identity and limits, the same in every process, so
    // it uses the proxy's home session without checking the process.
    fn enc<T: Serialize + ?Sized>(&self, v: &T) -> Result<Stored> {
        codec::encode(self.home(), v)
    }

    fn probe<T: Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>> {
        codec::encode_probe(self.home(), v)
    }

    pub(crate) fn key<T: Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>> {
        codec::encode_key(self.home(), v)
    }
}

// ---- list ---------------------------------------------------------------------------------

proxy! {
    /// A proxy of a list held by the manager (Python's `ListProxy`).
    ///
    /// Values are stored serialised; `remove`, `index`, `contains` and `count` compare the
    /// serialised bytes (so `0.0` and `-0.0` differ, and a NaN equals itself).
    ///
    /// Indices are `isize` and mean what they mean in Python: a negative one counts from the
    /// end (`get(-1)` is the last value, `pop_at(-2)` the one before it). Out-of-range ones
    /// are an [`IndexOutOfRange`](ErrorKind::IndexOutOfRange) error, except in
    /// [`insert`](Self::insert), which clamps as Python's `insert` does.
    pub struct ListProxy<T>: Kind::List, List(ListOp);
}

impl<T: Data> ListProxy<T> {
    /// Appends a value.
    pub fn append(&self, value: T) -> Result<()> {
        self.op(ListOp::Append(self.h.enc(&value)?)).and_then(unit)
    }

    /// Appends every value (in one request). Proxies among the values are kept alive until
    /// the server has counted the list's reference to them.
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        let values: Vec<T> = values.into_iter().collect();
        let vs = values.iter().map(|v| self.h.enc(v)).collect::<Result<Vec<_>>>()?;
        let r = self.op(ListOp::Extend(vs)).and_then(unit);
        // Only now: a proxy among the values may have been its object's last handle.
        drop(values);
        r
    }

    /// The value at `index` (`-1`: the last).
    pub fn get(&self, index: isize) -> Result<T> {
        let r = self.op(ListOp::GetAt(index as i64))?;
        self.h.value(r)
    }

    /// Replaces the value at `index` (`-1`: the last).
    pub fn set(&self, index: isize, value: T) -> Result<()> {
        self.op(ListOp::SetAt(index as i64, self.h.enc(&value)?)).and_then(unit)
    }

    /// The number of values.
    pub fn len(&self) -> Result<usize> {
        self.op(ListOp::Len).and_then(count)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Removes and returns the last value ([`IndexOutOfRange`](ErrorKind::IndexOutOfRange) if
    /// the list is empty).
    pub fn pop(&self) -> Result<T> {
        let r = self.op(ListOp::PopAt(None))?;
        self.h.value(r)
    }

    /// Removes and returns the value at `index` (`-1`: the last; Python's `pop(i)`, and
    /// `del l[i]` when the value is not wanted).
    pub fn pop_at(&self, index: isize) -> Result<T> {
        let r = self.op(ListOp::PopAt(Some(index as i64)))?;
        self.h.value(r)
    }

    /// Inserts `value` before `index`, as Python's `insert`: a negative index counts from the
    /// end (`-1`: before the last value), and an index past either end is clamped (at or
    /// beyond `len` appends; below `-len` inserts first). Never out of range.
    pub fn insert(&self, index: isize, value: T) -> Result<()> {
        self.op(ListOp::InsertAt(index as i64, self.h.enc(&value)?)).and_then(unit)
    }

    /// Removes the first value equal to `value` ([`ValueNotFound`](ErrorKind::ValueNotFound)
    /// if there is none).
    pub fn remove<Q: ?Sized + Serialize>(&self, value: &Q) -> Result<()>
    where
        T: Borrow<Q>,
    {
        self.op(ListOp::Remove(self.h.probe(value)?)).and_then(unit)
    }

    /// The index of the first value equal to `value`.
    pub fn index<Q: ?Sized + Serialize>(&self, value: &Q) -> Result<usize>
    where
        T: Borrow<Q>,
    {
        self.op(ListOp::Index(self.h.probe(value)?)).and_then(count)
    }

    /// Whether some value equals `value`.
    pub fn contains<Q: ?Sized + Serialize>(&self, value: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
    {
        match self.index(value) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ValueNotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How many values equal `value`.
    pub fn count<Q: ?Sized + Serialize>(&self, value: &Q) -> Result<usize>
    where
        T: Borrow<Q>,
    {
        self.op(ListOp::Count(self.h.probe(value)?)).and_then(count)
    }

    /// Removes every value.
    pub fn clear(&self) -> Result<()> {
        self.op(ListOp::Clear).and_then(unit)
    }

    /// Keeps the first `len` values.
    pub fn truncate(&self, len: usize) -> Result<()> {
        self.op(ListOp::Truncate(len as u64)).and_then(unit)
    }

    /// Reverses the list in place.
    pub fn reverse(&self) -> Result<()> {
        self.op(ListOp::Reverse).and_then(unit)
    }

    /// A copy of the whole list.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let r = self.op(ListOp::Snapshot)?;
        self.h.values(r)
    }

    /// A copy of the values in `range` (one request).
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s as u64,
            Bound::Excluded(&s) => s as u64 + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e as u64 + 1,
            Bound::Excluded(&e) => e as u64,
            Bound::Unbounded => u64::MAX,
        };
        let r = self.op(ListOp::Slice(start, end))?;
        self.h.values(r)
    }

    /// Sorts the list in place, ascending (Python's `sort()`); stable.
    ///
    /// The server stores values serialised and cannot compare them, so the sort runs here and
    /// is applied there atomically: this reads the list with its version, orders the values
    /// locally, and sends the order (indices, not the values) to the server, which applies it
    /// only if the list has not changed since it was read — otherwise it reads again and
    /// retries (as [`ValueProxy::update`] does). Values move with the proxies nested in them;
    /// nothing is re-encoded. A change made by another client meanwhile is therefore never
    /// lost: it lands either before the sort (and is sorted) or after it.
    pub fn sort(&self) -> Result<()>
    where
        T: Ord,
    {
        self.sort_by(T::cmp)
    }

    /// Sorts the list in place, descending (Python's `sort(reverse=True)`); stable, as
    /// Python's: equal values keep their order.
    pub fn sort_reverse(&self) -> Result<()>
    where
        T: Ord,
    {
        self.sort_by(|a, b| b.cmp(a))
    }

    /// Sorts the list in place by the key `f` gives (Python's `sort(key=f)`); stable. For a
    /// descending order by key, use [`sort_by`](Self::sort_by) with the comparison reversed.
    pub fn sort_by_key<K: Ord>(&self, mut f: impl FnMut(&T) -> K) -> Result<()> {
        self.sort_by(|a, b| f(a).cmp(&f(b)))
    }

    /// Sorts the list in place with the comparison `compare`; stable. See
    /// [`sort`](Self::sort) for how the sort is made atomic (`compare` may run again if
    /// another client changed the list meanwhile).
    pub fn sort_by(&self, mut compare: impl FnMut(&T, &T) -> std::cmp::Ordering) -> Result<()> {
        loop {
            let (version, values) = match self.op(ListOp::VersionedSnapshot)? {
                Reply::Versioned { version, values } => (version, values),
                other => return Err(unexpected(&other)),
            };
            let values = values.into_iter().map(|s| self.h.dec(s)).collect::<Result<Vec<T>>>()?;
            let mut order: Vec<usize> = (0..values.len()).collect();
            order.sort_by(|&a, &b| compare(&values[a], &values[b]));
            if order.iter().enumerate().all(|(i, &j)| i == j) {
                return Ok(()); // sorted already when it was read
            }
            let order = order.into_iter().map(|i| i as u64).collect();
            if boolean(self.op(ListOp::Permute { version, order })?)? {
                return Ok(());
            }
        }
    }

    /// Iterates by index, one request per value, as Python's iteration over a `ListProxy`
    /// does: changes made meanwhile are seen, and the iteration ends at the first index past
    /// the end.
    pub fn iter(&self) -> ListIter<'_, T> {
        ListIter { list: self, next: 0 }
    }
}

/// The iterator of [`ListProxy::iter`].
pub struct ListIter<'a, T> {
    list: &'a ListProxy<T>,
    next: usize,
}

impl<T> std::fmt::Debug for ListIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListIter").field("next", &self.next).finish()
    }
}

impl<T: Data> Iterator for ListIter<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        match self.list.get(isize::try_from(self.next).unwrap_or(isize::MAX)) {
            Ok(v) => {
                self.next += 1;
                Some(Ok(v))
            }
            Err(e) if e.kind() == ErrorKind::IndexOutOfRange => None,
            Err(e) => {
                self.next = usize::MAX;
                Some(Err(e))
            }
        }
    }
}

// ---- dict ---------------------------------------------------------------------------------

proxy! {
    /// A proxy of a dict held by the manager (Python's `DictProxy`), in insertion order.
    ///
    /// Keys are compared by their serialised bytes and may not hold proxies.
    ///
    /// # Iteration is over a snapshot
    ///
    /// [`keys`](Self::keys), [`values`](Self::values) and [`items`](Self::items) return a
    /// copy of the dict taken in one request (atomically), and iterating means iterating that
    /// `Vec`: changes made afterwards — by this or any other process — do not show in it, and
    /// iterating never fails. This differs from CPython, where iterating a `DictProxy` walks
    /// the server's dict and raises `RuntimeError` if it changes size meanwhile; call `keys()`
    /// again to see the dict as it is now.
    pub struct DictProxy<K, V>: Kind::Dict, Dict(DictOp);
}

impl<K: Data, V: Data> DictProxy<K, V> {
    /// The value for `key`, if any. Like `HashMap`, it takes any borrowed form of the key
    /// that serialises the same (`&str` for `String`, `&[T]` for `Vec<T>`).
    pub fn get<Q: ?Sized + Serialize>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        let r = self.op(DictOp::Get(self.h.key(key)?))?;
        self.h.maybe(r)
    }

    /// Inserts; returns the value that was there.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        let r = self.op(DictOp::Insert(self.h.key(&key)?, self.h.enc(&value)?))?;
        self.h.maybe(r)
    }

    /// Removes `key`; returns its value, if it was there.
    pub fn remove<Q: ?Sized + Serialize>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
    {
        let r = self.op(DictOp::Remove(self.h.key(key)?))?;
        self.h.maybe(r)
    }

    /// Removes `key` and returns its value; [`KeyNotFound`](ErrorKind::KeyNotFound) if absent
    /// (Python's `pop`).
    pub fn pop<Q: ?Sized + Serialize>(&self, key: &Q) -> Result<V>
    where
        K: Borrow<Q>,
    {
        self.remove(key)?.ok_or_else(|| Error::new(ErrorKind::KeyNotFound, "key not in the dict"))
    }

    /// Whether `key` is present.
    pub fn contains_key<Q: ?Sized + Serialize>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
    {
        self.op(DictOp::ContainsKey(self.h.key(key)?)).and_then(boolean)
    }

    /// A snapshot of the keys, in insertion order (see the type's docs: later changes do not
    /// show in it).
    pub fn keys(&self) -> Result<Vec<K>> {
        match self.op(DictOp::Keys)? {
            Reply::Keys(ks) => ks.iter().map(|k| codec::decode_key(k)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// A snapshot of the values, in insertion order.
    pub fn values(&self) -> Result<Vec<V>> {
        let r = self.op(DictOp::Values)?;
        self.h.values(r)
    }

    /// A snapshot of the (key, value) pairs, in insertion order: a copy of the dict, taken
    /// atomically (Python's `copy()`, and what to iterate over).
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.op(DictOp::Items)? {
            Reply::Items(kvs) => self.decode_items(kvs),
            other => Err(unexpected(&other)),
        }
    }

    fn decode_items(&self, kvs: Vec<(Vec<u8>, Stored)>) -> Result<Vec<(K, V)>> {
        kvs.into_iter().map(|(k, v)| Ok((codec::decode_key(&k)?, self.h.dec(v)?))).collect()
    }

    /// The number of entries.
    pub fn len(&self) -> Result<usize> {
        self.op(DictOp::Len).and_then(count)
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Inserts every pair (in one request). Proxies among the values are kept alive until
    /// the server has counted the dict's reference to them.
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        let kvs = pairs
            .iter()
            .map(|(k, v)| Ok((self.h.key(k)?, self.h.enc(v)?)))
            .collect::<Result<Vec<_>>>()?;
        let r = self.op(DictOp::Update(kvs)).and_then(unit);
        drop(pairs);
        r
    }

    /// The value for `key`, inserting `default` first if it is absent (Python's
    /// `setdefault`); atomic on the server.
    pub fn setdefault(&self, key: K, default: V) -> Result<V> {
        let r = self.op(DictOp::SetDefault(self.h.key(&key)?, self.h.enc(&default)?))?;
        self.h.value(r)
    }

    /// Removes and returns the most recently inserted pair
    /// ([`KeyNotFound`](ErrorKind::KeyNotFound) if empty).
    pub fn popitem(&self) -> Result<(K, V)> {
        match self.op(DictOp::PopItem)? {
            Reply::Items(kvs) => self
                .decode_items(kvs)?
                .pop()
                .ok_or_else(|| Error::new(ErrorKind::Protocol, "empty popitem reply")),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<()> {
        self.op(DictOp::Clear).and_then(unit)
    }
}

// ---- value --------------------------------------------------------------------------------

proxy! {
    /// A proxy of a single value held by the manager (Python's manager `Value`).
    pub struct ValueProxy<T>: Kind::Value, Value(ValueOp);
}

impl<T: Data> ValueProxy<T> {
    /// The value.
    pub fn get(&self) -> Result<T> {
        let r = self.op(ValueOp::Get)?;
        self.h.value(r)
    }

    /// Replaces the value.
    pub fn set(&self, value: T) -> Result<()> {
        self.op(ValueOp::Set(self.h.enc(&value)?)).and_then(unit)
    }

    /// Replaces the value, returning the old one.
    pub fn swap(&self, value: T) -> Result<T> {
        let r = self.op(ValueOp::Swap(self.h.enc(&value)?))?;
        self.h.value(r)
    }

    /// Sets `new` if the value (compared serialised) is `current`; otherwise hands back the
    /// value found.
    pub fn compare_and_swap(&self, current: &T, new: T) -> Result<std::result::Result<(), T>> {
        let cur = self.h.probe(current)?;
        match self.op(ValueOp::CompareAndSwap { current: cur, new: self.h.enc(&new)? })? {
            Reply::Cas(Ok(())) => Ok(Ok(())),
            Reply::Cas(Err(s)) => Ok(Err(self.h.dec(s)?)),
            other => Err(unexpected(&other)),
        }
    }

    /// Applies `f` atomically (a compare-and-swap loop); returns the new value.
    pub fn update(&self, mut f: impl FnMut(&T) -> T) -> Result<T>
    where
        T: Clone,
    {
        let mut cur = self.get()?;
        loop {
            let new = f(&cur);
            match self.compare_and_swap(&cur, new.clone())? {
                Ok(()) => return Ok(new),
                Err(actual) => cur = actual,
            }
        }
    }
}

// ---- queue ----------------------------------------------------------------------------------

proxy! {
    /// A proxy of a FIFO queue held by the manager (Python's manager `Queue`, with
    /// `task_done`/`join` as its `JoinableQueue`).
    ///
    /// Its operations have the local queue's shapes and error types
    /// ([`multiproc_ipc_queue::Queue`] and `JoinableQueue`): `put`s fail with
    /// [`PutError`] (the value comes back), `get`s with [`GetError`], the rest with the queue
    /// crate's [`Error`](QueueError); both queues implement [`QueueOps`] and
    /// [`JoinableQueueOps`], so code written against those works with either. A lost
    /// connection to the manager is `Failed` with an error whose `is_disconnected()` is true
    /// (kind [`Disconnected`](multiproc_ipc_queue::ErrorKind::Disconnected)); any other failure
    /// of the manager has kind [`Manager`](multiproc_ipc_queue::ErrorKind::Manager), with the
    /// manager's [`Error`] as its source (`Error::from(e)` gives it back). A value that does not
    /// decode as `T` is taken from the queue and handed back as bytes, as the local queue does
    /// ([`undecoded`](QueueError::undecoded); a proxy nested in it cannot be rebuilt from them).
    ///
    /// ```
    /// use multiproc_manager::Manager;
    /// use std::time::Duration;
    ///
    /// let m = Manager::start().unwrap();
    /// let q = m.bounded_queue::<u32>(1).unwrap();
    /// q.put(1).unwrap();
    /// let e = q.try_put(2).unwrap_err(); // multiproc_ipc_queue::PutError, as a local queue's
    /// assert!(e.is_would_block());
    /// assert_eq!(e.into_inner(), 2);
    /// assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), 1);
    /// assert!(q.try_get().unwrap_err().is_would_block());
    /// ```
    pub struct QueueProxy<T>: Kind::Queue, Queue(QueueOp);
}

/// A queue proxy's own failure, as the queue crate's error.
fn q<V>(r: Result<V>) -> QResult<V> {
    r.map_err(Error::into_queue)
}

impl<T: Data> QueueProxy<T> {
    fn put_wait(&self, value: T, wait: Wait) -> std::result::Result<(), PutError<T>> {
        let stored = match self.h.enc(&value) {
            Ok(s) => s,
            Err(e) => return Err(e.into_put_error(value)),
        };
        match self.op(QueueOp::Put(stored, wait)).and_then(unit) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.into_put_error(value)),
        }
    }

    /// Puts, waiting while the queue is full.
    pub fn put(&self, value: T) -> std::result::Result<(), PutError<T>> {
        self.put_wait(value, None)
    }

    /// Puts if there is room now ([`PutError::Full`], would block, with the value otherwise).
    pub fn try_put(&self, value: T) -> std::result::Result<(), PutError<T>> {
        self.put_wait(value, Some(0))
    }

    /// Puts, waiting at most `timeout` for room ([`PutError::Timeout`] with the value).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.put_wait(value, wait_from(Some(timeout)))
    }

    fn get_wait(&self, wait: Wait) -> std::result::Result<T, GetError> {
        let stored = match self.op(QueueOp::Get(wait)) {
            Ok(Reply::Value(s)) => s,
            Ok(other) => return Err(unexpected(&other).into_get_error()),
            Err(e) => return Err(e.into_get_error()),
        };
        let Stored { bytes, refs } = stored;
        let r = if refs.is_empty() {
            postcard::from_bytes(&bytes)
        } else {
            let client = self.h.client().map_err(Error::into_get_error)?;
            codec::decode_parts(&client, &bytes, refs)
        };
        // The bytes are kept only for a failure: no copy when the value decodes.
        r.map_err(|e| undecodable(e, bytes))
    }

    /// Takes the oldest value, waiting for one.
    pub fn get(&self) -> std::result::Result<T, GetError> {
        self.get_wait(None)
    }

    /// Takes the oldest value if there is one now ([`GetError::Empty`], would block,
    /// otherwise).
    pub fn try_get(&self) -> std::result::Result<T, GetError> {
        self.get_wait(Some(0))
    }

    /// Takes the oldest value, waiting at most `timeout` ([`GetError::Timeout`]).
    pub fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError> {
        self.get_wait(wait_from(Some(timeout)))
    }

    fn len_max(&self) -> QResult<(usize, usize)> {
        match q(self.op(QueueOp::Len))? {
            Reply::QueueLen { len, maxsize } => Ok((len as usize, maxsize as usize)),
            other => Err(unexpected(&other).into_queue()),
        }
    }

    /// The number of values queued.
    pub fn qsize(&self) -> QResult<usize> {
        self.len_max().map(|(l, _)| l)
    }

    /// Whether the queue is empty (Python's `empty()`).
    pub fn empty(&self) -> QResult<bool> {
        self.len_max().map(|(l, _)| l == 0)
    }

    /// Whether the queue is at its maxsize (never for an unbounded queue; Python's `full()`).
    pub fn full(&self) -> QResult<bool> {
        self.len_max().map(|(l, m)| m > 0 && l >= m)
    }

    /// Whether the queue is empty.
    #[deprecated(note = "use `empty()`, the local queue's (and Python's) name")]
    pub fn is_empty(&self) -> QResult<bool> {
        self.empty()
    }

    /// Whether the queue is at its maxsize.
    #[deprecated(note = "use `full()`, the local queue's (and Python's) name")]
    pub fn is_full(&self) -> QResult<bool> {
        self.full()
    }

    /// Marks one value taken earlier as processed
    /// ([`TaskDoneTooManyTimes`](multiproc_ipc_queue::ErrorKind::TaskDoneTooManyTimes) if
    /// called more often than `put`).
    pub fn task_done(&self) -> QResult<()> {
        q(self.op(QueueOp::TaskDone).and_then(unit))
    }

    /// Waits until every value put has been marked done.
    pub fn join(&self) -> QResult<()> {
        q(self.op(QueueOp::Join(None)).and_then(unit))
    }

    /// As [`join`](Self::join), at most `timeout` (an error whose `is_timeout()` is true,
    /// [`Timeout`](multiproc_ipc_queue::ErrorKind::Timeout), while tasks are unfinished).
    pub fn join_timeout(&self, timeout: Duration) -> QResult<()> {
        q(self.op(QueueOp::Join(wait_from(Some(timeout)))).and_then(unit))
    }
}

/// A value taken from the queue that does not decode as the proxy's type: its bytes come back.
fn undecodable(why: postcard::Error, bytes: Vec<u8>) -> GetError {
    let detail = format!(
        "the value does not decode as the proxy's type ({why}); {} bytes handed back \
         (Error::undecoded)",
        bytes.len()
    );
    GetError::Failed(
        QueueError::with_cause(
            multiproc_ipc_queue::ErrorKind::Decode,
            detail,
            Error::new(ErrorKind::Codec, why.to_string()),
        )
        .with_undecoded(bytes),
    )
}

impl<T: Data> QueueOps<T> for QueueProxy<T> {
    fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        QueueProxy::put(self, item)
    }
    fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        QueueProxy::try_put(self, item)
    }
    fn put_timeout(&self, item: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        QueueProxy::put_timeout(self, item, timeout)
    }
    fn get(&self) -> std::result::Result<T, GetError> {
        QueueProxy::get(self)
    }
    fn try_get(&self) -> std::result::Result<T, GetError> {
        QueueProxy::try_get(self)
    }
    fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError> {
        QueueProxy::get_timeout(self, timeout)
    }
    fn qsize(&self) -> QResult<usize> {
        QueueProxy::qsize(self)
    }
    fn empty(&self) -> QResult<bool> {
        QueueProxy::empty(self)
    }
    fn full(&self) -> QResult<bool> {
        QueueProxy::full(self)
    }
}

impl<T: Data> JoinableQueueOps<T> for QueueProxy<T> {
    fn task_done(&self) -> QResult<()> {
        QueueProxy::task_done(self)
    }
    fn join(&self) -> QResult<()> {
        QueueProxy::join(self)
    }
    fn join_timeout(&self, timeout: Duration) -> QResult<()> {
        QueueProxy::join_timeout(self, timeout)
    }
}
