//! Hygiene checks: `cargo xtask tidy`, and the `tidy` test (`cargo test -p xtask`).
//!
//! - every `unsafe {` block has a `// SAFETY:` comment within the three lines above it;
//! - `libc::` function calls appear only in `sys` modules (`sys.rs`, `sys/…`);
//! - memory, randomness, fork-hook and futex system calls only in `multiproc-arena`;
//! - once the umbrella crate exists, it re-exports every member crate;
//! - no absolute path of a developer's machine in the sources.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn in_sys(p: &Path) -> bool {
    p.components().any(|c| c.as_os_str() == "sys") || p.file_name().is_some_and(|n| n == "sys.rs")
}

/// Runs every check; returns the list of problems.
pub(crate) fn run(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for d in ["crates", "tests", "benches", "xtask"] {
        rust_files(&root.join(d), &mut files);
    }
    for f in &files {
        let Ok(text) = fs::read_to_string(f) else { continue };
        let rel = f.strip_prefix(root).unwrap_or(f).display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        // Files split along their seams: none in a crate's src over MAX_LINES.
        if rel.starts_with("crates/") && rel.contains("/src/") && lines.len() > MAX_LINES {
            problems.push(format!("{rel}: {} lines, more than {MAX_LINES}", lines.len()));
        }
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("unsafe {") && !rel.starts_with("xtask") {
                let from = i.saturating_sub(3);
                if !lines[from..=i].iter().any(|l| l.contains("SAFETY:")) {
                    problems.push(format!("{rel}:{}: unsafe block without // SAFETY:", i + 1));
                }
            }
            if !in_sys(f) && !rel.starts_with("xtask") && calls_libc(code) {
                problems.push(format!("{rel}:{}: libc call outside a sys module", i + 1));
            }
            // One owner per system-call family: memory, randomness, fork hooks and the futex
            // belong to the arena (crates above use multiproc_arena::{os, fork, futex}).
            if rel.starts_with("crates/") && !rel.starts_with("crates/multiproc-arena/") {
                for call in ARENA_OWNED {
                    if code.contains(call) {
                        problems.push(format!(
                            "{rel}:{}: {call} belongs to multiproc-arena (use its os/fork/futex)",
                            i + 1
                        ));
                    }
                }
            }
            for bad in ["/work/", "/home/", "/root/"] {
                if line.contains(bad) && !rel.starts_with("xtask") {
                    problems.push(format!("{rel}:{}: machine-specific path {bad}", i + 1));
                }
            }
        }
    }
    let umbrella = root.join("crates/multiproc/src/lib.rs");
    if let Ok(text) = fs::read_to_string(&umbrella) {
        if let Ok(rd) = fs::read_dir(root.join("crates")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == "multiproc" || !e.path().join("Cargo.toml").exists() {
                    continue;
                }
                let ident = name.replace('-', "_");
                if !text.contains(&format!("pub use {ident}")) {
                    problems.push(format!("umbrella crate does not re-export {name}"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The longest a source file under `crates/*/src` may be.
const MAX_LINES: usize = 800;

/// System calls that only `multiproc-arena` makes.
const ARENA_OWNED: [&str; 6] = [
    "libc::memfd_create",
    "libc::pthread_atfork",
    "libc::getrandom",
    "libc::mmap",
    "libc::munmap",
    "SYS_futex",
];

/// A call of a libc function (`libc::name(`), as opposed to a constant or a type.
fn calls_libc(code: &str) -> bool {
    let mut rest = code;
    while let Some(i) = rest.find("libc::") {
        let after = &rest[i + 6..];
        let ident: String =
            after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let next = after[ident.len()..].chars().next();
        if next == Some('(') && ident.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            return true;
        }
        rest = after;
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidy() {
        if let Err(problems) = super::run(&crate::root()) {
            panic!("tidy found problems:\n{}", problems.join("\n"));
        }
    }

    #[test]
    fn detects_libc_calls() {
        assert!(super::calls_libc("let r = libc::kill(pid, 0);"));
        assert!(!super::calls_libc("let f = libc::O_CLOEXEC | libc::SIGKILL;"));
        assert!(!super::calls_libc("let t: libc::timespec;"));
    }
}
