//! Feature and label sets as their contracts define them (`[definition]` in `schemas/<set>.toml`): the
//! one place a set's features, horizons and parameters are written down, versioned with the dataset.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::kernels::Kernel;
use crate::contract::DatasetContract;
use crate::error::{Error, Result};

/// A feature set: features computed by the kernels from one input dataset.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSet {
    pub name: String,
    pub version: u32,
    pub input: String,
    pub bar_minutes: u32,
    pub features: Vec<Feature>,
    /// SHA-256 of the definition and the kernels' source: what a lineage record calls the code of a set.
    pub definition_sha256: String,
}

/// One feature: its column and its kernel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feature {
    pub name: String,
    pub kernel: Kernel,
}

/// A label set: forward targets computed by [`super::labels`].
#[derive(Debug, Clone, Serialize)]
pub struct LabelSet {
    pub name: String,
    pub version: u32,
    pub input: String,
    pub bar_minutes: u32,
    /// `equal_weight`, or a symbol.
    pub market: String,
    pub beta_sessions: u32,
    pub beta_min_sessions: u32,
    pub targets: Vec<Target>,
    pub definition_sha256: String,
}

/// One target of a label set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub name: String,
    pub horizon: Horizon,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Horizon {
    /// `n` bars ahead in the same session.
    Minutes(u32),
    /// The same minute `n` sessions ahead.
    Sessions(u32),
    /// Another target of the set minus beta times the market's.
    ResidualOf(String),
}

/// Either kind of set.
#[derive(Debug, Clone)]
pub enum SetDefinition {
    Features(FeatureSet),
    Labels(LabelSet),
}

impl SetDefinition {
    pub fn name(&self) -> &str {
        match self {
            SetDefinition::Features(f) => &f.name,
            SetDefinition::Labels(l) => &l.name,
        }
    }

    /// The set a contract defines, checked against its columns.
    pub fn from_contract(contract: &DatasetContract) -> Result<Self> {
        let bad = |reason: String| Error::InvalidContract { path: format!("schemas/{}.toml", contract.name), reason };
        let table = contract.definition.clone().ok_or_else(|| {
            Error::invalid(format!(
                "dataset '{}' is not a feature or label set (its contract has no [definition])",
                contract.name
            ))
        })?;
        let hash = definition_hash(&table);
        let raw: RawDefinition = table.try_into().map_err(|e: toml::de::Error| bad(format!("[definition]: {e}")))?;
        if raw.bar_minutes == 0 || raw.bar_minutes > 1440 {
            return Err(bad("[definition] bar_minutes must be 1 to 1440".into()));
        }
        let column_type = |name: &str| contract.columns.iter().find(|c| c.name == name).map(|c| c.data_type.as_str());
        match raw.kind.as_str() {
            "features" => {
                let mut features = Vec::new();
                for f in raw.features {
                    let kernel = f.kernel().map_err(bad)?;
                    kernel.check(&f.name).map_err(bad)?;
                    let want = if kernel.is_flag() { "bool" } else { "float64" };
                    if column_type(&f.name) != Some(want) {
                        return Err(bad(format!("feature '{}' needs a {want} column of that name", f.name)));
                    }
                    features.push(Feature { name: f.name, kernel });
                }
                if features.is_empty() {
                    return Err(bad("[definition] lists no features".into()));
                }
                for required in ["symbol", "ts", "available_at", "minute_idx"] {
                    if column_type(required).is_none() {
                        return Err(bad(format!("a feature set needs a '{required}' column")));
                    }
                }
                Ok(SetDefinition::Features(FeatureSet {
                    name: contract.name.clone(),
                    version: raw.version,
                    input: raw.input,
                    bar_minutes: raw.bar_minutes,
                    features,
                    definition_sha256: hash,
                }))
            }
            "labels" => {
                let mut targets = Vec::new();
                for t in &raw.targets {
                    let horizon = match (t.horizon_minutes, t.horizon_sessions, &t.residual_of) {
                        (Some(n), None, None) if n > 0 => Horizon::Minutes(n),
                        (None, Some(n), None) if n > 0 => Horizon::Sessions(n),
                        (None, None, Some(of))
                            if raw.targets.iter().any(|o| &o.name == of && o.residual_of.is_none()) =>
                        {
                            Horizon::ResidualOf(of.clone())
                        }
                        _ => {
                            return Err(bad(format!(
                                "target '{}' needs exactly one of horizon_minutes > 0, horizon_sessions > 0, residual_of = <a plain target>",
                                t.name
                            )));
                        }
                    };
                    if column_type(&t.name) != Some("float64") {
                        return Err(bad(format!("target '{}' needs a float64 column of that name", t.name)));
                    }
                    if !matches!(horizon, Horizon::ResidualOf(_))
                        && column_type(&format!("{}_end", t.name)) != Some("timestamp[us, UTC]")
                    {
                        return Err(bad(format!("target '{}' needs a timestamp column '{}_end'", t.name, t.name)));
                    }
                    targets.push(Target { name: t.name.clone(), horizon });
                }
                if targets.is_empty() {
                    return Err(bad("[definition] lists no targets".into()));
                }
                if raw.beta_sessions < 2 || raw.beta_min_sessions < 2 || raw.beta_min_sessions > raw.beta_sessions {
                    return Err(bad("[definition] needs 2 <= beta_min_sessions <= beta_sessions".into()));
                }
                let market = raw.market.unwrap_or_else(|| "equal_weight".into());
                if market != "equal_weight" {
                    crate::symbol::Symbol::new(&market).map_err(|e| bad(format!("market: {e}")))?;
                }
                Ok(SetDefinition::Labels(LabelSet {
                    name: contract.name.clone(),
                    version: raw.version,
                    input: raw.input,
                    bar_minutes: raw.bar_minutes,
                    market,
                    beta_sessions: raw.beta_sessions,
                    beta_min_sessions: raw.beta_min_sessions,
                    targets,
                    definition_sha256: hash,
                }))
            }
            other => Err(bad(format!("[definition] kind '{other}' is neither 'features' nor 'labels'"))),
        }
    }
}

