//! Progress of a long call, told to a Python callable.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

/// A Python callable told `(done, total)` as a long call advances (sessions, for a training set):
/// `tqdm`'s `update` fits through a small lambda. It runs with the interpreter held, between units of
/// work. An exception it raises is reported as unraisable and the call goes on, except a
/// `KeyboardInterrupt` (Ctrl-C while it ran), which stops the call ([`Self::interrupted`]) and is
/// raised, whatever the process does with SIGINT itself.
pub struct Callback {
    callback: Option<Py<PyAny>>,
    done: AtomicU64,
    total: AtomicU64,
    interrupt: Mutex<Option<PyErr>>,
}

impl Callback {
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        Self { callback, done: Default::default(), total: Default::default(), interrupt: Mutex::new(None) }
    }

    /// The `KeyboardInterrupt` the callable raised, if it did (taken: the call raises it).
    pub fn interrupted(&self) -> Option<PyErr> {
        self.interrupt.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn tell(&self) {
        let Some(callback) = &self.callback else { return };
        let (done, total) = (self.done.load(Relaxed), self.total.load(Relaxed));
        Python::attach(|py| {
            let Err(e) = callback.call1(py, (done, total)) else { return };
            if e.is_instance_of::<PyKeyboardInterrupt>(py) {
                self.interrupt.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
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
