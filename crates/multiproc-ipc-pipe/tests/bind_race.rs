//! `Listener::bind(path)` is never reachable by another user, not even for an instant: with
//! umask 0 in a world-writable directory, a process running as another user (uid 65534)
//! tries to connect while the listener binds and unbinds 2,000 times; the kernel must refuse
//! it (EACCES) every time. (Binding first and chmod-ing afterwards let it in thousands of
//! times.) Its own test binary: the umask is process-wide. Skipped loudly when not root.

use multiproc_arena::testing::{set_umask, with_process_quota, Outcome};
use multiproc_arena::Array;
use multiproc_ipc_pipe::Listener;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[test]
fn bind_is_never_reachable_by_another_user() {
    let dir = std::env::temp_dir().join(format!("multiproc-bind-race-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.join("l.sock");
    // [stop, attempts, reached, refused]
    let shared = Array::from_fn(4, |_| AtomicU64::new(0)).unwrap();
    let old = set_umask(0);
    let out = std::thread::scope(|s| {
        let (p, sh) = (path.clone(), shared.clone());
        let prober = s.spawn(move || {
            with_process_quota(Duration::from_secs(60), move || {
                let t = Instant::now();
                while sh[0].load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(50) {
                    sh[1].fetch_add(1, Ordering::Relaxed);
                    match std::os::unix::net::UnixStream::connect(&p) {
                        // A stream socket cannot connect to the listener's SEQPACKET one, but
                        // the kernel checks permission first: anything but these got past it.
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::EACCES | libc::ENOENT | libc::ECONNREFUSED)
                            ) =>
                        {
                            sh[3].fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            sh[2].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        });
        for _ in 0..2000 {
            let l = Listener::bind(path.clone(), None).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            drop(l);
        }
        shared[0].store(1, Ordering::SeqCst);
        prober.join().unwrap()
    });
    set_umask(old);
    let _ = std::fs::remove_dir_all(&dir);
    if out == Outcome::Skipped {
        return;
    }
    let (attempts, reached, refused) = (
        shared[1].load(Ordering::SeqCst),
        shared[2].load(Ordering::SeqCst),
        shared[3].load(Ordering::SeqCst),
    );
    eprintln!("another user: {attempts} connects, {reached} reached, {refused} refused");
    assert!(attempts > 100, "the prober ran ({attempts} attempts)");
    assert_eq!(reached, 0, "another user reached the socket {reached} times");
}
