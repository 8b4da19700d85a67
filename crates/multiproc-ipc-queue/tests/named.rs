//! A named queue between unrelated processes: copies of the test binary (children of the
//! test, not of each other, inheriting nothing) open it by name.
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::{role, start_role, wait_success};
use multiproc_arena::ErrorKind as AKind;
use multiproc_ipc_queue::{JoinableQueue, Queue};
use std::time::{Duration, Instant};

const PER_PRODUCER: u64 = 50_000;

fn wait_ok(c: std::process::Child, what: &str) {
    wait_success(c, what, Duration::from_secs(120))
}

#[test]
fn named_queue_between_unrelated_processes_loses_nothing() {
    if let Some((role, name)) = role() {
        let id: u64 = role.parse().unwrap();
        let q = Queue::<(u64, u64)>::open(&name).unwrap();
        for seq in 0..PER_PRODUCER {
            q.put((id, seq)).unwrap();
        }
        return;
    }
    let test = "named_queue_between_unrelated_processes_loses_nothing";
    let name = format!("mp-named-queue-{}", std::process::id());
    let q = Queue::<(u64, u64)>::builder().maxsize(4096).create_named(&name).unwrap();
    // Opening with another item type, or a name that holds nothing, is a typed error.
    assert_eq!(Queue::<u32>::open(&name).unwrap_err().arena_kind(), Some(AKind::WrongType));
    assert_eq!(
        Queue::<u32>::open(&format!("{name}-none")).unwrap_err().arena_kind(),
        Some(AKind::NotFound)
    );
    let t0 = Instant::now();
    let kids = [start_role(test, "0", &name), start_role(test, "1", &name)];
    let mut next = [0u64; 2];
    for _ in 0..2 * PER_PRODUCER {
        let (id, seq) = q.get_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(seq, next[id as usize], "producer {id}: FIFO, none lost or doubled");
        next[id as usize] += 1;
    }
    for k in kids {
        wait_ok(k, "a producer");
    }
    eprintln!("2 x {PER_PRODUCER} messages through a named queue in {:?}", t0.elapsed());
    assert!(q.try_get().unwrap_err().is_empty());
    assert_eq!(q.discarded(), 0);
    drop(q);
    assert!(
        !std::path::Path::new("/dev/shm").join(&name).exists(),
        "the name went with its last user"
    );
}

#[test]
fn named_joinable_queue_opens_by_name() {
    if role().is_some() {
        return;
    }
    let name = format!("mp-named-jq-{}", std::process::id());
    let jq = JoinableQueue::<u32>::builder().create_named(&name).unwrap();
    let other = JoinableQueue::<u32>::open(&name).unwrap();
    other.put(5).unwrap();
    assert_eq!(jq.get().unwrap(), 5);
    jq.task_done().unwrap();
    other.join_timeout(Duration::from_secs(5)).unwrap();
}
