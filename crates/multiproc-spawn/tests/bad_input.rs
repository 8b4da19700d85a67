//! Arguments that fail to serialise are an error before any process exists (the forkserver
//! included). One test, so that no other test creates processes meanwhile.

mod util;

use multiproc_spawn::{forkserver_pid, ErrorKind, Process, StartMethod};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use util::*;

struct Unserialisable;

impl Serialize for Unserialisable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to be serialised"))
    }
}

impl<'de> Deserialize<'de> for Unserialisable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unserialisable)
    }
}

fn takes_bad(_: Unserialisable) -> u64 {
    1
}

fn children_of_me() -> usize {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| ppid_of(pid) == Some(me))
        .count()
}

#[test]
fn unserialisable_args_fail_before_any_process() {
    assert_eq!(children_of_me(), 0);
    // Fork too: a `fn` target's arguments travel encoded under every method (so that the
    // parent can drop its copy); `target_closure` moves values without serialising them.
    for m in [StartMethod::Spawn, StartMethod::Forkserver, StartMethod::Fork] {
        let err = Process::builder()
            .start_method(m)
            .target(takes_bad, Unserialisable)
            .start()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().contains("could not be serialised"), "{err}");
        assert_eq!(children_of_me(), 0, "{m}: a process was created");
    }
    assert_eq!(forkserver_pid(), None, "the forkserver was not even started");
    // A closure moves what it captures into a forked child; nothing is serialised.
    let bad = Unserialisable;
    let h = Process::builder()
        .start_method(StartMethod::Fork)
        .target_closure(move || takes_bad(bad))
        .start();
    assert_eq!(h.unwrap().join().unwrap(), 1);
}
