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
