//! Library work with the interpreter released, stopped by Ctrl-C: the calling thread checks
//! Python's signal handlers every [`SIGNAL_POLL`] while the work runs, and a handler's exception
//! (`KeyboardInterrupt`) stops the work and is raised. Other threads' calls run meanwhile.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::error;

/// How often a running call checks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Runs `work` on `runtime`, stopped by Ctrl-C or by `interrupted` (checked as often, e.g. a progress
/// callback's `KeyboardInterrupt`). A stop drops the future where it awaits: reads hold nothing a stop
/// leaves behind, and a stage commits all or nothing, so a stopped call leaves the lake as it found it.
pub fn run_async<T: Send, F: Future<Output = ql::error::Result<T>>>(
    py: Python<'_>,
    runtime: &tokio::runtime::Runtime,
    work: impl FnOnce() -> F + Send,
    interrupted: &(dyn Fn() -> Option<PyErr> + Sync),
) -> PyResult<T> {
    py.detach(|| {
        runtime.block_on(async {
            // Made on this thread, so the future itself need not be `Send`.
            let work = work();
            tokio::pin!(work);
            let mut poll = tokio::time::interval(SIGNAL_POLL);
            loop {
                tokio::select! {
                    done = &mut work => return interrupted().map_or(done.map_err(error), Err),
                    _ = poll.tick() => {
                        if let Some(e) = interrupted() {
                            return Err(e);
                        }
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

/// Runs blocking `work` on a thread of its own; on Ctrl-C calls `stop` (which makes `work` return
/// soon, e.g. DuckDB's interrupt) until it returns, then raises. `stop` is repeated because it can
/// come before `work` has begun (DuckDB forgets an interrupt when its next statement starts).
pub fn run_blocking<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> ql::error::Result<T> + Send,
    stop: impl Fn() + Send,
) -> PyResult<T> {
    py.detach(move || {
        std::thread::scope(|scope| {
            let (sender, done) = mpsc::channel();
            scope.spawn(move || {
                let _ = sender.send(work());
            });
            loop {
                match done.recv_timeout(SIGNAL_POLL) {
                    Ok(result) => return result.map_err(error),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(interrupted) = Python::attach(|py| py.check_signals()) {
                            stop();
                            // Its result, whatever it is, is dropped.
                            while let Err(mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(SIGNAL_POLL) {
                                stop();
                            }
                            return Err(interrupted);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(error(ql::error::Error::invalid("the call's thread stopped without a result")));
                    }
                }
            }
        })
    })
}