impl FeatureSet {
    /// The most bars after its own any feature reads (0 for a set without lookahead).
    pub fn lookahead(&self) -> u32 {
        self.features.iter().map(|f| f.kernel.lookahead()).max().unwrap_or(0)
    }

    /// Microseconds from a row's `ts` to when all its features are known.
    pub fn availability_delay_us(&self) -> i64 {
        i64::from(self.bar_minutes) * 60_000_000 * (1 + i64::from(self.lookahead()))
    }

    pub fn columns(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }
}

impl LabelSet {
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The plain target a residual one falls back to (`fwd_ret_resid_15m` -> `fwd_ret_15m`).
    pub fn fallback_of(&self, name: &str) -> Option<&str> {
        match &self.target(name)?.horizon {
            Horizon::ResidualOf(of) => Some(of),
            _ => None,
        }
    }

    /// How many sessions after a row's own `target` reads prices (0 within the session; a residual's
    /// is its base's): a model fitted on sessions through D has seen prices through D plus this.
    pub fn sessions_ahead(&self, target: &str) -> u32 {
        match self.target(target).map(|t| &t.horizon) {
            Some(Horizon::Sessions(n)) => *n,
            // A residual's base is a plain target (the parser checks it).
            Some(Horizon::ResidualOf(of)) => self.sessions_ahead(of),
            _ => 0,
        }
    }

    /// The column holding when `target`'s label is fully known (a residual's is its base's).
    pub fn end_column(&self, target: &str) -> Option<String> {
        match &self.target(target)?.horizon {
            Horizon::ResidualOf(of) => Some(format!("{of}_end")),
            _ => Some(format!("{target}_end")),
        }
    }
}

/// The hash of a definition together with the code that computes it.
fn definition_hash(table: &toml::Table) -> String {
    let mut h = Sha256::new();
    h.update(toml::to_string(table).unwrap_or_default().as_bytes());
    h.update(include_str!("kernels.rs").as_bytes());
    for code in [
        include_str!("labels.rs"),
        include_str!("labels/bars.rs"),
        include_str!("labels/daily.rs"),
        include_str!("labels/forward.rs"),
    ] {
        h.update(code.as_bytes());
    }
    hex::encode(h.finalize())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    kind: String,
    version: u32,
    input: String,
    #[serde(default = "one")]
    bar_minutes: u32,
    #[serde(default)]
    features: Vec<RawFeature>,
    #[serde(default)]
    targets: Vec<RawTarget>,
    #[serde(default)]
    market: Option<String>,
    #[serde(default = "sixty")]
    beta_sessions: u32,
    #[serde(default = "twenty")]
    beta_min_sessions: u32,
}

