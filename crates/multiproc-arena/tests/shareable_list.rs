//! `ShareableList` (Python's `shared_memory.ShareableList`, checklist SM15–SM19): every item
//! type round-trips through a forked child and an unrelated process that open it by name;
//! slot storage limits; a garbled or truncated block is a typed error, never out of bounds.
#![cfg(not(multiproc_loom))]

use multiproc_arena::testing::{fork, role, start_role, wait_success};
use multiproc_arena::{
    random_name, transfer, ErrorKind, Item, ItemKind, ListErrorKind, ShareableList, SharedMemory,
};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// CPython's test list: `['howdy', b'HoWdY', -273.154, 100, None, True, 42]`.
fn howdy() -> Vec<Item> {
    vec![
        Item::from("howdy"),
        Item::from(&b"HoWdY"[..]),
        Item::from(-273.154),
        Item::from(100),
        Item::None,
        Item::from(true),
        Item::from(42),
    ]
}

/// New values of every type that fit the slots of [`howdy`] (same order).
fn replaced() -> Vec<Item> {
    vec![
        Item::from("encodés"), // 8 UTF-8 bytes: exactly the slot
        Item::from(vec![0u8, 255, 7]),
        Item::from(f64::MIN_POSITIVE),
        Item::from(i64::MIN),
        Item::from("now str"), // None slot becomes a string
        Item::from(false),
        Item::None, // int slot becomes None
    ]
}

fn check_and_replace(name: &str) -> i32 {
    let sl = ShareableList::open(name).unwrap();
    assert_eq!(sl.to_vec().unwrap(), howdy());
    for (i, item) in replaced().into_iter().enumerate() {
        sl.set(i as isize, item).unwrap();
    }
    0
}

#[test]
fn layout_format_and_lookups_match_python() {
    let sl = ShareableList::create(None, &howdy()).unwrap();
    assert_eq!(sl.len(), 7);
    assert_eq!(sl.format(), "8s8sdqxxxxxx?xxxxxxxx?q");
    assert_eq!(sl.to_vec().unwrap(), howdy());
    assert_eq!(sl.get(7).unwrap_err().kind(), ListErrorKind::IndexOutOfRange);
    assert_eq!(sl.get(-8).unwrap_err().kind(), ListErrorKind::IndexOutOfRange);
    assert_eq!(sl.set(7, 1).unwrap_err().kind(), ListErrorKind::IndexOutOfRange);
    assert_eq!(sl.get(-2).unwrap(), Item::Bool(true));
    assert_eq!(sl.get(-7).unwrap(), Item::from("howdy"));
    assert_eq!(sl.index(&Item::from("100")).unwrap_err().kind(), ListErrorKind::NotInList);
    assert_eq!(sl.index(&Item::Int(100)).unwrap(), 3);
    sl.set(3, 42).unwrap();
    assert_eq!(sl.count(&Item::Int(42)), 2);
    assert_eq!(sl.kind(2).unwrap(), ItemKind::Float);
    assert_eq!(sl.capacity(0).unwrap(), 8);
    let dbg = format!("{sl:?}");
    assert!(dbg.contains(sl.name()) && dbg.contains("howdy"), "{dbg}");

    let empty = ShareableList::create(None, &[]).unwrap();
    assert_eq!((empty.len(), empty.format(), empty.count(&Item::None)), (0, String::new(), 0));
    assert_eq!(empty.index(&Item::None).unwrap_err().kind(), ListErrorKind::NotInList);
    assert_eq!(ShareableList::open(empty.name()).unwrap().len(), 0);
}

