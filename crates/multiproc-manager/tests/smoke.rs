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
    assert!(!multiproc_arena::pid_alive(pid));
}
