//! The short form of the chaos soak: every primitive in use by many processes while random
//! participants are SIGKILLed and restarted; no invariant may break, nothing may hang, and
//! nothing is left behind. `MULTIPROC_CHAOS_SECS` changes its length (default 10 s).

use multiproc_tests::{bounded, chaos, hygiene};

#[test]
fn chaos_short() {
    let secs: u64 =
        std::env::var("MULTIPROC_CHAOS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let report = bounded(secs + 120, move || chaos::run(&chaos::Config::short(secs)));
    eprintln!("{report}");
    assert!(report.violations.is_empty(), "{report}");
    // The chaos was real: participants were killed and every kind of work got done.
    assert!(report.total_kills() >= 10, "{report}");
    assert!(report.messages_checked > 0 && report.pool_tasks() > 0, "{report}");
    assert!(report.lock_ops > 0 && report.manager_ops > 0 && report.pipe_echoes > 0, "{report}");
    let problems = hygiene::leftovers(None, 0, &report.pids);
    assert!(problems.is_empty(), "left behind:\n{}", problems.join("\n"));
}
