//! [`Symbol`]: a ticker symbol, checked once where it enters (a flag, an HTTP parameter, a file, a
//! vendor's answer) and carried through as a type, so nothing further in has to check it again.
//!
//! ```
//! use quantlake_engine::symbol::{Symbol, SymbolList};
//!
//! let brk: Symbol = "BRK.B".parse()?;
//! assert_eq!(brk, "BRK.B");
//! assert!("../etc".parse::<Symbol>().is_err(), "a symbol cannot leave its folder");
//!
//! // A comma-separated list, as the command line and the HTTP API take it: blanks skipped, each
//! // symbol once, in the order given.
//! let list: SymbolList = " AAPL, MSFT,,AAPL ".parse()?;
//! assert_eq!(list.to_string(), "AAPL,MSFT");
//! # Ok::<(), quantlake_engine::Error>(())
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A ticker symbol: `AAPL`, `BRK.B`, `BF-B`, `ES=F`, `^GSPC`. 1 to 32 of `A-Z a-z 0-9 . - _ = ^`,
/// not starting with `.` and without `..`. Symbols are data, not path segments, but they are held to
/// the rules of names so that no stage that keys files or SQL by symbol can be escaped.
///
/// Cheap to clone (shared text). Compares, hashes and borrows as its text, so a
/// `HashMap<Symbol, _>` is looked up with a `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(Arc<str>);

impl Symbol {
    /// `text` as a symbol, or an error naming it and the rule.
    pub fn new(text: &str) -> Result<Self> {
        let ok = !text.is_empty()
            && text.len() <= 32
            && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '=' | '^'))
            && !text.contains("..")
            && !text.starts_with('.');
        if ok {
            Ok(Self(text.into()))
        } else {
            Err(Error::InvalidName {
                kind: "symbol",
                value: text.escape_default().to_string(),
                reason: "use 1 to 32 of A-Z, a-z, 0-9, '.', '-', '_', '=', '^' (no '/', '..', NUL or spaces)",
            })
        }
    }

    /// A symbol written in the source (a constant, a test), like `http::HeaderValue::from_static`.
    ///
    /// # Panics
    /// If `text` breaks the rule: for text from anywhere else, use [`Symbol::new`].
    pub fn from_static(text: &'static str) -> Self {
        match Self::new(text) {
            Ok(symbol) => symbol,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Symbol {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::new(text)
    }
}

impl TryFrom<String> for Symbol {
    type Error = Error;

    fn try_from(text: String) -> Result<Self> {
        Self::new(&text)
    }
}

impl TryFrom<&str> for Symbol {
    type Error = Error;

    fn try_from(text: &str) -> Result<Self> {
        Self::new(text)
    }
}

impl From<Symbol> for String {
    fn from(symbol: Symbol) -> Self {
        symbol.0.to_string()
    }
}

impl Deref for Symbol {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Symbol {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Symbol {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Symbol> for String {
    fn eq(&self, other: &Symbol) -> bool {
        **self == *other.0
    }
}

impl PartialEq<Symbol> for &str {
    fn eq(&self, other: &Symbol) -> bool {
        *self == &*other.0
    }
}

/// A non-empty list of symbols, each once, in the order given. Its text form is comma-separated
/// (`AAPL,MSFT`); parsing skips blanks and repeats (`AAPL,,AAPL` is `AAPL`, which would otherwise
/// store AAPL's bars twice).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Symbol>", into = "Vec<Symbol>")]
pub struct SymbolList(Vec<Symbol>);

impl SymbolList {
    /// `symbols` without repeats, or an error if none is left.
    pub fn new(symbols: impl IntoIterator<Item = Symbol>) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        let list: Vec<Symbol> = symbols.into_iter().filter(|s| seen.insert(s.clone())).collect();
        if list.is_empty() {
            return Err(Error::invalid("the symbol list is empty: name at least one symbol"));
        }
        Ok(Self(list))
    }

    pub fn into_vec(self) -> Vec<Symbol> {
        self.0
    }
}

impl FromStr for SymbolList {
    type Err = Error;

    /// Refuses `all` (any case), which means every symbol wherever a flag takes it ([`SymbolScope`]):
    /// a list flag that took it as the ticker would silently ask for one symbol. The ticker ALL is
    /// written `ALL,`.
    fn from_str(text: &str) -> Result<Self> {
        if text.trim().eq_ignore_ascii_case(ALL) {
            return Err(Error::invalid(
                "'all' means every symbol, which this flag does not take: name the symbols (A,B; the ticker ALL is written ALL,)",
            ));
        }
        let symbols = text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Symbol::new);
        Self::new(symbols.collect::<Result<Vec<_>>>()?)
    }
}

impl TryFrom<Vec<Symbol>> for SymbolList {
    type Error = Error;

    fn try_from(symbols: Vec<Symbol>) -> Result<Self> {
        Self::new(symbols)
    }
}

impl From<SymbolList> for Vec<Symbol> {
    fn from(list: SymbolList) -> Self {
        list.0
    }
}

impl Deref for SymbolList {
    type Target = [Symbol];

    fn deref(&self) -> &[Symbol] {
        &self.0
    }
}

impl fmt::Display for SymbolList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, symbol) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(symbol)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SymbolList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// The word that means every symbol.
const ALL: &str = "all";

/// `all` (any case: every symbol, `None`) or a [`SymbolList`]: the `--symbols` of commands whose
/// scope may be the whole dataset.
pub fn all_or_list(spec: &str) -> Result<Option<SymbolList>> {
    Ok(spec.parse::<SymbolScope>()?.list())
}

/// The `--symbols` of a command whose scope may be every symbol: `all` (any case) or a list. `all`
/// means the same as leaving the flag out: the command's whole scope (every symbol of the dataset,
/// or the active universe where the command names it so). The ticker ALL is written `ALL,`.
///
/// ```
/// use quantlake_engine::symbol::SymbolScope;
///
/// assert_eq!("ALL".parse::<SymbolScope>()?, SymbolScope::All);
/// assert_eq!("ALL,".parse::<SymbolScope>()?.list().unwrap().to_string(), "ALL");
/// assert!(" , ".parse::<SymbolScope>().is_err());
/// # Ok::<(), quantlake_engine::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolScope {
    All,
    List(SymbolList),
}

