//! The library's [`Progress`] drawn as an `indicatif` bar on stderr.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use quantlake::progress::Progress;

/// A progress bar counting `unit`s (symbol-sessions, sessions, partitions); hidden with `--quiet` or
/// `--json`.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(what: &str, unit: &str, hidden: bool) -> Self {
        if hidden {
            return Bar(ProgressBar::hidden());
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(&format!(
            "{{msg:>10}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}"
        ))
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar)
    }
}

/// A bar dropped before it finished (the command failed) is cleared, so the error reads alone.
impl Drop for Bar {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }

    fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    fn message(&self, message: &str) {
        self.0.set_message(message.to_string());
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }

    fn reset(&self) {
        self.0.reset();
    }
}
