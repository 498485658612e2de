//! Durations in settings and flags: one spelling everywhere. A duration is written as humantime text
//! (`90s`, `2m`, `12h`, `7d`, `1h 30m`) and, in config files, may also be a whole number of seconds.
//! Settings fields use this module as their serde adapter:
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Settings {
//!     #[serde(with = "quantlake_engine::duration")]
//!     lease: Duration,
//! }
//!
//! let s: Settings = toml::from_str("lease = \"2m\"").unwrap();
//! assert_eq!(s.lease, Duration::from_secs(120));
//! let s: Settings = toml::from_str("lease = 90").unwrap();
//! assert_eq!(s.lease, Duration::from_secs(90));
//! assert_eq!(toml::to_string(&s).unwrap().trim(), "lease = \"1m 30s\"");
//! assert!(toml::from_str::<Settings>("lease = \"2 fortnights\"").is_err());
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

use crate::error::{Error, Result};

/// `text` as a duration; the error names `what` (a flag or a setting) and the accepted forms.
pub fn parse(what: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text.trim())
        .map_err(|e| Error::invalid(format!("{what} '{text}': {e} (expected a duration such as 90s, 15m, 12h or 7d)")))
}

/// The humantime spelling of `d` (`1m 30s`), which [`parse`] reads back.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Serde: writes [`format`]'s text.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// Serde: reads humantime text or a whole number of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Seconds(u64),
    }
    match Value::deserialize(d)? {
        Value::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
            serde::de::Error::custom(format!("'{t}': {e} (expected a duration such as 90s, 15m, 12h or 7d)"))
        }),
        Value::Seconds(n) => Ok(Duration::from_secs(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_the_flag_and_the_forms() {
        assert_eq!(parse("--poll", "1h 30m").unwrap(), Duration::from_secs(5400));
        let e = parse("--poll", "soon").unwrap_err().to_string();
        assert!(e.contains("--poll 'soon'") && e.contains("such as 90s"), "{e}");
    }

    #[test]
    fn format_reads_back() {
        for d in [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(90 * 86_400 + 7)] {
            assert_eq!(parse("x", &format(d)).unwrap(), d);
        }
    }
}
