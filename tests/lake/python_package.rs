//! `import quantlake` (python/): tests/python/package run by pytest in the project's venv, where
//! scripts/test.sh installs the package's wheel, against the command line on the same lake, on local
//! disk and on the S3 test server; and the wheel alone in a fresh venv.

use crate::support::{Backend, TestLake, python, repo, stderr};

/// A lake of two synthetic symbols over four sessions, curated, with features and labels.
fn small_lake(backend: Backend) -> TestLake {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    // `json` asserts each command succeeded.
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAA,BBB",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-05",
    ]);
    t.json(&["curate", "--start", "2024-01-02", "--end", "2024-01-05"]);
    t.json(&["features", "--start", "2024-01-02", "--end", "2024-01-05"]);
    t
}

fn package_against_the_command_line(backend: Backend) {
    let t = small_lake(backend);
    let cli = t.cli();
    let mut pytest = std::process::Command::new(python());
    pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(repo().join("tests/python/package"))
        .envs(cli.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
        .env("QUANTLAKE_BIN", env!("CARGO_BIN_EXE_quantlake"))
        .env("QUANTLAKE_CONFIG", repo().join("tests/python/empty.toml"));
    let out = pytest.output().expect("run pytest");
    assert!(
        out.status.success(),
        "pytest failed (is the package installed? scripts/test.sh installs its wheel):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[test]
fn the_package_reads_as_the_command_line_on_local_disk() {
    package_against_the_command_line(Backend::Local);
}

#[test]
fn the_package_reads_as_the_command_line_on_s3() {
    package_against_the_command_line(Backend::S3);
}

/// The wheel scripts/test.sh built (as `pip install ./python` builds it), in the target directory.
fn wheel() -> std::path::PathBuf {
    let target = std::path::Path::new(env!("CARGO_BIN_EXE_quantlake")).ancestors().nth(2).expect("target directory");
    let wheels: Vec<_> = std::fs::read_dir(target.join("wheels"))
        .map(|dir| dir.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "whl")).collect())
        .unwrap_or_default();
    assert_eq!(wheels.len(), 1, "scripts/test.sh builds one wheel into {}/wheels", target.display());
    wheels.into_iter().next().unwrap()
}

/// One wheel for every CPython from 3.9 (abi3), installed with nothing else into a fresh venv, reads a
/// lake: pyarrow and polars are optional at run time.
#[test]
fn the_wheel_alone_reads_a_lake_in_a_fresh_venv() {
    let wheel = wheel();
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("quantlake-") && name.contains("-cp39-abi3-"), "{name}");
    let t = small_lake(Backend::Local);
    let home = tempfile::tempdir().expect("temp dir");
    let venv = home.path().join("venv");
    let made = std::process::Command::new("python3").arg("-m").arg("venv").arg(&venv).output().expect("python3");
    assert!(made.status.success(), "python3 -m venv: {}", stderr(&made));
    let pip = std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--no-index", "--no-deps"])
        .arg(&wheel)
        .output()
        .expect("pip");
    assert!(pip.status.success(), "pip install {}: {}", wheel.display(), stderr(&pip));
    let script = r#"
import importlib.util, sys, quantlake as ql
assert quantlake_home in ql.__file__, ql.__file__
lake = ql.Lake(sys.argv[1], config=sys.argv[2])
bars = lake.bars(["AAA", "BBB"], "2024-01-02", "2024-01-05", frequency="5m")
assert len(bars) == 2 * 4 * 78 and bars.column_names[:2] == ["symbol", "ts"], (len(bars), bars.column_names)
assert importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("polars") is None
try:
    bars.to_pandas()
    raise AssertionError("pandas without pyarrow")
except ModuleNotFoundError as e:
    assert "pyarrow" in str(e), e
print("read", len(bars), "bars")
"#;
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(format!("quantlake_home = {:?}\n{script}", venv.to_str().unwrap()))
        .arg(t.live_root())
        .arg(repo().join("tests/python/empty.toml"))
        .output()
        .expect("python");
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("read 624 bars"));
}