impl SymbolScope {
    /// The list, or `None` for every symbol.
    pub fn list(self) -> Option<SymbolList> {
        match self {
            Self::All => None,
            Self::List(list) => Some(list),
        }
    }

    /// The symbols, empty for every symbol (the library's requests read an empty list so).
    pub fn into_vec(self) -> Vec<Symbol> {
        self.list().map(SymbolList::into_vec).unwrap_or_default()
    }
}

impl FromStr for SymbolScope {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        if spec.trim().eq_ignore_ascii_case(ALL) {
            return Ok(Self::All);
        }
        match spec.parse() {
            Ok(list) => Ok(Self::List(list)),
            Err(_) if spec.split(',').all(|s| s.trim().is_empty()) => {
                Err(Error::invalid("the symbol list is empty: give A,B or all"))
            }
            Err(e) => Err(e),
        }
    }
}

/// Symbols of `texts` (a vendor's answer, a file's column), each checked: the first bad one is the error.
pub fn parse_all<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Result<Vec<Symbol>> {
    texts.into_iter().map(|t| Symbol::new(t.as_ref())).collect()
}

/// Which of the symbols a read asked for its rows hold, batch by batch: what is left once every
/// batch is seen is the symbols with no rows, which a read names rather than answering an empty table.
#[derive(Debug, Clone, Default)]
pub struct MissingSymbols {
    missing: std::collections::BTreeSet<Symbol>,
}

impl MissingSymbols {
    /// Tracks `asked` (empty: every symbol, so none can be missing).
    pub fn of(asked: &[Symbol]) -> Self {
        Self { missing: asked.iter().cloned().collect() }
    }

