//! Enums with one spelling per value (`1m`, `forward-fill`, `csv`, `polygon`). [`Named`] lists the
//! values and their spellings once; `Display` and `FromStr` (through [`named_display_and_from_str`])
//! and the command line's possible values all use them, so a value is written and read the same way
//! everywhere.

use crate::error::{Error, Result};

/// An enum whose every value has one spelling.
pub trait Named: Sized + Copy + 'static {
    /// What the values are, for error messages ("bar size").
    const WHAT: &'static str;
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];

    /// The value's spelling.
    fn name(self) -> &'static str;

    /// Other spellings read as this value (e.g. a config's `forward_fill` for `forward-fill`).
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }

    /// One line on what the value means, for help texts.
    fn help(self) -> Option<&'static str> {
        None
    }

    /// The value spelled `s` (its name or an alias).
    fn parse_name(s: &str) -> Result<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == s || v.aliases().contains(&s)).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
            Error::invalid(format!("unknown {} '{s}'; expected one of: {}", Self::WHAT, names.join(", ")))
        })
    }
}

/// `Display` and `FromStr` for [`Named`] types: the spelling, and [`Named::parse_name`].
#[macro_export]
macro_rules! named_display_and_from_str {
    ($($t:ty),+ $(,)?) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, not `write_str`: widths and alignment (`{:<9}`) apply.
                f.pad($crate::names::Named::name(*self))
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::error::Error;

            fn from_str(s: &str) -> $crate::error::Result<Self> {
                <$t as $crate::names::Named>::parse_name(s)
            }
        }
    )+};
}
pub use named_display_and_from_str;
