//! One convention (the API guide): each synchronisation primitive and its manager proxy are
//! driven through the same calls — the traits of `multiproc::api` — and must answer alike:
//! a `try_` call that cannot proceed is a would-block error, a `_timeout` call whose time
//! passes is a timeout error, neither does anything. Each exercise also runs across
//! processes: a child (forked) works on the same object.
//!
//! Queues too: a local `Queue`/`JoinableQueue` and the manager's `QueueProxy` go through the
//! same calls of `multiproc::queue::{QueueOps, JoinableQueueOps}` and fail with the same error
//! types (`PutError<T>` handing the item back, `GetError`, the queue's `Error`), a message
//! that does not decode included.
//!
//! This file compiles only while the local types and the proxies have the same operations.

use multiproc::api::{BarrierOps, ConditionOps, EventOps, LockOps, OpError, SemaphoreOps};
use multiproc::queue::{ErrorKind as QueueErrorKind, GetError, JoinableQueueOps, PutError};
use multiproc::queue::{JoinableQueue, QueueOps};
use multiproc::{Barrier, BoundedSemaphore, Condition, Event, Lock, Manager, Process, RLock};
use multiproc::{Queue, Semaphore, StartMethod};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(30);
const LONG: Duration = Duration::from_secs(20);

/// Runs `f(arg)` in a forked child and waits for it (bounded).
fn in_child<A: Serialize + DeserializeOwned + 'static>(f: fn(A) -> u32, arg: A) {
    let mut child = Process::builder()
        .start_method(StartMethod::Fork)
        .target(f, arg)
        .start()
        .expect("start the child");
    let r = child.join_timeout(LONG);
    assert_eq!(r.expect("the child failed"), 0);
}

fn timed_out<E: OpError>(r: Result<(), E>, what: &str) {
    match r {
        Err(e) => assert!(e.is_timeout() && !e.is_would_block(), "{what}: {e}"),
        Ok(()) => panic!("{what}: succeeded"),
    }
}

fn would_block<E: OpError>(r: Result<(), E>, what: &str) {
    match r {
        Err(e) => assert!(e.is_would_block() && !e.is_timeout(), "{what}: {e}"),
        Ok(()) => panic!("{what}: succeeded"),
    }
}

// ---- Event ---------------------------------------------------------------------------------

fn set_event<E: EventOps>(e: E) -> u32 {
    e.set().unwrap();
    0
}

fn exercise_event<E: EventOps + Clone + Serialize + DeserializeOwned + 'static>(e: E) {
    assert!(!e.is_set().unwrap());
    let t0 = Instant::now();
    timed_out(e.wait_timeout(SHORT), "wait_timeout on a clear event");
    assert!(t0.elapsed() >= SHORT);
    in_child(set_event::<E>, e.clone());
    assert!(e.is_set().unwrap());
    e.wait().unwrap();
    e.wait_timeout(SHORT).unwrap();
    e.clear().unwrap();
    assert!(!e.is_set().unwrap());
}

#[test]
fn event_and_proxy() {
    exercise_event(Event::new().unwrap());
    let m = Manager::start().unwrap();
    exercise_event(m.event().unwrap());
}

// ---- Semaphore -----------------------------------------------------------------------------

fn take_two<S: SemaphoreOps>(s: S) -> u32 {
    s.acquire().unwrap();
    s.acquire_timeout(LONG).unwrap();
    0
}

fn exercise_semaphore<S: SemaphoreOps + Clone + Serialize + DeserializeOwned + 'static>(s: S) {
    // Starts at 2.
    assert_eq!(s.value().unwrap(), 2);
    in_child(take_two::<S>, s.clone());
    assert_eq!(s.value().unwrap(), 0);
    would_block(s.try_acquire(), "try_acquire at 0");
    timed_out(s.acquire_timeout(SHORT), "acquire_timeout at 0");
    assert_eq!(s.value().unwrap(), 0, "a failed acquisition takes nothing");
    s.release().unwrap();
    s.try_acquire().unwrap();
    s.release().unwrap();
    s.acquire().unwrap();
    s.release().unwrap();
    assert_eq!(s.value().unwrap(), 1);
}

#[test]
fn semaphores_and_proxies() {
    exercise_semaphore(Semaphore::new(2).unwrap());
    exercise_semaphore(BoundedSemaphore::new(2).unwrap());
    let m = Manager::start().unwrap();
    exercise_semaphore(m.semaphore(2).unwrap());
    exercise_semaphore(m.bounded_semaphore(2).unwrap());
}

// ---- Lock, RLock ---------------------------------------------------------------------------

fn try_in_child<L: LockOps>(l: L) -> u32 {
    would_block(l.try_acquire(), "try_acquire of a lock held by the parent");
    timed_out(l.acquire_timeout(SHORT), "acquire_timeout of a lock held by the parent");
    0
}

