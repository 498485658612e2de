//! Configuration: a TOML file (`config/quantlake.toml` by default) with environment overrides, layered
//! by `figment`. Precedence, highest first: command-line flags (applied by the CLI), environment
//! (`QUANTLAKE_<SECTION>__<KEY>`, e.g. `QUANTLAKE_INGEST__CHUNK_SESSIONS=5`, and the runbooks' own names
//! in [`CONTRACT_ENV`] such as `BACKFILL_TARGET_DAYS` or `POLYGON_API_KEY`), the file, the defaults.
//!
//! Each section's settings type lives with the module it configures (`[ingest]` is
//! [`IngestSettings`], `[curate]` is [`CurateSettings`], ...); this module only gathers and loads
//! them, so it sits above every module it configures and none of them imports it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::adv::AdvSettings;
use crate::curate::CurateSettings;
use crate::dq::HealthSettings;
use crate::error::{Error, Result};
use crate::features::FeaturesSettings;
use crate::ingest::IngestSettings;
use crate::models::ModelSettings;
use crate::ops::alerts::AlertSettings;
use crate::ops::jobs::JobSettings;
use crate::ops::schedule::ScheduleSettings;
use crate::ops::tasks::backfill::BackfillSettings;
use crate::ops::tasks::daily_run::{PipelineSettings, RunSettings};
use crate::reference::corporate_actions::CorporateActionSettings;
use crate::reference::securities::SecuritySettings;
pub use crate::sources::Secret;
use crate::sources::SourceSettings;
use crate::sources::alpaca::AlpacaSettings;
use crate::sources::polygon::PolygonSettings;
use crate::sources::synthetic::SyntheticSettings;
use crate::sources::tws::TwsSettings;
use crate::table::{EngineSettings, LakeOptions};
use crate::universe::UniverseSettings;

/// The default config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/quantlake.toml";

/// The whole configuration, one field per section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub lake: LakeConfig,
    pub ingest: IngestSettings,
    pub synthetic: SyntheticSettings,
    pub polygon: PolygonSettings,
    pub alpaca: AlpacaSettings,
    pub tws: TwsSettings,
    pub universe: UniverseSettings,
    pub securities: SecuritySettings,
    pub backfill: BackfillSettings,
    pub curate: CurateSettings,
    pub health: HealthSettings,
    pub features: FeaturesSettings,
    pub corporate_actions: CorporateActionSettings,
    pub adv: AdvSettings,
    pub models: ModelSettings,
    pub run: RunSettings,
    pub schedule: ScheduleSettings,
    pub jobs: JobSettings,
    pub logging: LoggingSettings,
    pub alerts: AlertSettings,
}

/// `[logging]`: where every command appends its log lines (besides stderr), so the runbooks' `grep`
/// patterns work on one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingSettings {
    /// The log file, relative to the working directory; empty: none. `--log-file` overrides it.
    /// Unset: [`LoggingSettings::default_file`], beside the lake (never in whatever folder a command
    /// runs from).
    pub file: Option<String>,
    /// The file's level filter (`RUST_LOG` syntax); stderr follows `RUST_LOG` (default warn).
    pub level: String,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self { file: None, level: "info".into() }
    }
}

impl LoggingSettings {
    /// The log file of a lake at `lake_url` when `file` is unset: `logs/app.log` beside a local lake's
    /// folder (`./lake` gives `./logs/app.log`, the runbooks' path), or, for a lake on S3, the user's
    /// state directory (`$XDG_STATE_HOME/quantlake/logs/app.log`, else `~/.local/state/...`; none
    /// without a home).
    pub fn default_file(lake_url: &str) -> Option<PathBuf> {
        if let Ok(crate::storage::LakeLocation::Local(path)) = crate::storage::LakeLocation::parse(lake_url) {
            let beside = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            return Some(beside.join("logs").join("app.log"));
        }
        let state = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/state"))
        })?;
        Some(state.join("quantlake").join("logs").join("app.log"))
    }
}

