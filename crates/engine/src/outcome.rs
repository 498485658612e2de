//! The exit-code contract: how every `quantlake` command ends, as a monitoring agent or a cron job
//! reads it. It follows the Nagios plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN):
//!
//! | code | [`Outcome`] | when |
//! |---|---|---|
//! | 0 | `Ok` | the command did what it was asked; health GREEN |
//! | 1 | `Warning` | partial success (an ingest or backfill with failed symbols); health YELLOW |
//! | 2 | `Critical` | health RED; `verify` (or the demo's verify) found missing, damaged or stray files; a read met one ([`Error::Integrity`]) |
//! | 3 | `Unknown` | the command could not run: bad input or flags, no lake or an unreachable one, any other [`Error`], an internal error |
//!
//! A library report says which it is (`IngestReport::outcome`, `DatasetHealth`'s status, ...); the
//! command line exits with [`Outcome::exit_code`].

use serde::Serialize;

use crate::error::Error;

/// How a command ended; see the module docs for the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Exit 0: done; GREEN.
    Ok = 0,
    /// Exit 1: partial success; YELLOW.
    Warning = 1,
    /// Exit 2: RED; damaged or missing files.
    Critical = 2,
    /// Exit 3: the command could not run.
    Unknown = 3,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        self as u8
    }

    /// `Warning` when `partial` (some of the work failed), `Ok` otherwise.
    pub fn warning_if(partial: bool) -> Self {
        if partial { Outcome::Warning } else { Outcome::Ok }
    }

    /// `Critical` when `damaged`, `Ok` otherwise.
    pub fn critical_if(damaged: bool) -> Self {
        if damaged { Outcome::Critical } else { Outcome::Ok }
    }
}

/// An error means the command could not run, unless it found the lake damaged (a data file or
/// commit missing or unreadable): that is what `verify` reports as CRITICAL, and a read meeting it
/// says the same, so a monitoring agent pages on it rather than retrying.
impl From<&Error> for Outcome {
    fn from(e: &Error) -> Self {
        match e {
            Error::Integrity { .. } => Outcome::Critical,
            _ => Outcome::Unknown,
        }
    }
}

/// The contract as the command line's `--help` states it.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (Nagios plugin convention):
  0  OK        done; health GREEN
  1  WARNING   partial success (failed symbols, quarantined rows, a symbol without rows); health YELLOW
  2  CRITICAL  health RED; verify (or a read) found missing or damaged files
  3  UNKNOWN   could not run: bad input or flags, no lake, any error
  130          interrupted (SIGINT or SIGTERM): what was committed stays";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_nagios_convention() {
        let codes = [Outcome::Ok, Outcome::Warning, Outcome::Critical, Outcome::Unknown].map(Outcome::exit_code);
        assert_eq!(codes, [0, 1, 2, 3]);
        assert_eq!(Outcome::from(&Error::invalid("x")), Outcome::Unknown);
        let damaged = Error::Integrity { dataset: "d".into(), reason: "data file missing".into() };
        assert_eq!(Outcome::from(&damaged), Outcome::Critical);
        for code in 0..4 {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }
}
