//! The forkserver restarts transparently when killed (PL17) and exits when its parent dies.

mod sys;
mod util;

use multiproc_arena::Array;
use multiproc_spawn::{forkserver_pid, JoinError, Process, StartMethod};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use util::*;

fn square(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fs() -> multiproc_spawn::Builder {
    Process::builder().start_method(StartMethod::Forkserver)
}

#[test]
fn restarts_after_sigkill_and_sigint() {
    // SIGINT ends a server whose SIGINT is not ignored; the test's own shell may ignore it.
    sys::default_sigint();
    if let Some(pid) = forkserver_pid() {
        // A server started before the line above inherited the ignored SIGINT: replace it.
        assert!(sys::kill(pid, libc::SIGKILL));
        assert!(wait_until(LONG, || forkserver_pid() != Some(pid)));
    }
    for sig in [libc::SIGKILL, libc::SIGINT] {
        assert_eq!(fs().target(square, 3).start().unwrap().join().unwrap(), 9);
        let server = forkserver_pid().expect("running");
        let mut before = fs().target(sleep_ms, 300).start().unwrap();
        assert!(sys::kill(server, sig));
        assert!(wait_until(LONG, || forkserver_pid() != Some(server)));
        // New processes still start: the server is restarted transparently.
        assert_eq!(fs().target(square, 4).start().unwrap().join().unwrap(), 16);
        let now = forkserver_pid().expect("restarted");
        assert_ne!(now, server);
        // A process started before the death still finishes (its status may be lost: 255).
        match before.join_timeout(LONG) {
            Ok(v) => assert_eq!(v, 300),
            Err(JoinError::Exited(255)) => {}
            Err(e) => panic!("{e}"),
        }
        let code = before.exitcode();
        assert!(code == Some(0) || code == Some(255), "{code:?}");
    }
}

fn start_server_and_wait(f: Array<AtomicU64>) {
    assert_eq!(fs().target(square, 2).start().unwrap().join().unwrap(), 4);
    let pid = forkserver_pid().expect("server");
    f[1].store(start_time(pid).expect("alive"), SeqCst);
    f[0].store(pid as u64, SeqCst);
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn server_exits_with_its_parent() {
    let f = flags(2);
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .target(start_server_and_wait, f.clone())
        .start()
        .unwrap();
    wait_flag(&f, 0, LONG);
    let (pid, start) = (f[0].load(SeqCst) as u32, f[1].load(SeqCst));
    let server_runs = || start_time(pid) == Some(start);
    assert!(server_runs());
    p.kill().unwrap();
    assert!(matches!(p.join(), Err(JoinError::Signaled(_))));
    assert!(wait_until(LONG, || !server_runs()), "the server outlived its parent");
}

/// The start time of a running (not zombie) process `pid` from `/proc` — the test's own
/// bookkeeping in its own PID namespace (the library never judges liveness this way).
fn start_time(pid: u32) -> Option<u64> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &line[line.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(22 - 4)?.parse().ok()
}
