//! Compaction: a lake whose per-session records were kept in `date=` folders (as an older quantlake
//! wrote them) is refused for writes with the fix named, regrouped into `month=` files in one commit per
//! dataset (killed at every step of that commit without a reader ever seeing both layouts or losing a
//! row), then written day by day inside month files; files cut in other row groups are rewritten.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use quantlake::table::layout::PartitionKey;
use quantlake::table::{Lake, SnapshotSpec};

use crate::both_backends;
use crate::support::{Backend, TestLake, python, repo, stderr};

/// The six per-session record datasets, kept in month files since compaction exists.
const MONTHLY: &[&str] =
    &["dq_metrics", "features_adv", "curation_rejects", "ingest_progress", "partition_inputs", "quarantine_rows"];

/// Contracts as an older quantlake had them: the monthly datasets in `date=` partitions.
fn date_contracts(dir: &Path) {
    for name in MONTHLY {
        let text = std::fs::read_to_string(repo().join("schemas").join(format!("{name}.toml"))).unwrap();
        let (before, after) =
            text.split_once("partitioning = \"month\"").unwrap_or_else(|| panic!("{name}: no month partitioning"));
        let after = &after[after.find('\n').unwrap()..];
        std::fs::write(dir.join(format!("{name}.toml")), format!("{before}partitioning = \"date\"{after}")).unwrap();
    }
}

