//! The seed's Manager example: process A appends 100..=104, process B appends 300..=308, the
//! main process prints the list while they run; the final list holds all 14 values.

mod common;

use common::{child, join};
use multiproc_manager::{ListProxy, Manager};
use std::time::{Duration, Instant};

fn append_slowly((list, values): (ListProxy<u32>, Vec<u32>)) {
    for v in values {
        list.append(v).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
}

#[test]
fn two_writers_and_a_reader() {
    let manager = Manager::start().unwrap();
    let list = manager.list::<u32>().unwrap();
    let a = child(append_slowly, (list.clone(), (100..=104).collect()));
    let b = child(append_slowly, (list.clone(), (300..=308).collect()));
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 14 {
        assert!(t0.elapsed() < common::LIMIT, "writers stuck at {seen:?}");
        seen = list.to_vec().unwrap();
        println!("list so far: {seen:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    join(a);
    join(b);
    let mut all = list.to_vec().unwrap();
    println!("final list: {all:?}");
    // Each writer's values keep their order; together they are all there.
    let a_part: Vec<u32> = all.iter().copied().filter(|v| *v < 300).collect();
    let b_part: Vec<u32> = all.iter().copied().filter(|v| *v >= 300).collect();
    assert_eq!(a_part, (100..=104).collect::<Vec<_>>());
    assert_eq!(b_part, (300..=308).collect::<Vec<_>>());
    all.sort();
    assert_eq!(all, (100..=104).chain(300..=308).collect::<Vec<_>>());
}
