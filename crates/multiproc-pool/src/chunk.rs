//! CPython's default `chunksize` for `Pool.map`.

/// `divmod(len, workers * 4)`, rounded up; 0 for an empty input (Python's
/// `Pool._map_async`). Never below 1 for a non-empty input.
pub(crate) fn default_chunksize(len: usize, workers: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let per = workers.max(1) * 4;
    let (q, r) = (len / per, len % per);
    (q + usize::from(r != 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::default_chunksize;

    #[test]
    fn matches_cpython() {
        // Values computed with CPython's formula.
        assert_eq!(default_chunksize(0, 4), 0);
        assert_eq!(default_chunksize(1, 4), 1);
        assert_eq!(default_chunksize(10, 4), 1);
        assert_eq!(default_chunksize(16, 4), 1);
        assert_eq!(default_chunksize(17, 4), 2);
        assert_eq!(default_chunksize(100, 4), 7);
        assert_eq!(default_chunksize(100_000, 2), 12_500);
        assert_eq!(default_chunksize(100_001, 2), 12_501);
    }
}
