//! Nothing is lost to decoding, on every channel (issue #18): a message sent as one type and
//! received as another fails with an error that hands its bytes back, the bytes re-decode as
//! the type they were written as, and the channel goes on with the next message. The queue
//! (local and the manager's proxy), the pipe (its shared ring and its socket, `recv`,
//! `recv_timeout`, `try_recv`), and a pool task's result (`apply_async`, `imap` chunks: the
//! last result of a chunk hands its bytes back, one before it cannot — see `Error::undecoded`).
//! `self_describing.rs` covers the serde attributes postcard cannot carry.

use multiproc::queue::{ErrorKind as QueueErrorKind, GetError};
use multiproc::{Connection, Manager, Pipe, Pool, Process, Queue, StartMethod};
use multiproc_tests::bounded;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Postcard writes a `None` note as nothing, so such a value does not decode as itself: its
/// bytes are the bare `n`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Sparse {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<u32>,
    n: u32,
}

fn sparse(n: u32) -> Sparse {
    Sparse { note: None, n }
}

// ---- pipes ----------------------------------------------------------------------------------

/// One mismatch through `recv`, `recv_timeout` and `try_recv` each, then a message that fits.
fn mismatches_then_one_that_fits(a: &Connection, b: &Connection, big: bool) {
    let text = if big { "x".repeat(300_000) } else { "hello".to_string() };
    for how in 0..3 {
        a.send(&text).unwrap();
        // Received as another type: a u64 reads the length, and the rest is refused.
        let r = match how {
            0 => b.recv_timeout::<u64>(T),
            1 => {
                assert!(b.poll(T).unwrap());
                b.recv::<u64>()
            }
            _ => {
                assert!(b.poll(T).unwrap());
                b.try_recv::<u64>()
            }
        };
        let mut e = r.unwrap_err();
        assert_eq!(e.kind(), multiproc::pipe::ErrorKind::Codec, "{e}");
        assert!(!e.is_would_block() && !e.is_timeout() && !e.is_disconnected());
        assert_eq!(
            e.undecoded().map(<[u8]>::len),
            Some(postcard::to_allocvec(&text).unwrap().len())
        );
        let clone = e.clone();
        let bytes = e.take_undecoded().expect("the bytes come back");
        assert!(e.undecoded().is_none(), "taken");
        assert_eq!(clone.undecoded(), Some(&bytes[..]), "a clone keeps its own");
        let mut unshared = clone.clone();
        drop(clone);
        assert_eq!(unshared.take_undecoded().as_deref(), Some(&bytes[..]));
        assert!(unshared.undecoded().is_none(), "taken");
        // Re-decoded as what was sent.
        assert_eq!(postcard::from_bytes::<String>(&bytes).unwrap(), text);
    }
    // The connection goes on.
    a.send(&42u32).unwrap();
    assert_eq!(b.recv_timeout::<u32>(T).unwrap(), 42);
    // An error that is not a decode carries no bytes.
    let e = b.try_recv::<u32>().unwrap_err();
    assert!(e.is_would_block() && e.undecoded().is_none(), "{e}");
}

#[test]
fn a_pipe_hands_undecodable_messages_back() {
    bounded(60, || {
        let (a, b) = Pipe::new().unwrap();
        mismatches_then_one_that_fits(&a, &b, false); // through the shared ring
        mismatches_then_one_that_fits(&a, &b, true); // larger than the ring: the socket
        let (r, w) = Pipe::simplex().unwrap();
        mismatches_then_one_that_fits(&w, &r, false);
    })
}

fn send_sparse(c: Connection) -> u32 {
    c.send(&sparse(7)).unwrap();
    c.send(&Sparse { note: Some(1), n: 8 }).unwrap();
    // Wait for the parent's word before exiting.
    u32::from(c.recv_timeout::<()>(T).is_err())
}

#[test]
fn a_pipe_hands_back_what_a_child_sent_as_another_type() {
    bounded(60, || {
        let (mine, theirs) = Pipe::new().unwrap();
        let mut child = Process::builder()
            .start_method(StartMethod::Fork)
            .target(send_sparse, theirs)
            .start()
            .unwrap();
        let mut e = mine.recv_timeout::<Sparse>(T).unwrap_err();
        let bytes = e.take_undecoded().expect("the bytes come back");
        assert_eq!(postcard::from_bytes::<u32>(&bytes).unwrap(), 7);
        assert_eq!(mine.recv_timeout::<Sparse>(T).unwrap(), Sparse { note: Some(1), n: 8 });
        mine.send(&()).unwrap();
        assert_eq!(child.join_timeout(T).unwrap(), 0);
    })
}

