//! [`FnRef`] across processes: a reference made in the parent resolves and runs in a child
//! under every start method (the child belongs to the parent's process tree), and a forged
//! or garbled one is refused there with an error, never called.
#![cfg(not(multiproc_loom))]

mod sys;
mod util;

use multiproc_spawn::*;
use util::*;

fn triple(x: u32) -> u64 {
    x as u64 * 3
}

/// In the child: resolves each reference and calls it on 7, or says why not.
fn call_refs(refs: Vec<[u8; FNREF_LEN]>) -> Vec<Result<u64, String>> {
    refs.into_iter()
        .map(|b| {
            FnRef::<u32, u64>::from_bytes(b).resolve().map(|f| f(7)).map_err(|e| e.to_string())
        })
        .collect()
}

fn run_in_child(m: StartMethod, refs: Vec<[u8; FNREF_LEN]>) -> Vec<Result<u64, String>> {
    let mut h = Process::builder().start_method(m).target(call_refs, refs).start().unwrap();
    h.join_timeout(LONG).unwrap()
}

per_method!(
    fn a_reference_resolves_in_a_child_and_a_forged_one_is_refused(m) {
        let item = FnRef::new(triple as fn(u32) -> u64).unwrap().to_bytes();
        let closure = FnRef::of(&|x: u32| x as u64 + 100).unwrap().to_bytes();
        let mut garbled = item;
        garbled[3] ^= 0x10; // another offset under the same tag
        let mut forged = item;
        forged[16..].copy_from_slice(&0u64.to_le_bytes()); // a tag made up
        let out = run_in_child(m, vec![item, closure, garbled, forged]);
        assert_eq!(out[0], Ok(21));
        assert_eq!(out[1], Ok(107));
        for e in &out[2..] {
            let e = e.as_ref().unwrap_err();
            assert!(e.contains("not made by this program's process tree"), "{e}");
        }
    }
);

per_method!(
    fn a_reference_of_another_type_is_refused_in_a_child(m) {
        fn other(x: u32) -> u32 {
            x
        }
        let r = FnRef::new(other as fn(u32) -> u32).unwrap().to_bytes();
        let out = run_in_child(m, vec![r]);
        let e = out[0].as_ref().unwrap_err();
        assert!(e.contains("not for a fn(u32) -> u64"), "{e}");
    }
);

#[test]
fn a_reference_sealed_for_another_host_comes_back_only_with_the_key() {
    let r = FnRef::new(triple as fn(u32) -> u64).unwrap();
    let sealed = r.seal(b"cluster key").unwrap();
    let back = FnRef::<u32, u64>::unseal(&sealed, b"cluster key").unwrap();
    assert_eq!(back.resolve().unwrap()(2), 6);
    let e = FnRef::<u32, u64>::unseal(&sealed, b"another key").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidReference);
    // A garbled reference is never sealed.
    let mut garbled = r.to_bytes();
    garbled[0] ^= 1;
    assert!(FnRef::<u32, u64>::from_bytes(garbled).seal(b"cluster key").is_err());
}
