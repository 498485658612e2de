//! Test set-up: lakes on local disk and on a real S3 server (moto, started here on 127.0.0.1), the
//! quantlake binary, and the Python readers. Everything talks to 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use quantlake::table::{Lake, LakeOptions};

pub const BUCKET: &str = "quantlake-test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

/// Runs an async test body once per backend: `both_backends!(name, body)` where `body(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                $body($crate::support::Backend::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                $body($crate::support::Backend::S3).await
            }
        }
    };
}

/// The checkout under test: the workspace root, two folders above the cli crate that builds these
/// tests. Read at run time (cargo sets it for test binaries): with a target directory shared between
/// checkouts, a compile-time path could name another checkout.
pub fn repo() -> PathBuf {
    let cli = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    cli.join("../..").canonicalize().expect("the workspace root")
}

/// The project venv's python (created by scripts/test.sh).
pub fn python() -> PathBuf {
    let p = std::env::var_os("QUANTLAKE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"))
        .join("bin/python");
    assert!(p.exists(), "{} is missing: run scripts/test.sh, which creates the test venv", p.display());
    p
}

struct S3Server {
    port: u16,
    _child: Mutex<Child>,
}

fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut child = Command::new(python())
            .arg(repo().join("tests/python/s3_server.py"))
            .arg(BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("moto port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("moto did not start: {line:?}"));
        S3Server { port, _child: Mutex::new(child) }
    })
}

pub fn s3_endpoint() -> String {
    format!("http://127.0.0.1:{}", s3_server().port)
}

/// A fresh, empty lake on one backend.
pub struct TestLake {
    pub backend: Backend,
    pub url: String,
    pub dir: Option<tempfile::TempDir>,
}

impl TestLake {
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::Local => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = dir.path().join("lake").display().to_string();
                Self { backend, url, dir: Some(dir) }
            }
            Backend::S3 => {
                s3_server();
                Self { backend, url: format!("s3://{BUCKET}/{}", uuid::Uuid::new_v4().simple()), dir: None }
            }
        }
    }

    /// The AWS_* variables the CLI and the Python readers use for this lake.
    pub fn env(&self) -> Vec<(String, String)> {
        match self.backend {
            Backend::Local => Vec::new(),
            Backend::S3 => vec![
                ("AWS_ENDPOINT_URL".into(), s3_endpoint()),
                ("AWS_ALLOW_HTTP".into(), "true".into()),
                ("AWS_ACCESS_KEY_ID".into(), "test".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
                ("AWS_REGION".into(), "us-east-1".into()),
            ],
        }
    }

    /// HTTP requests the S3 server has served under `key` of this lake (e.g. `_versions/`), by method;
    /// `None` on a local lake.
    pub async fn s3_requests(&self, key: &str) -> Option<std::collections::BTreeMap<String, u64>> {
        let lake = self.url.strip_prefix("s3://")?;
        let url = format!("{}/_requests?prefix=/{lake}/{key}", s3_endpoint());
        let client = reqwest::Client::builder().no_proxy().build().expect("http client");
        let body = client.get(url).send().await.expect("request counts").bytes().await.expect("counts");
        Some(serde_json::from_slice(&body).expect("counts as JSON"))
    }

    pub fn options(&self) -> LakeOptions {
        let storage = self
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_lowercase().replace("aws_endpoint_url", "aws_endpoint"), v))
            .collect();
        LakeOptions { storage, ..Default::default() }
    }

    pub async fn init(&self) -> Lake {
        Lake::init(&self.url, self.options()).await.expect("init lake")
    }

    /// The quantlake binary, pointed at this lake (QUANTLAKE_LAKE), with an empty config and no inherited AWS settings.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_quantlake"));
        c.arg("--config").arg(repo().join("tests/python/empty.toml"));
        let inherited = |k: &str| {
            ["AWS_", "QUANTLAKE_", "POLYGON_", "APCA_", "BACKFILL_"].iter().any(|p| k.starts_with(p))
                || ["MIN_TARGET_COVERAGE", "DAYS_BACK", "FEATURE_BREADTH_MIN_SYMBOLS", "FEATURE_BREADTH_WARN_SYMBOLS"]
                    .contains(&k)
        };
        for (k, _) in std::env::vars().filter(|(k, _)| inherited(k)) {
            c.env_remove(k);
        }
        // Through the environment, so a test can still pass --lake (the flag wins).
        c.env("QUANTLAKE_LAKE", &self.url)
            .env("QUANTLAKE_LOG_FILE", self.log_file())
            .envs(self.env())
            .stdin(Stdio::null());
        c
    }

    /// Where the CLI run by [`Self::cli`] appends its log lines (`logs/app.log` outside tests).
    pub fn log_file(&self) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.path().join("app.log"),
            None => {
                std::env::temp_dir().join(format!("quantlake-test-{}.log", self.url.rsplit('/').next().unwrap_or("s3")))
            }
        }
    }

    /// Runs the CLI and returns its output (any exit status).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().expect("run quantlake")
    }

    /// Runs the CLI, asserts success, returns stdout parsed as JSON (`--json` is added).
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli().arg("--json").args(args).output().expect("run quantlake");
        assert!(
            out.status.success(),
            "quantlake {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("quantlake {args:?}: bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Runs the CLI with `--json` and returns its exit code and report, for commands that report and
    /// exit by a verdict (0-2); asserts the command could run (not 3).
    pub fn json_report(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = self.cli().arg("--json").args(args).output().expect("run quantlake");
        let code = out.status.code().unwrap_or(-1);
        assert!(
            (0..3).contains(&code),
            "quantlake {args:?} could not run ({code}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("quantlake {args:?}: bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        (code, report)
    }

    /// Root and folder for the Python readers.
    pub fn live_root(&self) -> String {
        self.url.clone()
    }

    pub fn local_root(&self) -> Option<&Path> {
        self.dir.as_ref().map(|_| Path::new(&self.url))
    }

    /// Runs tests/python/read_live.py against this lake.
    pub fn python_read(&self, folder: &str, extra: &[&str]) -> Output {
        Command::new(python())
            .arg(repo().join("tests/python/read_live.py"))
            .arg(self.live_root())
            .arg(folder)
            .args(extra)
            .envs(self.env())
            .output()
            .expect("run python reader")
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// tests/python/vendor_server.py replaying `routes` (see its docstring) from tests/fixtures/vendor/<vendor>.
pub struct VendorServer {
    pub url: String,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl VendorServer {
    pub fn start(vendor: &str, routes: serde_json::Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("requests.jsonl");
        std::fs::write(&log, "").expect("log");
        let scenario = serde_json::json!({
            "fixtures": repo().join("tests/fixtures/vendor").join(vendor),
            "log": log,
            "routes": routes,
        });
        let path = dir.path().join("scenario.json");
        std::fs::write(&path, scenario.to_string()).expect("scenario");
        let mut child = Command::new(python())
            .arg(repo().join("tests/python/vendor_server.py"))
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vendor server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("vendor server port");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("vendor server did not start: {line:?}"));
        Self { url: format!("http://127.0.0.1:{port}"), log, child, _dir: dir }
    }

    /// Every request served so far: `{"path", "query", "headers"}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .expect("log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line"))
            .collect()
    }
}

impl Drop for VendorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
