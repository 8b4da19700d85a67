//! Every primitive passes through the arena's handle transfer: inside a context (to another
//! process, with the arena's descriptor) and never outside one.
#![cfg(not(multiproc_loom))]

mod common;

use common::*;
use multiproc_arena::sync::atomic::Ordering;
use multiproc_arena::{transfer, Arena};
use multiproc_ipc_lock::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, Mutex, RLock, RwLock, Semaphore,
};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

type Bundle =
    (Lock, RLock, Mutex<u64>, Semaphore, BoundedSemaphore, Condition, Event, Barrier, RwLock<u32>);

fn bundle_in(arena: &Arena) -> Bundle {
    (
        Lock::new_in(arena).unwrap(),
        RLock::new_in(arena).unwrap(),
        Mutex::new_in(arena, 7).unwrap(),
        Semaphore::new_in(arena, 3).unwrap(),
        BoundedSemaphore::new_in(arena, 2).unwrap(),
        Condition::new_in(arena).unwrap(),
        Event::new_in(arena).unwrap(),
        Barrier::new_in(arena, 2).unwrap(),
        RwLock::new_in(arena, 9).unwrap(),
    )
}

#[test]
fn outside_a_context_serialising_fails() {
    let lock = Lock::new().unwrap();
    assert!(postcard::to_allocvec(&lock).is_err());
    assert!(postcard::to_allocvec(&Event::new().unwrap()).is_err());
}

#[test]
fn roundtrip_names_the_same_objects() {
    let arena = Arena::new(1 << 20).unwrap();
    let b = bundle_in(&arena);
    let msg = transfer::encode(&b).unwrap();
    let r: Bundle = transfer::decode(&msg.bytes, msg.fds).unwrap();
    assert!(r.0.same(&b.0) && r.1.same(&b.1) && r.2.same(&b.2) && r.3.same(&b.3));
    assert!(r.4.same(&b.4) && r.5.same(&b.5) && r.6.same(&b.6) && r.7.same(&b.7));
    assert!(r.8.same(&b.8));
    assert!(r.5.get_lock().same(b.5.get_lock()));
    let _g = b.0.lock().unwrap();
    assert!(r.0.locked());
    assert_eq!(*r.2.lock().unwrap(), 7);
}

#[test]
fn objects_made_in_a_child_cross_a_socket_to_the_parent() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let done = flag();
    // The child makes a fresh arena the parent never mapped, and sends the objects over.
    let child = fork(|| {
        let arena = Arena::new(1 << 20).unwrap();
        let b = bundle_in(&arena);
        let msg = transfer::encode(&b).unwrap();
        let fds: Vec<_> = msg.fds.iter().map(|f| f.as_fd()).collect();
        let len = (msg.bytes.len() as u32).to_le_bytes();
        transfer::send_with_fds(theirs.as_fd(), &len, &[]).unwrap();
        transfer::send_with_fds(theirs.as_fd(), &msg.bytes, &fds).unwrap();
        // Hold the Lock and set the event, then let the parent check.
        std::mem::forget(b.0.lock().unwrap());
        b.6.set();
        *b.2.lock().unwrap() = 8;
        done.store(1, Ordering::SeqCst);
        until_at_least(&done, 2, "parent checked");
        0
    });
    let mut len = [0u8; 4];
    let mut fds = Vec::new();
    let n = transfer::recv_with_fds(ours.as_fd(), &mut len, &mut fds, false).unwrap();
    assert_eq!(n, 4);
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    let mut got = 0;
    while got < buf.len() {
        got += transfer::recv_with_fds(ours.as_fd(), &mut buf[got..], &mut fds, false).unwrap();
    }
    let b: Bundle = transfer::decode(&buf, fds).unwrap();
    until_at_least(&done, 1, "child set things up");
    assert!(b.0.locked());
    b.6.wait_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(*b.2.lock().unwrap(), 8);
    assert_eq!(b.3.value(), 3);
    assert_eq!(b.7.parties(), 2);
    done.store(2, Ordering::SeqCst);
    child.expect_success(T);
    // The child exited holding the lock: a dead holder.
    assert!(matches!(
        b.0.try_lock_for(Duration::from_secs(5)),
        Err(std::sync::TryLockError::Poisoned(_))
    ));
}