/// Environment variables the runbooks already use, and the setting each overrides. They rank with
/// the `QUANTLAKE_` variables: above the file, below flags.
pub const CONTRACT_ENV: &[(&str, &str)] = &[
    ("BACKFILL_TARGET_DAYS", "backfill.target_days"),
    ("BACKFILL_MIN_STEP", "backfill.min_step"),
    ("BACKFILL_MAX_STEP", "backfill.max_step"),
    ("BACKFILL_SLOW_THRESHOLD", "backfill.slow_threshold"),
    ("BACKFILL_SLEEP_BETWEEN_SEC", "backfill.sleep_between_sec"),
    ("MIN_TARGET_COVERAGE", "backfill.min_target_coverage"),
    ("MIN_TARGET_COVERAGE", "health.min_target_coverage"),
    ("DAYS_BACK", "ingest.days_back"),
    ("DAYS_BACK", "health.target_days_back"),
    ("FEATURE_BREADTH_MIN_SYMBOLS", "universe.breadth_min_symbols"),
    ("FEATURE_BREADTH_WARN_SYMBOLS", "universe.breadth_warn_symbols"),
];

/// The runbooks' variables as figment providers; a variable may set several keys (`DAYS_BACK` is both
/// how far an ingest reaches back and the target-coverage window).
fn contract_env() -> Figment {
    CONTRACT_ENV.iter().fold(Figment::new(), |f, &(name, key)| {
        f.merge(Env::raw().filter_map(move |k| k.as_str().eq_ignore_ascii_case(name).then(|| key.into())))
    })
}

/// The `QUANTLAKE_<SECTION>__<KEY>` variables (the ones the command line reads itself left out).
fn quantlake_env() -> Env {
    Env::prefixed("QUANTLAKE_").split("__").ignore(&["LAKE", "CONFIG", "FAILPOINT", "LOG"])
}

/// Refuses a key of `given` that no setting reads: a misspelt key would leave its setting at the
/// default in silence. The error names the key, the closest known one, and the section's keys.
/// `sections_only`: top-level keys that are not tables are not settings' and pass.
fn check_keys(given: &Figment, source: &str, sections_only: bool) -> Result<()> {
    // A file that cannot be parsed is reported by the extraction that follows, with its place.
    let Ok(mut given) = given.extract::<figment::value::Dict>() else { return Ok(()) };
    if sections_only {
        given.retain(|_, v| matches!(v, figment::value::Value::Dict(..)));
    }
    let known = serde_json::to_value(Config::default()).map_err(|e| Error::Config(e.to_string()))?;
    let serde_json::Value::Object(known) = known else { return Ok(()) };
    match unknown_key(&given, &known, "") {
        None => Ok(()),
        Some((key, suggestion, siblings)) => {
            let hint = suggestion.map(|s| format!("; did you mean '{s}'?")).unwrap_or_default();
            Err(Error::Config(format!(
                "{source}: unknown setting '{key}'{hint} (known here: {}; docs/configuration.md lists them all)",
                siblings.join(", ")
            )))
        }
    }
}

/// The first key of `given` not in `known` (the defaults, serialized): its dotted path, the closest
/// known key at its level, and that level's keys. An empty table or a list in `known` (a map or a
/// list setting) takes any keys.
fn unknown_key(
    given: &figment::value::Dict,
    known: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
) -> Option<(String, Option<String>, Vec<String>)> {
    for (key, value) in given {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match known.get(key) {
            None => {
                let closest = crate::error::closest(key, known.keys().map(String::as_str))
                    .map(|k| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") });
                return Some((path, closest, known.keys().cloned().collect()));
            }
            Some(serde_json::Value::Object(inner)) if !inner.is_empty() => {
                if let figment::value::Value::Dict(_, dict) = value
                    && let Some(found) = unknown_key(dict, inner, &path)
                {
                    return Some(found);
                }
            }
            Some(_) => {}
        }
    }
    None
}

/// String-valued variables (keys and URLs), applied verbatim: figment would read an all-digit key as
/// a number.
const CONTRACT_ENV_STRINGS: &[&str] =
    &["POLYGON_API_KEY", "POLYGON_BASE_URL", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_DATA_URL"];

/// A config error without the quoted source lines a TOML parse error carries (a line could hold a key):
/// the first line says where, the last what.
fn without_source_lines(message: &str) -> String {
    let lines: Vec<&str> = message.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}: {}", last.trim()),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LakeConfig {
    /// Lake URL: a path, `file:///...` or `s3://bucket/prefix`. Overridden by `--lake` / `QUANTLAKE_LAKE`.
    pub root: String,
    /// Folder of extra dataset contracts (`*.toml`), besides the built-in `schemas/`.
    pub schemas_dir: Option<PathBuf>,
    /// How long replaced partition versions stay readable (time travel) before `vacuum` may remove them.
    #[serde(with = "crate::duration")]
    pub history_retention: Duration,
    #[serde(flatten)]
    pub engine: EngineSettings,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            root: "./lake".into(),
            schemas_dir: None,
            history_retention: Duration::from_secs(7 * 86_400),
            engine: EngineSettings::default(),
        }
    }
}

