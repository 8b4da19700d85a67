//! `SelfDescribing<T>` (umbrella feature `self-describing`, on for this package) end to end:
//! for each serde attribute that postcard, the wire format, cannot decode — an internally
//! tagged enum, an untagged enum, `flatten`, `skip_serializing_if`, a `serde_json::Value` — the
//! raw type fails (a queue and a pipe hand the message's bytes back, a pool a result's:
//! nothing is lost) and the wrapped
//! type round-trips through a queue and a pipe with a forked child, and as a pool task's
//! argument and result. Then handles inside a wrapped value: a lock and a queue made after the
//! fork cross a pipe to the child beside a `serde_json::Value`, and work there.

use multiproc::queue::{ErrorKind as QueueErrorKind, GetError};
use multiproc::{Connection, Lock, Pipe, Pool, Process, Queue, SelfDescribing, StartMethod};
use multiproc_tests::bounded;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// A type with one of the traps, and values of it to send.
trait Trap: Serialize + DeserializeOwned + PartialEq + Debug + Clone + Send + 'static {
    /// Whether postcard writes it at all (`flatten` fails already there: postcard needs a
    /// map's length up front).
    const POSTCARD_WRITES: bool = true;
    fn samples() -> Vec<Self>;
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(tag = "kind")]
enum InternallyTagged {
    Text { body: String },
    Number { n: u64 },
    Empty,
}

