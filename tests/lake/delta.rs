//! Every dataset is also a Delta Lake table: deltalake, polars and DuckDB's delta extension read every
//! version of three datasets (after ingests, a stage, an aborted stage, a restore, a schema evolution,
//! a regroup, a checkpoint and a vacuum), by version and by time, each equal to quantlake's read of
//! that snapshot; a crash between a commit and its Delta version is caught up by `export delta`,
//! `recover` and the next writer; `export delta` rebuilds a removed log byte for byte; `verify`
//! compares the log with the manifest.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::both_backends;
use crate::support::{Backend, TestLake, python, repo, stderr};

const DATASETS: &[&str] = &["raw_synthetic_bars", "curated_1m_bars", "dq_metrics"];

/// Contracts as an older quantlake had them (dq_metrics in `date=` partitions), with raw bars at
/// schema version `raw_version` (2 adds a nullable `exchange` column).
fn contracts(dir: &Path, date_partitioned: bool, raw_version: u32) {
    std::fs::create_dir_all(dir).unwrap();
    if date_partitioned {
        let text = std::fs::read_to_string(repo().join("schemas/dq_metrics.toml")).unwrap();
        std::fs::write(
            dir.join("dq_metrics.toml"),
            text.replace("partitioning = \"month\"", "partitioning = \"date\""),
        )
        .unwrap();
    }
    if raw_version > 1 {
        let text = std::fs::read_to_string(repo().join("schemas/raw_synthetic_bars.toml")).unwrap();
        let text = text
            .replace("schema_version = 1", &format!("schema_version = {raw_version}"))
            .replace("\n]\n", "\n  { name = \"exchange\", type = \"utf8\", nullable = true },\n]\n");
        std::fs::write(dir.join("raw_synthetic_bars.toml"), text).unwrap();
    }
}

fn ql(t: &TestLake, schemas: &Path, args: &[&str]) -> std::process::Output {
    let out = t.cli().env("QUANTLAKE_LAKE__SCHEMAS_DIR", schemas).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    out
}

fn ingest<'a>(start: &'a str, end: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL,MSFT",
        "--start",
        start,
        "--end",
        end,
        "--seed",
        seed,
        "--quiet",
    ]
}

/// The Delta log's objects under `_versions/<dataset>/_delta_log/`, with their bytes.
async fn delta_log(t: &TestLake, dataset: &str) -> BTreeMap<String, Vec<u8>> {
    let lake = quantlake::table::Lake::open(&t.url, t.options()).await.unwrap();
    let store = lake.store();
    let root = lake.dataset(dataset).unwrap().paths().delta_log_root();
    let mut out = BTreeMap::new();
    for m in store.list(&root).await.unwrap() {
        let name = m.location.filename().unwrap().to_string();
        out.insert(name, store.get(&m.location).await.unwrap().unwrap().to_vec());
    }
    out
}

fn head(log: &BTreeMap<String, Vec<u8>>) -> u64 {
    log.keys().filter_map(|k| k.strip_suffix(".json")?.parse().ok()).max().unwrap_or(0)
}

