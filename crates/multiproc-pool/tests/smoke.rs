//! Smoke test: a map under each start method.
use multiproc_pool::{Pool, StartMethod};
use std::time::Duration;

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn map_each_method() {
    for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::Forkserver] {
        let pool = Pool::builder().processes(2).start_method(m).build().unwrap();
        assert_eq!(pool.map(square, 0..10u64).unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
        let v: Vec<u64> = pool.imap(square, 0..100u64).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(v.len(), 100);
        assert_eq!(pool.apply(square, 7).unwrap(), 49);
        pool.close();
        pool.join_timeout(Duration::from_secs(5)).unwrap();
    }
}
