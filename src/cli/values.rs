//! The command line's possible values of the library's [`Named`] enums: their names, aliases and
//! help lines, so `clap` stays out of the library.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::bars::{BarSize, Frequency};
use crate::curate::FillPolicy;
use crate::names::Named;
use crate::reference::corporate_actions::{ActionSource, Adjustment};
use crate::sources::file::FileFormat;
use crate::sources::SourceKind;

fn possible_value<T: Named>(value: T) -> PossibleValue {
    let p = PossibleValue::new(value.name()).aliases(value.aliases().iter().copied());
    match value.help() {
        Some(help) => p.help(help),
        None => p,
    }
}

macro_rules! value_enum {
    ($($t:ty),+) => {$(
        impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                <$t as Named>::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(possible_value(*self))
            }
        }
    )+};
}

value_enum!(BarSize, Frequency, FillPolicy, FileFormat, SourceKind, ActionSource, Adjustment);
