//! The arena's small deterministic generator ([`Rng`], xorshift64*, std only), with the
//! draws the chaos and hostile-input tests add on top of it ([`RngExt`]).

pub use multiproc::arena::testing::Rng;

/// The chaos and hostile-input tests' draws on top of the arena's [`Rng`].
pub trait RngExt {
    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64;

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: u64) -> bool;

    /// Between `lo` and `hi` random bytes.
    fn bytes_in(&mut self, lo: u64, hi: u64) -> Vec<u8>;

    /// Damages `bytes` in place: flips bits, overwrites bytes, inserts, cuts or duplicates
    /// pieces (one to four edits).
    fn mutate(&mut self, bytes: &mut Vec<u8>);
}

impl RngExt for Rng {
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn bytes_in(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let n = self.range(lo, hi) as usize;
        self.bytes(n)
    }

    fn mutate(&mut self, bytes: &mut Vec<u8>) {
        for _ in 0..1 + self.below(4) {
            let len = bytes.len() as u64;
            match self.below(7) {
                0 | 1 if len > 0 => {
                    let i = self.below(len) as usize;
                    bytes[i] ^= 1 << self.below(8);
                }
                2 if len > 0 => {
                    let i = self.below(len) as usize;
                    bytes[i] = self.next_u64() as u8;
                }
                3 if len > 0 => {
                    let i = self.below(len) as usize;
                    bytes[i] = [0, 0xff, 0x7f, 0x80, 1][self.below(5) as usize];
                }
                4 => {
                    let i = self.below(len + 1) as usize;
                    let n = self.range(1, 8) as usize;
                    let ins = self.bytes(n);
                    bytes.splice(i..i, ins);
                }
                5 if len > 0 => {
                    let cut = self.below(len) as usize;
                    bytes.truncate(cut);
                }
                _ if len > 0 => {
                    let a = self.below(len) as usize;
                    let b = (a + self.range(1, 16) as usize).min(bytes.len());
                    let piece = bytes[a..b].to_vec();
                    let at = self.below(bytes.len() as u64 + 1) as usize;
                    bytes.splice(at..at, piece);
                }
                _ => bytes.push(self.next_u64() as u8),
            }
        }
    }
}

/// How many cases a fuzz target runs: `default` normally; with `MULTIPROC_FUZZ_CASES=N` set
/// (as `cargo xtask fuzz --cases N` does), `N * share`, rounded up.
pub fn fuzz_cases(default: u64, share: f64) -> u64 {
    match std::env::var("MULTIPROC_FUZZ_CASES").ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(n) => ((n as f64) * share).ceil() as u64,
        None => default,
    }
}
