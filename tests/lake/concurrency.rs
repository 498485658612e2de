//! I4 concurrency: two processes commit to one dataset at once. Commits to disjoint partitions both
//! land; commits to the same partitions (different symbols) are rebuilt and retried, never lost.

use crate::both_backends;
use crate::support::{Backend, TestLake, stderr};

/// Runs `rounds` ingests of `symbols` over `[start, end]` in one thread, one process each.
fn writer(
    t: &TestLake,
    symbols: &'static str,
    start: &'static str,
    end: &'static str,
    rounds: u64,
) -> Vec<std::process::Output> {
    (1..=rounds)
        .map(|seed| {
            t.cli()
                .args([
                    "ingest",
                    "--source",
                    "synthetic",
                    "--quiet",
                    "--chunk-sessions",
                    "1",
                    "--symbols",
                    symbols,
                    "--start",
                    start,
                    "--end",
                    end,
                ])
                .args(["--seed", &seed.to_string()])
                .output()
                .unwrap()
        })
        .collect()
}

fn counts(t: &TestLake) -> serde_json::Value {
    t.json(&["query", "SELECT symbol, count(*) AS n, count(DISTINCT date) AS days FROM raw_synthetic_bars GROUP BY symbol ORDER BY symbol"])
}

async fn two_writers_lose_nothing(backend: Backend) {
    let t = TestLake::new(backend);
    assert!(t.run(&["init"]).status.success());
    // Same partitions, different symbols: every commit conflicts with the other writer's.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| writer(&t, "AAPL,MSFT", "2024-01-02", "2024-01-05", 4));
        let b = s.spawn(|| writer(&t, "NVDA,TSLA", "2024-01-02", "2024-01-05", 4));
        (a.join().unwrap(), b.join().unwrap())
    });
    for o in a.iter().chain(&b) {
        assert!(o.status.success(), "a writer failed: {}", stderr(o));
    }
    let n = 4 * 390;
    assert_eq!(
        counts(&t),
        serde_json::json!([
            {"symbol": "AAPL", "n": n, "days": 4}, {"symbol": "MSFT", "n": n, "days": 4},
            {"symbol": "NVDA", "n": n, "days": 4}, {"symbol": "TSLA", "n": n, "days": 4}
        ])
    );
    let snapshots = t.json(&["snapshots", "raw_synthetic_bars", "--limit", "100"]);
    assert_eq!(snapshots.as_array().unwrap().len(), 2 * 4 * 4, "every chunk of both writers is a snapshot");

    // Disjoint partitions: both land.
    let (c, d) = std::thread::scope(|s| {
        let c = s.spawn(|| writer(&t, "AAPL", "2024-01-08", "2024-01-10", 2));
        let d = s.spawn(|| writer(&t, "AAPL", "2024-01-11", "2024-01-16", 2));
        (c.join().unwrap(), d.join().unwrap())
    });
    for o in c.iter().chain(&d) {
        assert!(o.status.success(), "a writer failed: {}", stderr(o));
    }
    let aapl = &counts(&t)[0];
    assert_eq!(aapl["days"], 4 + 3 + 3, "2024-01-15 is a holiday");
    assert_eq!(t.json(&["verify"])[0]["problems"], serde_json::json!([]));
}
both_backends!(two_writers_test, two_writers_lose_nothing);
