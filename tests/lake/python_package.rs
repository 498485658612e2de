//! `import quantlake` (python/): tests/python/package run by pytest in the project's venv, where
//! scripts/test.sh installs the package (`maturin develop`), against the command line on the same
//! lake, on local disk and on the S3 test server.

use crate::support::{Backend, TestLake, python, repo, stderr};

fn package_against_the_command_line(backend: Backend) {
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
        "pytest failed (is the package installed? scripts/test.sh runs `maturin develop`):\n{}\n{}",
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
