//! Configuration: a TOML file (`config/quantlake.toml` by default) with environment overrides, layered
//! by `figment`. Precedence, highest first: command-line flags (applied by the CLI), environment
//! (`QUANTLAKE_<SECTION>__<KEY>`, e.g. `QUANTLAKE_INGEST__CHUNK_SESSIONS=5`), the file, the defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sources::synthetic::SyntheticSettings;
use crate::table::{EngineSettings, LakeOptions};

/// The default config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/quantlake.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub lake: LakeConfig,
    pub ingest: IngestConfig,
    pub synthetic: SyntheticSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LakeConfig {
    /// Lake URL: a path, `file:///...` or `s3://bucket/prefix`. Overridden by `--lake` / `QUANTLAKE_LAKE`.
    pub root: String,
    /// Folder of extra dataset contracts (`*.toml`), besides the built-in `schemas/`.
    pub schemas_dir: Option<PathBuf>,
    /// How long replaced partition versions stay readable (time travel) before `vacuum` may remove them.
    pub history_retention: String,
    #[serde(flatten)]
    pub engine: EngineSettings,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self { root: "./lake".into(), schemas_dir: None, history_retention: "7d".into(), engine: EngineSettings::default() }
    }
}

impl LakeConfig {
    pub fn retention(&self) -> Result<Duration> {
        humantime::parse_duration(&self.history_retention)
            .map_err(|e| Error::Config(format!("lake.history_retention '{}': {e}", self.history_retention)))
    }

    pub fn options(&self) -> LakeOptions {
        LakeOptions { storage: Vec::new(), settings: self.engine.clone(), schemas_dir: self.schemas_dir.clone() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    /// Sessions per commit: each date partition is rewritten once per chunk.
    pub chunk_sessions: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { chunk_sessions: 10 }
    }
}

impl Config {
    /// Loads `path` (which must exist when `explicit`; the default path may be absent) and the environment.
    pub fn load(path: &Path, explicit: bool) -> Result<Self> {
        if explicit && !path.is_file() {
            return Err(Error::Config(format!("config file {} does not exist", path.display())));
        }
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed("QUANTLAKE_").split("__").ignore(&["LAKE", "CONFIG", "FAILPOINT", "LOG"]))
            .extract()
            .map_err(|e| Error::Config(format!("{} : {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn file_then_env_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("q.toml", "[lake]\nroot = \"s3://b/p\"\ncheckpoint_interval = 5\n[ingest]\nchunk_sessions = 3\n")?;
            jail.set_env("QUANTLAKE_INGEST__CHUNK_SESSIONS", "7");
            let c = Config::load(Path::new("q.toml"), true).map_err(|e| e.to_string())?;
            assert_eq!(c.lake.root, "s3://b/p");
            assert_eq!(c.lake.engine.checkpoint_interval, 5);
            assert_eq!(c.ingest.chunk_sessions, 7);
            assert_eq!(c.synthetic.seed, 42);
            assert!(Config::load(Path::new("missing.toml"), true).is_err());
            assert_eq!(Config::load(Path::new("missing.toml"), false).map_err(|e| e.to_string())?.lake.root, "./lake");
            Ok(())
        });
    }
}