#[test]
fn a_slot_keeps_its_storage_and_an_oversize_set_writes_nothing() {
    let sl = ShareableList::create(None, &howdy()).unwrap();
    sl.set(4, "some").unwrap();
    assert_eq!(sl.format(), "8s8sdq8sxxxxxxx?q", "the None slot now holds a str");
    let e = sl.set(4, "far too many").unwrap_err();
    assert_eq!(e.kind(), ListErrorKind::TooLarge);
    assert_eq!(sl.get(4).unwrap(), Item::from("some"), "left unchanged");
    sl.set(0, "encodés").unwrap(); // 8 bytes in UTF-8
    assert_eq!(sl.set(0, "encodées").unwrap_err().kind(), ListErrorKind::TooLarge);
    assert_eq!(sl.get(0).unwrap(), Item::from("encodés"));
    assert_eq!(sl.get(1).unwrap(), Item::from(&b"HoWdY"[..]), "no spill into the next slot");
    assert_eq!(sl.set(1, &b"123456789"[..]).unwrap_err().kind(), ListErrorKind::TooLarge);
    assert_eq!(sl.get(1).unwrap(), Item::from(&b"HoWdY"[..]));
    // A longer string slot takes a shorter value, then a number (every slot holds 8 bytes).
    let long = ShareableList::create(None, &[Item::from("x".repeat(20))]).unwrap();
    assert_eq!(long.capacity(0).unwrap(), 24);
    long.set(-1, "").unwrap();
    assert_eq!(long.get(0).unwrap(), Item::from(""));
    long.set(0, 2.5).unwrap();
    assert_eq!((long.get(0).unwrap(), long.format()), (Item::Float(2.5), "d".to_string()));
    long.set(0, "y".repeat(24)).unwrap();
    assert_eq!(long.set(0, "y".repeat(25)).unwrap_err().kind(), ListErrorKind::TooLarge);
}

#[test]
fn every_type_round_trips_through_a_forked_child() {
    let sl = ShareableList::create(None, &howdy()).unwrap();
    let name = sl.name().to_string();
    fork(move || check_and_replace(&name)).expect_success(T);
    assert_eq!(sl.to_vec().unwrap(), replaced());
}

#[test]
fn every_type_round_trips_through_an_unrelated_process() {
    if let Some((role, name)) = role() {
        assert_eq!(role, "replace");
        assert_eq!(check_and_replace(&name), 0);
        return;
    }
    let sl = ShareableList::create(Some(&random_name()), &howdy()).unwrap();
    let test = "every_type_round_trips_through_an_unrelated_process";
    let child = start_role(test, "replace", sl.name());
    wait_success(child, "the process that opened the list by name", T);
    assert_eq!(sl.to_vec().unwrap(), replaced());
}

#[test]
fn a_second_handle_and_a_transferred_one_share_the_storage() {
    let sl = ShareableList::create(None, &howdy()).unwrap();
    let other = ShareableList::open(sl.name()).unwrap();
    other.set(3, 880).unwrap();
    assert_eq!(sl.get(3).unwrap(), Item::Int(880));
    let copy = ShareableList::create(None, &sl.to_vec().unwrap()).unwrap();
    assert_eq!(copy.format(), sl.format());
    copy.set(3, 1).unwrap();
    assert_eq!(sl.get(3).unwrap(), Item::Int(880), "a copy is independent");

    assert!(postcard::to_allocvec(&sl).is_err(), "only inside a transfer context");
    let msg = transfer::encode(&sl).unwrap();
    let got: ShareableList = transfer::decode(&msg.bytes, msg.fds).unwrap();
    assert_eq!(got.name(), sl.name());
    got.set(0, "via fd").unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::from("via fd"));
    let big: Vec<Item> = (0..400).map(Item::from).collect();
    let small: Vec<Item> = (0..10).map(Item::from).collect();
    let (b, s) = (ShareableList::create(None, &big), ShareableList::create(None, &small));
    let (b, s) = (transfer::encode(&b.unwrap()).unwrap(), transfer::encode(&s.unwrap()).unwrap());
    assert_eq!(b.bytes.len(), s.bytes.len(), "only the block's name and descriptor travel");
}

