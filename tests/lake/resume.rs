//! Progress and resume: `ingest --resume`, `backfill-history` (adaptive steps, kill -9 and run again:
//! the raw layer ends identical to an uninterrupted run), `progress clean --older-than`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Backend, TestLake, stderr};

/// Every bar of the raw synthetic dataset, in order, without the per-run columns (ingested_at, job_id).
fn content(t: &TestLake) -> serde_json::Value {
    t.json(&[
        "query",
        "SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS distinct_bars, \
         sum(hash(symbol, ts, open, high, low, close, volume, vwap, trade_count)) AS digest FROM raw_synthetic_bars",
    ])
}

const BACKFILL: &[&str] =
    &["backfill-history", "--source", "synthetic", "--symbols", "AAPL,MSFT,NVDA,TSLA,AMZN", "--end", "2024-03-28"];

fn backfill_env(cmd: &mut std::process::Command, sleep: &str) {
    cmd.env("BACKFILL_TARGET_DAYS", "45")
        .env("BACKFILL_MIN_STEP", "2")
        .env("BACKFILL_MAX_STEP", "4")
        .env("BACKFILL_SLOW_THRESHOLD", "60")
        .env("BACKFILL_SLEEP_BETWEEN_SEC", sleep);
}

#[test]
fn backfill_killed_then_rerun_equals_an_uninterrupted_run() {
    // The reference: one uninterrupted run.
    let reference = TestLake::new(Backend::Local);
    assert!(reference.run(&["init"]).status.success());
    let mut cmd = reference.cli();
    backfill_env(&mut cmd, "0");
    let out = cmd.arg("--json").args(BACKFILL).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 45 days back from 2024-03-28: 2024-02-12..2024-03-28, 33 sessions (2024-02-19 is a holiday).
    assert_eq!(report["target_sessions"], 33);
    assert_eq!(report["coverage"], 1.0);
    assert_eq!(report["coverage_met"], true);
    // Newest first, steps growing from BACKFILL_MIN_STEP to BACKFILL_MAX_STEP while they are fast.
    let steps: Vec<u64> = report["steps"].as_array().unwrap().iter().map(|s| s["sessions"].as_u64().unwrap()).collect();
    assert_eq!(&steps[..3], &[2, 4, 4], "{steps:?}");
    assert_eq!(steps.iter().sum::<u64>(), 33);
    assert_eq!(report["steps"][0]["end"], "2024-03-28");
    let expected = content(&reference);
    assert_eq!(expected[0]["n"], 33 * 5 * 390);

    // The same backfill, killed (SIGKILL) after a few commits, then run again.
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let log = t.local_root().unwrap().join("_manifest/raw_synthetic_bars/log");
    let mut cmd = t.cli();
    backfill_env(&mut cmd, "0.3");
    let mut child = cmd.args(BACKFILL).arg("--quiet").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&log).map(|d| d.count()).unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "the backfill made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the backfill finished before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = content(&t);
    assert!(partial[0]["n"].as_u64().unwrap() < 33 * 5 * 390, "killed midway");

    let mut cmd = t.cli();
    backfill_env(&mut cmd, "0");
    let out = cmd.arg("--json").args(BACKFILL).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rerun: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rerun["skipped"].as_u64().unwrap() >= 2 * 5, "the rerun skips what was done: {rerun}");
    assert_eq!(rerun["coverage"], 1.0);
    assert_eq!(content(&t), expected, "the raw layer equals an uninterrupted run's");
    let verify = t.json(&["verify"]);
    assert!(verify.as_array().unwrap().iter().all(|r| r["problems"] == json!([])), "{verify}");

    // A third run has nothing to do.
    let mut cmd = t.cli();
    backfill_env(&mut cmd, "0");
    let again: serde_json::Value =
        serde_json::from_slice(&cmd.arg("--json").args(BACKFILL).output().unwrap().stdout).unwrap();
    assert_eq!((again["rows"].as_u64(), again["skipped"].as_u64()), (Some(0), Some(33 * 5)));
}

