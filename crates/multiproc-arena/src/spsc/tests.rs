//! Unit tests of the ring (not under loom: the models are in `tests/loom.rs`).

use super::*;

fn ring(words: usize) -> (RingMem, Producer, Consumer) {
    let arena = Arena::new(1 << 20).unwrap();
    let mem = RingMem::new_in(&arena, words).unwrap();
    let p = Producer::new(&mem).unwrap();
    let c = Consumer::new(&mem).unwrap();
    (mem, p, c)
}

#[test]
fn header_lines_are_cache_lines_in_every_copy() {
    let arena = Arena::new(1 << 20).unwrap();
    // Blocks of odd sizes first, so the ring's block starts mid-line.
    for n in 1..8 {
        let _keep = crate::Array::from_fn_in(&arena, n, |_| AtomicU64::new(0)).unwrap();
        let mem = RingMem::new_in(&arena, 64).unwrap();
        assert_eq!(mem.base as usize % 64, 0, "header off its cache line");
        let e = crate::transfer::encode(&mem).unwrap();
        let copy: RingMem = crate::transfer::decode(&e.bytes, e.fds).unwrap();
        assert_eq!(copy.base, mem.base, "a copy names other words");
        std::mem::forget(_keep);
    }
}

fn pop(c: &mut Consumer) -> Option<(u8, Vec<u8>)> {
    let rec = c.peek().unwrap()?;
    let mut v = Vec::new();
    c.append_to(&rec, &mut v);
    let kind = rec.kind();
    c.advance(rec);
    Some((kind, v))
}

#[test]
fn records_round_trip_and_wrap_with_padding() {
    let (mem, mut p, mut c) = ring(64);
    assert_eq!(pop(&mut c), None);
    for round in 0..500u32 {
        let msg: Vec<u8> = (0..(round % 61) as u8).collect();
        let (a, b) = msg.split_at(msg.len() / 3);
        assert!(p.try_push(1 + (round % 3) as u8, &[a, b]).unwrap().is_some());
        assert_eq!(pop(&mut c), Some((1 + (round % 3) as u8, msg)));
    }
    assert_eq!(mem.used_words(), 0);
}

/// An empty record (a header alone) in the ring's last word: its payload starts at the
/// end of the data and is nothing (a debug assertion used to refuse it; the pipe's
/// marks are such records).
#[test]
fn empty_records_fill_every_word() {
    let (mem, mut p, mut c) = ring(16);
    for i in 0..40u8 {
        assert!(p.try_push(1 + i % 2, &[]).unwrap().is_some());
        assert_eq!(pop(&mut c), Some((1 + i % 2, vec![])));
    }
    assert_eq!(mem.used_words(), 0);
}

#[test]
fn a_full_ring_refuses_until_the_consumer_frees_room() {
    let (_mem, mut p, mut c) = ring(32);
    assert_eq!(p.max_record(), 64);
    for i in 1..=3u8 {
        assert!(p.try_push(i, &[&[i; 64]]).unwrap().is_some(), "9 words each");
    }
    assert!(!p.has_room(64).unwrap());
    assert_eq!(p.try_push(4, &[&[4; 64]]).unwrap(), None, "27 of 32 words used");
    assert_eq!(pop(&mut c), Some((1, vec![1; 64])));
    assert!(p.try_push(4, &[&[4; 64]]).unwrap().is_some(), "wraps with padding");
    for i in 2..=4u8 {
        assert_eq!(pop(&mut c), Some((i, vec![i; 64])));
    }
    assert_eq!(pop(&mut c), None);
}

#[test]
fn payload_views_records_in_place() {
    let (_mem, mut p, mut c) = ring(64);
    for round in 0..200u32 {
        let msg: Vec<u8> = (0..(round % 61) as u8).map(|b| b ^ round as u8).collect();
        p.try_push(1, &[&msg]).unwrap().unwrap();
        let rec = c.peek().unwrap().unwrap();
        assert_eq!(c.payload(&rec), &msg[..]);
        c.advance(rec);
    }
}

