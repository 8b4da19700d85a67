//! Issue #20 (manager part): the server's exit code, the namespace's `Debug`, and the
//! snapshot semantics of dict views — against a manager server process.

mod common;

use common::{child, interrupt_pid, join, kill_pid, wait_until};
use multiproc_manager::*;

fn manager() -> Manager {
    Manager::start().expect("start manager")
}

// ---- the server process's exit code -----------------------------------------------------

fn exit_code_seen_by_child(m: Manager) -> Option<i32> {
    m.server_exit_code()
}

#[test]
fn server_exit_code_after_a_normal_shutdown() {
    let m = manager();
    assert_eq!(m.server_exit_code(), None, "running");
    let other = Manager::connect(m.address(), m.authkey()).unwrap();
    assert_eq!(other.server_exit_code(), None, "a connected handle cannot see the process");
    // A child that receives the manager does not own the server either.
    assert_eq!(join(child(exit_code_seen_by_child, m.clone())), None);
    m.shutdown().unwrap();
    assert_eq!(m.server_exit_code(), Some(0));
    assert_eq!(other.server_exit_code(), None);
    // Shutting down again changes nothing.
    m.shutdown().unwrap();
    assert_eq!(m.server_exit_code(), Some(0));
}

#[test]
fn server_exit_code_after_sigkill() {
    let m = manager();
    let l = m.list_from([1]).unwrap();
    assert_eq!(m.server_exit_code(), None);
    kill_pid(m.server_pid());
    wait_until("the killed server's exit code", || m.server_exit_code().is_some());
    assert_eq!(m.server_exit_code(), Some(-9));
    assert_eq!(l.len().unwrap_err().kind(), ErrorKind::Disconnected);
    // shutdown() after the death keeps the code it found.
    m.shutdown().unwrap();
    assert_eq!(m.server_exit_code(), Some(-9));
}

/// SM12 (Python's manager servers ignore SIGINT): a Ctrl-C to the server leaves it serving.
#[test]
fn the_server_survives_sigint() {
    let m = manager();
    let l = m.list_from([1]).unwrap();
    interrupt_pid(m.server_pid());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(m.server_exit_code(), None, "the server ended on SIGINT");
    l.append(2).unwrap();
    assert_eq!(l.len().unwrap(), 2);
    m.shutdown().unwrap();
    assert_eq!(m.server_exit_code(), Some(0));
}

// ---- dict iteration: a documented snapshot ------------------------------------------------

fn dict_changer(d: DictProxy<String, i32>) {
    d.insert("z".into(), 26).unwrap();
    d.remove("a").unwrap();
    d.insert("b".into(), 20).unwrap();
}

#[test]
fn dict_views_are_snapshots_that_later_changes_do_not_touch() {
    let m = manager();
    let d = m.dict_from([("a".to_string(), 1), ("b".to_string(), 2)]).unwrap();
    let keys = d.keys().unwrap();
    let items = d.items().unwrap();
    // Another process changes the dict: the snapshots do not change.
    join(child(dict_changer, d.clone()));
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(items, [("a".to_string(), 1), ("b".to_string(), 2)]);
    // Iterating a snapshot while the dict is cleared (CPython: RuntimeError) sees every
    // entry of the snapshot and never fails.
    let mut seen = Vec::new();
    for (i, (k, v)) in d.items().unwrap().into_iter().enumerate() {
        if i == 0 {
            d.clear().unwrap();
        }
        seen.push((k, v));
    }
    assert_eq!(seen, [("b".to_string(), 20), ("z".to_string(), 26)]);
    // A fresh view shows the dict as it is now.
    assert!(d.keys().unwrap().is_empty());
    assert!(d.values().unwrap().is_empty());
}

// ---- Namespace's Debug lists its fields ---------------------------------------------------

#[derive(serde::Serialize, serde::Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

fn namespace_setter(ns: Namespace) {
    ns.set("job", "Builder".to_string()).unwrap();
    ns.set("at", Point { x: 1, y: -2 }).unwrap();
}

