//! `Address: FromStr`: every form, `Display` parsing back to the same address, and the
//! errors.

use multiproc_ipc_pipe::{Address, ErrorKind, Listener};
use std::net::SocketAddr;
use std::path::PathBuf;

fn parse(s: &str) -> Address {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

#[test]
fn every_form_parses() {
    let tcp = |a: &str| Address::Tcp(a.parse::<SocketAddr>().unwrap());
    assert_eq!(parse("127.0.0.1:6000"), tcp("127.0.0.1:6000"));
    assert_eq!(parse("[::1]:6000"), tcp("[::1]:6000"));
    assert_eq!(parse("tcp:10.0.0.1:80"), tcp("10.0.0.1:80"));
    assert_eq!(parse("/run/app.sock"), Address::Unix(PathBuf::from("/run/app.sock")));
    assert_eq!(parse("./app.sock"), Address::Unix(PathBuf::from("./app.sock")));
    assert_eq!(parse("dir/app.sock"), Address::Unix(PathBuf::from("dir/app.sock")));
    assert_eq!(parse("unix:app.sock"), Address::Unix(PathBuf::from("app.sock")));
    assert_eq!(parse("@app"), Address::Abstract(b"app".to_vec()));
    assert_eq!(parse("\0app"), Address::Abstract(b"app".to_vec()));
    // A host name is resolved (localhost is in every /etc/hosts).
    match parse("localhost:6000") {
        Address::Tcp(a) => assert!(a.ip().is_loopback() && a.port() == 6000, "{a}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn display_parses_back() {
    for s in ["127.0.0.1:1", "[::1]:2", "/tmp/x.sock", "unix:rel.sock", "@name", "dir/y"] {
        let a = parse(s);
        assert_eq!(parse(&a.to_string()), a, "{s:?} printed as {a}");
    }
    // A bound listener's address too.
    let l = Listener::bind(parse("127.0.0.1:0"), None).unwrap();
    assert_eq!(parse(&l.address().to_string()), *l.address());
    let l = Listener::builder().bind_private().unwrap();
    assert_eq!(parse(&l.address().to_string()), *l.address());
}

#[test]
fn bad_addresses_are_invalid_input() {
    for s in ["", "app", "app:", ":80", "host:port", "1.2.3.4:99999", "@", "unix:", "tcp:"] {
        let e = s.parse::<Address>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{s:?}: {e}");
        assert!(!e.is_would_block() && !e.is_timeout());
    }
}