#[test]
fn a_fresh_ring_works_once_reserved() {
    let arena = Arena::new(4 << 20).unwrap();
    let mem = RingMem::new_fresh_in(&arena, 1 << 17).unwrap();
    assert_eq!(mem.used_words(), 0);
    mem.reserve().unwrap();
    mem.reserve().unwrap();
    let (mut p, mut c) = (Producer::new(&mem).unwrap(), Consumer::new(&mem).unwrap());
    for i in 0..100u32 {
        let msg = i.to_le_bytes().repeat(5000);
        p.try_push(3, &[&msg]).unwrap().unwrap();
        assert_eq!(pop(&mut c), Some((3, msg)));
    }
    let e = crate::transfer::encode(&mem).unwrap();
    let copy: RingMem = crate::transfer::decode(&e.bytes, e.fds).unwrap();
    assert_eq!(copy.base, mem.base);
}

#[test]
fn halves_are_unique_per_process() {
    let (mem, p, c) = ring(16);
    assert!(Producer::new(&mem).is_none() && Consumer::new(&mem.clone()).is_none());
    drop((p, c));
    assert!(Producer::new(&mem).is_some() && Consumer::new(&mem).is_some());
}

#[test]
#[should_panic(expected = "consumed already")]
fn a_stale_record_is_refused() {
    let (_mem, mut p, mut c) = ring(16);
    p.try_push(1, &[b"abc"]).unwrap().unwrap();
    p.try_push(1, &[b"def"]).unwrap().unwrap();
    let rec = c.peek().unwrap().unwrap();
    let same = Rec { kind: rec.kind, len: rec.len, pos: rec.pos, at: rec.at, ..rec };
    let rec = c.peek().unwrap().unwrap();
    c.advance(rec);
    c.read(&same, &mut [0; 3]);
}

#[test]
fn reclaim_needs_the_consumer_gone() {
    let (mem, mut p, c) = ring(16);
    p.try_push(1, &[b"x"]).unwrap().unwrap();
    assert!(!p.reclaim());
    drop(c);
    assert!(p.reclaim());
    assert_eq!(mem.used_words(), 0);
}

#[test]
fn threads_stream_records_through_a_small_ring() {
    let (_mem, mut p, mut c) = ring(128);
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..20_000u32 {
                let msg = i.to_le_bytes().repeat((i % 9) as usize + 1);
                while p.try_push(1, &[&msg]).unwrap().is_none() {
                    std::hint::spin_loop();
                }
            }
        });
        for i in 0..20_000u32 {
            let got = loop {
                if let Some(r) = pop(&mut c) {
                    break r;
                }
                std::hint::spin_loop();
            };
            assert_eq!(got, (1, i.to_le_bytes().repeat((i % 9) as usize + 1)));
        }
    });
}

/// A peer that shares the ring's memory can write anything there. The parser must answer
/// every state with a record inside the data, an empty ring, or `Corrupt` — never a panic
/// or a read outside the data.
#[test]
fn the_parser_survives_a_hostile_peer() {
    let mut x = 0x0123_4567_89ab_cdefu64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mem, _p, mut c) = ring(32);
    let (mut records, mut corrupt, mut empty) = (0u64, 0u64, 0u64);
    for case in 0..50_000 {
        for i in 0..32 {
            let w = match next() % 4 {
                0 => next(),
                _ => {
                    let kind = [0, 1, 2, next() as u8][(next() % 4) as usize];
                    let len = match next() % 3 {
                        0 => next() % (32 * 8 + 16),
                        1 => next() % 64,
                        _ => next() & 0xFFFF_FFFF,
                    };
                    len | (kind as u64) << 32 | CHECK << 56
                }
            };
            mem.data_word(i).store(w, Ordering::Relaxed);
        }
        let head = if next() % 4 == 0 { next() } else { next() >> 8 };
        let tail = match next() % 3 {
            0 => next(),
            _ => head.wrapping_add(next() % 40),
        };
        mem.word(HEAD).store(head, Ordering::Relaxed);
        mem.word(TAIL).store(tail, Ordering::Relaxed);
        match c.peek() {
            Ok(None) => empty += 1,
            Err(_) => corrupt += 1,
            Ok(Some(rec)) => {
                records += 1;
                assert!(rec.pos >= 1 && rec.pos + rec.len.div_ceil(8) <= 32, "case {case}");
                let mut out = Vec::new();
                c.append_to(&rec, &mut out);
                c.advance(rec);
                let _ = c.peek();
            }
        }
    }
    assert!(records > 0 && corrupt > 0 && empty > 0, "{records} {corrupt} {empty}");
}
