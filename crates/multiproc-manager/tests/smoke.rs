//! Smoke test: start a manager process, use a list and a service, shut down.

use multiproc_manager::{ErrorKind, Manager, Service};
use std::time::{Duration, Instant};

struct Counter(i64);
impl Service for Counter {
    type Init = i64;
    type Request = i64;
    type Response = Result<i64, String>;
    fn new(start: i64) -> Result<Self, String> {
        Ok(Counter(start))
    }
    fn call(&mut self, add: i64) -> Result<i64, String> {
        if add == 666 {
            panic!("the number of the beast");
        }
        if add < 0 {
            return Err("negative".into());
        }
        self.0 += add;
        Ok(self.0)
    }
}

#[test]
fn start_use_shutdown() {
    let t0 = Instant::now();
    let m = Manager::builder().register::<Counter>("counter").start().unwrap();
    eprintln!("start: {:?}", t0.elapsed());
    let l = m.list::<u32>().unwrap();
    l.extend([1, 2, 3]).unwrap();
    assert_eq!(l.to_vec().unwrap(), [1, 2, 3]);
    let c = m.service::<Counter>("counter", 10).unwrap();
    assert_eq!(c.call(5).unwrap(), Ok(15));
    assert_eq!(c.call(-1).unwrap(), Err("negative".into()));
    let e = c.call(666).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServiceFailed);
    assert!(e.to_string().contains("beast"), "{e}");
    assert_eq!(c.call(1).unwrap(), Ok(16));
    let pid = m.server_pid();
    m.shutdown().unwrap();
    assert_eq!(l.len().unwrap_err().kind(), ErrorKind::Disconnected);
    std::thread::sleep(Duration::from_millis(10));
    assert!(!multiproc_arena::testing::pid_running(pid));
}

#[test]
fn an_in_process_server_stopped_by_a_client() {
    let server = Manager::builder().bind().unwrap();
    let (addr, key) = (server.address().clone(), server.authkey().clone());
    let dir = match &addr {
        multiproc_manager::Address::Unix(p) => p.parent().unwrap().to_path_buf(),
        other => panic!("{other:?}"),
    };
    let t = std::thread::spawn(move || server.serve());
    let a = Manager::connect(&addr, &key).unwrap();
    let b = Manager::connect(&addr, &key).unwrap();
    assert!(!a.is_owner());
    let l = a.list_from([1u8, 2]).unwrap();
    assert_eq!(b.num_objects().unwrap(), 1);
    b.shutdown().unwrap();
    let t0 = Instant::now();
    t.join().unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(l.len().unwrap_err().kind(), ErrorKind::Disconnected);
    assert!(!dir.exists(), "the private socket directory is removed");
}
