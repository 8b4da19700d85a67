//! Issue #20 (manager part), lists: bulk constructors with proxies as their only handles,
//! sorting, and Python's negative indices — against a manager server process, with clients
//! in child processes where it applies.

mod common;

use common::{child, join};
use multiproc_manager::*;

fn manager() -> Manager {
    Manager::start().expect("start manager")
}

// ---- bulk constructors with proxies as items ------------------------------------------

#[test]
fn list_from_keeps_a_sole_proxy_item_alive() {
    let m = manager();
    // The inner list's proxy is moved in: it is the object's only handle.
    let outer = m.list_from(vec![m.list::<i32>().unwrap()]).unwrap();
    let inner = outer.get(0).unwrap();
    inner.append(5).unwrap();
    assert_eq!(outer.get(0).unwrap().to_vec().unwrap(), [5]);

    let outer = m.list_from(vec![m.list_from([1, 2]).unwrap(), m.list_from([3]).unwrap()]).unwrap();
    let lens: Vec<usize> = outer.to_vec().unwrap().iter().map(|l| l.len().unwrap()).collect();
    assert_eq!(lens, [2, 1]);
}

#[test]
fn extend_dict_from_and_update_keep_sole_proxy_items_alive() {
    let m = manager();
    let outer = m.list::<ListProxy<i32>>().unwrap();
    outer.extend(vec![m.list_from([1]).unwrap(), m.list_from([2, 3]).unwrap()]).unwrap();
    assert_eq!(outer.get(1).unwrap().to_vec().unwrap(), [2, 3]);

    let d = m.dict_from(vec![("a".to_string(), m.list_from([4]).unwrap())]).unwrap();
    assert_eq!(d.get("a").unwrap().unwrap().to_vec().unwrap(), [4]);
    d.update(vec![("b".to_string(), m.list_from([5, 6]).unwrap())]).unwrap();
    assert_eq!(d.get("b").unwrap().unwrap().to_vec().unwrap(), [5, 6]);

    // The objects are still freed with their container.
    let before = m.num_objects().unwrap();
    drop((outer, d));
    common::wait_until("nested objects freed", || m.num_objects().unwrap() == before - 6);
}

type Nest = DictProxy<String, ListProxy<ListProxy<i32>>>;

fn build_in_child((m, out): (Manager, Nest)) {
    let outer = m.list_from(vec![m.list_from([7, 8]).unwrap()]).unwrap();
    outer.extend(vec![m.list_from([9]).unwrap()]).unwrap();
    out.insert("outer".into(), outer).unwrap();
}

#[test]
fn list_from_with_a_sole_proxy_in_a_child() {
    let m = manager();
    let out: Nest = m.dict().unwrap();
    join(child(build_in_child, (m.clone(), out.clone())));
    let outer = out.get("outer").unwrap().expect("the child stored its list");
    let inner: Vec<Vec<i32>> =
        outer.to_vec().unwrap().iter().map(|l| l.to_vec().unwrap()).collect();
    assert_eq!(inner, [vec![7, 8], vec![9]]);
}

// ---- negative indices, as Python's ------------------------------------------------------