fn exercise_lock<L: LockOps + Clone + Serialize + DeserializeOwned + 'static>(l: L) {
    l.acquire().unwrap();
    in_child(try_in_child::<L>, l.clone());
    l.release().unwrap();
    l.try_acquire().unwrap();
    l.release().unwrap();
    l.acquire_timeout(SHORT).unwrap();
    l.release().unwrap();
}

#[test]
fn locks_and_proxies() {
    exercise_lock(Lock::new().unwrap());
    exercise_lock(RLock::new().unwrap());
    let m = Manager::start().unwrap();
    exercise_lock(m.lock().unwrap());
    exercise_lock(m.rlock().unwrap());
}

#[test]
fn an_unheld_release_says_the_same() {
    use multiproc::lock::ErrorKind as L;
    use multiproc::manager::ErrorKind as M;
    let m = Manager::start().unwrap();
    // A plain lock released while nobody holds it: NotHeld, locally and through the manager.
    let (local, proxy) = (Lock::new().unwrap(), m.lock().unwrap());
    let (a, b) = (local.release().unwrap_err(), proxy.release().unwrap_err());
    assert_eq!((a.kind(), b.kind()), (L::NotHeld, M::NotHeld));
    assert_eq!(a.kind().to_string(), b.kind().to_string());
    // A recursive one released by a non-owner (here: nobody owns it): NotOwner, both.
    let (local, proxy) = (RLock::new().unwrap(), m.rlock().unwrap());
    let (a, b) = (local.release().unwrap_err(), proxy.release().unwrap_err());
    assert_eq!((a.kind(), b.kind()), (L::NotOwner, M::NotOwner));
}

// ---- Condition -----------------------------------------------------------------------------

fn notify_when_waiting<C: ConditionOps>(c: C) -> u32 {
    // The parent holds the lock until it waits: acquiring here means it is waiting.
    c.acquire().unwrap();
    c.notify_all().unwrap();
    c.release().unwrap();
    0
}

fn exercise_condition<C: ConditionOps + Clone + Serialize + DeserializeOwned + Send + 'static>(
    c: C,
) {
    c.acquire().unwrap();
    timed_out(c.wait_timeout(SHORT), "wait_timeout without a notification");
    // The lock is held again after a timed-out wait: notify needs it.
    c.notify().unwrap();
    let c2 = c.clone();
    let helper = std::thread::spawn(move || in_child(notify_when_waiting::<C>, c2));
    c.wait_timeout(LONG).unwrap();
    c.release().unwrap();
    helper.join().unwrap();
}

#[test]
fn conditions_and_proxy() {
    exercise_condition(Condition::with_lock(Lock::new().unwrap()).unwrap());
    exercise_condition(Condition::new().unwrap());
    let m = Manager::start().unwrap();
    exercise_condition(m.condition().unwrap());
}

// ---- Barrier -------------------------------------------------------------------------------

fn meet<B: BarrierOps>(b: B) -> u32 {
    b.wait_timeout(LONG).unwrap();
    0
}

fn exercise_barrier<B: BarrierOps + Clone + Serialize + DeserializeOwned + Send + 'static>(b: B) {
    // Two parties.
    assert_eq!(b.parties().unwrap(), 2);
    assert_eq!(b.n_waiting().unwrap(), 0);
    let b2 = b.clone();
    let helper = std::thread::spawn(move || in_child(meet::<B>, b2));
    let i = b.wait_timeout(LONG).unwrap();
    assert!(i < 2);
    helper.join().unwrap();
    assert!(!b.is_broken().unwrap());
    // Alone, a timed wait breaks it (Python's semantics).
    assert!(b.wait_timeout(SHORT).is_err());
    assert!(b.is_broken().unwrap());
    b.reset().unwrap();
    assert!(!b.is_broken().unwrap());
    b.abort().unwrap();
    assert!(b.wait().is_err(), "an aborted barrier refuses waiters");
    b.reset().unwrap();
}

#[test]
fn barriers_and_proxy() {
    exercise_barrier(Barrier::new(2).unwrap());
    let m = Manager::start().unwrap();
    exercise_barrier(m.barrier(2).unwrap());
}

/// A barrier built with a default timeout: a lone party's `wait` gives up after it and
/// breaks the barrier.
fn exercise_default_timeout<B: BarrierOps>(b: B) {
    let t0 = Instant::now();
    let e = b.wait().unwrap_err();
    assert!(t0.elapsed() >= SHORT, "{e}");
    assert!(b.is_broken().unwrap());
    b.reset().unwrap();
    assert!(!b.is_broken().unwrap());
}

