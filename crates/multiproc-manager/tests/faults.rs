//! Faults for real: clients killed holding a lock or in the middle of a request, garbage and
//! silent clients, a killed server, many clients at once, and resource hygiene.

mod common;

use common::{child_ready, join, kill, wait_until, LIMIT};
use multiproc_manager::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn hold_lock_forever((l, ready): (LockProxy, EventProxy)) {
    l.acquire().unwrap();
    ready.set().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

fn hold_rlock_forever((l, ready): (RLockProxy, EventProxy)) {
    l.acquire().unwrap();
    l.acquire().unwrap();
    ready.set().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_client_killed_holding_a_lock_poisons_it_for_the_next() {
    let m = Manager::start().unwrap();
    let l = m.lock().unwrap();
    let ready = m.event().unwrap();
    let h = child_ready(hold_lock_forever, l.clone(), &ready);
    assert!(matches!(l.try_lock(), Err(LockError::WouldBlock)));
    let t0 = Instant::now();
    kill(h);
    // The next acquirer gets the lock, and learns it was poisoned.
    let g = match l.try_lock_for(LIMIT) {
        Err(LockError::Poisoned(p)) => p.into_inner(),
        other => panic!("expected a poisoned acquisition, got {other:?}"),
    };
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    assert!(l.is_poisoned().unwrap());
    l.clear_poison().unwrap();
    drop(g);
    drop(l.lock().unwrap());

    let r = m.rlock().unwrap();
    let h = child_ready(hold_rlock_forever, r.clone(), &ready);
    kill(h);
    let g = match r.try_lock_for(LIMIT) {
        Err(LockError::Poisoned(p)) => p.into_inner(),
        other => panic!("expected a poisoned acquisition, got {other:?}"),
    };
    drop(g);
    assert!(!r.is_locked().unwrap(), "the dead owner's recursion count is gone too");
}

fn block_on_lock((l, ready): (LockProxy, EventProxy)) {
    ready.set().unwrap();
    l.acquire().unwrap();
    panic!("must be killed before acquiring");
}

fn block_on_get((q, ready): (QueueProxy<u32>, EventProxy)) -> u32 {
    ready.set().unwrap();
    q.get().unwrap()
}

fn block_on_barrier((b, ready): (BarrierProxy, EventProxy)) {
    ready.set().unwrap();
    let _ = b.wait();
    panic!("must be killed at the barrier");
}

#[test]
fn a_client_killed_mid_request_costs_nothing_lasting() {
    let m = Manager::start().unwrap();
    let ready = m.event().unwrap();

    // Blocked in a lock acquire: its pending request must not take the lock later.
    let l = m.lock().unwrap();
    l.acquire().unwrap();
    let h = child_ready(block_on_lock, l.clone(), &ready);
    std::thread::sleep(Duration::from_millis(50));
    kill(h);
    std::thread::sleep(Duration::from_millis(100));
    l.release().unwrap();
    let g = l.try_lock_for(Duration::from_secs(2)).expect("free, and not poisoned");
    drop(g);

    // Blocked in a queue get: its pending get must not swallow a later item.
    ready.clear().unwrap();
    let q = m.queue::<u32>().unwrap();
    let h = child_ready(block_on_get, q.clone(), &ready);
    std::thread::sleep(Duration::from_millis(50));
    kill(h);
    std::thread::sleep(Duration::from_millis(100));
    q.put(7).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(2)).unwrap(), 7);

    // Waiting at a barrier: the barrier breaks instead of waiting for the dead party forever.
    ready.clear().unwrap();
    let b = m.barrier(3).unwrap();
    let h = child_ready(block_on_barrier, b.clone(), &ready);
    wait_until("the party waits", || b.n_waiting().unwrap() == 1);
    kill(h);
    let t0 = Instant::now();
    assert_eq!(b.wait_timeout(LIMIT).unwrap_err().kind(), ErrorKind::BrokenBarrier);
    assert!(t0.elapsed() < Duration::from_secs(2));
}

fn make_objects_and_die((m, ready): (Manager, EventProxy)) {
    let mut keep = Vec::new();
    for i in 0..10 {
        let l = m.list_from([i]).unwrap();
        keep.push(l);
    }
    let d = m.dict::<u8, ListProxy<i32>>().unwrap();
    d.insert(1, keep[0].clone()).unwrap();
    ready.set().unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop((keep, d));
}

#[test]
fn objects_of_a_crashed_client_are_freed() {
    let m = Manager::start().unwrap();
    let ready = m.event().unwrap();
    let base = m.num_objects().unwrap();
    let h = child_ready(make_objects_and_die, m.clone(), &ready);
    assert_eq!(m.num_objects().unwrap(), base + 11);
    kill(h);
    wait_until("the dead client's objects freed", || m.num_objects().unwrap() == base);
}

