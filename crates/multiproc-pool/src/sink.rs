//! Where results land: one future, a collected `Vec`, or a stream for `imap`.

use crate::core::Sink;
use crate::error::{Error, ErrorKind, Result};
use crate::func::{take_outcome, TAG_OK, TAG_PANIC};
use crate::future::{lock, Slot};
use crate::progress::Progress;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Decodes `count` outcomes; a malformed buffer fails the rest.
///
/// A value that does not decode as `R` hands its bytes back ([`Error::undecoded`]) when they
/// can be told apart: when it is the last outcome, whose bytes are the rest of the buffer.
/// Before the last, its end is unknown (values are written back to back, without lengths), so
/// it and the rest fail without bytes.
pub(crate) fn decode_items<R: DeserializeOwned>(
    count: u32,
    mut data: &[u8],
    mut each: impl FnMut(Result<R>),
) {
    for i in 0..count {
        let item = data;
        match take_outcome::<R>(&mut data) {
            Ok(Ok(v)) => each(Ok(v)),
            Ok(Err((tag, msg))) => {
                let kind = if tag == TAG_PANIC { ErrorKind::Panicked } else { ErrorKind::Codec };
                each(Err(Error::new(kind, msg)))
            }
            Err(msg) => match item.split_first() {
                Some((&TAG_OK, value)) if i + 1 == count => {
                    return each(Err(Error::undecodable(msg, value.to_vec())));
                }
                _ => {
                    let e = Error::new(ErrorKind::Codec, msg);
                    return (i..count).for_each(|_| each(Err(e.clone())));
                }
            },
        }
    }
}

/// One task, one future: the first item's value (`apply_async`, `submit`), or the encoded
/// outcomes as they are (`Pool::submit_remote`).
pub(crate) struct SingleSink<R> {
    slot: Arc<Slot<R>>,
    finish: fn(u32, &[u8]) -> Result<R>,
}

impl<R: DeserializeOwned> SingleSink<R> {
    /// Completes `slot` with the first item's outcome.
    pub(crate) fn first_value(slot: Arc<Slot<R>>) -> Self {
        SingleSink { slot, finish: first_outcome::<R> }
    }
}

impl SingleSink<Vec<u8>> {
    /// Completes `slot` with the outcomes' bytes.
    pub(crate) fn raw(slot: Arc<Slot<Vec<u8>>>) -> Self {
        SingleSink { slot, finish: |_, data| Ok(data.to_vec()) }
    }
}

fn first_outcome<R: DeserializeOwned>(count: u32, data: &[u8]) -> Result<R> {
    let mut out = None;
    decode_items::<R>(count, data, |r| {
        if out.is_none() {
            out = Some(r)
        }
    });
    out.unwrap_or_else(|| Err(Error::new(ErrorKind::Codec, "no result")))
}

impl<R: Send + 'static> Sink for SingleSink<R> {
    fn deliver(&self, _first: u64, count: u32, data: &[u8]) {
        self.slot.complete((self.finish)(count, data));
    }

    fn fail(&self, _first: u64, _count: u32, err: &Error) {
        self.slot.complete(Err(err.clone()));
    }

    fn start(&self) -> bool {
        self.slot.set_running()
    }

    fn eager(&self) -> bool {
        true
    }

    fn cancel(&self, _first: u64, _count: u32) {
        self.slot.cancel();
    }
}

/// One task, one future per item (`ProcessPoolExecutor::map_chunked`): the chunk's items
/// `0..count` complete `slots[0..count]`.
pub(crate) struct ChunkSink<R> {
    slots: Vec<Arc<Slot<R>>>,
}

impl<R> ChunkSink<R> {
    pub(crate) fn new(slots: Vec<Arc<Slot<R>>>) -> Self {
        ChunkSink { slots }
    }
}

impl<R: DeserializeOwned + Send + 'static> Sink for ChunkSink<R> {
    fn deliver(&self, _first: u64, count: u32, data: &[u8]) {
        let mut slots = self.slots.iter();
        decode_items::<R>(count, data, |r| {
            if let Some(s) = slots.next() {
                s.complete(r);
            }
        });
    }

    fn fail(&self, _first: u64, _count: u32, err: &Error) {
        for s in &self.slots {
            s.complete(Err(err.clone()));
        }
    }

    /// Runs unless every item was cancelled (a cancelled item's outcome is dropped).
    fn start(&self) -> bool {
        self.slots.iter().fold(false, |any, s| s.set_running() | any)
    }

    fn eager(&self) -> bool {
        true
    }

    fn cancel(&self, _first: u64, _count: u32) {
        for s in &self.slots {
            s.cancel();
        }
    }
}

struct CollectState<R> {
    items: Vec<Option<Result<R>>>,
    filled: usize,
    /// Known once the input is exhausted.
    total: Option<usize>,
}

/// Every item into a `Vec` by index (`map`, `starmap`, `map_async`).
pub(crate) struct CollectSink<R> {
    st: Mutex<CollectState<R>>,
    progress: Option<Progress>,
    /// `map_async`: finished with the whole `Vec` (or the first error by index).
    done: Option<Arc<Slot<Vec<R>>>>,
    abandoned: AtomicBool,
}

impl<R> CollectSink<R> {
    pub(crate) fn new(progress: Option<Progress>, done: Option<Arc<Slot<Vec<R>>>>) -> Self {
        CollectSink {
            st: Mutex::new(CollectState { items: Vec::new(), filled: 0, total: None }),
            progress,
            done,
            abandoned: AtomicBool::new(false),
        }
    }

