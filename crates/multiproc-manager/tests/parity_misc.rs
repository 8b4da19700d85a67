//! Issue #20 (manager part): the server's exit code, the namespace's `Debug`, and the
//! snapshot semantics of dict views — against a manager server process.

mod common;

use common::{child, join, kill_pid, wait_until};
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