    /// Crosses off the symbols of `batch`'s `symbol` column (any string type).
    pub fn see(&mut self, batch: &arrow::array::RecordBatch) {
        use arrow::array::AsArray;
        if self.missing.is_empty() {
            return;
        }
        let Some(column) = batch.column_by_name("symbol") else { return };
        let Ok(symbols) = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8) else { return };
        for s in symbols.as_string::<i32>().iter().flatten() {
            self.missing.remove(s);
        }
    }

    /// The symbols asked for that no batch held, in name order.
    pub fn missing(&self) -> impl Iterator<Item = &Symbol> {
        self.missing.iter()
    }

    /// The warning a read gives when symbols are missing (`what`: "bars between A and B"), the one
    /// text the command line and the Python package show; `None` when every symbol had rows.
    pub fn warning(&self, what: &str) -> Option<String> {
        if self.missing.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.missing.iter().map(Symbol::as_str).collect();
        Some(format!(
            "no {what} for {} (not in the lake, or not in that range; `quantlake universe` and `quantlake health` show what is)",
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_follow_the_rule() {
        for bad in ["", "../x", "A/B", "A B", ".A", "A..B", "A\0", &"X".repeat(33)] {
            let err = Symbol::new(bad).unwrap_err().to_string();
            assert!(err.contains("symbol") && err.contains("use 1 to 32"), "{bad:?}: {err}");
        }
        for good in ["AAPL", "BRK.B", "BF-B", "ES=F", "^GSPC", "SYN_001", &"X".repeat(32)] {
            assert_eq!(Symbol::new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn serde_checks_and_keeps_the_text() {
        let s: Symbol = serde_json::from_str("\"BRK.B\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"BRK.B\"");
        assert!(serde_json::from_str::<Symbol>("\"a/b\"").is_err());
        let list: SymbolList = serde_json::from_str(r#"["A","B","A"]"#).unwrap();
        assert_eq!(list.len(), 2);
        assert!(serde_json::from_str::<SymbolList>("[]").is_err());
    }

    #[test]
    fn lists_skip_blanks_and_repeats_and_name_a_bad_symbol() {
        let list: SymbolList = " AAPL, MSFT,,AAPL ".parse().unwrap();
        assert_eq!(&*list, ["AAPL", "MSFT"].map(|s| Symbol::new(s).unwrap()));
        assert!(" , ".parse::<SymbolList>().unwrap_err().to_string().contains("empty"));
        assert!("AAPL,MS FT".parse::<SymbolList>().unwrap_err().to_string().contains("MS FT"));
        assert_eq!(all_or_list(" ALL ").unwrap(), None);
        assert_eq!(all_or_list("B,A").unwrap().unwrap().to_string(), "B,A");
        assert!(all_or_list(" , ").unwrap_err().to_string().contains("give A,B or all"));
        assert!(all_or_list("A,B C").unwrap_err().to_string().contains("'B C'"));
        for all in ["all", " All "] {
            let err = all.parse::<SymbolList>().unwrap_err().to_string();
            assert!(err.contains("'all' means every symbol") && err.contains("ALL,"), "{err}");
        }
        assert_eq!("ALL,".parse::<SymbolList>().unwrap().to_string(), "ALL");
    }

    #[test]
    fn missing_symbols_are_those_no_batch_held() {
        use std::sync::Arc;
        let asked: SymbolList = "B,A,C".parse().unwrap();
        let mut m = MissingSymbols::of(&asked);
        let batch = |s: &[&str]| {
            let col = Arc::new(arrow::array::StringArray::from(s.to_vec())) as arrow::array::ArrayRef;
            arrow::array::RecordBatch::try_from_iter([("symbol", col)]).unwrap()
        };
        m.see(&batch(&["A", "Z"]));
        m.see(&batch(&["C"]));
        assert_eq!(m.missing().map(Symbol::as_str).collect::<Vec<_>>(), ["B"]);
        assert_eq!(MissingSymbols::of(&[]).missing().count(), 0, "every symbol asked: none missing");
    }

    #[test]
    fn a_map_keyed_by_symbol_is_looked_up_with_text() {
        let map: std::collections::HashMap<Symbol, i32> = [(Symbol::new("A").unwrap(), 1)].into();
        assert_eq!(map.get("A"), Some(&1));
    }
}
