//! I3 crash safety (with I1 and I2 checked on the crashed lake): the CLI is killed (abort, as with
//! kill -9) at each step of a commit; the lake is then checked before and after reopening.

use std::collections::BTreeSet;

use quantlake::table::Lake;
use quantlake::table::data_file::{decode, sha256_hex};

use crate::both_backends;
use crate::support::{Backend, TestLake, stderr};

/// Each failpoint, and whether the interrupted commit is already committed when it fires.
const FAILPOINTS: &[(&str, bool)] = &[
    ("commit.after_stage", false),
    ("commit.before_log", false),
    ("commit.after_log", true),
    ("commit.apply:1", true),
    ("commit.apply:2", true),
    ("commit.after_apply", true),
    ("commit.before_table", true),
];

const INGEST: &[&str] = &[
    "ingest",
    "--source",
    "synthetic",
    "--symbols",
    "AAPL,MSFT,NVDA,TSLA",
    "--start",
    "2024-01-02",
    "--end",
    "2024-01-04",
    "--quiet",
];

fn totals(t: &TestLake) -> serde_json::Value {
    t.json(&["query", "SELECT symbol, count(*) AS n, CAST(sum(round(close * 100)) AS BIGINT) AS cents FROM raw_synthetic_bars GROUP BY symbol ORDER BY symbol"])
}

/// Every live file is a complete Parquet file equal to one of its partition's version files.
async fn live_files_are_whole_versions(lake: &Lake) {
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    let store = lake.store();
    let live = store.list(&ds.paths().live_root()).await.unwrap();
    let live: Vec<_> = live.into_iter().filter(|m| m.location.filename() == Some("part.parquet")).collect();
    assert_eq!(live.len(), 3, "one live file per partition");
    for m in live {
        let partition = m.location.parts().nth(2).unwrap().as_ref().to_string();
        let bytes = store.get(&m.location).await.unwrap().unwrap();
        let rows: usize = decode(bytes.clone()).unwrap().iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 4 * 390, "{partition}: a whole partition");
        let versions = store.list(&ds.paths().versions_root().join(partition.as_str())).await.unwrap();
        let mut shas = BTreeSet::new();
        for v in versions {
            shas.insert(sha256_hex(&store.get(&v.location).await.unwrap().unwrap()));
        }
        assert!(shas.contains(&sha256_hex(&bytes)), "{partition}: the live file is one of the versions");
    }
}

async fn crash_at_every_step(backend: Backend) {
    for &(failpoint, committed) in FAILPOINTS {
        let t = TestLake::new(backend);
        assert!(t.run(&["init"]).status.success());
        let first = t.run(&[INGEST, &["--seed", "1"]].concat());
        assert!(first.status.success(), "{}", stderr(&first));
        let old = totals(&t);

        let crashed =
            t.cli().args([INGEST, &["--seed", "2"]].concat()).env("QUANTLAKE_FAILPOINT", failpoint).output().unwrap();
        assert!(!crashed.status.success(), "{failpoint}: the process must die");
        assert!(
            stderr(&crashed).contains(&format!("failpoint {}", failpoint.split(':').next().unwrap())),
            "{failpoint}: {}",
            stderr(&crashed)
        );

        // Before anyone recovers: glob readers see whole partitions (I1), manifest readers a whole snapshot (I2).
        let lake = Lake::open(&t.url, t.options()).await.unwrap();
        live_files_are_whole_versions(&lake).await;
        let mid = totals(&t);
        let snapshot = lake.dataset("raw_synthetic_bars").unwrap().latest().await.unwrap().snapshot_id;
        assert_eq!(snapshot, if committed { 2 } else { 1 }, "{failpoint}");
        if !committed {
            assert_eq!(mid, old, "{failpoint}: the old snapshot, whole");
        }

        // Reopening (verify recovers first) leaves a clean lake at the old or the new snapshot.
        let report = t.json(&["verify"]);
        for r in report.as_array().unwrap() {
            assert_eq!(r["problems"], serde_json::json!([]), "{failpoint}: {report}");
        }
        let bars = report.as_array().unwrap().iter().find(|r| r["dataset"] == "raw_synthetic_bars").unwrap();
        assert_eq!(bars["snapshot_id"], snapshot);

        // Running the job again completes it; nothing committed was lost.
        let again = t.run(&[INGEST, &["--seed", "2"]].concat());
        assert!(again.status.success(), "{failpoint}: {}", stderr(&again));
        let new = totals(&t);
        assert_ne!(new, old);
        if committed {
            assert_eq!(mid, new, "{failpoint}: the new snapshot, whole, for manifest readers even before recovery");
        }
        assert_eq!(t.json(&["verify", "--history"])[0]["problems"], serde_json::json!([]));
    }
}
both_backends!(crash_test, crash_at_every_step);