impl Trap for InternallyTagged {
    fn samples() -> Vec<Self> {
        vec![
            InternallyTagged::Text { body: "hello".into() },
            InternallyTagged::Number { n: u64::MAX },
            InternallyTagged::Empty,
        ]
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
#[serde(untagged)]
enum Untagged {
    Number(i64),
    Text(String),
    Pair { a: u8, b: Vec<String> },
}

impl Trap for Untagged {
    fn samples() -> Vec<Self> {
        vec![
            Untagged::Number(-5),
            Untagged::Text("x".into()),
            Untagged::Pair { a: 3, b: vec!["q".into()] },
        ]
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Position {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Flattened {
    id: u32,
    #[serde(flatten)]
    at: Position,
    #[serde(flatten)]
    labels: BTreeMap<String, String>,
}

impl Trap for Flattened {
    const POSTCARD_WRITES: bool = false;
    fn samples() -> Vec<Self> {
        vec![
            Flattened { id: 1, at: Position { x: -3, y: 4 }, labels: BTreeMap::new() },
            Flattened {
                id: 2,
                at: Position { x: 0, y: 0 },
                labels: [("colour".to_string(), "red".to_string())].into(),
            },
        ]
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Sparse {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<u32>,
    name: String,
}

impl Trap for Sparse {
    fn samples() -> Vec<Self> {
        // Only the skipped ones fail raw; the full one is there to show the wrapper takes both.
        vec![
            Sparse { note: None, name: "hello".into() },
            Sparse { note: Some(3), name: "full".into() },
            Sparse { note: None, name: String::new() },
        ]
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Document {
    name: String,
    body: serde_json::Value,
}

impl Trap for Document {
    fn samples() -> Vec<Self> {
        vec![
            Document { name: "null".into(), body: serde_json::Value::Null },
            Document {
                name: "nested".into(),
                body: json!({"a": [1, -2, 3.5, null, true, "s", {"u": u64::MAX}], "b": {}}),
            },
        ]
    }
}

/// Whether postcard alone gets `v` back (the full `Sparse` does).
fn postcard_round_trips<V: Trap>(v: &V) -> bool {
    postcard::to_allocvec(v)
        .ok()
        .and_then(|b| postcard::from_bytes::<V>(&b).ok())
        .is_some_and(|back| back == *v)
}

// ---- the children ----

/// Puts every sample raw (when postcard writes it) and wrapped; returns how many raw puts
/// behaved unexpectedly.
fn queue_child<V: Trap>((raw, wrapped): (Queue<V>, Queue<SelfDescribing<V>>)) -> u32 {
    let mut wrong = 0;
    for v in V::samples() {
        if raw.put(v.clone()).is_ok() != V::POSTCARD_WRITES {
            wrong += 1;
        }
        if wrapped.put(SelfDescribing(v)).is_err() {
            wrong += 100;
        }
    }
    wrong
}

/// Sends every sample raw (when postcard writes it) then wrapped; returns how many sends
/// behaved unexpectedly. Waits for the parent's word before exiting (a message sent on a
/// pipe just before its sender exits can be lost as ECONNRESET, a pipe issue of its own).
fn pipe_child<V: Trap>(c: Connection) -> u32 {
    let mut wrong = 0;
    for v in V::samples() {
        if c.send(&v).is_ok() != V::POSTCARD_WRITES {
            wrong += 1;
        }
        if c.send(&SelfDescribing(v)).is_err() {
            wrong += 100;
        }
    }
    if c.recv_timeout::<()>(T).is_err() {
        wrong += 10_000;
    }
    wrong
}

fn echo<V: Trap>(v: SelfDescribing<V>) -> SelfDescribing<V> {
    v
}

fn unwrap<V: Trap>(v: SelfDescribing<V>) -> V {
    v.0
}

fn raw_echo<V: Trap>(v: V) -> V {
    v
}

// ---- the three channels ----

fn through_a_queue<V: Trap>() {
    let raw: Queue<V> = Queue::new().unwrap();
    let wrapped: Queue<SelfDescribing<V>> = Queue::new().unwrap();
    let mut child = Process::builder()
        .start_method(StartMethod::Fork)
        .target(queue_child::<V>, (raw.clone(), wrapped.clone()))
        .start()
        .unwrap();
    for v in V::samples() {
        if V::POSTCARD_WRITES {
            match raw.get_timeout(T) {
                Ok(back) => assert!(postcard_round_trips(&v), "{v:?} came back raw as {back:?}"),
                Err(GetError::Failed(mut e)) => {
                    assert_eq!(e.kind(), QueueErrorKind::Decode, "{e}");
                    // Not lost: the message's bytes, as postcard wrote them.
                    let bytes = e.take_undecoded().expect("the bytes come back");
                    assert_eq!(bytes, postcard::to_allocvec(&v).unwrap());
                }
                Err(e) => panic!("{v:?}: {e:?}"),
            }
        }
        let got = wrapped.get_timeout(T).unwrap_or_else(|e| panic!("{v:?}: {e:?}"));
        assert_eq!(got.into_inner(), v);
    }
    let code = child.join_timeout(T).expect("the child ended in time");
    assert_eq!(code, 0, "the child's raw and wrapped puts");
    assert!(matches!(raw.try_get(), Err(GetError::Empty)));
    assert!(matches!(wrapped.try_get(), Err(GetError::Empty)));
}

fn through_a_pipe<V: Trap>() {
    let (mine, theirs) = Pipe::new().unwrap();
    let mut child = Process::builder()
        .start_method(StartMethod::Fork)
        .target(pipe_child::<V>, theirs)
        .start()
        .unwrap();
    for v in V::samples() {
        if V::POSTCARD_WRITES {
            match mine.recv_timeout::<V>(T) {
                Ok(back) => assert!(postcard_round_trips(&v), "{v:?} came back raw as {back:?}"),
                Err(mut e) => {
                    assert_eq!(e.kind(), multiproc::pipe::ErrorKind::Codec, "{e}");
                    // Not lost: the message's bytes, as postcard wrote them.
                    let bytes = e.take_undecoded().expect("the bytes come back");
                    assert_eq!(bytes, postcard::to_allocvec(&v).unwrap());
                }
            }
        }
        // The failed message was consumed; the connection goes on with the next.
        let got: SelfDescribing<V> = mine.recv_timeout(T).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(got.0, v);
    }
    mine.send(&()).unwrap();
    let code = child.join_timeout(T).expect("the child ended in time");
    assert_eq!(code, 0, "the child's raw and wrapped sends");
}

fn through_a_pool<V: Trap>() {
    let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build().unwrap();
    let samples = V::samples();
    // Wrapped argument and result.
    for v in &samples {
        let got = pool.apply(echo::<V>, SelfDescribing(v.clone())).unwrap();
        assert_eq!(&got.0, v);
    }
    let wrapped: Vec<SelfDescribing<V>> = samples.iter().cloned().map(SelfDescribing).collect();
    assert_eq!(
        pool.map(echo::<V>, wrapped).unwrap(),
        samples.iter().cloned().map(SelfDescribing).collect::<Vec<_>>()
    );
    // Raw, the argument (when postcard writes it) or the result fails — an error, not a hang.
    for v in samples.iter().filter(|v| !postcard_round_trips(*v)) {
        let arg = pool.apply(raw_echo::<V>, v.clone());
        assert!(arg.is_err(), "{v:?} as a raw argument: {arg:?}");
        let res = pool.apply(unwrap::<V>, SelfDescribing(v.clone()));
        assert!(res.is_err(), "{v:?} as a raw result: {res:?}");
        // A result that does not decode hands its bytes back (the task is one of its own).
        if let Some(bytes) = res.as_ref().err().and_then(|e| e.undecoded()) {
            assert_eq!(bytes, postcard::to_allocvec(v).unwrap(), "{v:?}");
        }
    }
    // The pool is still whole after the failures.
    let last = samples.last().unwrap().clone();
    assert_eq!(pool.apply(echo::<V>, SelfDescribing(last.clone())).unwrap().0, last);
}

fn every_channel<V: Trap>() {
    bounded(120, || {
        through_a_queue::<V>();
        through_a_pipe::<V>();
        through_a_pool::<V>();
    })
}

/// One test per trap type, so a failure names it: `name: Type` runs [`every_channel`].
macro_rules! every_channel_tests {
    ($($name:ident: $V:ty;)+) => {
        $(
            #[test]
            fn $name() {
                every_channel::<$V>();
            }
        )+
    };
}

every_channel_tests! {
    an_internally_tagged_enum_crosses_wrapped: InternallyTagged;
    an_untagged_enum_crosses_wrapped: Untagged;
    a_flattened_struct_crosses_wrapped: Flattened;
    a_skipped_field_crosses_wrapped: Sparse;
    a_serde_json_value_crosses_wrapped: Document;
}

// ---- handles inside ----

/// A lock, a queue whose items are themselves wrapped, and a document.
type WithHandles =
    SelfDescribing<(Lock, Queue<SelfDescribing<serde_json::Value>>, serde_json::Value)>;

/// Receives a lock, a queue and a document; answers through the queue: what it saw of the
/// lock (held by the parent), then, once the parent released it and said so, that it took
/// the same lock, with the document echoed. (The answers go through the queue, not back
/// through the pipe: a message sent on a pipe just before its sender exits can be lost as
/// ECONNRESET, a pipe issue of its own.)
fn handles_child(c: Connection) -> u32 {
    let Ok(SelfDescribing((lock, q, doc))) = c.recv_timeout::<WithHandles>(T) else { return 1 };
    let held = lock.try_acquire().is_err();
    if q.put(SelfDescribing(json!({"held elsewhere": held}))).is_err() {
        return 2;
    }
    // The parent releases, then says so; the child takes the same lock.
    if c.recv_timeout::<()>(T).is_err() {
        return 3;
    }
    if lock.acquire_timeout(T).is_err() {
        return 4;
    }
    if lock.release().is_err() {
        return 5;
    }
    if q.put(SelfDescribing(json!({"echo": doc, "took the lock": true}))).is_err() {
        return 6;
    }
    0
}

#[test]
fn a_lock_and_a_queue_inside_a_wrapped_value_cross_a_pipe() {
    bounded(60, || {
        let (mine, theirs) = Pipe::new().unwrap();
        let mut child = Process::builder()
            .start_method(StartMethod::Fork)
            .target(handles_child, theirs)
            .start()
            .unwrap();
        // Made after the fork, the lock in an arena of its own and the queue with its spill
        // file: only the message's descriptors can bring them to the child.
        let arena = multiproc::Arena::new(1 << 20).unwrap();
        let lock = Lock::new_in(&arena).unwrap();
        let q: Queue<SelfDescribing<serde_json::Value>> = Queue::new().unwrap();
        let doc = json!({"task": "resize", "sizes": [64, 128], "meta": {"by": null}});
        lock.acquire().unwrap();
        mine.send(&SelfDescribing((lock.clone(), q.clone(), doc.clone()))).unwrap();
        let first = q.get_timeout(T);
        lock.release().unwrap();
        mine.send(&()).unwrap();
        let second = q.get_timeout(T);
        let code = child.join_timeout(T).expect("the child ended in time");
        assert_eq!(code, 0, "the child's step that failed ({first:?}, {second:?})");
        assert_eq!(first.unwrap().0, json!({"held elsewhere": true}));
        assert_eq!(second.unwrap().0, json!({"echo": doc, "took the lock": true}));
        // And the lock is free again here.
        lock.try_acquire().unwrap();
    })
}

#[test]
fn a_wrapped_handle_outside_a_context_is_a_typed_error() {
    // Serialising a handle needs a transfer context (a channel's send); the wrapper keeps the
    // handle's error kind rather than turning it into a format error.
    let lock = Lock::new().unwrap();
    let e = multiproc::arena::codec::to_vec(&(lock, 1u8)).unwrap_err();
    assert_eq!(e.kind(), multiproc::arena::ErrorKind::NoTransferContext, "{e}");
}

#[test]
fn a_decode_error_names_the_type() {
    let (a, b) = Pipe::new().unwrap();
    a.send(&SelfDescribing(Untagged::Text("not a tagged one".into()))).unwrap();
    let e = b.recv_timeout::<SelfDescribing<InternallyTagged>>(T).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("InternallyTagged") && text.contains("MessagePack"), "{text}");
    // The connection goes on.
    a.send(&SelfDescribing(InternallyTagged::Empty)).unwrap();
    assert_eq!(
        b.recv_timeout::<SelfDescribing<InternallyTagged>>(T).unwrap().0,
        InternallyTagged::Empty
    );
}
