//! The command line's possible values of the library's [`Named`] enums: their names, aliases and
//! help lines, so `clap` stays out of the library. A flag of such a type takes
//! `#[arg(value_parser = named::<T>())]`.

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;

use quantlake::names::Named;

/// The items of a comma-separated list of names (features, tasks, items), blanks skipped. Symbol
/// lists are [`quantlake::symbol::SymbolList`]s, which check each symbol.
pub fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// A date flag's value: `YYYY-MM-DD`; the error says the form expected.
pub fn date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| format!("expected a date YYYY-MM-DD, e.g. 2024-03-01 ({e})"))
}

fn possible_value<T: Named>(value: T) -> PossibleValue {
    let p = PossibleValue::new(value.name()).aliases(value.aliases().iter().copied());
    match value.help() {
        Some(help) => p.help(help),
        None => p,
    }
}

/// Parses a flag's value with [`Named::parse_name`] and lists [`Named::ALL`] in help and errors.
pub struct NamedParser<T>(PhantomData<fn() -> T>);

impl<T> Clone for NamedParser<T> {
    fn clone(&self) -> Self {
        Self(PhantomData)
    }
}

/// The value parser of a [`Named`] enum's flag.
pub fn named<T: Named + Send + Sync>() -> NamedParser<T> {
    NamedParser(PhantomData)
}

impl<T: Named + Clone + Send + Sync> TypedValueParser for NamedParser<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<T, clap::Error> {
        // The flag's name is only needed in an error.
        let error = |kind: ErrorKind, what: &dyn std::fmt::Display| {
            let flag = arg.map_or_else(|| "value".to_string(), ToString::to_string);
            clap::Error::raw(kind, format!("{flag}: {what}\n")).with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| error(ErrorKind::InvalidUtf8, &"not UTF-8"))?;
        T::parse_name(text).map_err(|e| error(ErrorKind::InvalidValue, &e))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(T::ALL.iter().map(|v| possible_value(*v))))
    }
}