impl LakeConfig {
    pub fn options(&self) -> LakeOptions {
        LakeOptions { storage: Vec::new(), settings: self.engine.clone(), schemas_dir: self.schemas_dir.clone() }
    }
}

impl Config {
    /// Loads `path` (which must exist when `explicit`; the default path may be absent) and the environment.
    pub fn load(path: &Path, explicit: bool) -> Result<Self> {
        if explicit && !path.is_file() {
            return Err(Error::Config(format!("config file {} does not exist", path.display())));
        }
        check_keys(&Figment::from(Toml::file(path)), &format!("{}", path.display()), false)?;
        // `QUANTLAKE_<NAME>` without a section is another tool's (`QUANTLAKE_TOKEN`, the benches').
        check_keys(&Figment::from(quantlake_env()), "the environment (QUANTLAKE_<SECTION>__<KEY>)", true)?;
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(quantlake_env())
            .merge(contract_env())
            .extract()
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), without_source_lines(&e.to_string()))))?;
        config.curate.expected_universe = config.securities.default_universe.clone();
        for name in CONTRACT_ENV_STRINGS {
            if let Some(value) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
                config.set_string(name, value);
            }
        }
        Ok(config)
    }

    /// The sections the daily pipeline's stages read.
    pub fn pipeline(&self) -> PipelineSettings<'_> {
        PipelineSettings {
            run: &self.run,
            jobs: &self.jobs,
            backfill: &self.backfill,
            adv: &self.adv,
            alerts: &self.alerts,
            ingest: &self.ingest,
            sources: self.sources(),
            curate: &self.curate,
            features: &self.features,
            health: &self.health,
            universe: &self.universe,
            securities: &self.securities,
            models: &self.models,
        }
    }

    /// The bar sources' sections, for [`crate::sources::AnySource::open`].
    pub fn sources(&self) -> SourceSettings<'_> {
        SourceSettings { synthetic: &self.synthetic, polygon: &self.polygon, alpaca: &self.alpaca, tws: &self.tws }
    }

    fn set_string(&mut self, env: &str, value: String) {
        match env {
            "POLYGON_API_KEY" => self.polygon.api_key = Some(Secret::new(value)),
            "POLYGON_BASE_URL" => self.polygon.base_url = value,
            "APCA_API_KEY_ID" => self.alpaca.key_id = Some(Secret::new(value)),
            "APCA_API_SECRET_KEY" => self.alpaca.secret_key = Some(Secret::new(value)),
            "APCA_API_DATA_URL" => self.alpaca.base_url = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DEFAULT_PATH);
        let text = std::fs::read_to_string(&path).unwrap();
        let shipped: Config = toml::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&shipped).unwrap(), serde_json::to_value(Config::default()).unwrap());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn file_then_env_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "q.toml",
                "[lake]\nroot = \"s3://b/p\"\ncheckpoint_interval = 5\n[ingest]\nchunk_sessions = 3\n",
            )?;
            jail.set_env("QUANTLAKE_INGEST__CHUNK_SESSIONS", "7");
            jail.set_env("BACKFILL_TARGET_DAYS", "30");
            jail.set_env("POLYGON_API_KEY", "12345");
            let c = Config::load(Path::new("q.toml"), true).map_err(|e| e.to_string())?;
            assert_eq!(c.lake.root, "s3://b/p");
            assert_eq!(c.lake.engine.checkpoint_interval, 5);
            assert_eq!(c.ingest.chunk_sessions, 7);
            assert_eq!(c.synthetic.seed, 42);
            assert_eq!(c.backfill.target_days, 30);
            assert_eq!(c.polygon.api_key.as_ref().map(Secret::expose), Some("12345"));
            assert_eq!(format!("{:?}", c.polygon.api_key), "Some(***)");
            // Through figment, an all-digit key is a number: still read, never quoted in an error.
            jail.set_env("QUANTLAKE_ALPACA__KEY_ID", "987654");
            let c = Config::load(Path::new("q.toml"), true).map_err(|e| e.to_string())?;
            assert_eq!(c.alpaca.key_id.as_ref().map(Secret::expose), Some("987654"));
            jail.create_file("bad.toml", "[polygon]\napi_key = \"sk-live-secret\" x\n")?;
            let err = Config::load(Path::new("bad.toml"), true).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("bad.toml") && !err.contains("sk-live-secret"), "{err}");
            assert!(Config::load(Path::new("missing.toml"), true).is_err());
            assert_eq!(Config::load(Path::new("missing.toml"), false).map_err(|e| e.to_string())?.lake.root, "./lake");
            Ok(())
        });
    }

    #[test]
    fn the_log_file_defaults_beside_the_lake() {
        let file = |url: &str| LoggingSettings::default_file(url).map(|p| p.display().to_string());
        assert_eq!(file("./lake").as_deref(), Some("./logs/app.log"));
        assert_eq!(file("lake").as_deref(), Some("./logs/app.log"));
        assert_eq!(file("/data/lake").as_deref(), Some("/data/logs/app.log"));
        assert_eq!(file("file:///data/q/lake").as_deref(), Some("/data/q/logs/app.log"));
        let s3 = file("s3://bucket/prefix").unwrap_or_default();
        assert!(s3.ends_with("quantlake/logs/app.log") && !s3.starts_with("logs"), "{s3}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn a_misspelt_key_is_refused_with_the_closest_one() {
        figment::Jail::expect_with(|jail| {
            let load =
                |file: &str| Config::load(Path::new(file), true).err().map(|e| e.to_string()).unwrap_or_default();
            jail.create_file("typo.toml", "[ingest]\nchunk_sesions = 3\n")?;
            let err = load("typo.toml");
            assert!(err.contains("unknown setting 'ingest.chunk_sesions'"), "{err}");
            assert!(err.contains("did you mean 'ingest.chunk_sessions'?") && err.contains("typo.toml"), "{err}");
            jail.create_file("section.toml", "[ingset]\nchunk_sessions = 3\n")?;
            assert!(load("section.toml").contains("unknown setting 'ingset'; did you mean 'ingest'?"));
            // The engine's settings are flattened into [lake]; every shipped key is known.
            jail.create_file("lake.toml", "[lake]\nroot = \"x\"\ncheckpoint_interval = 5\ncheckpoint_intervall = 5\n")?;
            assert!(
                load("lake.toml").contains("'lake.checkpoint_intervall'; did you mean 'lake.checkpoint_interval'?")
            );
            let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DEFAULT_PATH);
            assert!(Config::load(&shipped, true).is_ok());
            jail.create_file("ok.toml", "")?;
            jail.set_env("QUANTLAKE_INGEST__CHUNK_SESIONS", "7");
            let err = load("ok.toml");
            assert!(err.contains("the environment") && err.contains("'ingest.chunk_sesions'"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn durations_are_read_once_and_a_bad_one_names_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("q.toml", "[alerts]\nrepeat_after = \"30m\"\n[jobs]\nlease = 90\n")?;
            jail.set_env("QUANTLAKE_TWS__PACING__WINDOW", "5m");
            let c = Config::load(Path::new("q.toml"), true).map_err(|e| e.to_string())?;
            assert_eq!(c.alerts.repeat_after, Duration::from_secs(1800));
            assert_eq!(c.jobs.lease, Duration::from_secs(90), "a number of seconds");
            assert_eq!(c.tws.pacing.window, Duration::from_secs(300));
            jail.create_file("bad.toml", "[alerts]\nrepeat_after = \"often\"\n")?;
            let err = Config::load(Path::new("bad.toml"), true).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("repeat_after") && err.contains("'often'"), "{err}");
            Ok(())
        });
    }
}
