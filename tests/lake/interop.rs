//! I1 glob safety with the real readers: DuckDB, pandas (pyarrow) and polars read the live tree with a plain
//! glob, once and while another process overwrites partitions in a loop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::both_backends;
use crate::support::{Backend, TestLake, stderr};

const FOLDER: &str = "raw/raw_synthetic_bars";

async fn readers_see_the_manifest(backend: Backend) {
    let t = TestLake::new(backend);
    assert!(t.run(&["init"]).status.success());
    assert!(
        t.run(&[
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            "5",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-04",
            "--quiet",
            "--duplicate-rate",
            "0.01"
        ])
        .status
        .success()
    );
    let out = t.python_read(FOLDER, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = t.json(&["query", "SELECT replace(partition, 'date=', '') AS d, rows FROM _partitions WHERE dataset = 'raw_synthetic_bars' ORDER BY d"]);
    let total: u64 = manifest.as_array().unwrap().iter().map(|r| r["rows"].as_u64().unwrap()).sum();
    let distinct = t.json(&["query", "SELECT count(DISTINCT (symbol, ts)) AS n FROM raw_synthetic_bars"])[0]["n"]
        .as_u64()
        .unwrap();
    assert!(distinct < total, "the raw layer keeps injected duplicates");
    for reader in ["duckdb", "pandas", "polars"] {
        assert_eq!(seen[reader]["rows"].as_u64(), Some(total), "{reader}: {seen}");
        assert_eq!(seen[reader]["distinct"].as_u64(), Some(distinct), "{reader}: {seen}");
        for row in manifest.as_array().unwrap() {
            assert_eq!(seen[reader]["partitions"][row["d"].as_str().unwrap()], row["rows"], "{reader}");
        }
    }
}
both_backends!(readers_test, readers_see_the_manifest);

/// On local disk (I1 is per file there; on S3 only each object's replacement is atomic, and a reader
/// that range-reads one file while it is replaced can see two versions: read S3 through the manifest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_readers_during_overwrites() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let ingest = |seed: u64| {
        t.cli()
            .args([
                "ingest",
                "--source",
                "synthetic",
                "--symbols",
                "4",
                "--start",
                "2024-01-02",
                "--end",
                "2024-01-05",
                "--quiet",
            ])
            .args(["--seed", &seed.to_string()])
            .output()
            .unwrap()
    };
    assert!(ingest(1).status.success());
    let expect = (4 * 4 * 390).to_string();
    let done = AtomicBool::new(false);
    let commits = AtomicUsize::new(0);
    let reader = std::thread::scope(|s| {
        s.spawn(|| {
            // Each run replaces all four partitions in one commit, with different data of the same shape.
            let mut seed = 2;
            while !done.load(Ordering::SeqCst) && seed < 200 {
                let o = ingest(seed);
                assert!(o.status.success(), "{}", stderr(&o));
                commits.fetch_add(1, Ordering::SeqCst);
                seed += 1;
            }
        });
        let out = t.python_read(FOLDER, &["--loop", "12", "--expect", &expect]);
        done.store(true, Ordering::SeqCst);
        out
    });
    assert!(
        reader.status.success(),
        "a glob reader saw a missing or duplicated row: {} {}",
        String::from_utf8_lossy(&reader.stdout),
        stderr(&reader)
    );
    assert!(commits.load(Ordering::SeqCst) >= 3, "the writer committed while the readers read");
}
