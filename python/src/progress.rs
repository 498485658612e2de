//! Progress of a long call, told to a Python callable.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

/// A Python callable told `(done, total)` as a long call advances (sessions, for a training set):
/// `tqdm`'s `update` fits through a small lambda. It runs with the interpreter held, between units of
/// work. An exception it raises is reported as unraisable and the call goes on, except a
/// `KeyboardInterrupt` (Ctrl-C while it ran), which stops the call as Ctrl-C anywhere else does.
pub struct Callback {
    callback: Option<Py<PyAny>>,
    done: AtomicU64,
    total: AtomicU64,
}

impl Callback {
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        Self { callback, done: Default::default(), total: Default::default() }
    }

    fn tell(&self) {
        let Some(callback) = &self.callback else { return };
        let (done, total) = (self.done.load(Relaxed), self.total.load(Relaxed));
        Python::attach(|py| {
            let Err(e) = callback.call1(py, (done, total)) else { return };
            if e.is_instance_of::<PyKeyboardInterrupt>(py) {
                // Raised again as the signal it stands for: the call's signal check stops the work.
                // SAFETY: called with the interpreter held; it only sets the pending-signal flag.
                unsafe { pyo3::ffi::PyErr_SetInterrupt() };
            } else {
                e.write_unraisable(py, None);
            }
        });
    }
}

impl ql::progress::Progress for Callback {
    fn set_length(&self, len: u64) {
        self.total.store(len, Relaxed);
        self.done.store(0, Relaxed);
    }

    fn inc(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
        self.tell();
    }

    fn message(&self, _: &str) {}

    fn finish(&self) {}
}
