//! What postcard (the queue's wire format, not self-describing) cannot carry, and that such
//! a message is never lost: `put` of a type whose `Deserialize` needs a self-describing format
//! succeeds, and the `get` that cannot decode it hands the message's bytes back in the error
//! (inline, streamed and spilled messages alike).
#![cfg(not(multiproc_loom))]

use multiproc_ipc_queue::{ErrorKind, GetError, Queue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// An internally tagged enum: serialises as a struct, but deserialising needs
/// `deserialize_any`, which postcard refuses.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "kind")]
enum Tagged {
    Text { body: String },
    Number { n: u64 },
}

/// `skip_serializing_if`: a skipped field shifts every byte after it, so the bytes no longer
/// decode as the type.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Sparse {
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<u32>,
    name: String,
}

/// Takes the next message, which must fail to decode, and returns its handed-back bytes.
fn undecodable<T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(
    q: &Queue<T>,
) -> Vec<u8> {
    match q.get_timeout(T) {
        Err(GetError::Failed(mut e)) => {
            assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
            e.take_undecoded().expect("the message's bytes come back")
        }
        other => panic!("expected a decode failure, got {other:?}"),
    }
}

#[test]
fn an_internally_tagged_enum_is_handed_back_not_lost() {
    let q: Queue<Tagged> = Queue::new().unwrap();
    let values = || {
        [
            Tagged::Text { body: "hello".into() },
            Tagged::Text { body: "x".repeat(3 << 20) }, // spilled: larger than half the ring
            Tagged::Number { n: 7 },
        ]
    };
    for v in values() {
        q.put(v).unwrap_or_else(|e| panic!("{e}"));
    }
    for v in values() {
        assert_eq!(undecodable(&q), postcard::to_allocvec(&v).unwrap());
    }
    assert_eq!(q.qsize(), 0);
    assert!(matches!(q.try_get(), Err(GetError::Empty)));
}

#[test]
fn a_skipped_field_is_handed_back_not_lost() {
    let q: Queue<Sparse> = Queue::new().unwrap();
    let v = Sparse { note: None, name: "hello".into() };
    let sent = postcard::to_allocvec(&v).unwrap();
    q.put(v).unwrap_or_else(|e| panic!("{e}"));
    let bytes = undecodable(&q);
    assert_eq!(bytes, sent);
    // The bytes are the message as written: the fields that were sent, in order.
    let (name, rest): (String, &[u8]) = postcard::take_from_bytes(&bytes).unwrap();
    assert_eq!((name.as_str(), rest.len()), ("hello", 0));
    // A value without the skipped field's gap travels fine.
    let full = Sparse { note: Some(3), name: "ok".into() };
    q.put(Sparse { note: Some(3), name: "ok".into() }).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(q.get_timeout(T).unwrap(), full);
}