#[test]
fn unlink_removes_the_name_and_open_handles_keep_working() {
    let mut sl = ShareableList::create(None, &howdy()).unwrap();
    let name = sl.name().to_string();
    let other = ShareableList::open(&name).unwrap();
    sl.unlink().unwrap();
    assert!(!std::path::Path::new("/dev/shm").join(&name).exists());
    assert_eq!(ShareableList::open(&name).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(sl.unlink().unwrap_err().kind(), ErrorKind::NotFound);
    other.set(5, false).unwrap();
    assert_eq!(sl.get(5).unwrap(), Item::Bool(false));
    let dropped = ShareableList::create(None, &[Item::None]).unwrap();
    let n = dropped.name().to_string();
    drop(dropped);
    assert_eq!(ShareableList::open(&n).unwrap_err().kind(), ErrorKind::NotFound);
}

/// Writes `v` as the `word`th 64-bit word of `shm`.
fn poke(shm: &SharedMemory, word: usize, v: u64) {
    shm.write(word * 8, &v.to_le_bytes()).unwrap();
}

#[test]
fn a_garbled_or_truncated_block_is_a_typed_error() {
    let open_err = |shm: &SharedMemory| ShareableList::open(shm.name()).unwrap_err().kind();
    // Not a list at all, too short for a header, and a block whose creator is not done.
    let junk = SharedMemory::create(64).unwrap();
    junk.write(0, &[0xa5; 64]).unwrap();
    assert_eq!(open_err(&junk), ErrorKind::InvalidHeader);
    let tiny = SharedMemory::create(4).unwrap();
    assert_eq!(open_err(&tiny), ErrorKind::Truncated);
    let zero = SharedMemory::create(64).unwrap();
    assert_eq!(open_err(&zero), ErrorKind::NotInitialized);

    // A valid list whose header is then garbled in each field (words: magic, version,
    // count, data words, then per item [offset|capacity], [kind|length]).
    let cases: [(usize, u64, ErrorKind); 7] = [
        (0, u64::from_le_bytes(*b"NOTALIST"), ErrorKind::InvalidHeader),
        (1, 2, ErrorKind::VersionMismatch),
        (2, 1 << 40, ErrorKind::Truncated),
        (2, u64::MAX, ErrorKind::InvalidHeader),
        (3, 1 << 30, ErrorKind::Truncated),
        (4 + 2, 5 | 8 << 32, ErrorKind::InvalidHeader), // item 1 not after item 0
        (4 + 2 * 6, 6 | 800 << 32, ErrorKind::Truncated), // last item past the end
    ];
    for (word, value, kind) in cases {
        let sl = ShareableList::create(None, &howdy()).unwrap();
        let shm = SharedMemory::open(sl.name()).unwrap();
        poke(&shm, word, value);
        assert_eq!(open_err(&shm), kind, "word {word} = {value:#x}");
    }
    // Item states garbled after opening: the item is an error, its neighbours still read.
    let sl = ShareableList::create(None, &howdy()).unwrap();
    let shm = SharedMemory::open(sl.name()).unwrap();
    poke(&shm, 4 + 1, 4 | 9 << 32); // item 0: a str of 9 bytes in an 8-byte slot
    poke(&shm, 4 + 3, 77); // item 1: no such kind
    assert_eq!(sl.get(0).unwrap_err().kind(), ListErrorKind::InvalidData);
    assert_eq!(sl.get(1).unwrap_err().kind(), ListErrorKind::InvalidData);
    assert_eq!(sl.format(), "??dqxxxxxx?xxxxxxxx?q");
    assert_eq!(sl.get(2).unwrap(), Item::Float(-273.154));
    poke(&shm, 4 + 1, 4 | 2 << 32); // item 0: a str of 2 bytes, not UTF-8
    shm.write(8 * (4 + 14), &[0xff, 0xfe]).unwrap();
    assert_eq!(sl.get(0).unwrap_err().kind(), ListErrorKind::InvalidData);
    assert_eq!(sl.to_vec().unwrap_err().kind(), ListErrorKind::InvalidData);
}
