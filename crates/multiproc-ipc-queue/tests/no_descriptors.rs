//! No descriptor left: a new queue is an error naming EMFILE (`ErrorKind::Resources`), never a
//! panic; the queues made before keep every message and keep working; and the constructor
//! works again once descriptors are back. Its own test binary (one test): the fault runs in
//! a forked child, which must not inherit a lock another test thread held.
#![cfg(not(multiproc_loom))]

mod common;

use common::{big, Bytes, KIB};
use multiproc_arena::testing::{with_descriptor_limit, Outcome};
use multiproc_ipc_queue::{ErrorKind, Queue};
use std::time::Duration;

#[test]
fn no_descriptors_is_an_error_naming_emfile_and_nothing_is_lost() {
    let out = with_descriptor_limit(64, Duration::from_secs(20), || {
        let before: Queue<Bytes> = Queue::builder().capacity(16 * KIB).build().unwrap();
        before.put(Bytes(b"small".to_vec())).unwrap();
        before.put(big(7)).unwrap(); // spilled
        let mut hog = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            hog.push(f);
        }
        let Err(err) = Queue::<u64>::new() else { panic!("a new queue without descriptors") };
        assert_eq!(err.kind(), ErrorKind::Resources, "{err}");
        assert!(err.to_string().contains("EMFILE"), "{err}");
        // The queue made before the fault still works, and holds what was put.
        before.put(Bytes(b"during".to_vec())).unwrap();
        assert_eq!(before.qsize(), 3);
        assert_eq!(before.get().unwrap().0, b"small");
        assert_eq!(before.get().unwrap().0, big(7).0);
        assert_eq!(before.get().unwrap().0, b"during");
        hog.truncate(hog.len() - 8);
        let after: Queue<u64> = Queue::new().unwrap();
        after.put(5).unwrap();
        assert_eq!(after.get().unwrap(), 5);
    });
    // Outcome::Skipped was already reported loudly by the helper.
    let _: Outcome = out;
}