#[test]
fn garbage_silent_and_unauthenticated_clients_cost_nothing() {
    let m = Manager::builder()
        .address("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .start()
        .unwrap();
    let Address::Tcp(sa) = m.address().clone() else { panic!("tcp expected") };
    let l = m.list::<u32>().unwrap();
    // Silent clients: they never start the handshake.
    let silent: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(sa).unwrap()).collect();
    // Garbage before authentication.
    for junk in [&b"GET / HTTP/1.0\r\n\r\n"[..], &[0xff; 4096], &[0u8; 3]] {
        let mut s = TcpStream::connect(sa).unwrap();
        let _ = s.write_all(junk);
    }
    // A wrong key.
    let e = Manager::connect(m.address(), &AuthKey::random()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    // Garbage after authentication (a real handshake, then bytes that are no request).
    let raw = multiproc_ipc_pipe::Client::connect(m.address(), Some(m.authkey())).unwrap();
    raw.send_bytes(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
    let _ = raw.recv_bytes_timeout(Duration::from_secs(2));
    let raw2 = multiproc_ipc_pipe::Client::connect(m.address(), Some(m.authkey())).unwrap();
    raw2.send_bytes(&[]).unwrap();
    // Everyone else is served, promptly, meanwhile.
    let t0 = Instant::now();
    let other = Manager::connect(m.address(), m.authkey()).unwrap();
    let l2: ListProxy<u32> = other.list().unwrap();
    for i in 0..100 {
        l.append(i).unwrap();
        l2.append(i).unwrap();
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "slowed down: {:?}", t0.elapsed());
    assert_eq!(l.len().unwrap(), 100);
    drop((silent, raw, raw2));
    assert_eq!(m.num_objects().unwrap(), 2);
}

#[test]
fn a_killed_server_fails_every_client_promptly() {
    let m = Manager::start().unwrap();
    let q = m.queue::<u32>().unwrap();
    let l = m.list::<u32>().unwrap();
    let q2 = q.clone();
    let blocked = std::thread::spawn(move || {
        let t0 = Instant::now();
        let e = q2.get().unwrap_err();
        // The local queue's error type, saying "disconnected" as the manager's does.
        assert!(e.is_disconnected() && !e.is_timeout(), "{e}");
        (Error::from(e).kind(), t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    common::kill_pid(m.server_pid());
    let (kind, _) = blocked.join().unwrap();
    assert_eq!(kind, ErrorKind::Disconnected);
    let e = q.try_put(1).unwrap_err();
    assert!(e.is_disconnected(), "{e}");
    assert_eq!(e.into_inner(), 1, "the value comes back");
    assert!(t0.elapsed() < Duration::from_secs(1), "blocked call took {:?}", t0.elapsed());
    assert_eq!(l.append(1).unwrap_err().kind(), ErrorKind::Disconnected);
    assert_eq!(m.list::<u8>().unwrap_err().kind(), ErrorKind::Disconnected);
    let t0 = Instant::now();
    drop((q, l, m));
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn sixty_four_clients_at_once_and_a_blocked_one_stalls_nobody() {
    let m = Manager::start().unwrap();
    let list = m.list::<u32>().unwrap();
    let lock = m.lock().unwrap();
    let guard = lock.lock().unwrap();
    let (addr, key) = (m.address().clone(), m.authkey().clone());
    let start = std::sync::Arc::new(std::sync::Barrier::new(65));
    let threads: Vec<_> = (0..64u32)
        .map(|t| {
            let (addr, key, list, lock, start) =
                (addr.clone(), key.clone(), list.clone(), lock.clone(), start.clone());
            std::thread::spawn(move || {
                // Each thread is a client of its own (its own session and connection).
                let mine = Manager::connect(&addr, &key).unwrap();
                let own = mine.list::<u32>().unwrap();
                start.wait();
                if t == 0 {
                    // Blocks in the server until the main thread lets go.
                    drop(lock.lock().unwrap());
                    return;
                }
                for i in 0..50 {
                    list.append(t * 1000 + i).unwrap();
                    own.append(i).unwrap();
                }
                assert_eq!(own.len().unwrap(), 50);
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    wait_until("63 clients done", || list.len().unwrap() == 63 * 50);
    assert!(t0.elapsed() < LIMIT);
    drop(guard);
    for t in threads {
        t.join().unwrap();
    }
    assert!(!lock.is_locked().unwrap());
    wait_until("client objects freed", || m.num_objects().unwrap() == 2);
}

#[test]
fn a_request_over_the_frame_limit_is_refused_and_the_connection_lives() {
    let m = Manager::builder().max_frame(1024).start().unwrap();
    let l = m.list::<Vec<u8>>().unwrap();
    let e = l.append(vec![0; 4096]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    l.append(vec![1; 10]).unwrap();
    assert_eq!(l.len().unwrap(), 1);
    // A response too large for the limit is refused by the server the same way.
    for _ in 0..150 {
        l.append(vec![1; 10]).unwrap();
    }
    assert_eq!(l.to_vec().unwrap_err().kind(), ErrorKind::TooLarge);
    assert_eq!(l.len().unwrap(), 151);
}

fn wait_then_join(h: multiproc_spawn::JoinHandle<u32>) {
    let _ = join(h);
}

#[test]
fn a_blocked_get_is_answered_when_an_item_arrives() {
    let m = Manager::start().unwrap();
    let q = m.queue::<u32>().unwrap();
    let ready = m.event().unwrap();
    let h = child_ready(block_on_get, q.clone(), &ready);
    q.put(42).unwrap();
    wait_then_join(h);
    assert!(q.empty().unwrap());
}