#[test]
fn namespace_debug_lists_fields_and_values() {
    let m = manager();
    let ns = m.namespace().unwrap();
    assert_eq!(format!("{ns:?}"), "Namespace");
    ns.set("name", "Bob".to_string()).unwrap();
    ns.set("x", 1u8).unwrap();
    ns.set("_hidden", 0).unwrap(); // not listed, as in Python's repr
    join(child(namespace_setter, ns.clone()));
    assert_eq!(
        format!("{ns:?}"),
        r#"Namespace { at: Point { x: 1, y: -2 }, job: "Builder", name: "Bob", x: 1 }"#
    );
    ns.set("x", vec![Some(1.5), None]).unwrap();
    ns.remove("job").unwrap();
    assert_eq!(
        format!("{ns:?}"),
        r#"Namespace { at: Point { x: 1, y: -2 }, name: "Bob", x: [Some(1.5), None] }"#
    );
    // The alternate form lists one field a line.
    let pretty = format!("{ns:#?}");
    assert!(pretty.contains("name: \"Bob\",\n"), "{pretty}");
    // Without a server: the handle and why the fields are missing, not a panic.
    m.shutdown().unwrap();
    let gone = format!("{ns:?}");
    assert!(gone.starts_with("Namespace { id: ") && gone.contains("disconnected"), "{gone}");
}

// ---- MG16: an initializer run once in the server --------------------------------------------

/// A file both the test and the server can name (the server may be started by spawn or a
/// forkserver: no shared memory or environment from the test itself).
fn init_file() -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::env::current_exe().unwrap().hash(&mut h);
    std::env::temp_dir().join(format!("multiproc-mg16-{:016x}", h.finish()))
}

fn note_server_pid() {
    let path = init_file();
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", std::process::id()).as_bytes()).unwrap();
}

fn refuse_to_start() {
    panic!("no server today");
}

#[test]
fn the_initializer_runs_once_in_the_server() {
    let path = init_file();
    let _ = std::fs::remove_file(&path);
    let m = Manager::builder().initializer(note_server_pid).start().unwrap();
    let l = m.list_from([1]).unwrap();
    l.append(2).unwrap();
    let seen = std::fs::read_to_string(&path).unwrap();
    assert_eq!(seen, format!("{}\n", m.server_pid()), "once, in the server");
    m.shutdown().unwrap();
    let _ = std::fs::remove_file(&path);

    let e = Manager::builder().initializer(refuse_to_start).start().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Start);
    assert!(e.to_string().contains("no server today"), "{e}");

    let n = 3;
    let e = Manager::builder().initializer(move || assert_eq!(n, 3)).start().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Start, "a closure that captures is refused: {e}");
}

// ---- the process authkey is a manager's default key ---------------------------------------

fn connect_with_inherited_key(address: Address) -> u32 {
    let key = AuthKey::from(multiproc_spawn::current_process().authkey());
    match Manager::connect(&address, &key).and_then(|m| m.named_list::<u32>("from-child")) {
        Ok(l) => l.append(7).map(|_| 0).unwrap_or(2),
        Err(_) => 1,
    }
}

/// As Python's: a manager started without an authkey takes the process's, which children
/// inherit, so they connect with it.
#[test]
fn a_managers_default_key_is_the_process_authkey() {
    let m = manager();
    assert_eq!(m.authkey().as_ref(), multiproc_spawn::current_process().authkey());
    for method in multiproc_spawn::StartMethod::all() {
        let mut h = multiproc_spawn::Process::builder()
            .start_method(method)
            .target(connect_with_inherited_key, m.address().clone())
            .start()
            .unwrap();
        let code = h.join_timeout(std::time::Duration::from_secs(30));
        assert_eq!(code.unwrap_or_else(|e| panic!("{method}: {e}")), 0, "{method}");
    }
    assert_eq!(m.named_list::<u32>("from-child").unwrap().len().unwrap(), 3);
}
