//! A small deterministic pseudo-random generator (xorshift64*), std only.

/// xorshift64*: fast, deterministic, good enough to pick cases and instants.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced, since xorshift would stay at 0).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        self.fill(&mut v, n);
        v
    }

    /// Between `lo` and `hi` random bytes.
    pub fn bytes_in(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let n = self.range(lo, hi) as usize;
        self.bytes(n)
    }

    /// Appends `n` random bytes to `v`.
    pub fn fill(&mut self, v: &mut Vec<u8>, n: usize) {
        let mut left = n;
        while left >= 8 {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
            left -= 8;
        }
        let last = self.next_u64().to_le_bytes();
        v.extend_from_slice(&last[..left]);
    }

    /// Damages `bytes` in place: flips bits, overwrites bytes, inserts, cuts or duplicates
    /// pieces (one to four edits).
    pub fn mutate(&mut self, bytes: &mut Vec<u8>) {
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
