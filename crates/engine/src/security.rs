//! [`SecurityId`]: a security's stable identity in the lake. Tickers are dated attributes of a
//! security (FB became META; GOOG named one share class until 2014 and another after); the id is what
//! stays. quantlake mints it when it first learns of a security and never gives it to another.
//!
//! ```
//! use quantlake_engine::security::SecurityId;
//!
//! let id: SecurityId = "418093725561".parse()?;
//! assert_eq!(id.to_string(), "418093725561");
//! assert_eq!(SecurityId::mint("figi:BBG000MM2P62", 0), SecurityId::mint("figi:BBG000MM2P62", 0), "minting is deterministic");
//! assert!("S12".parse::<SecurityId>().is_err());
//! # Ok::<(), quantlake_engine::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A security's id: a positive integer below 2^40 (at most 13 digits, so people can read and type
/// it; stored as `int64`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct SecurityId(i64);

/// Ids are below this.
const LIMIT: i64 = 1 << 40;

impl SecurityId {
    /// `value` as an id, or an error saying what an id is.
    pub fn new(value: i64) -> Result<Self> {
        if (1..LIMIT).contains(&value) {
            Ok(Self(value))
        } else {
            Err(Error::invalid(format!("security id {value} is not a positive integer below 2^40")))
        }
    }

    /// The id minted for a security first known by `identity` (its FIGI, its IB contract id, or its
    /// first ticker and date): the same identity always mints the same id, so a lake rebuilt from the
    /// same sources gives its securities the same ids. `attempt` > 0 mints another candidate, for the
    /// rare identity whose first candidate another security already holds.
    pub fn mint(identity: &str, attempt: u32) -> Self {
        let mut hash = Sha256::new();
        hash.update(identity.as_bytes());
        if attempt > 0 {
            hash.update(format!("#{attempt}").as_bytes());
        }
        let digest = hash.finalize();
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        // 0 is not an id: fold it onto 1.
        Self((u64::from_be_bytes(head) % (LIMIT as u64)).max(1) as i64)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for SecurityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for SecurityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecurityId({})", self.0)
    }
}

impl FromStr for SecurityId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let value = text.trim().parse::<i64>().map_err(|_| {
            Error::invalid(format!(
                "'{}' is not a security id (a number, as `securities show` lists them)",
                text.escape_default()
            ))
        })?;
        Self::new(value)
    }
}

impl TryFrom<i64> for SecurityId {
    type Error = Error;

    fn try_from(value: i64) -> Result<Self> {
        Self::new(value)
    }
}

impl From<SecurityId> for i64 {
    fn from(id: SecurityId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_in_range_and_attempts_differ() {
        for i in 0..1000 {
            let id = SecurityId::mint(&format!("ticker:T{i}@-"), 0);
            assert!(SecurityId::new(id.get()).is_ok());
        }
        assert_ne!(SecurityId::mint("figi:X", 0), SecurityId::mint("figi:X", 1));
        assert!(SecurityId::new(0).is_err() && SecurityId::new(1 << 40).is_err());
    }
}
