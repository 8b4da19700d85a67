//! Issue #20 (manager part): the set proxy (Python 3.14's `SetProxy`, checklist MG23),
//! against a manager server process, with clients in child processes.

mod common;

use common::{child, join, wait_until};
use multiproc_manager::*;
use std::collections::{BTreeSet, HashSet};

fn manager() -> Manager {
    Manager::start().expect("start manager")
}

fn hs<const N: usize>(v: [i32; N]) -> HashSet<i32> {
    v.into_iter().collect()
}

#[test]
fn set_methods_and_errors() {
    let m = manager();
    let s = m.set::<i32>().unwrap();
    assert!(s.is_empty().unwrap());
    assert!(s.add(1).unwrap());
    assert!(s.add(2).unwrap());
    assert!(!s.add(1).unwrap(), "already there");
    assert_eq!(s.len().unwrap(), 2);
    assert!(s.contains(&1).unwrap());
    assert!(!s.contains(&3).unwrap());
    assert!(s.discard(&2).unwrap());
    assert!(!s.discard(&2).unwrap());
    assert_eq!(s.remove(&2).unwrap_err().kind(), ErrorKind::KeyNotFound, "Python's KeyError");
    s.remove(&1).unwrap();
    assert_eq!(s.pop().unwrap_err().kind(), ErrorKind::KeyNotFound, "pop from an empty set");
    s.update([5, 6, 7, 5]).unwrap();
    assert_eq!(s.to_vec().unwrap(), [5, 6, 7], "a snapshot, in the order added");
    let popped = s.pop().unwrap();
    assert!(!s.contains(&popped).unwrap());
    assert_eq!(s.len().unwrap(), 2);
    s.clear().unwrap();
    assert_eq!(s.len().unwrap(), 0);

    let strings = m.set_from(["a", "b", "a"].map(String::from)).unwrap();
    assert_eq!(strings.len().unwrap(), 2);
    assert!(strings.contains("a").unwrap(), "borrowed forms serialise the same");
    assert_eq!(strings.to_btree_set().unwrap(), BTreeSet::from(["a".into(), "b".into()]));

    // A value holding a proxy cannot be compared across sessions: refused.
    let proxies = m.set::<ListProxy<i32>>().unwrap();
    assert_eq!(proxies.add(m.list().unwrap()).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(m.set_from([m.list::<i32>().unwrap()]).is_err());
}

#[test]
fn set_operators_return_local_sets_and_in_place_ones_keep_the_proxy() {
    let m = manager();
    let s = m.set_from([1, 2, 3]).unwrap();
    // |, &, -, ^ : plain local sets; the managed set is unchanged.
    assert_eq!(s.union([3, 4]).unwrap(), hs([1, 2, 3, 4]));
    assert_eq!(s.intersection([2, 3, 4]).unwrap(), hs([2, 3]));
    assert_eq!(s.difference([2, 9]).unwrap(), hs([1, 3]));
    assert_eq!(s.symmetric_difference([3, 4]).unwrap(), hs([1, 2, 4]));
    assert_eq!(s.to_hash_set().unwrap(), hs([1, 2, 3]));
    assert!(s.is_subset(&hs([1, 2, 3, 4])).unwrap());
    assert!(!s.is_subset(&hs([1, 2])).unwrap());
    assert!(s.is_superset(&hs([1, 2])).unwrap());
    assert!(s.is_disjoint(&hs([7, 8])).unwrap());
    assert!(!s.is_disjoint(&hs([3, 8])).unwrap());
    // |=, -=, &=, ^= : in place, on the managed set.
    s.update([4, 5]).unwrap();
    assert_eq!(s.to_hash_set().unwrap(), hs([1, 2, 3, 4, 5]));
    s.difference_update(&[1, 9]).unwrap();
    assert_eq!(s.to_hash_set().unwrap(), hs([2, 3, 4, 5]));
    s.intersection_update(&[2, 3, 4, 10]).unwrap();
    assert_eq!(s.to_hash_set().unwrap(), hs([2, 3, 4]));
    s.symmetric_difference_update(&[4, 6, 6]).unwrap();
    assert_eq!(s.to_hash_set().unwrap(), hs([2, 3, 6]));
}

fn set_child((s, me): (SetProxy<u32>, u32)) -> u32 {
    // Every child adds the shared values 0..50 and values of its own, then removes the
    // value `me` (which it has just added itself, so the removal finds it).
    let mut removed = 0;
    for i in 0..50 {
        s.add(i).unwrap();
    }
    s.add(1000 + me).unwrap();
    s.update((0..5).map(|i| 2000 + me * 10 + i)).unwrap();
    if s.discard(&me).unwrap() {
        removed += 1;
    }
    assert!(s.contains(&(1000 + me)).unwrap());
    removed
}

#[test]
fn set_shared_by_child_processes() {
    let m = manager();
    let s = m.set::<u32>().unwrap();
    let kids: Vec<_> = (0..4).map(|me| child(set_child, (s.clone(), me))).collect();
    let removed: u32 = kids.into_iter().map(join).sum();
    // Values 0..4 were removed once each but may have been added again by a slower child.
    let got = s.to_hash_set().unwrap();
    assert_eq!(removed, 4, "each child removed its value once it had added it");
    for me in 0..4 {
        assert!(got.contains(&(1000 + me)));
        assert!((0..5).all(|i| got.contains(&(2000 + me * 10 + i))));
    }
    assert!((4..50).all(|i| got.contains(&i)));
    assert_eq!(got.len(), s.len().unwrap());
    // The set is freed with its last proxy.
    let before = m.num_objects().unwrap();
    drop(s);
    wait_until("set freed", || m.num_objects().unwrap() == before - 1);
}