/// The CLI with the older contracts.
fn old(t: &TestLake, schemas: &Path, args: &[&str]) {
    let out = t.cli().env("QUANTLAKE_LAKE__SCHEMAS_DIR", schemas).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

/// A lake written with the older contracts: 3 symbols over sessions in January and February.
fn old_lake(t: &TestLake, schemas: &Path) {
    old(t, schemas, &["init"]);
    old(
        t,
        schemas,
        &[
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            "AAPL,MSFT,NVDA",
            "--start",
            "2024-01-29",
            "--end",
            "2024-02-02",
            "--quiet",
        ],
    );
    old(t, schemas, &["curate", "--start", "2024-01-29", "--end", "2024-02-02"]);
}

fn metrics(t: &TestLake) -> Value {
    t.json(&["query", "SELECT dataset, symbol, strftime(session_open, '%Y-%m-%d') AS d, present_bars, job_id FROM dq_metrics ORDER BY 1, 2, 3"])
}

fn progress(t: &TestLake) -> Value {
    t.json(&["query", "SELECT dataset, symbol, strftime(session_open, '%Y-%m-%d') AS d, status, rows, job_id FROM ingest_progress ORDER BY 1, 2, 3"])
}

/// The live partitions of a dataset's folder, and whether they mix folder keys.
async fn live_keys(lake: &Lake, dataset: &str) -> Vec<String> {
    let ds = lake.dataset(dataset).unwrap();
    let mut keys: Vec<String> = lake
        .store()
        .list(&ds.paths().live_root())
        .await
        .unwrap()
        .iter()
        .map(|m| {
            let parts: Vec<String> = m.location.parts().map(|p| p.as_ref().to_string()).collect();
            assert_eq!(
                parts.last().map(String::as_str),
                Some("part.parquet"),
                "only live files in the live tree: {parts:?}"
            );
            parts[parts.len() - 2].clone()
        })
        .collect();
    keys.sort();
    let kinds: Vec<_> = keys.iter().map(|k| PartitionKey::parse(k).unwrap().partitioning()).collect();
    assert!(kinds.windows(2).all(|w| w[0] == w[1]), "{dataset}: the live tree mixes folder keys: {keys:?}");
    keys
}

/// Each step of the regroup commit, and whether the commit is decided when it fires. The commit
/// removes 5 `date=` files, then links 2 `month=` files.
const FAILPOINTS: &[(&str, bool)] = &[
    ("commit.after_stage", false),
    ("commit.before_log", false),
    ("commit.after_log", true),
    ("commit.apply:1", true),
    ("commit.apply:5", true),
    ("commit.apply:6", true),
    ("commit.after_apply", true),
    ("commit.before_table", true),
];

async fn killed_regroup(backend: Backend) {
    for &(failpoint, committed) in FAILPOINTS {
        let t = TestLake::new(backend);
        let schemas = tempfile::tempdir().unwrap();
        date_contracts(schemas.path());
        old_lake(&t, schemas.path());
        let (before_metrics, before_progress) = (metrics(&t), progress(&t));
        assert_eq!(before_metrics.as_array().unwrap().len(), 15, "3 symbols x 5 sessions");

        let crashed = t.cli().args(["compact", "dq_metrics"]).env("QUANTLAKE_FAILPOINT", failpoint).output().unwrap();
        assert!(
            !crashed.status.success() && stderr(&crashed).contains("failpoint"),
            "{failpoint}: {}",
            stderr(&crashed)
        );

        // Before anyone recovers: one layout in the live tree, and manifest readers see every row.
        let lake = Lake::open(&t.url, t.options()).await.unwrap();
        let keys = live_keys(&lake, "dq_metrics").await;
        assert!(keys.len() <= 5, "{failpoint}: {keys:?}");
        let snapshot = lake.dataset("dq_metrics").unwrap().latest().await.unwrap().snapshot_id;
        assert_eq!(snapshot, if committed { 2 } else { 1 }, "{failpoint}");
        assert_eq!(metrics(&t), before_metrics, "{failpoint}: manifest readers see the same rows");

        let verified = t.json(&["verify", "dq_metrics"]);
        assert_eq!(verified[0]["problems"], json!([]), "{failpoint}: {verified}");
        let want: &[&str] = if committed {
            &["month=2024-01", "month=2024-02"]
        } else {
            &["date=2024-01-29", "date=2024-01-30", "date=2024-01-31", "date=2024-02-01", "date=2024-02-02"]
        };
        assert_eq!(live_keys(&lake, "dq_metrics").await, want, "{failpoint}: recovered to the committed layout");

        // The rerun finishes it; nothing changed for readers.
        let done = t.json(&["compact"]);
        let dq = done.as_array().unwrap().iter().find(|r| r["dataset"] == "dq_metrics").unwrap();
        assert_eq!(dq["partitions_after"], 2, "{failpoint}: {dq}");
        assert_eq!(dq["regrouped_from"], if committed { Value::Null } else { json!("date=") }, "{failpoint}: {dq}");
        assert_eq!(live_keys(&lake, "dq_metrics").await, ["month=2024-01", "month=2024-02"]);
        assert_eq!(live_keys(&lake, "ingest_progress").await, ["month=2024-01", "month=2024-02"]);
        assert_eq!((metrics(&t), progress(&t)), (before_metrics.clone(), before_progress.clone()), "{failpoint}");
        let history = t.json(&["verify", "--history"]);
        assert!(history.as_array().unwrap().iter().all(|r| r["problems"] == json!([])), "{failpoint}: {history}");
    }
}
both_backends!(killed_regroup_test, killed_regroup);

async fn regroup_then_write_by_day(backend: Backend) {
    let t = TestLake::new(backend);
    let schemas = tempfile::tempdir().unwrap();
    date_contracts(schemas.path());
    old_lake(&t, schemas.path());
    let (before_metrics, before_progress) = (metrics(&t), progress(&t));

    // Writes refuse the old layout and name the fix; the stage commits nothing.
    let refused = t.run(&["curate", "--start", "2024-01-30", "--end", "2024-01-30"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("dataset 'dq_metrics' is stored in date= partitions but its contract now asks for month=: run `quantlake compact dq_metrics`"), "{}", stderr(&refused));
    assert_eq!(metrics(&t), before_metrics);

    let planned = t.json(&["compact", "--dry-run"]);
    let plan: Vec<(String, Value, Value)> = planned
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["dataset"].as_str().unwrap().to_string(), r["regrouped_from"].clone(), r["partitions_after"].clone())
        })
        .collect();
    assert!(plan.contains(&("dq_metrics".into(), json!("date="), json!(2))), "{planned}");
    assert!(plan.contains(&("ingest_progress".into(), json!("date="), json!(2))), "{planned}");
    assert!(plan.contains(&("curated_1m_bars".into(), Value::Null, json!(5))), "{planned}");

    // The daily run's first step (the library's regroup_layouts) regroups exactly the old layouts.
    let lake = Lake::open(&t.url, t.options()).await.unwrap();
    let dq = lake.dataset("dq_metrics").unwrap();
    let old_state = dq.latest().await.unwrap();
    let regrouped = quantlake::maintenance::regroup_layouts(&lake).await.unwrap();
    let mut names: Vec<&str> = regrouped.iter().map(|r| r.dataset.as_str()).collect();
    names.sort();
    assert_eq!(names, ["dq_metrics", "ingest_progress"], "curation refused no row: no curation_rejects were written");
    assert_eq!((metrics(&t), progress(&t)), (before_metrics.clone(), before_progress));
    // Earlier snapshots keep their layout and rows.
    let then = dq.snapshot(&SnapshotSpec::Id(old_state.snapshot_id)).await.unwrap();
    assert_eq!(then.partitions.len(), 5);
    assert_eq!(dq.read(&then, &Default::default()).await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 15);
    // A date filter reads only that day's rows of a month file.
    let one_day = quantlake::table::ReadFilter {
        start: Some(chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
        end: Some(chrono::NaiveDate::from_ymd_opt(2024, 2, 1).unwrap()),
        ..Default::default()
    };
    assert_eq!(
        dq.read(&dq.latest().await.unwrap(), &one_day).await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(),
        6
    );

    // Writing one day replaces that day's rows inside the month file; the month's other days stay.
    let out = t.run(&["curate", "--start", "2024-01-30", "--end", "2024-01-30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = metrics(&t);
    let (a, b) = (before_metrics.as_array().unwrap(), after.as_array().unwrap());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x["symbol"], &x["d"], &x["present_bars"]), (&y["symbol"], &y["d"], &y["present_bars"]));
        assert_eq!(x["job_id"] == y["job_id"], x["d"] != "2024-01-30", "only 2024-01-30 was re-curated: {x} {y}");
    }
    let out = t.run(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "MSFT",
        "--start",
        "2024-02-01",
        "--end",
        "2024-02-01",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = progress(&t);
    let fresh: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["job_id"] != rows[0]["job_id"])
        .map(|r| (r["symbol"].as_str().unwrap(), r["d"].as_str().unwrap()))
        .collect();
    assert_eq!(fresh, [("MSFT", "2024-02-01")], "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 15);

    // A plain glob over the folder reads the month files with their hive column.
    if let Some(root) = t.local_root() {
        let glob = root.join("ops/dq_metrics/*/*.parquet");
        let sql = format!(
            "SELECT month, count(*) FROM read_parquet('{}', hive_partitioning = true) GROUP BY 1 ORDER BY 1",
            glob.display()
        );
        let out = Command::new(python())
            .args(["-c", &format!("import duckdb; print(duckdb.sql(\"{sql}\").fetchall())")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[('2024-01', 9), ('2024-02', 6)]", "{}", stderr(&out));
        assert!(!root.join("ops/dq_metrics/date=2024-01-29").exists(), "the removed partitions' folders are gone");
    }
}
both_backends!(regroup_then_write_by_day_test, regroup_then_write_by_day);

/// Files cut in other row groups than the contract's are rewritten, rows unchanged; then nothing is.
#[tokio::test(flavor = "multi_thread")]
async fn row_groups_are_rewritten_to_the_contract() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let out = t.run(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL,MSFT,NVDA",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-04",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let totals = || {
        t.json(&["query", "SELECT count(*) AS n, CAST(sum(round(close * 100)) AS BIGINT) AS c FROM raw_synthetic_bars"])
    };
    let before = totals();
    let schemas = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("schemas/raw_synthetic_bars.toml")).unwrap();
    assert!(text.contains("row_group_rows = 16384\n"), "raw_synthetic_bars' row group size");
    std::fs::write(
        schemas.path().join("raw_synthetic_bars.toml"),
        text.replacen("row_group_rows = 16384\n", "row_group_rows = 500\n", 1),
    )
    .unwrap();
    let compact = |args: &[&str]| {
        let out = t
            .cli()
            .env("QUANTLAKE_LAKE__SCHEMAS_DIR", schemas.path())
            .arg("--json")
            .arg("compact")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
    };
    let planned = compact(&["raw_synthetic_bars", "--dry-run"]);
    assert_eq!(planned["rewritten"].as_array().unwrap().len(), 3, "{planned}");
    assert_eq!(
        planned["rewritten"][0]["reason"], "1 row groups; the contract's 500 rows per group make 3",
        "{planned}"
    );
    let done = compact(&["raw_synthetic_bars"]);
    assert_eq!(
        (done["rewritten"].as_array().unwrap().len(), done["snapshot_id"].clone(), done["checkpoint"].clone()),
        (3, json!(2), json!(2)),
        "{done}"
    );
    assert_eq!(totals(), before);
    let lake = Lake::open(&t.url, t.options()).await.unwrap();
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    for e in ds.latest().await.unwrap().partitions.values() {
        let bytes = lake.store().get(&ds.paths().live_file(&e.partition)).await.unwrap().unwrap();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap();
        use parquet::file::reader::FileReader;
        assert_eq!(reader.metadata().num_row_groups(), 3, "{}", e.partition);
    }
    let again = compact(&["raw_synthetic_bars"]);
    assert_eq!(
        (again["rewritten"].clone(), again["snapshot_id"].clone(), again["checkpoint"].clone()),
        (json!([]), Value::Null, Value::Null),
        "{again}"
    );
}
