//! The soak's "machine short" phase, briefly: `/dev/shm` a 4 MiB tmpfs and descriptors used
//! up for ~2 s, then restored; typed errors only, nothing lost, everything works again.
//! Needs root (a private mount namespace); reported loudly as skipped otherwise.

use multiproc_tests::short;
use std::time::Duration;

#[test]
fn machine_short_then_restored_loses_nothing() {
    let r = multiproc_tests::bounded(120, || short::run(Duration::from_secs(3), 0x5eed));
    eprintln!("{r}");
    if r.skipped.is_some() {
        eprintln!("\n*** SKIPPED: {r} — CI runs it as root ***\n");
        return;
    }
    assert_eq!(r.violations, 0, "{r}");
    assert!(r.no_space > 0, "the tiny /dev/shm never refused a segment: {r}");
    assert!(r.no_descriptors > 0, "the descriptor shortage never showed: {r}");
    assert!(r.messages > 0, "{r}");
}