// ---- queues ---------------------------------------------------------------------------------

#[test]
fn a_queue_and_its_proxy_hand_undecodable_messages_back() {
    bounded(60, || {
        let local: Queue<Sparse> = Queue::new().unwrap();
        let m = Manager::start().unwrap();
        let proxy = m.queue::<Sparse>().unwrap();
        macro_rules! check {
            ($q:expr) => {{
                let q = $q;
                q.put(sparse(7)).unwrap();
                q.put(Sparse { note: Some(1), n: 8 }).unwrap();
                match q.get_timeout(T) {
                    Err(GetError::Failed(mut e)) => {
                        assert_eq!(e.kind(), QueueErrorKind::Decode, "{e}");
                        let bytes = e.take_undecoded().expect("the bytes come back");
                        assert_eq!(postcard::from_bytes::<u32>(&bytes).unwrap(), 7);
                    }
                    other => panic!("{other:?}"),
                }
                assert_eq!(q.get_timeout(T).unwrap(), Sparse { note: Some(1), n: 8 });
            }};
        }
        // The same code for both: the same error types.
        check!(&local);
        check!(&proxy);
    })
}

// ---- pools ----------------------------------------------------------------------------------

/// Results of 10..16 in chunks of three ([10, 11, 12], [13, 14, 15]): the last of each chunk
/// does not decode (n % 3 == 0). (A bare `n` of 10 and more is no valid `Option` tag, so the
/// decode fails rather than reading on into the next result.)
fn bad_last(n: u32) -> Sparse {
    Sparse { note: (n % 3 != 0).then_some(0), n }
}

/// The middle one of each chunk does not decode (n % 3 == 2).
fn bad_middle(n: u32) -> Sparse {
    Sparse { note: (n % 3 != 2).then_some(0), n }
}

#[test]
fn a_pool_hands_an_undecodable_result_back() {
    bounded(120, || {
        let pool = Pool::builder().processes(2).start_method(StartMethod::Fork).build().unwrap();
        // A task of its own.
        let mut r = pool.apply_async(sparse, 7).unwrap();
        let mut e = r.get_timeout(T).unwrap_err();
        assert_eq!(e.kind(), multiproc::pool::ErrorKind::Codec, "{e}");
        assert!(e.to_string().contains("bytes handed back"), "{e}");
        let bytes = e.take_undecoded().expect("the bytes come back");
        assert!(e.undecoded().is_none(), "taken");
        assert_eq!(postcard::from_bytes::<u32>(&bytes).unwrap(), 7);

        // Chunks of three: the last result of a chunk can be told apart, and comes back.
        let got: Vec<_> = pool.job().chunksize(3).imap(bad_last, 10..16u32).unwrap().collect();
        assert_eq!(got.len(), 6);
        for (n, r) in (10u32..).zip(got) {
            match r {
                Ok(v) => assert!(n % 3 != 0 && v.n == n, "{n}: {v:?}"),
                Err(e) => {
                    assert_eq!(n % 3, 0, "{n}: {e}");
                    let bytes = e.undecoded().expect("the last of a chunk comes back");
                    assert_eq!(postcard::from_bytes::<u32>(bytes).unwrap(), n);
                }
            }
        }
        // One before the last cannot be delimited: it and the rest of its chunk fail, bare.
        let got: Vec<_> = pool.job().chunksize(3).imap(bad_middle, 10..16u32).unwrap().collect();
        assert_eq!(got.len(), 6);
        for (n, r) in (10u32..).zip(got) {
            match (n % 3, r) {
                (1, Ok(v)) => assert_eq!(v.n, n),
                (_, Err(e)) => {
                    assert_eq!(e.kind(), multiproc::pool::ErrorKind::Codec, "{n}: {e}");
                    assert!(e.undecoded().is_none(), "{n}");
                }
                (_, Ok(v)) => panic!("{n}: {v:?}"),
            }
        }

        // The pool goes on.
        let mut r = pool.apply_async(bad_last, 10).unwrap();
        assert_eq!(r.get_timeout(T).unwrap(), Sparse { note: Some(0), n: 10 });
        pool.terminate();
        pool.join_timeout(T).unwrap();
    })
}
