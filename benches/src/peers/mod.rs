//! The Rust peers: other crates (and raw pthreads, and threads of one process) doing a case's
//! work, measured by the same harness in the same run as multiproc (`bench-runner peer CASE
//! NAME`, a fresh process each, round-robin with everything else).
//!
//! Each [`Peer`] names the case it is read against and one of [`NAMES`]; its figure is in the
//! case's own unit. `crossbeam-channel`, `pthread-robust` and `threads` are always built;
//! `iceoryx2`, `ipc-channel` and `procspawn` are heavy dependencies and only built with the
//! `peers` feature of this package (`cargo xtask bench` enables it), so that
//! `cargo test --workspace` does not compile them.

mod crossbeam;
#[cfg(feature = "peers")]
mod iceoryx2;
#[cfg(feature = "peers")]
mod ipc_channel;
#[cfg(feature = "peers")]
mod procspawn;
mod pthread;
mod threads;

use crate::cases::Opts;

/// Every peer name, in report order (the keys of `"peers"` in `report.json`).
pub(crate) const NAMES: [&str; 6] =
    ["iceoryx2", "ipc-channel", "crossbeam-channel", "procspawn", "pthread-robust", "threads"];

/// The peers that need the `peers` feature.
pub(crate) const HEAVY: [&str; 3] = ["iceoryx2", "ipc-channel", "procspawn"];

/// One peer figure: `name` doing the work of `case`.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The case it is read against (same unit, same direction).
    pub(crate) case: &'static str,
    /// One of [`NAMES`].
    pub(crate) name: &'static str,
    /// The measurement, run in a fresh process (`bench-runner peer CASE NAME`).
    pub(crate) run: fn(&Opts) -> f64,
    /// One line: how the peer does the case's work.
    pub(crate) about: &'static str,
}

/// Every peer built into this binary, in catalogue order.
pub(crate) fn all() -> Vec<&'static Peer> {
    let mut tables: Vec<&'static [Peer]> = Vec::new();
    #[cfg(feature = "peers")]
    tables.extend([iceoryx2::PEERS, ipc_channel::PEERS]);
    tables.push(crossbeam::PEERS);
    #[cfg(feature = "peers")]
    tables.push(procspawn::PEERS);
    tables.extend([pthread::PEERS, threads::PEERS]);
    let mut v: Vec<&'static Peer> = tables.iter().flat_map(|t| t.iter()).collect();
    v.sort_by_key(|p| NAMES.iter().position(|n| *n == p.name));
    v
}

/// The peers of `case`.
pub(crate) fn of(case: &str) -> Vec<&'static Peer> {
    all().into_iter().filter(|p| p.case == case).collect()
}

/// The peer `name` of `case`.
pub(crate) fn find(case: &str, name: &str) -> Option<&'static Peer> {
    all().into_iter().find(|p| p.case == case && p.name == name)
}

/// Whether this binary was built with the heavy peers (`--features peers`).
pub(crate) fn heavy_built() -> bool {
    cfg!(feature = "peers")
}

/// To be called first in `main`: a process started by procspawn runs its function here and
/// exits; in any other process this returns at once.
pub(crate) fn init() {
    #[cfg(feature = "peers")]
    ::procspawn::init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_names_a_case_and_a_known_name() {
        for p in all() {
            let c = crate::cases::find(p.case).unwrap_or_else(|| panic!("{}: no case", p.case));
            assert!(!c.is_floor() && c.rust.is_some(), "{}", p.case);
            assert!(NAMES.contains(&p.name), "{}", p.name);
        }
        let mut pairs: Vec<(&str, &str)> = all().iter().map(|p| (p.case, p.name)).collect();
        let n = pairs.len();
        pairs.sort();
        pairs.dedup();
        assert_eq!(n, pairs.len(), "a peer listed twice for a case");
        for light in ["crossbeam-channel", "pthread-robust", "threads"] {
            assert!(all().iter().any(|p| p.name == light), "{light}");
        }
    }
}
