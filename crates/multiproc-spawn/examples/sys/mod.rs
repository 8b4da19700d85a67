//! Raw floors for the benchmark: fork+_exit+waitpid and posix_spawn+waitpid.
#![allow(clippy::disallowed_methods, dead_code)]

use std::ffi::{c_char, CString};

/// fork(); the child `_exit(0)`s at once; the parent waits for it.
pub(crate) fn fork_exit_wait() {
    // SAFETY: the child only calls _exit (async-signal-safe); the parent waits for it.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            libc::_exit(0);
        }
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }
}

/// posix_spawn of /proc/self/exe with `args`, then waitpid.
pub(crate) fn posix_spawn_wait(args: &[&str]) {
    let argv_c: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut argv: Vec<*mut c_char> = argv_c.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let env_c: Vec<CString> =
        std::env::vars().map(|(k, v)| CString::new(format!("{k}={v}")).unwrap()).collect();
    let mut envp: Vec<*mut c_char> = env_c.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    envp.push(std::ptr::null_mut());
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings alive for the call;
    // null file actions and attributes are allowed.
    unsafe {
        let mut pid = 0;
        let r = libc::posix_spawn(
            &mut pid,
            c"/proc/self/exe".as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr(),
            envp.as_ptr(),
        );
        assert_eq!(r, 0, "posix_spawn");
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }
}
