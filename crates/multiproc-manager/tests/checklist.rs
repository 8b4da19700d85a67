//! CPython's manager behaviours (python-parity-checklist.md, the [M] lines), with real child
//! processes that receive proxies as arguments.

mod common;

use common::{child, join, wait_until};
use multiproc_manager::queue::ErrorKind as QueueErrorKind;
use multiproc_manager::*;
use std::time::{Duration, Instant};

fn manager() -> Manager {
    Manager::start().expect("start manager")
}

// ---- lists (MG01-MG04, MG19) ----------------------------------------------------------

fn list_child(obj: ListProxy<i32>) {
    assert_eq!(obj.get(0).unwrap(), 5);
    assert_eq!(obj.count(&5).unwrap(), 1);
    assert_eq!(obj.index(&5).unwrap(), 0);
    obj.extend([7]).unwrap();
    let copy = obj.to_vec().unwrap();
    obj.extend(copy).unwrap(); // obj *= 2
    assert_eq!(obj.to_vec().unwrap(), [5, 7, 5, 7]);
    obj.extend([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).unwrap();
    obj.reverse().unwrap();
    assert_eq!(obj.len().unwrap(), 16);
    assert_eq!(obj.pop_at(0).unwrap(), 12);
    assert_eq!(obj.iter().map(Result::unwrap).count(), 15);
    obj.clear().unwrap();
}

#[test]
fn mg19_list_in_a_child() {
    let m = manager();
    let l = m.list_from([5]).unwrap();
    join(child(list_child, l.clone()));
    assert_eq!(l.len().unwrap(), 0);
}

#[test]
fn mg01_list_operations_and_errors() {
    let m = manager();
    let l = m.list_from(0..10).unwrap();
    assert_eq!(l.slice(2..5).unwrap(), [2, 3, 4]);
    assert_eq!(l.slice(..).unwrap().len(), 10);
    assert_eq!(l.slice(8..=9).unwrap(), [8, 9]);
    assert_eq!(l.slice(5..11).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    assert_eq!(l.get(10).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    assert_eq!(l.set(10, 1).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    l.set(0, 100).unwrap();
    l.insert(1, 50).unwrap();
    assert_eq!(l.slice(..3).unwrap(), [100, 50, 1]);
    assert!(l.contains(&50).unwrap());
    l.remove(&50).unwrap();
    assert!(!l.contains(&50).unwrap());
    assert_eq!(l.remove(&50).unwrap_err().kind(), ErrorKind::ValueNotFound);
    assert_eq!(l.index(&77).unwrap_err().kind(), ErrorKind::ValueNotFound);
    assert_eq!(l.pop().unwrap(), 9);
    l.truncate(2).unwrap();
    assert_eq!(l.to_vec().unwrap(), [100, 1]);
    l.clear().unwrap();
    assert!(l.is_empty().unwrap());
    assert_eq!(l.pop().unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    // A type mismatch is a codec error, not garbage.
    let strings = m.list_from(["a".to_string()]).unwrap();
    let same: ListProxy<u64> = {
        let bytes = postcard::to_allocvec(&strings).unwrap();
        postcard::from_bytes(&bytes).unwrap()
    };
    assert!(strings.same_object(&strings.clone()));
    let _ = same.get(0); // decodes or fails with Codec, never panics
}

#[test]
fn mg03_iteration_sees_changes() {
    let m = manager();
    let l = m.list_from([1, 2, 3]).unwrap();
    let mut it = l.iter();
    assert_eq!(it.next().unwrap().unwrap(), 1);
    l.set(1, 100).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 100);
    assert_eq!(it.next().unwrap().unwrap(), 3);
    assert!(it.next().is_none());
    assert!(it.next().is_none());
}

#[test]
fn mg04_list_of_list_proxies() {
    let m = manager();
    let inner: Vec<ListProxy<i32>> = (0..3).map(|_| m.list_from([0, 1, 2]).unwrap()).collect();
    let a = m.list_from(inner.clone()).unwrap();
    drop(inner);
    let a0 = a.get(0).unwrap();
    a0.set(2, 55).unwrap();
    assert_eq!(a.get(0).unwrap().to_vec().unwrap(), [0, 1, 55]);
    assert_eq!(a.get(1).unwrap().pop().unwrap(), 2);
    let lens: Vec<usize> = a.to_vec().unwrap().iter().map(|l| l.len().unwrap()).collect();
    assert_eq!(lens, [3, 2, 3]);
    // A self-containing list does not crash.
    let b = m.list::<ListProxy<i32>>().unwrap();
    let b_as_inner: ListProxy<i32> =
        postcard::from_bytes(&postcard::to_allocvec(&b).unwrap()).unwrap();
    assert_eq!(b_as_inner.id(), b.id());
    b.append(b_as_inner).unwrap();
    assert_eq!(b.len().unwrap(), 1);
}

// ---- dicts (MG05, MG07, MG08, MG20) ------------------------------------------------------

fn dict_child(d: DictProxy<String, i32>) {
    assert_eq!(d.len().unwrap(), 2);
    assert_eq!(d.get("greeter").unwrap(), Some(5));
    assert_eq!(d.items().unwrap(), [("greeter".to_string(), 5), ("bar".to_string(), 6)]);
    assert_eq!(d.keys().unwrap(), ["greeter", "bar"]);
    assert_eq!(d.values().unwrap(), [5, 6]);
    d.update([("baz".to_string(), 7)]).unwrap();
    assert_eq!(d.popitem().unwrap(), ("baz".to_string(), 7));
    assert_eq!(d.setdefault("greeter".into(), 99).unwrap(), 5);
    assert_eq!(d.setdefault("new".into(), 1).unwrap(), 1);
    assert_eq!(d.pop("new").unwrap(), 1);
    assert_eq!(d.pop("new").unwrap_err().kind(), ErrorKind::KeyNotFound);
    d.clear().unwrap();
}

#[test]
fn mg20_dict_in_a_child() {
    let m = manager();
    let d = m.dict_from([("greeter".to_string(), 5), ("bar".to_string(), 6)]).unwrap();
    join(child(dict_child, d.clone()));
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(d.popitem().unwrap_err().kind(), ErrorKind::KeyNotFound);
}

#[test]
fn mg05_dict_views_are_consistent_and_ordered() {
    let m = manager();
    let d = m.dict::<u8, char>().unwrap();
    for i in (65u8..70).rev() {
        d.insert(i, i as char).unwrap();
    }
    assert_eq!(d.insert(67, 'c').unwrap(), Some('C'));
    assert_eq!(d.keys().unwrap(), [69, 68, 67, 66, 65]);
    assert_eq!(d.values().unwrap(), ['E', 'D', 'c', 'B', 'A']);
    let items = d.items().unwrap();
    assert_eq!(items.len(), 5);
    assert!(items.iter().zip(d.keys().unwrap()).all(|((k, _), k2)| *k == k2));
    assert!(d.contains_key(&66).unwrap());
    assert_eq!(d.remove(&66).unwrap(), Some('B'));
    assert_eq!(d.remove(&66).unwrap(), None);
    assert!(!d.contains_key(&66).unwrap());
}

#[test]
fn mg08_nested_proxies_stay_alive_and_shared() {
    let m = manager();
    let before = m.num_objects().unwrap();
    let pets = m.dict::<String, i32>().unwrap();
    let supplies = m.dict::<String, i32>().unwrap();
    let d = m.dict::<String, DictProxy<String, i32>>().unwrap();
    d.insert("pets".into(), pets.clone()).unwrap();
    d.insert("supplies".into(), supplies.clone()).unwrap();
    d.get("supplies").unwrap().unwrap().insert("water".into(), 10).unwrap();
    assert_eq!(supplies.get("water").unwrap(), Some(10));
    pets.insert("cats".into(), 2).unwrap();
    assert_eq!(d.get("pets").unwrap().unwrap().get("cats").unwrap(), Some(2));
    // Dropping the local proxies keeps the nested objects alive.
    drop(pets);
    drop(supplies);
    let held = d.get("supplies").unwrap().unwrap();
    assert_eq!(held.get("water").unwrap(), Some(10));
    // clear() leaves separately held proxies valid.
    d.clear().unwrap();
    assert_eq!(held.get("water").unwrap(), Some(10));
    // A plain list stored in a list comes back as a plain list.
    let l = m.list::<Vec<i32>>().unwrap();
    l.append(vec![1, 2]).unwrap();
    assert_eq!(l.get(0).unwrap(), [1, 2]);
    // A proxy cannot be a key.
    let bad = m.dict::<ListProxy<i32>, i32>().unwrap();
    let e = bad.insert(m.list().unwrap(), 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    drop((held, l, bad, d));
    wait_until("objects freed", || m.num_objects().unwrap() == before);
}

// ---- namespace, value (MG09, MG21, VA11) -------------------------------------------------

fn namespace_child(ns: Namespace) -> (i32, i32) {
    (ns.field("x").unwrap(), ns.field("y").unwrap())
}

#[test]
fn mg09_mg21_namespace() {
    let m = manager();
    let ns = m.namespace().unwrap();
    ns.set("x", 0).unwrap();
    ns.set("y", 1).unwrap();
    assert_eq!(join(child(namespace_child, ns.clone())), (0, 1));
    ns.set("name", "Bob".to_string()).unwrap();
    ns.set("job", "Builder".to_string()).unwrap();
    assert!(ns.contains("job").unwrap());
    assert!(ns.remove("job").unwrap());
    assert!(!ns.contains("job").unwrap());
    assert!(!ns.remove("job").unwrap());
    assert_eq!(ns.get::<String>("job").unwrap(), None);
    assert_eq!(ns.field::<String>("job").unwrap_err().kind(), ErrorKind::ValueNotFound);
    assert_eq!(ns.names().unwrap(), ["name", "x", "y"]);
    assert_eq!(ns.field::<String>("name").unwrap(), "Bob");
}

fn value_child(v: ValueProxy<i32>) {
    assert_eq!(v.get().unwrap(), 1);
    v.set(2).unwrap();
}

#[test]
fn va11_value_and_atomic_update() {
    let m = manager();
    let v = m.value(1).unwrap();
    join(child(value_child, v.clone()));
    assert_eq!(v.get().unwrap(), 2);
    assert_eq!(v.swap(3).unwrap(), 2);
    assert_eq!(v.compare_and_swap(&2, 9).unwrap(), Err(3));
    assert_eq!(v.compare_and_swap(&3, 4).unwrap(), Ok(()));
    let hs: Vec<_> = (0..3).map(|_| child(value_adder, v.clone())).collect();
    hs.into_iter().for_each(join);
    assert_eq!(v.get().unwrap(), 4 + 3 * 50);
}

fn value_adder(v: ValueProxy<i32>) {
    for _ in 0..50 {
        v.update(|x| x + 1).unwrap();
    }
}

// ---- queues (Q05, Q11, Q12, Q13, JQ01, JQ04) ---------------------------------------------

fn queue_child(q: QueueProxy<i32>) {
    assert_eq!(q.qsize().unwrap(), 2);
    assert!(q.full().unwrap());
    assert!(!q.empty().unwrap());
    assert_eq!(q.get().unwrap(), 5);
    assert_eq!(q.get().unwrap(), 6);
    assert!(q.empty().unwrap());
}

#[test]
fn q11_q13_q05_queue() {
    let m = manager();
    let q = m.bounded_queue::<i32>(2).unwrap();
    q.put(5).unwrap();
    q.put(6).unwrap();
    let e = q.try_put(7).unwrap_err();
    assert!(matches!(e, PutError::Full(7)) && e.is_would_block(), "{e}");
    assert_eq!(e.into_inner(), 7);
    join(child(queue_child, q.clone()));
    assert!(q.empty().unwrap());
    assert!(!q.full().unwrap());
    let e = q.try_get().unwrap_err();
    assert!(matches!(e, GetError::Empty) && e.is_would_block() && !e.is_timeout(), "{e}");
    let t0 = Instant::now();
    let e = q.get_timeout(Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, GetError::Timeout) && e.is_timeout(), "{e}");
    assert!(t0.elapsed() >= Duration::from_millis(100));
}

#[test]
fn q12_queue_nested_in_a_list() {
    let m = manager();
    let a = m.list::<QueueProxy<i32>>().unwrap();
    a.append(m.queue().unwrap()).unwrap();
    a.get(0).unwrap().put(123).unwrap();
    assert_eq!(a.get(0).unwrap().get().unwrap(), 123);
}

fn worker(q: QueueProxy<Option<i32>>) {
    while let Some(_item) = q.get().unwrap() {
        std::thread::sleep(Duration::from_millis(20));
        q.task_done().unwrap();
    }
    q.task_done().unwrap();
}

#[test]
fn jq01_jq04_task_done_and_join() {
    let m = manager();
    let q = m.queue::<Option<i32>>().unwrap();
    let workers: Vec<_> = (0..4).map(|_| child(worker, q.clone())).collect();
    for i in 0..10 {
        q.put(Some(i)).unwrap();
    }
    q.join_timeout(common::LIMIT).unwrap();
    assert!(q.empty().unwrap());
    for _ in 0..4 {
        q.put(None).unwrap();
    }
    workers.into_iter().for_each(join);
    assert_eq!(q.task_done().unwrap_err().kind(), QueueErrorKind::TaskDoneTooManyTimes);
    q.put(Some(1)).unwrap();
    let e = q.join_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(e.kind() == QueueErrorKind::Timeout && e.is_timeout(), "{e}");
}

// ---- locks (L01, L05, RL01, RL05, RL06) --------------------------------------------------

fn lock_child(l: LockProxy) {
    l.acquire().unwrap();
}

#[test]
fn l01_l05_lock_is_not_owner_bound() {
    let m = manager();
    let l = m.lock().unwrap();
    {
        let _g = l.lock().unwrap();
        assert!(l.is_locked().unwrap());
        assert!(matches!(l.try_lock(), Err(LockError::WouldBlock)));
    }
    assert!(!l.is_locked().unwrap());
    join(child(lock_child, l.clone()));
    assert!(l.is_locked().unwrap());
    l.release().unwrap(); // the parent releases what the child acquired
    assert_eq!(l.release().unwrap_err().kind(), ErrorKind::NotHeld);
    assert!(!l.is_poisoned().unwrap(), "a clean exit after a release is no death in the lock");
    let t0 = Instant::now();
    let _g = l.lock().unwrap();
    assert!(matches!(l.try_lock_for(Duration::from_millis(100)), Err(LockError::WouldBlock)));
    assert!(t0.elapsed() >= Duration::from_millis(90));
}

fn rlock_child(l: RLockProxy) -> bool {
    l.acquire().unwrap();
    let locked = l.is_locked().unwrap();
    l.release().unwrap();
    locked && !l.is_locked().unwrap()
}

#[test]
fn rl01_rl05_rl06_rlock() {
    let m = manager();
    let l = m.rlock().unwrap();
    for _ in 0..3 {
        l.acquire().unwrap();
    }
    assert!(l.is_locked().unwrap());
    // Another thread (of this process) neither acquires it nor may release it.
    let l2 = l.clone();
    std::thread::spawn(move || {
        assert!(matches!(l2.try_acquire(), Err(LockError::WouldBlock)));
        assert_eq!(l2.release().unwrap_err().kind(), ErrorKind::NotOwner);
    })
    .join()
    .unwrap();
    l.release().unwrap();
    l.release().unwrap();
    assert!(l.is_locked().unwrap());
    l.release().unwrap();
    assert!(!l.is_locked().unwrap());
    assert_eq!(l.release().unwrap_err().kind(), ErrorKind::NotOwner);
    assert!(join(child(rlock_child, l.clone())));
    let g = l.lock().unwrap();
    let g2 = l.lock().unwrap();
    drop((g, g2));
    assert!(!l.is_locked().unwrap());
}

// ---- semaphores (S01-S05) ----------------------------------------------------------------

fn sem_child(s: SemaphoreProxy) {
    s.acquire().unwrap();
}

#[test]
fn s01_s05_semaphores() {
    let m = manager();
    let s = m.semaphore(2).unwrap();
    assert_eq!(s.value().unwrap(), 2);
    s.acquire().unwrap();
    s.try_acquire().unwrap();
    assert!(s.try_acquire().unwrap_err().is_would_block());
    assert_eq!(s.value().unwrap(), 0);
    s.release().unwrap();
    s.release().unwrap();
    s.release().unwrap();
    s.release().unwrap();
    assert_eq!(s.value().unwrap(), 4);
    let b = m.bounded_semaphore(1).unwrap();
    join(child(sem_child, b.clone()));
    assert_eq!(b.value().unwrap(), 0);
    b.release().unwrap();
    assert_eq!(b.release().unwrap_err().kind(), ErrorKind::TooManyReleases);
    let z = m.semaphore(0).unwrap();
    let t0 = Instant::now();
    assert!(z.acquire_timeout(Duration::from_millis(100)).unwrap_err().is_timeout());
    assert!(t0.elapsed() >= Duration::from_millis(90));
}

// ---- condition (CV01, CV04, CV05, CV08, CV09) --------------------------------------------

fn cond_waiter((c, ready, woken): (ConditionProxy, ValueProxy<u32>, ValueProxy<u32>)) {
    let _g = c.lock().unwrap();
    // Counted with the lock held, which only wait() gives up: once the parent holds the
    // lock and sees both counted, both are waiting.
    ready.update(|r| r + 1).unwrap();
    c.wait_timeout(common::LIMIT).unwrap();
    woken.update(|w| w + 1).unwrap();
}

#[test]
fn cv01_notify_wakes_one_at_a_time() {
    let m = manager();
    let c = m.condition().unwrap();
    let ready = m.value(0u32).unwrap();
    let woken = m.value(0u32).unwrap();
    let p = child(cond_waiter, (c.clone(), ready.clone(), woken.clone()));
    let args = (c.clone(), ready.clone(), woken.clone());
    let t = std::thread::spawn(move || cond_waiter(args));
    wait_until("two waiters", || ready.get().unwrap() == 2);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(woken.get().unwrap(), 0, "nobody wakes before notify");
    {
        let _g = c.lock().unwrap();
        c.notify().unwrap();
    }
    wait_until("one woken", || woken.get().unwrap() == 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(woken.get().unwrap(), 1);
    {
        let _g = c.lock().unwrap();
        c.notify_all().unwrap();
    }
    wait_until("two woken", || woken.get().unwrap() == 2);
    join(p);
    t.join().unwrap();
}

#[test]
fn cv04_cv09_timeouts_and_ownership() {
    let m = manager();
    let c = m.condition().unwrap();
    assert_eq!(c.notify().unwrap_err().kind(), ErrorKind::NotOwner);
    assert_eq!(c.wait_timeout(Duration::ZERO).unwrap_err().kind(), ErrorKind::NotOwner);
    let _g = c.lock().unwrap();
    assert!(c.wait_timeout(Duration::ZERO).unwrap_err().is_timeout());
    let t0 = Instant::now();
    assert!(c.wait_timeout(Duration::from_millis(100)).unwrap_err().is_timeout());
    assert!(t0.elapsed() >= Duration::from_millis(90));
    assert!(c.is_locked().unwrap(), "the lock is re-acquired after a timed-out wait");
    assert!(!c.wait_for(|| false, Some(Duration::from_millis(50))).unwrap());
    assert!(c.wait_for(|| true, None).unwrap());
}

fn cv_state_child((c, state): (ConditionProxy, ValueProxy<u32>)) -> bool {
    let _g = c.lock().unwrap();
    state.set(0).unwrap();
    c.notify().unwrap();
    c.wait_for(|| state.get().unwrap() == 4, Some(common::LIMIT)).unwrap()
}

#[test]
fn cv05_wait_for_across_processes() {
    let m = manager();
    let c = m.condition().unwrap();
    let state = m.value(9u32).unwrap();
    let p = {
        let _g = c.lock().unwrap();
        let p = child(cv_state_child, (c.clone(), state.clone()));
        assert!(c.wait_for(|| state.get().unwrap() == 0, Some(common::LIMIT)).unwrap());
        p
    };
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(10));
        let _g = c.lock().unwrap();
        state.update(|s| s + 1).unwrap();
        c.notify().unwrap();
    }
    assert!(join(p));
}

// ---- event (E01, E03) --------------------------------------------------------------------

fn event_child(e: EventProxy) {
    assert!(e.is_set().unwrap());
    e.wait().unwrap();
    e.clear().unwrap();
    assert!(e.wait_timeout(Duration::from_millis(1)).unwrap_err().is_timeout());
}

fn event_setter(e: EventProxy) {
    std::thread::sleep(Duration::from_millis(100));
    e.set().unwrap();
}

#[test]
fn e01_e03_event() {
    let m = manager();
    let e = m.event().unwrap();
    assert!(!e.is_set().unwrap());
    assert!(e.wait_timeout(Duration::ZERO).unwrap_err().is_timeout());
    let t0 = Instant::now();
    assert!(e.wait_timeout(Duration::from_millis(100)).unwrap_err().is_timeout());
    assert!(t0.elapsed() >= Duration::from_millis(90));
    e.set().unwrap();
    e.wait_timeout(Duration::from_millis(100)).unwrap();
    join(child(event_child, e.clone()));
    assert!(!e.is_set().unwrap());
    let p = child(event_setter, e.clone());
    e.wait().unwrap();
    assert!(e.is_set().unwrap());
    join(p);
}

// ---- barrier (B01-B03, B05, B06, B08, B10, B12, B13) -------------------------------------

fn barrier_party((b, passes): (BarrierProxy, usize)) -> Vec<usize> {
    (0..passes).map(|_| b.wait().unwrap()).collect()
}

#[test]
fn b01_b03_lockstep_and_indices() {
    let m = manager();
    let b = m.barrier(5).unwrap();
    assert_eq!(b.parties().unwrap(), 5);
    let kids: Vec<_> = (0..4).map(|_| child(barrier_party, (b.clone(), 3))).collect();
    let mine = barrier_party((b.clone(), 3));
    let mut all: Vec<Vec<usize>> = kids.into_iter().map(join).collect();
    all.push(mine);
    for pass in 0..3 {
        let mut idx: Vec<usize> = all.iter().map(|v| v[pass]).collect();
        idx.sort();
        assert_eq!(idx, [0, 1, 2, 3, 4], "pass {pass}");
    }
    assert_eq!(b.n_waiting().unwrap(), 0);
    assert!(!b.is_broken().unwrap());
}

fn barrier_broken(b: BarrierProxy) -> ErrorKind {
    b.wait().unwrap_err().kind()
}

#[test]
fn b05_b06_b08_b13_abort_reset_timeout() {
    let m = manager();
    let b = m.barrier(3).unwrap();
    let kids: Vec<_> = (0..2).map(|_| child(barrier_broken, b.clone())).collect();
    wait_until("two waiting", || b.n_waiting().unwrap() == 2);
    b.abort().unwrap();
    for k in kids {
        assert_eq!(join(k), ErrorKind::BrokenBarrier);
    }
    assert!(b.is_broken().unwrap());
    assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    b.reset().unwrap();
    assert!(!b.is_broken().unwrap());
    // reset while parties wait: they fail, then everyone passes again.
    let kids: Vec<_> = (0..2).map(|_| child(barrier_broken, b.clone())).collect();
    wait_until("two waiting", || b.n_waiting().unwrap() == 2);
    b.reset().unwrap();
    for k in kids {
        assert_eq!(join(k), ErrorKind::BrokenBarrier);
    }
    let kids: Vec<_> = (0..2).map(|_| child(barrier_party, (b.clone(), 1))).collect();
    b.wait().unwrap();
    kids.into_iter().for_each(|k| {
        join(k);
    });
    // A timeout breaks the barrier for all.
    let t = m.barrier_builder(2).timeout(Duration::from_millis(100)).build().unwrap();
    let t0 = Instant::now();
    assert_eq!(t.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert!(t.is_broken().unwrap());
    // The deprecated shape still works, the same way.
    #[allow(deprecated)]
    let t = m.barrier_with_timeout(2, Duration::from_millis(20)).unwrap();
    assert_eq!(t.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    assert!(t.is_broken().unwrap());
    // Without a timeout the builder's barrier is the plain one; zero parties is refused.
    let t = m.barrier_builder(2).build().unwrap();
    assert_eq!(t.parties().unwrap(), 2);
    t.wait_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(m.barrier_builder(0).build().unwrap_err().kind(), ErrorKind::InvalidInput);
    // A single party passes at once, repeatedly.
    let one = m.barrier(1).unwrap();
    assert_eq!(one.wait().unwrap(), 0);
    assert_eq!(one.wait().unwrap(), 0);
    assert_eq!(m.barrier(0).unwrap_err().kind(), ErrorKind::InvalidInput);
}

fn barrier_b12(b: BarrierProxy) -> usize {
    let p = b.parties().unwrap();
    b.reset().unwrap();
    p
}

#[test]
fn b12_barrier_in_a_child() {
    let m = manager();
    let b = m.barrier(5).unwrap();
    assert_eq!(join(child(barrier_b12, b)), 5);
}

// ---- services (MG11) and lifetime (MG13-MG15, MG26) --------------------------------------

struct Greeter;
impl Service for Greeter {
    type Init = ();
    type Request = String;
    type Response = Result<String, String>;
    fn new(_: ()) -> std::result::Result<Self, String> {
        Ok(Greeter)
    }
    fn call(&mut self, req: String) -> Result<String, String> {
        match req.as_str() {
            "f" => Ok("f()".into()),
            "g" => Err("ValueError".into()),
            "panic" => panic!("boom in the service"),
            _ => Err(format!("no method {req}")),
        }
    }
}

struct Fails;
impl Service for Fails {
    type Init = i32;
    type Request = ();
    type Response = ();
    fn new(n: i32) -> std::result::Result<Self, String> {
        if n < 0 {
            Err(format!("Pool({n}): processes must be at least 1"))
        } else {
            Ok(Fails)
        }
    }
    fn call(&mut self, _: ()) {}
}

fn greeter_child(greeter: ServiceProxy<Greeter>) -> String {
    greeter.call("f".into()).unwrap().unwrap()
}

#[test]
fn mg11_mg25_services_and_their_errors() {
    let m = Manager::builder()
        .register::<Greeter>("Greeter")
        .register::<Fails>("Fails")
        .start()
        .unwrap();
    let greeter = m.service::<Greeter>("Greeter", ()).unwrap();
    assert_eq!(greeter.call("f".into()).unwrap(), Ok("f()".to_string()));
    assert_eq!(greeter.call("g".into()).unwrap(), Err("ValueError".to_string()));
    let e = greeter.call("panic".into()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServiceFailed);
    assert!(e.to_string().contains("boom in the service"), "{e}");
    assert_eq!(join(child(greeter_child, greeter.clone())), "f()");
    let e = m.service::<Fails>("Fails", -1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServiceFailed);
    assert!(e.to_string().contains("at least 1"));
    assert!(m.service::<Fails>("Fails", 1).is_ok());
    assert_eq!(m.service::<Greeter>("Bar", ()).unwrap_err().kind(), ErrorKind::NoSuchService);
    // A manager without the registration knows no such service.
    let plain = manager();
    assert_eq!(
        plain.service::<Greeter>("Greeter", ()).unwrap_err().kind(),
        ErrorKind::NoSuchService
    );
}

#[test]
fn mg13_mg14_shutdown_and_drop_stop_the_server() {
    let m = manager();
    let pid = m.server_pid();
    let l = m.list::<i32>().unwrap();
    let m2 = m.clone();
    drop(m);
    assert!(multiproc_arena::testing::pid_running(pid), "a clone keeps the server");
    drop(m2);
    assert!(!multiproc_arena::testing::pid_running(pid), "the last handle stops it");
    assert_eq!(l.append(1).unwrap_err().kind(), ErrorKind::Disconnected);
    let m = manager();
    let pid = m.server_pid();
    m.shutdown().unwrap();
    m.shutdown().unwrap();
    assert!(!multiproc_arena::testing::pid_running(pid));
    assert_eq!(m.list::<i32>().unwrap_err().kind(), ErrorKind::Disconnected);
}

fn hold_proxies((l, d): (ListProxy<i32>, DictProxy<i32, i32>)) {
    l.append(1).unwrap();
    d.insert(1, 1).unwrap();
}

#[test]
fn mg26_objects_are_freed_when_the_last_proxy_goes() {
    let m = manager();
    assert_eq!(m.num_objects().unwrap(), 0);
    let l = m.list::<i32>().unwrap();
    let d = m.dict::<i32, i32>().unwrap();
    let l2 = l.clone();
    join(child(hold_proxies, (l.clone(), d.clone())));
    assert_eq!(m.num_objects().unwrap(), 2);
    drop((l, d));
    assert_eq!(m.num_objects().unwrap(), 1);
    drop(l2);
    assert_eq!(m.num_objects().unwrap(), 0);
}

#[test]
fn a_proxy_passed_without_keeping_a_copy_survives_the_trip() {
    let m = manager();
    // The parent's proxy is moved into the child's arguments and dropped at once: the hold
    // taken when it was serialised keeps the list alive until the child adopts it.
    let h = child(hold_proxies, (m.list().unwrap(), m.dict().unwrap()));
    join(h);
    wait_until("objects freed", || m.num_objects().unwrap() == 0);
}

struct Unserialisable;
impl serde::Serialize for Unserialisable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot serialise this"))
    }
}
impl<'de> serde::Deserialize<'de> for Unserialisable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
        Ok(Unserialisable)
    }
}

#[test]
fn q06_a_failed_serialisation_does_not_break_the_queue() {
    let m = manager();
    let q = m.bounded_queue::<Result<u8, Unserialisable>>(1).unwrap();
    let e = q.put(Err(Unserialisable)).unwrap_err();
    assert_eq!(e.error().map(|e| e.kind()), Some(QueueErrorKind::Encode), "{e}");
    assert!(matches!(e.into_inner(), Err(Unserialisable)), "the value comes back");
    q.put(Ok(1)).unwrap();
    assert_eq!(q.qsize().unwrap(), 1);
    assert!(matches!(q.get().unwrap(), Ok(1)));
    assert!(q.empty().unwrap());
}

#[test]
fn proxies_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<ListProxy<std::rc::Rc<u8>>>();
    check::<DictProxy<String, Vec<u8>>>();
    check::<Namespace>();
    check::<ValueProxy<u8>>();
    check::<QueueProxy<u8>>();
    check::<LockProxy>();
    check::<RLockProxy>();
    check::<SemaphoreProxy>();
    check::<ConditionProxy>();
    check::<EventProxy>();
    check::<BarrierProxy>();
    check::<ServiceProxy<Greeter>>();
    check::<Manager>();
}
