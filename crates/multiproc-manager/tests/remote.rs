//! A manager reached over TCP on 127.0.0.1 by a process that shares no parent with it (this
//! test binary re-executed, told the address and authkey in its environment), and a wrong
//! authkey refused. Also MG18: a new manager on the same fixed address right after shutdown.

use multiproc_manager::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "MULTIPROC_MANAGER_TEST_ROLE";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The unrelated process: does nothing unless started by `remote_manager_over_tcp`.
#[test]
fn remote_child_role() {
    if std::env::var(ROLE).as_deref() != Ok("remote") {
        return;
    }
    let addr: Address = std::env::var("MPMGR_ADDR").unwrap().parse().unwrap();
    let key: AuthKey = std::env::var("MPMGR_KEY").unwrap().parse().unwrap();
    // A wrong key is refused.
    let e = Manager::connect(&addr, &AuthKey::from_bytes(b"not the key".to_vec())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    // The right one gets in; a proxy handed over as bytes works here.
    let q: QueueProxy<(String, u32)> =
        postcard::from_bytes(&unhex(&std::env::var("MPMGR_QUEUE").unwrap())).unwrap();
    q.put(("hello from afar".to_string(), 42)).unwrap();
    // And it can make objects of its own that the server keeps for others.
    let m = Manager::connect(&addr, &key).unwrap();
    let d = m.dict::<String, u32>().unwrap();
    d.insert("pid".into(), std::process::id()).unwrap();
    q.put(("dict".to_string(), d.id() as u32)).unwrap();
    let back: ListProxy<DictProxy<String, u32>> =
        postcard::from_bytes(&unhex(&std::env::var("MPMGR_LIST").unwrap())).unwrap();
    back.append(d).unwrap();
}

#[test]
fn remote_manager_over_tcp() {
    let m =
        Manager::builder().address("127.0.0.1:0".parse::<SocketAddr>().unwrap()).start().unwrap();
    let Address::Tcp(sa) = m.address() else { panic!("{:?}", m.address()) };
    assert!(sa.ip().is_loopback() && sa.port() != 0);
    let q = m.queue::<(String, u32)>().unwrap();
    let l = m.list::<DictProxy<String, u32>>().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "remote_child_role", "--test-threads=1", "--nocapture"])
        .env(ROLE, "remote")
        .env("MPMGR_ADDR", m.address().to_string())
        .env("MPMGR_KEY", m.authkey().to_string())
        .env("MPMGR_QUEUE", hex(&postcard::to_allocvec(&q).unwrap()))
        .env("MPMGR_LIST", hex(&postcard::to_allocvec(&l).unwrap()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the remote process hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "the remote process failed: {status}");
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), ("hello from afar".into(), 42));
    let (what, _) = q.get_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(what, "dict");
    // The dict the other process made outlives it: the list holds it.
    let d = l.get(0).unwrap();
    assert_eq!(d.get("pid").unwrap(), Some(child.id()));
}

#[test]
fn mg18_rapid_restart_on_a_fixed_address() {
    let first =
        Manager::builder().address("127.0.0.1:0".parse::<SocketAddr>().unwrap()).start().unwrap();
    let addr = first.address().clone();
    first.list::<u8>().unwrap().append(1).unwrap();
    first.shutdown().unwrap();
    let again = || Manager::builder().address(addr.clone()).start();
    let second = match again() {
        Ok(m) => m,
        Err(_) => {
            std::thread::sleep(Duration::from_secs(1));
            again().unwrap()
        }
    };
    assert_eq!(second.address(), &addr);
    let l = second.list::<u8>().unwrap();
    l.append(2).unwrap();
    assert_eq!(l.to_vec().unwrap(), [2]);
    // Two servers on one address: the second fails to start, with the reason.
    let e = Manager::builder().address(addr).start().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Start);
}
