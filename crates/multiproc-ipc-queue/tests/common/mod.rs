//! Helpers shared by the test binaries.

pub(crate) use multiproc_arena::Bytes;

/// A KiB.
#[allow(dead_code)] // not every test binary uses it
pub(crate) const KIB: usize = 1 << 10;

/// A 64 KiB message, every byte `i`: more than half of a 16 KiB ring, so it is spilled (or
/// streamed).
#[allow(dead_code)] // not every test binary uses it
pub(crate) fn big(i: u8) -> Bytes {
    Bytes(vec![i; 64 * KIB])
}