#[test]
fn ingest_resume_skips_finished_sessions_and_clean_forgets_them() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let ingest =
        ["ingest", "--source", "synthetic", "--symbols", "AAPL,MSFT", "--start", "2024-01-02", "--end", "2024-01-05"];
    let first = t.json(&ingest);
    assert_eq!((first["rows"].as_u64(), first["skipped"].as_u64()), (Some(2 * 4 * 390), Some(0)));
    // One more symbol and one more session, resumed: only the missing symbol-sessions are fetched.
    let more = [
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL,MSFT,NVDA",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-08",
        "--resume",
    ];
    let second = t.json(&more);
    assert_eq!(second["skipped"], 8);
    assert_eq!(second["rows"], (3 * 5 - 8) * 390);
    let got = t.json(&["query", "SELECT symbol, count(*) AS n FROM raw_synthetic_bars GROUP BY 1 ORDER BY 1"]);
    assert_eq!(
        got,
        json!([{ "symbol": "AAPL", "n": 1950 }, { "symbol": "MSFT", "n": 1950 }, { "symbol": "NVDA", "n": 1950 }])
    );
    // Daily bars of the same symbols and sessions: their own progress rows, the minute ones untouched.
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL,MSFT,NVDA",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-08",
        "--frequency",
        "1d",
    ]);
    let by_dataset = t.json(&["query", "SELECT dataset, count(*) AS n FROM ingest_progress GROUP BY 1 ORDER BY 1"]);
    assert_eq!(
        by_dataset,
        json!([{ "dataset": "raw_synthetic_bars", "n": 15 }, { "dataset": "raw_synthetic_daily_bars", "n": 15 }])
    );

    // Records younger than 90 days stay; --older-than 0s forgets them all, so resume fetches again.
    assert_eq!(t.json(&["progress", "clean", "--older-than", "90d"])["rows_removed"], 0);
    assert_eq!(t.json(&["progress", "clean", "--older-than", "0s"])["rows_removed"], 30);
    let third = t.json(&more);
    assert_eq!((third["skipped"].as_u64(), third["rows"].as_u64()), (Some(0), Some(15 * 390)));
    let bad = t.run(&["progress", "clean", "--older-than", "ninety"]);
    assert!(!bad.status.success() && stderr(&bad).contains("--older-than 'ninety'"), "{}", stderr(&bad));
}

#[test]
fn daily_chunks_inside_one_yearly_partition_keep_each_other() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    // Nine sessions, two per commit, all in the partition year=2024.
    let first = t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL,MSFT",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-12",
        "--frequency",
        "1d",
        "--chunk-sessions",
        "2",
    ]);
    assert_eq!(first["chunks"], 5);
    let count =
        || t.json(&["query", "SELECT symbol, count(*) AS n FROM raw_synthetic_daily_bars GROUP BY 1 ORDER BY 1"]);
    assert_eq!(count(), json!([{ "symbol": "AAPL", "n": 9 }, { "symbol": "MSFT", "n": 9 }]));
    // Re-ingesting one day of one symbol replaces that bar only.
    let before = t.json(&["query", "SELECT symbol, ts, close FROM raw_synthetic_daily_bars ORDER BY ALL"]);
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL",
        "--start",
        "2024-01-05",
        "--end",
        "2024-01-05",
        "--frequency",
        "1d",
        "--seed",
        "9",
    ]);
    let after = t.json(&["query", "SELECT symbol, ts, close FROM raw_synthetic_daily_bars ORDER BY ALL"]);
    let changed = before.as_array().unwrap().iter().zip(after.as_array().unwrap()).filter(|(a, b)| a != b).count();
    assert_eq!((changed, after.as_array().unwrap().len()), (1, 18));
}

#[test]
fn targeted_reingest_replaces_only_the_asked_symbols_and_sessions() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL,MSFT",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-05",
    ]);
    let before = t.json(&[
        "query",
        "SELECT symbol, CAST(date AS VARCHAR) AS d, sum(close) AS c FROM raw_synthetic_bars GROUP BY ALL ORDER BY ALL",
    ]);
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL",
        "--start",
        "2024-01-03",
        "--end",
        "2024-01-03",
        "--seed",
        "9",
    ]);
    let after = t.json(&[
        "query",
        "SELECT symbol, CAST(date AS VARCHAR) AS d, sum(close) AS c FROM raw_synthetic_bars GROUP BY ALL ORDER BY ALL",
    ]);
    let changed: Vec<_> = before
        .as_array()
        .unwrap()
        .iter()
        .zip(after.as_array().unwrap())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| (a["symbol"].clone(), a["d"].clone()))
        .collect();
    assert_eq!(changed, vec![(json!("AAPL"), json!("2024-01-03"))]);
}
