//! No descriptors left (`RLIMIT_NOFILE` reached): the lazily created global arena is an error
//! from the constructor that needed it (`NoDescriptors`, naming EMFILE), never a panic; what
//! existed before is intact; and the same constructor succeeds once descriptors are back.
//! Its own test binary: the global arena must not exist yet when the fault starts.

use multiproc_arena::testing::{with_descriptor_limit, Outcome};
use multiproc_arena::{Arena, Array, ErrorKind, Segment, Shared};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[test]
fn global_arena_without_descriptors_is_an_error_then_recovers() {
    let out = with_descriptor_limit(64, Duration::from_secs(20), || {
        let before = Arena::new(1 << 20).unwrap();
        let kept = Shared::new_in(&before, AtomicU64::new(41)).unwrap();
        // Use up every descriptor.
        let mut hog = Vec::new();
        let err = loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => hog.push(f),
                Err(e) => break e,
            }
        };
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        let Err(err) = Shared::new(AtomicU64::new(1)) else {
            panic!("no descriptor for the memfd")
        };
        assert_eq!(err.kind(), ErrorKind::NoDescriptors, "{err}");
        assert!(err.to_string().contains("EMFILE"), "{err}");
        let err = Segment::anonymous(4096).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoDescriptors, "{err}");
        // The arena made before the fault still serves.
        kept.fetch_add(1, Ordering::Relaxed);
        let more = Array::from_fn_in(&before, 8, |i| AtomicU64::new(i as u64)).unwrap();
        assert_eq!(kept.load(Ordering::Relaxed), 42);
        // Descriptors come back: the global arena appears on the next call.
        hog.truncate(hog.len() - 4);
        let v = Shared::new(AtomicU64::new(5)).unwrap();
        assert_eq!(v.load(Ordering::Relaxed), 5);
        assert_eq!(more[7].load(Ordering::Relaxed), 7);
        assert!(Arena::try_global().is_ok());
    });
    // Outcome::Skipped was already reported loudly by the helper.
    let _: Outcome = out;
}