#[test]
fn barrier_builders_and_proxy() {
    // The same shape: `builder(n).timeout(d).build()`.
    exercise_default_timeout(Barrier::builder(2).timeout(SHORT).build().unwrap());
    let m = Manager::start().unwrap();
    exercise_default_timeout(m.barrier_builder(2).timeout(SHORT).build().unwrap());
}

// ---- Queue, JoinableQueue ------------------------------------------------------------------

fn fill_two<Q: QueueOps<u32>>(q: Q) -> u32 {
    q.put(1).unwrap();
    q.put_timeout(2, LONG).unwrap();
    0
}

fn exercise_queue<Q: QueueOps<u32> + Clone + Serialize + DeserializeOwned + 'static>(q: Q) {
    // At most 2 items; empty.
    assert!(q.empty().unwrap());
    assert!(!q.full().unwrap());
    assert_eq!(q.qsize().unwrap(), 0);
    let e = q.try_get().unwrap_err();
    assert!(matches!(e, GetError::Empty), "{e:?}");
    would_block(Err(e), "try_get on an empty queue");
    let t0 = Instant::now();
    let e = q.get_timeout(SHORT).unwrap_err();
    assert!(t0.elapsed() >= SHORT);
    assert!(matches!(e, GetError::Timeout), "{e:?}");
    timed_out(Err(e), "get_timeout on an empty queue");

    in_child(fill_two::<Q>, q.clone());
    assert!(q.full().unwrap());
    assert_eq!(q.qsize().unwrap(), 2);
    // A failed put hands the item back.
    let e = q.try_put(3).unwrap_err();
    assert!(matches!(e, PutError::Full(3)), "{e:?}");
    assert!(e.is_would_block() && !e.is_timeout() && !e.is_disconnected());
    assert_eq!(e.into_inner(), 3);
    let e = q.put_timeout(4, SHORT).unwrap_err();
    assert!(matches!(e, PutError::Timeout(4)), "{e:?}");
    assert!(e.is_timeout() && !e.is_would_block());
    assert_eq!(q.qsize().unwrap(), 2, "a failed put adds nothing");

    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    q.try_put(5).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), 5);
    assert!(q.empty().unwrap());
}

#[test]
fn queues_and_proxy() {
    exercise_queue(Queue::builder().maxsize(2).build().unwrap());
    exercise_queue(JoinableQueue::builder().maxsize(2).build().unwrap());
    let m = Manager::start().unwrap();
    exercise_queue(m.bounded_queue::<u32>(2).unwrap());
}

fn finish_two<Q: JoinableQueueOps<u32>>(q: Q) -> u32 {
    for _ in 0..2 {
        q.get_timeout(LONG).unwrap();
        q.task_done().unwrap();
    }
    0
}

fn exercise_joinable<Q: JoinableQueueOps<u32> + Clone + Serialize + DeserializeOwned + 'static>(
    q: Q,
) {
    q.join_timeout(SHORT).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    timed_out(q.join_timeout(SHORT), "join_timeout with two tasks unfinished");
    in_child(finish_two::<Q>, q.clone());
    q.join().unwrap();
    q.join_timeout(SHORT).unwrap();
    let e = q.task_done().unwrap_err();
    assert_eq!(e.kind(), QueueErrorKind::TaskDoneTooManyTimes, "{e}");
}

#[test]
fn joinable_queues_and_proxy() {
    exercise_joinable(JoinableQueue::new().unwrap());
    let m = Manager::start().unwrap();
    exercise_joinable(m.queue::<u32>().unwrap());
}

/// Postcard writes a `None` note as nothing, so the value does not decode as itself.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Sparse {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<u32>,
    n: u32,
}

fn exercise_undecodable<Q: QueueOps<Sparse>>(q: Q) {
    q.put(Sparse { note: None, n: 7 }).unwrap();
    q.put(Sparse { note: Some(1), n: 8 }).unwrap();
    match q.get_timeout(LONG) {
        Err(GetError::Failed(mut e)) => {
            assert_eq!(e.kind(), QueueErrorKind::Decode, "{e}");
            assert!(!e.is_disconnected() && !e.is_timeout());
            // Not lost: the bytes come back, and decode as what was really written.
            let bytes = e.take_undecoded().expect("the bytes come back");
            assert_eq!(postcard::from_bytes::<u32>(&bytes).unwrap(), 7);
        }
        other => panic!("{other:?}"),
    }
    // The queue goes on with the next message.
    assert_eq!(q.get_timeout(LONG).unwrap(), Sparse { note: Some(1), n: 8 });
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
}

#[test]
fn undecodable_messages_on_a_queue_and_its_proxy() {
    exercise_undecodable(Queue::<Sparse>::new().unwrap());
    let m = Manager::start().unwrap();
    exercise_undecodable(m.queue::<Sparse>().unwrap());
}
