//! Named primitives between unrelated processes: the test binary starts copies of itself
//! (children of the test, not of each other; none inherits anything: they open by name).
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::{role, start_role, wait_success};
use multiproc_arena::{cleanup_orphans, ErrorKind as AKind};
use multiproc_ipc_lock::{Event, Lock, Mutex};
use std::time::{Duration, Instant};

const PER_PROCESS: u64 = 500_000;

fn wait_ok(c: std::process::Child, what: &str) {
    wait_success(c, what, Duration::from_secs(120))
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

#[test]
fn named_mutex_and_event_between_unrelated_processes() {
    if let Some((role, name)) = role() {
        match role.as_str() {
            "incr" => {
                let m = Mutex::<u64>::open(&name).unwrap();
                for _ in 0..PER_PROCESS {
                    *m.lock().unwrap() += 1;
                }
            }
            "wait" => {
                let e = Event::open(&name).unwrap();
                e.wait_timeout(Duration::from_secs(60)).expect("never set");
            }
            _ => unreachable!(),
        }
        return;
    }
    let test = "named_mutex_and_event_between_unrelated_processes";
    let base = format!("mp-named-test-{}", std::process::id());
    let (mname, ename) = (format!("{base}-m"), format!("{base}-e"));
    let m = Mutex::create_named(&mname, 0u64).unwrap();
    let e = Event::create_named(&ename).unwrap();
    let t0 = Instant::now();
    let kids = [start_role(test, "incr", &mname), start_role(test, "incr", &mname)];
    let waiter = start_role(test, "wait", &ename);
    for k in kids {
        wait_ok(k, "an incrementer");
    }
    eprintln!("2 x {PER_PROCESS} increments by name in {:?}", t0.elapsed());
    assert_eq!(*m.lock().unwrap(), 2 * PER_PROCESS, "every increment, exactly once");
    e.set();
    wait_ok(waiter, "the event waiter");

    // Opening with the wrong type is a typed error, not undefined behaviour.
    assert_eq!(Lock::open(&mname).unwrap_err().arena_kind(), Some(AKind::WrongType));
    assert_eq!(Mutex::<u32>::open(&mname).unwrap_err().arena_kind(), Some(AKind::WrongType));
    assert_eq!(
        Lock::open(&format!("{base}-none")).unwrap_err().arena_kind(),
        Some(AKind::NotFound)
    );

    // The name goes with its last user.
    let again = Mutex::<u64>::open(&mname).unwrap();
    drop(m);
    assert!(exists(&mname), "a user is left");
    drop(again);
    assert!(!exists(&mname), "the last user removed the name");
    drop(e);
    assert!(!exists(&ename));
}

#[test]
fn named_objects_persist_when_asked_and_are_cleaned_after_sigkill() {
    if let Some((role, name)) = role() {
        if role == "hold" {
            let _l = Lock::create_named(&name).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        return;
    }
    let test = "named_objects_persist_when_asked_and_are_cleaned_after_sigkill";
    let name = format!("mp-named-persist-{}", std::process::id());
    // Asked to persist: survives its creator.
    let m = Mutex::create_named(&name, 7u64).unwrap();
    m.persist_name();
    drop(m);
    assert!(exists(&name));
    assert_eq!(*Mutex::<u64>::open(&name).unwrap().lock().unwrap(), 7);
    multiproc_arena::Segment::unlink_name(&name).unwrap();
    assert!(!exists(&name));

    // Not asked: a creator SIGKILLed while holding it leaves the name, which the next
    // cleanup removes (nobody has it open any more).
    let hname = format!("{name}-killed");
    let mut holder = start_role(test, "hold", &hname);
    let t0 = Instant::now();
    while !exists(&hname) {
        assert!(t0.elapsed() < Duration::from_secs(30), "never created");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(100));
    cleanup_orphans().unwrap();
    assert!(exists(&hname), "a live holder's name was removed");
    holder.kill().unwrap();
    holder.wait().unwrap();
    cleanup_orphans().unwrap();
    assert!(!exists(&hname), "the SIGKILLed holder's name was not cleaned");
}

#[test]
fn named_barrier_rwlock_and_semaphore_open_by_name() {
    if role().is_some() {
        return;
    }
    let base = format!("mp-named-more-{}", std::process::id());
    let b = multiproc_ipc_lock::Barrier::builder(2).create_named(&format!("{base}-b")).unwrap();
    let b2 = multiproc_ipc_lock::Barrier::open(&format!("{base}-b")).unwrap();
    let t = std::thread::spawn(move || b2.wait().unwrap());
    b.wait().unwrap();
    t.join().unwrap();
    let rw = multiproc_ipc_lock::RwLock::create_named(&format!("{base}-rw"), [1u32; 4]).unwrap();
    *multiproc_ipc_lock::RwLock::<[u32; 4]>::open(&format!("{base}-rw"))
        .unwrap()
        .write()
        .unwrap() = [2; 4];
    assert_eq!(*rw.read().unwrap(), [2; 4]);
    let s = multiproc_ipc_lock::Semaphore::create_named(&format!("{base}-s"), 1).unwrap();
    let s2 = multiproc_ipc_lock::Semaphore::open(&format!("{base}-s")).unwrap();
    s.try_acquire().unwrap();
    assert!(s2.try_acquire().unwrap_err().is_would_block());
    assert_eq!(
        multiproc_ipc_lock::Barrier::open(&format!("{base}-rw")).unwrap_err().arena_kind(),
        Some(AKind::WrongType)
    );
}