fn one() -> u32 {
    1
}
fn sixty() -> u32 {
    60
}
fn twenty() -> u32 {
    20
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeature {
    name: String,
    kernel: String,
    lag: Option<i32>,
    window: Option<usize>,
    k: Option<f64>,
}

impl RawFeature {
    fn kernel(&self) -> std::result::Result<Kernel, String> {
        let need = |what: &str| format!("feature '{}': kernel '{}' needs '{what}'", self.name, self.kernel);
        let window = || self.window.ok_or_else(|| need("window"));
        Ok(match self.kernel.as_str() {
            "log_return" => Kernel::LogReturn { lag: self.lag.ok_or_else(|| need("lag"))? },
            "return_std" => Kernel::ReturnStd { window: window()? },
            "return_outlier" => Kernel::ReturnOutlier { window: window()?, k: self.k.ok_or_else(|| need("k"))? },
            "vwap" => Kernel::Vwap { window: window()? },
            "rsi" => Kernel::Rsi { window: window()? },
            other => {
                return Err(format!(
                    "feature '{}': unknown kernel '{other}' (known: log_return, return_std, return_outlier, vwap, rsi)",
                    self.name
                ));
            }
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    horizon_minutes: Option<u32>,
    horizon_sessions: Option<u32>,
    residual_of: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Contracts;

    #[test]
    fn the_shipped_sets_parse() {
        let contracts = Contracts::builtin();
        let SetDefinition::Features(f) =
            SetDefinition::from_contract(&contracts.get("features_price_1m_v1").unwrap()).unwrap()
        else {
            panic!("a feature set")
        };
        assert_eq!(f.columns(), ["ret_1", "ret_5", "ret_15", "ret_60", "vol_30", "is_outlier", "vwap_30", "rsi_14"]);
        assert_eq!(f.lookahead(), 0);
        assert_eq!(f.availability_delay_us(), 60_000_000);
        let SetDefinition::Labels(l) =
            SetDefinition::from_contract(&contracts.get("labels_fwd_ret_v1").unwrap()).unwrap()
        else {
            panic!("a label set")
        };
        assert_eq!(l.fallback_of("fwd_ret_resid_15m"), Some("fwd_ret_15m"));
        assert_eq!(l.fallback_of("fwd_ret_15m"), None);
        assert_eq!(l.end_column("fwd_ret_resid_1d").as_deref(), Some("fwd_ret_1d_end"));
        let ahead = ["fwd_ret_15m", "fwd_ret_resid_15m", "fwd_ret_1d", "fwd_ret_resid_1d"].map(|t| l.sessions_ahead(t));
        assert_eq!(ahead, [0, 0, 1, 1]);
        assert!(
            SetDefinition::from_contract(&contracts.get("curated_1m_bars").unwrap())
                .unwrap_err()
                .to_string()
                .contains("no [definition]")
        );
    }

    #[test]
    fn bad_definitions_name_the_feature() {
        let text = include_str!("../../../../schemas/features_price_1m_v1.toml")
            .replace("kernel = \"rsi\", window = 14", "kernel = \"rsi\"");
        let c = DatasetContract::parse("x.toml", &text).unwrap();
        assert!(
            SetDefinition::from_contract(&c)
                .unwrap_err()
                .to_string()
                .contains("feature 'rsi_14': kernel 'rsi' needs 'window'")
        );
        let text = include_str!("../../../../schemas/features_price_1m_v1.toml")
            .replace("kernel = \"vwap\"", "kernel = \"vwapp\"");
        let c = DatasetContract::parse("x.toml", &text).unwrap();
        assert!(SetDefinition::from_contract(&c).unwrap_err().to_string().contains("unknown kernel 'vwapp'"));
    }
}
