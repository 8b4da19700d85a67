//! Hostile input for every decoder of this crate that reads another process's bytes: segment
//! headers and handle-transfer messages. Deterministic pseudo-random cases (set
//! `MULTIPROC_FUZZ_CASES` for more); none may panic, and each must end in `Ok` or a typed error.

use multiproc_arena::testing::{fuzz_cases, Rng};
use multiproc_arena::{transfer, Arena, Array, ErrorKind, Segment, Shared};
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicU64;

#[test]
fn mutated_segment_headers_never_panic() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let n = fuzz_cases(3_000);
    let mut outcomes = std::collections::BTreeMap::new();
    for _ in 0..n {
        let seg = Segment::anonymous(4096).unwrap();
        let fd = seg.fd().try_clone_to_owned().unwrap();
        let file = std::fs::File::from(fd);
        // Flip 1-4 random bytes of the 64 meaningful header bytes, sometimes truncate.
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(64);
            file.write_all_at(&[rng.next_u64() as u8], at).unwrap();
        }
        if rng.below(4) == 0 {
            file.set_len(rng.below(3 * 4096)).unwrap();
        }
        let kind = match Segment::from_fd(file.into()) {
            Ok(_) => None,
            Err(e) => Some(e.kind()),
        };
        *outcomes.entry(format!("{kind:?}")).or_insert(0u64) += 1;
        drop(seg);
    }
    // The mutations reach several distinct error kinds, not one catch-all.
    assert!(outcomes.len() >= 3, "{outcomes:?}");
}

#[test]
fn random_transfer_messages_never_panic() {
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let n = fuzz_cases(20_000);
    let arena = Arena::new(1 << 16).unwrap();
    let v = Shared::new_in(&arena, AtomicU64::new(1)).unwrap();
    let mut accepted = 0u64;
    for i in 0..n {
        // A fresh encoding each time: each takes the reference its decoding adopts.
        let mut bytes = if i % 2 == 0 {
            transfer::encode(&(v.clone(), arena.clone())).unwrap().bytes
        } else {
            (0..rng.below(48)).map(|_| rng.next_u64() as u8).collect()
        };
        for _ in 0..rng.below(4) {
            if !bytes.is_empty() {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
        }
        if rng.below(5) == 0 {
            bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
        }
        let fds = (0..rng.below(3)).map(|_| arena.fd().try_clone_to_owned().unwrap()).collect();
        let res = match i % 3 {
            0 => transfer::decode::<(Shared<AtomicU64>, Arena)>(&bytes, fds).map(|_| ()),
            1 => transfer::decode::<Array<u8>>(&bytes, fds).map(|_| ()),
            _ => transfer::decode::<(u32, String, Vec<u64>)>(&bytes, fds).map(|_| ()),
        };
        match res {
            Ok(()) => accepted += 1,
            Err(e) => assert!(matches!(
                e.kind(),
                ErrorKind::Codec
                    | ErrorKind::InvalidHandle
                    | ErrorKind::InvalidHeader
                    | ErrorKind::NotInitialized
                    | ErrorKind::Truncated
                    | ErrorKind::Io
            )),
        }
    }
    assert!(accepted > 0, "the unmutated message decodes");
    // Nothing the fuzzer did disturbed the real object; refused messages leak references
    // (never free early), accepted ones were dropped again.
    assert_eq!(v.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(v.ref_count() >= 1);
}
