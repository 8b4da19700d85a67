//! The remote-manager example as four separately started programs (the built examples
//! `manager_server` and `manager_client`): a server, two writers appending 100..=104 and
//! 300..=308, a reader printing the list. None is the parent of another; they meet by
//! address and authkey and reach one list by name.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A built example of this package (`cargo test` builds them beside the test binaries).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let p = dir.join(name);
    assert!(p.exists(), "{} is not built (cargo test builds examples)", p.display());
    p
}

fn finish(mut c: Child, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut out = String::new();
            if let Some(mut o) = c.stdout.take() {
                std::io::Read::read_to_string(&mut o, &mut out).unwrap();
            }
            assert!(st.success(), "{what}: {st}");
            return out;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = c.kill();
            panic!("{what}: still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn server_two_writers_and_a_reader_as_separate_programs() {
    let key = "test-key";
    let mut server = Command::new(example("manager_server"))
        .args(["127.0.0.1:0", key])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let address =
        line.trim().strip_prefix("serving on ").expect("the server's first line").to_string();
    let client = |args: &[&str]| {
        Command::new(example("manager_client"))
            .arg(&address)
            .arg(key)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let writers = [client(&["writer", "100", "104"]), client(&["writer", "300", "308"])];
    for w in writers {
        finish(w, "a writer");
    }
    let out = finish(client(&["reader", "0"]), "the reader");
    let mut got: Vec<i64> = out
        .trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    // Each writer's items in its order; the two interleave.
    let firsts: Vec<i64> = got.iter().copied().filter(|v| *v < 200).collect();
    assert_eq!(firsts, (100..=104).collect::<Vec<_>>());
    got.sort();
    let want: Vec<i64> = (100..=104).chain(300..=308).collect();
    assert_eq!(got, want, "reader printed {out:?}");
    // A wrong key is refused, and the server keeps serving.
    let bad = Command::new(example("manager_client"))
        .args([&address, "wrong-key", "reader", "0"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!bad.success());
    finish(client(&["shutdown"]), "the shutdown client");
    let t0 = Instant::now();
    while server.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the server did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}
