//! Smoke test: every start method runs a target and reports a panic.
use multiproc_spawn::*;
use std::time::Duration;

fn square(x: u64) -> u64 {
    x * x
}
fn boom(_: ()) -> u64 {
    panic!("no luck")
}

#[test]
fn smoke() {
    for m in StartMethod::all() {
        let t = std::time::Instant::now();
        let h = Process::builder().start_method(m).target(square, 7).start().unwrap();
        assert_eq!(h.join().unwrap(), 49, "{m}");
        eprintln!("{m}: {:?}", t.elapsed());
        let h = Process::builder().start_method(m).target(boom, ()).start().unwrap();
        let e = h.join().unwrap_err();
        eprintln!("{m}: {e}");
    }
    let h =
        Process::builder().start_method(StartMethod::Fork).target_closure(|| 5u8).start().unwrap();
    assert_eq!(h.join().unwrap(), 5);
    let _ = Duration::ZERO;
}
