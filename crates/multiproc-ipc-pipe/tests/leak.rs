//! Descriptor hygiene, alone in its test binary so no other test opens descriptors meanwhile.

mod common;

use common::{open_fds, T};
use multiproc_arena::{Arena, Shared};
use multiproc_ipc_pipe::{AuthKey, Client, Connection, Fd, Listener, Pipe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The tests of this file run one at a time: each counts the process's descriptors.
static SERIAL: Mutex<()> = Mutex::new(());

/// Passing handles many times costs the receiver no descriptors once they are dropped, and a
/// handle outside a transfer context refuses to serialise.
#[test]
fn no_descriptor_leak() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = Pipe::new().unwrap();
    let arena = Arena::new(1 << 16).unwrap();
    let v = Shared::new_in(&arena, AtomicU64::new(0)).unwrap();
    // Warm up (first transfer may map things once).
    a.send(&v).unwrap();
    drop(b.recv_timeout::<Shared<AtomicU64>>(T).unwrap());
    // The one descriptor a process keeps for its life: the liveness registry.
    let _ = multiproc_arena::Identity::current();
    let before = open_fds();
    for _ in 0..200 {
        let (x, y) = Pipe::new().unwrap();
        a.send(&(v.clone(), x)).unwrap();
        let (w, x2): (Shared<AtomicU64>, Connection) = b.recv_timeout(T).unwrap();
        w.fetch_add(1, Ordering::Relaxed);
        drop((x2, y));
        // Descriptors sent with a message received as bytes are closed, not kept.
        a.send(&Fd::from(arena.fd().try_clone_to_owned().unwrap())).unwrap();
        let _bytes = b.recv_bytes_timeout(T).unwrap();
    }
    assert_eq!(v.load(Ordering::Relaxed), 200);
    assert_eq!(open_fds(), before, "descriptors leaked");
    assert!(postcard::to_allocvec(&Fd::from(arena.fd().try_clone_to_owned().unwrap())).is_err());
}

/// Listeners, clients and failed handshakes leave no descriptors or socket files behind.
#[test]
fn no_descriptor_leak_listener() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The one descriptor a process keeps for its life: the liveness registry.
    let _ = multiproc_arena::Identity::current();
    let before = open_fds();
    for key in [None, Some(&b"k"[..])] {
        let l = Listener::builder();
        let l = if let Some(k) = key { l.authkey(k) } else { l };
        let l = l.bind_private().unwrap();
        for _ in 0..20 {
            let addr = l.address().clone();
            let t = std::thread::spawn(move || {
                let c = Client::connect(&addr, key.map(AuthKey::from).as_ref()).unwrap();
                c.send(&1u8).unwrap();
                let bad = Client::connect(&addr, Some(&AuthKey::from(b"wrong")));
                drop(bad);
            });
            let c = l.accept_timeout(T).unwrap();
            assert_eq!(c.recv_timeout::<u8>(T).unwrap(), 1);
            if key.is_some() {
                assert!(l.accept_timeout(T).is_err());
            } else {
                drop(l.accept_timeout(T).unwrap());
            }
            t.join().unwrap();
        }
    }
    assert_eq!(open_fds(), before, "descriptors leaked");
}