    /// The input is exhausted after `total` items.
    pub(crate) fn set_total(&self, total: usize) {
        let mut st = lock(&self.st);
        st.total = Some(total);
        if let Some(p) = &self.progress {
            p.set_total(total);
        }
        self.maybe_finish(st);
    }

    pub(crate) fn filled(&self) -> usize {
        lock(&self.st).filled
    }

    pub(crate) fn is_complete(&self) -> bool {
        let st = lock(&self.st);
        st.total == Some(st.filled)
    }

    /// The caller stopped waiting (its input panicked): skip what has not started.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// Takes the results: the values in order, or the first error by index.
    pub(crate) fn take(&self) -> Result<Vec<R>> {
        let mut st = lock(&self.st);
        let items = std::mem::take(&mut st.items);
        collect(items)
    }

    fn put(&self, first: u64, results: Vec<Result<R>>) {
        let n = results.len();
        let mut st = lock(&self.st);
        let end = first as usize + n;
        if st.items.len() < end {
            st.items.resize_with(end, || None);
        }
        let mut added = 0;
        for (i, r) in results.into_iter().enumerate() {
            let slot = &mut st.items[first as usize + i];
            if slot.is_none() {
                added += 1;
            }
            *slot = Some(r);
        }
        st.filled += added;
        let filled = st.filled;
        let total = st.total;
        drop(st);
        if let Some(p) = &self.progress {
            p.advance(n, filled, total);
        }
        let st = lock(&self.st);
        self.maybe_finish(st);
    }

    fn maybe_finish(&self, mut st: MutexGuard<'_, CollectState<R>>) {
        if st.total != Some(st.filled) {
            return;
        }
        if let Some(p) = &self.progress {
            p.finish();
        }
        if let Some(slot) = &self.done {
            let items = std::mem::take(&mut st.items);
            drop(st);
            slot.complete(collect(items));
        }
    }
}

fn collect<R>(items: Vec<Option<Result<R>>>) -> Result<Vec<R>> {
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        match it {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => return Err(e),
            None => return Err(Error::new(ErrorKind::Codec, "missing result")),
        }
    }
    Ok(out)
}

/// `Sink` for a sink that stores a task's outcomes by index (`put`) and starts nothing
/// once abandoned.
macro_rules! indexed_sink {
    ($sink:ident) => {
        impl<R: DeserializeOwned + Send + 'static> Sink for $sink<R> {
            fn deliver(&self, first: u64, count: u32, data: &[u8]) {
                let mut v = Vec::with_capacity(count as usize);
                decode_items::<R>(count, data, |r| v.push(r));
                self.put(first, v);
            }

            fn fail(&self, first: u64, count: u32, err: &Error) {
                self.put(first, (0..count).map(|_| Err(err.clone())).collect());
            }

            fn start(&self) -> bool {
                !self.abandoned.load(Ordering::Relaxed)
            }
        }
    };
}

indexed_sink!(CollectSink);

struct StreamState<R> {
    /// Ordered: results by index from `next`; unordered: in arrival order.
    ready: VecDeque<Option<(u64, Result<R>)>>,
    next: u64,
    delivered: usize,
}

/// Results for an iterator (`imap`, `imap_unordered`).
pub(crate) struct StreamSink<R> {
    st: Mutex<StreamState<R>>,
    ordered: bool,
    progress: Option<Progress>,
    abandoned: AtomicBool,
}

impl<R> StreamSink<R> {
    pub(crate) fn new(ordered: bool, progress: Option<Progress>) -> Self {
        StreamSink {
            st: Mutex::new(StreamState { ready: VecDeque::new(), next: 0, delivered: 0 }),
            ordered,
            progress,
            abandoned: AtomicBool::new(false),
        }
    }

    /// The next result if it is there (in order, or any for unordered), with its index.
    pub(crate) fn pop(&self) -> Option<(u64, Result<R>)> {
        let mut st = lock(&self.st);
        if self.ordered {
            match st.ready.front() {
                Some(Some(_)) => {
                    let r = st.ready.pop_front().flatten();
                    st.next += 1;
                    r
                }
                _ => None,
            }
        } else {
            st.ready.pop_front().flatten()
        }
    }

    pub(crate) fn has_next(&self) -> bool {
        let st = lock(&self.st);
        match st.ready.front() {
            Some(Some(_)) => true,
            Some(None) => !self.ordered,
            None => false,
        }
    }

    pub(crate) fn delivered(&self) -> usize {
        lock(&self.st).delivered
    }

    pub(crate) fn set_total(&self, total: usize) {
        if let Some(p) = &self.progress {
            p.set_total(total);
            if self.delivered() == total {
                p.finish();
            }
        }
    }

    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    fn put(&self, first: u64, results: Vec<Result<R>>) {
        let n = results.len();
        let mut st = lock(&self.st);
        for (i, r) in results.into_iter().enumerate() {
            let idx = first + i as u64;
            if self.ordered {
                let pos = (idx - st.next) as usize;
                if st.ready.len() <= pos {
                    st.ready.resize_with(pos + 1, || None);
                }
                st.ready[pos] = Some((idx, r));
            } else {
                st.ready.push_back(Some((idx, r)));
            }
        }
        st.delivered += n;
        let d = st.delivered;
        drop(st);
        if let Some(p) = &self.progress {
            p.advance(n, d, None);
        }
    }
}

indexed_sink!(StreamSink);