#[test]
fn negative_indices_count_from_the_end() {
    let m = manager();
    let l = m.list_from([0, 1, 2, 3]).unwrap();
    assert_eq!(l.get(-1).unwrap(), 3);
    assert_eq!(l.get(-4).unwrap(), 0);
    assert_eq!(l.get(-5).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    assert_eq!(l.get(4).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    l.set(-1, 30).unwrap();
    assert_eq!(l.set(-5, 0).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    assert_eq!(l.to_vec().unwrap(), [0, 1, 2, 30]);
    assert_eq!(l.pop_at(-2).unwrap(), 2);
    assert_eq!(l.pop_at(-4).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    assert_eq!(l.to_vec().unwrap(), [0, 1, 30]);
    // insert: before the index counted from the end, clamped at both ends (never an error).
    l.insert(-1, 9).unwrap();
    assert_eq!(l.to_vec().unwrap(), [0, 1, 9, 30]);
    l.insert(-100, 8).unwrap();
    l.insert(100, 7).unwrap();
    assert_eq!(l.to_vec().unwrap(), [8, 0, 1, 9, 30, 7]);
    assert_eq!(l.pop().unwrap(), 7);
    assert_eq!(l.pop_at(0).unwrap(), 8);
    assert_eq!(l.pop_at(isize::MIN).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    assert_eq!(l.get(isize::MAX).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    // An empty list.
    let e = m.list::<i32>().unwrap();
    assert_eq!(e.get(-1).unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    assert_eq!(e.pop().unwrap_err().kind(), ErrorKind::IndexOutOfRange);
    e.insert(-1, 5).unwrap();
    assert_eq!(e.to_vec().unwrap(), [5]);
}

fn negative_in_child(l: ListProxy<String>) -> (String, String) {
    let last = l.get(-1).unwrap();
    l.set(-2, "B".into()).unwrap();
    l.insert(-1, "x".into()).unwrap();
    let popped = l.pop_at(-1).unwrap();
    (last, popped)
}

#[test]
fn negative_indices_from_a_child() {
    let m = manager();
    let l = m.list_from(["a", "b", "c"].map(String::from)).unwrap();
    let (last, popped) = join(child(negative_in_child, l.clone()));
    assert_eq!((last.as_str(), popped.as_str()), ("c", "c"));
    assert_eq!(l.to_vec().unwrap(), ["a", "B", "x"]);
}

// ---- sort ---------------------------------------------------------------------------------

#[test]
fn sort_ascending_descending_and_by_key_are_stable() {
    let m = manager();
    let l = m.list_from([3, 1, 2, 5, 4]).unwrap();
    l.sort().unwrap();
    assert_eq!(l.to_vec().unwrap(), [1, 2, 3, 4, 5]);
    l.sort().unwrap(); // already sorted
    assert_eq!(l.to_vec().unwrap(), [1, 2, 3, 4, 5]);
    l.sort_reverse().unwrap();
    assert_eq!(l.to_vec().unwrap(), [5, 4, 3, 2, 1]);
    m.list::<i32>().unwrap().sort().unwrap(); // empty

    // Stable, as Python's, also in reverse: sorted(key=k, reverse=True) keeps equal keys'
    // order.
    let t = m.list_from([(1, 'a'), (0, 'b'), (1, 'c'), (0, 'd')]).unwrap();
    t.sort_by_key(|p| p.0).unwrap();
    assert_eq!(t.to_vec().unwrap(), [(0, 'b'), (0, 'd'), (1, 'a'), (1, 'c')]);
    t.sort_by(|a, b| b.0.cmp(&a.0)).unwrap();
    assert_eq!(t.to_vec().unwrap(), [(1, 'a'), (1, 'c'), (0, 'b'), (0, 'd')]);
    let s = m.list_from(["b", "a", "b", "a"].map(String::from)).unwrap();
    s.sort_reverse().unwrap();
    assert_eq!(s.to_vec().unwrap(), ["b", "b", "a", "a"]);
}

#[test]
fn sort_moves_nested_proxies_with_their_values() {
    let m = manager();
    let outer = m
        .list_from(vec![
            m.list_from([1, 1, 1]).unwrap(),
            m.list_from([2]).unwrap(),
            m.list_from([3, 3]).unwrap(),
        ])
        .unwrap();
    let objects = m.num_objects().unwrap();
    outer.sort_by_key(|l| l.len().unwrap()).unwrap();
    let inner: Vec<Vec<i32>> =
        outer.to_vec().unwrap().iter().map(|l| l.to_vec().unwrap()).collect();
    assert_eq!(inner, [vec![2], vec![3, 3], vec![1, 1, 1]]);
    common::wait_until("no object gained or lost", || m.num_objects().unwrap() == objects);
}

fn appender(l: ListProxy<i32>) {
    for i in 1000..1300 {
        l.append(i).unwrap();
    }
}

fn sorter(l: ListProxy<i32>) {
    for _ in 0..30 {
        l.sort_reverse().unwrap();
        l.sort().unwrap();
    }
}

#[test]
fn sort_is_atomic_against_concurrent_appends_from_other_processes() {
    let m = manager();
    let initial: Vec<i32> = (0..200).rev().collect();
    let l = m.list_from(initial.clone()).unwrap();
    let a = child(appender, l.clone());
    let s = child(sorter, l.clone());
    join(a);
    join(s);
    // Every value is there exactly once: an append made while a sort was under way was
    // neither lost nor doubled.
    let mut all = l.to_vec().unwrap();
    all.sort();
    let mut want: Vec<i32> = initial.into_iter().chain(1000..1300).collect();
    want.sort();
    assert_eq!(all, want);
    l.sort().unwrap();
    assert_eq!(l.to_vec().unwrap(), want);
}