fn latest(t: &TestLake, schemas: &Path, dataset: &str) -> u64 {
    let out = ql(t, schemas, &["--json", "snapshots", dataset, "--limit", "1"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["snapshot_id"].as_u64().unwrap()
}

/// Runs tests/python/read_delta.py: every version of `datasets`, three readers, against quantlake.
fn read_every_version(t: &TestLake, schemas: &Path, datasets: &[&str]) -> Value {
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/python/read_delta.py"))
        .arg(env!("CARGO_BIN_EXE_quantlake"))
        .arg(&t.url)
        .arg(repo().join("tests/python/empty.toml"))
        .args(datasets)
        .env("QUANTLAKE_LAKE__SCHEMAS_DIR", schemas)
        .envs(t.env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn every_version_reads_in_three_engines(backend: Backend) {
    let t = TestLake::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let (old, evolved, current) = (dir.path().join("old"), dir.path().join("evolved"), dir.path().join("current"));
    contracts(&old, true, 1);
    contracts(&evolved, true, 2);
    contracts(&current, false, 2);

    ql(&t, &old, &["init"]);
    ql(&t, &old, &ingest("2024-01-29", "2024-02-01", "1"));
    ql(&t, &old, &["curate", "--start", "2024-01-29", "--end", "2024-02-01"]); // a stage
    ql(&t, &old, &ingest("2024-01-31", "2024-02-02", "2")); // replaces two sessions
    // A stage killed before its decision, then undone by recover: a version with no data change.
    let killed = t
        .cli()
        .env("QUANTLAKE_LAKE__SCHEMAS_DIR", &old)
        .env("QUANTLAKE_FAILPOINT", "stage.before_decide")
        .args(["curate", "--start", "2024-01-31", "--end", "2024-02-02"])
        .output()
        .unwrap();
    assert!(!killed.status.success());
    let recovered = ql(&t, &old, &["--json", "recover"]);
    assert!(
        String::from_utf8_lossy(&recovered.stdout).contains("aborted"),
        "{}",
        String::from_utf8_lossy(&recovered.stdout)
    );
    ql(&t, &old, &["curate", "--start", "2024-01-31", "--end", "2024-02-02"]);
    ql(&t, &evolved, &ingest("2024-02-05", "2024-02-05", "3")); // schema evolution: a new metaData
    ql(&t, &evolved, &["snapshot", "restore", "raw_synthetic_bars", "2"]);
    ql(&t, &current, &["compact"]); // regroups dq_metrics into month=, rewrites raw files to schema 2
    for (i, day) in ["2024-02-06", "2024-02-07", "2024-02-08", "2024-02-09", "2024-02-12"].iter().enumerate() {
        ql(&t, &current, &ingest(day, day, &(10 + i).to_string()));
    }
    let raw = latest(&t, &current, "raw_synthetic_bars");
    assert!(raw >= 10, "raw bars reach a checkpoint: {raw} snapshots");

    let log = delta_log(&t, "raw_synthetic_bars").await;
    assert_eq!(head(&log), raw, "{:?}", log.keys());
    assert!(log.contains_key("00000000000000000010.checkpoint.parquet") && log.contains_key("_last_checkpoint"));
    let metas = |log: &BTreeMap<String, Vec<u8>>| -> Vec<Value> {
        log.iter()
            .filter(|(k, _)| k.ends_with(".json"))
            .flat_map(|(_, b)| {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .filter_map(|a| a.get("metaData").cloned())
            .collect()
    };
    let schemas: Vec<bool> =
        metas(&log).iter().map(|m| m["schemaString"].as_str().unwrap().contains("exchange")).collect();
    assert_eq!(schemas, [false, true], "the schema evolution is a new metaData");
    let metas = metas(&delta_log(&t, "dq_metrics").await);
    let columns: Vec<&Value> = metas.iter().map(|m| &m["partitionColumns"]).collect();
    assert_eq!(columns.first().and_then(|c| c.get(0)), Some(&Value::from("date")), "{columns:?}");
    assert_eq!(columns.last().and_then(|c| c.get(0)), Some(&Value::from("month")), "regrouped: {columns:?}");
    let curated = delta_log(&t, "curated_1m_bars").await;
    let aborted = curated.values().filter(|b| String::from_utf8_lossy(b).contains("\"aborted\":true")).count();
    assert_eq!(aborted, 1, "the aborted stage's version");

    let seen = read_every_version(&t, &current, DATASETS);
    for ds in DATASETS {
        let versions = seen[ds]["versions"].as_object().unwrap();
        assert_eq!(versions.len() as u64, latest(&t, &current, ds) + 1, "{ds}: every version from 0 read: {seen}");
    }
    assert_eq!(seen["dq_metrics"]["partition_columns"], serde_json::json!(["month"]));

    // Vacuum keeps the latest snapshot (and a tagged one, through quantlake only): the log keeps that
    // version with a checkpoint to start from, and it still reads the same.
    ql(&t, &current, &["snapshot", "tag", "raw_synthetic_bars", "kept", "--snapshot", "3"]);
    ql(&t, &current, &["vacuum", "--retention", "0s"]);
    let log = delta_log(&t, "raw_synthetic_bars").await;
    let commits: Vec<&String> = log.keys().filter(|k| k.ends_with(".json")).collect();
    assert_eq!(commits, [&format!("{raw:020}.json")], "{:?}", log.keys());
    assert!(log.contains_key(&format!("{raw:020}.checkpoint.parquet")));
    let seen = read_every_version(&t, &current, &["raw_synthetic_bars"]);
    let read: Vec<&String> = seen["raw_synthetic_bars"]["versions"].as_object().unwrap().keys().collect();
    assert_eq!(read, [&raw.to_string()]);
    let tagged = ql(
        &t,
        &current,
        &["--json", "query", "SELECT count(*) AS n FROM raw_synthetic_bars", "--as-of", "raw_synthetic_bars@kept"],
    );
    assert!(String::from_utf8_lossy(&tagged.stdout).contains("\"n\""), "the tagged snapshot reads through quantlake");
    let verify = t.cli().env("QUANTLAKE_LAKE__SCHEMAS_DIR", &current).args(["verify", "--history"]).output().unwrap();
    assert!(verify.status.success(), "{}{}", String::from_utf8_lossy(&verify.stdout), stderr(&verify));
}
both_backends!(every_version_test, every_version_reads_in_three_engines);

/// A crash after the commit, before its Delta version: `export delta`, `recover` and the next write
/// each catch the log up; a removed log is rebuilt byte for byte; `verify` finds a version altered.
async fn the_log_catches_up_and_is_checked(backend: Backend) {
    let t = TestLake::new(backend);
    let schemas = tempfile::tempdir().unwrap();
    let s = schemas.path();
    ql(&t, s, &["init"]);
    ql(&t, s, &ingest("2024-01-02", "2024-01-03", "1"));
    let crash = |seed: &str| {
        let out = t
            .cli()
            .env("QUANTLAKE_FAILPOINT", "commit.before_delta")
            .args(ingest("2024-01-03", "2024-01-04", seed))
            .output()
            .unwrap();
        assert!(!out.status.success(), "killed before its Delta version");
    };
    let ds = "raw_synthetic_bars";
    for (catch_up, args) in [
        ("export delta", vec!["export", "delta", ds]),
        ("recover", vec!["recover"]),
        ("the next ingest", ingest("2024-01-05", "2024-01-05", "9")),
    ] {
        let before = latest(&t, s, ds);
        crash(&before.to_string());
        let n = before + 1;
        assert_eq!(
            head(&delta_log(&t, ds).await),
            before,
            "{catch_up}: snapshot {n} committed, its version not written"
        );
        ql(&t, s, &args);
        assert_eq!(head(&delta_log(&t, ds).await), latest(&t, s, ds), "{catch_up} caught the log up");
    }

    // `export delta` builds the log of a lake that has none, byte for byte as the writers did, also
    // when killed midway and run again.
    let written = delta_log(&t, ds).await;
    let lake = quantlake::table::Lake::open(&t.url, t.options()).await.unwrap();
    let root = lake.dataset(ds).unwrap().paths().delta_log_root();
    for m in lake.store().list(&root).await.unwrap() {
        lake.store().delete(&m.location).await.unwrap();
    }
    let killed =
        t.cli().env("QUANTLAKE_FAILPOINT", "delta.before_version:3").args(["export", "delta", ds]).output().unwrap();
    assert!(!killed.status.success());
    assert_eq!(head(&delta_log(&t, ds).await), 2, "versions 0 to 2 written before the kill");
    let report = ql(&t, s, &["--json", "export", "delta"]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let raw = report.as_array().unwrap().iter().find(|r| r["dataset"] == ds).unwrap();
    assert_eq!(raw["versions_written"].as_u64(), Some(latest(&t, s, ds) - 2), "{report}");
    assert_eq!(delta_log(&t, ds).await, written, "rebuilt byte for byte");
    let again: Value = serde_json::from_slice(&ql(&t, s, &["--json", "export", "delta"]).stdout).unwrap();
    assert!(again.as_array().unwrap().iter().all(|r| r["versions_written"] == 0), "idempotent: {again}");
    let path = String::from_utf8(ql(&t, s, &["delta-path", ds]).stdout).unwrap();
    assert!(path.trim().ends_with("_versions/raw_synthetic_bars"), "{path}");

    // A version that no longer says what the manifest says is found.
    let version = lake.dataset(ds).unwrap().paths().delta_commit(2);
    let text = String::from_utf8(written[&format!("{:020}.json", 2)].clone()).unwrap();
    let altered = text.replacen("\\\"numRecords\\\":", "\\\"numRecords\\\":1", 1);
    assert_ne!(altered, text);
    lake.store().put(&version, altered.into()).await.unwrap();
    let out = t.cli().args(["--json", "verify", "--history", ds]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = &report[0]["problems"];
    assert_eq!(problems.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(problems[0]["kind"], "delta_log");
    assert!(problems[0]["path"].as_str().unwrap().ends_with("00000000000000000002.json"), "{report}");
}
both_backends!(catch_up_test, the_log_catches_up_and_is_checked);
