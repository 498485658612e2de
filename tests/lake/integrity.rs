//! I5 integrity: verify names every missing, truncated or altered data file, and stray live files.

use bytes::Bytes;
use quantlake::table::Lake;

use crate::both_backends;
use crate::support::{Backend, TestLake};

async fn verify_names_damaged_files(backend: Backend) {
    let t = TestLake::new(backend);
    assert!(t.run(&["init"]).status.success());
    assert!(
        t.run(&[
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            "3",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-05",
            "--quiet"
        ])
        .status
        .success()
    );
    assert_eq!(t.json(&["verify", "--history"])[0]["problems"], serde_json::json!([]));

    let lake = Lake::open(&t.url, t.options()).await.unwrap();
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    let state = ds.latest().await.unwrap();
    let e: Vec<_> = state.partitions.values().cloned().collect();
    let store = lake.store();
    let p = ds.paths();

    // Truncate a version file, alter a live file (same size), delete a version file, drop in a stray file.
    let v0 = p.version_file(&e[0].partition, &e[0].file_id);
    let bytes = store.get(&v0).await.unwrap().unwrap();
    store.put(&v0, bytes.slice(..bytes.len() / 2)).await.unwrap();
    let l1 = p.live_file(&e[1].partition);
    let mut altered = store.get(&l1).await.unwrap().unwrap().to_vec();
    let mid = altered.len() / 2;
    altered[mid] ^= 0xff;
    store.put(&l1, Bytes::from(altered)).await.unwrap();
    let v2 = p.version_file(&e[2].partition, &e[2].file_id);
    store.delete(&v2).await.unwrap();
    let stray = p.live_root().join("date=2024-01-02").join("extra.parquet");
    store.put(&stray, Bytes::from_static(b"not parquet")).await.unwrap();

    let out = t.cli().args(["verify", "raw_synthetic_bars", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "damaged files are CRITICAL");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<(String, String)> = report[0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap().to_string(), p["path"].as_str().unwrap().to_string()))
        .collect();
    let expect = |kind: &str, path: &object_store::path::Path| {
        assert!(problems.contains(&(kind.to_string(), path.to_string())), "{kind} {path} not in {problems:?}");
    };
    expect("truncated", &v0);
    expect("altered", &l1);
    expect("missing", &v2);
    expect("stray", &stray);
    assert_eq!(problems.len(), 4, "{problems:?}");
    let human = String::from_utf8_lossy(&t.run(&["verify"]).stdout).into_owned();
    assert!(human.contains(&v0.to_string()) && human.contains("PROBLEMS"), "{human}");
}
both_backends!(verify_test, verify_names_damaged_files);
