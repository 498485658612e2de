//! Progress of long work (ingest, backfill, the demo), reported to whoever shows it: the command line
//! draws a bar (`cli/`, with `indicatif`); a library caller passes [`NoProgress`] or its own.
//! Not to be confused with `quantlake::ingest::progress`, the records that let an ingest resume.

/// Receives progress: a length in units of work (symbol-sessions), increments, a message.
pub trait Progress: Send + Sync {
    /// The total units of work; `0` resets the count.
    fn set_length(&self, len: u64);
    /// `n` more units done.
    fn inc(&self, n: u64);
    /// What is being done now.
    fn message(&self, message: &str);
    /// The work is over (stop drawing).
    fn finish(&self);

    /// Starts over: position 0 and an unknown length.
    fn reset(&self) {
        self.set_length(0);
    }
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set_length(&self, _: u64) {}
    fn inc(&self, _: u64) {}
    fn message(&self, _: &str) {}
    fn finish(&self) {}
}
