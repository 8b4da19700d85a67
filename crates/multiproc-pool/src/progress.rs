//! Progress reporting for `map`/`imap` jobs: a callback per completed item, and (cargo
//! feature `progress`) an `indicatif` bar.

use std::fmt;
use std::sync::Arc;

/// Called as items complete: `(done, total)`; `total` is `None` while the input (an
/// iterator of unknown length) is still being read.
pub type ProgressFn = Arc<dyn Fn(usize, Option<usize>) + Send + Sync>;

/// A job's progress reporters.
#[derive(Clone, Default)]
pub(crate) struct Progress {
    cb: Option<ProgressFn>,
    #[cfg(feature = "progress")]
    bar: Option<indicatif::ProgressBar>,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress").field("callback", &self.cb.is_some()).finish()
    }
}

impl Progress {
    pub(crate) fn is_some(&self) -> bool {
        #[cfg(feature = "progress")]
        if self.bar.is_some() {
            return true;
        }
        self.cb.is_some()
    }

    pub(crate) fn with_callback(mut self, cb: ProgressFn) -> Self {
        self.cb = Some(cb);
        self
    }

    #[cfg(feature = "progress")]
    pub(crate) fn with_bar(mut self) -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}] {per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        self.bar = Some(bar);
        self
    }

    pub(crate) fn set_total(&self, total: usize) {
        #[cfg(feature = "progress")]
        if let Some(b) = &self.bar {
            b.set_length(total as u64);
        }
        let _ = total;
    }

    pub(crate) fn advance(&self, n: usize, done: usize, total: Option<usize>) {
        #[cfg(feature = "progress")]
        if let Some(b) = &self.bar {
            if total.is_none() && b.length().unwrap_or(0) < done as u64 {
                b.set_length(done as u64);
            }
            b.inc(n as u64);
        }
        if let Some(cb) = &self.cb {
            // Items of a chunk finish together; report each.
            for d in done.saturating_sub(n) + 1..=done {
                cb(d, total);
            }
        }
    }

    pub(crate) fn finish(&self) {
        #[cfg(feature = "progress")]
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
