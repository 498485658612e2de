//! The engine's behaviour through the library: partition replacement, time travel (I6), restore,
//! vacuum, checkpoints, schema evolution.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use quantlake::Error;
use quantlake::query::QueryEngine;
use quantlake::table::AsOf;
use quantlake::table::data_file::{decode, sha256_hex};
use quantlake::table::operations::{history, restore, tag, vacuum, verify};
use quantlake::table::{Lake, LakeOptions, SnapshotSpec};

use crate::support::{Backend, TestLake};
use crate::{both_backends, ingest_synthetic};

/// (symbol -> (rows, sum of close)) of some batches.
fn by_symbol(batches: &[RecordBatch]) -> BTreeMap<String, (usize, f64)> {
    let mut out: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for b in batches {
        let sym = b.column_by_name("symbol").unwrap().as_string::<i32>();
        let close = b.column_by_name("close").unwrap().as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let e = out.entry(sym.value(i).to_string()).or_default();
            e.0 += 1;
            e.1 += close.value(i);
        }
    }
    out
}

async fn replace_only_written_symbols(backend: Backend) {
    let t = TestLake::new(backend);
    let lake = t.init().await;
    let r = ingest_synthetic(&lake, &["AAPL", "MSFT", "NVDA"], "2024-01-02", "2024-01-04", 1).await;
    assert_eq!((r.rows, r.snapshots.clone()), (3 * 3 * 390, vec![1]));
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    let v1 = ds.latest().await.unwrap();
    assert_eq!(
        v1.partitions.keys().cloned().collect::<Vec<_>>(),
        ["date=2024-01-02", "date=2024-01-03", "date=2024-01-04"]
    );
    let before = by_symbol(&ds.read(&v1, &Default::default()).await.unwrap());

    ingest_synthetic(&lake, &["MSFT"], "2024-01-03", "2024-01-03", 2).await;
    let v2 = ds.latest().await.unwrap();
    assert_eq!(v2.snapshot_id, 2);
    assert_eq!(v2.rows(), v1.rows());
    assert_eq!(
        v2.partitions["date=2024-01-02"], v1.partitions["date=2024-01-02"],
        "untouched partition keeps its version"
    );
    let after = by_symbol(&ds.read(&v2, &Default::default()).await.unwrap());
    assert_eq!(after["AAPL"], before["AAPL"]);
    assert_eq!(after["NVDA"], before["NVDA"]);
    assert_eq!(after["MSFT"].0, before["MSFT"].0);
    assert_ne!(after["MSFT"].1, before["MSFT"].1, "MSFT's rows on 2024-01-03 were replaced");

    // The live tree holds exactly one file per partition, and it is the committed version.
    let objects = lake.store().list(&ds.paths().live_root()).await.unwrap();
    assert_eq!(objects.len(), 3, "{objects:?}");
    let mut live_rows = 0;
    for e in v2.partitions.values() {
        let bytes = lake.store().get(&ds.paths().live_file(&e.partition)).await.unwrap().unwrap();
        assert_eq!(sha256_hex(&bytes), e.sha256);
        live_rows += decode(bytes).unwrap().iter().map(|b| b.num_rows() as u64).sum::<u64>();
    }
    assert_eq!(live_rows, v2.rows());
}
both_backends!(replace_only_written_symbols_test, replace_only_written_symbols);

/// (symbol, rows, sum of close in cents): exact, whatever order DuckDB sums in.
async fn query_at(lake: &Lake, spec: &str) -> Vec<(String, i64, i64)> {
    let sql = "SELECT symbol, count(*), CAST(sum(round(close * 100)) AS BIGINT) FROM raw_synthetic_bars GROUP BY symbol ORDER BY symbol";
    // A tag names a snapshot of one dataset: resolved only in the datasets the statement reads.
    let engine = QueryEngine::open_for_sql(lake, &AsOf::parse(&[spec.to_string()]).unwrap(), sql).await.unwrap();
    let mut stmt = engine.connection().prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

async fn time_travel(backend: Backend) {
    let t = TestLake::new(backend);
    let lake = t.init().await;
    ingest_synthetic(&lake, &["AAPL", "MSFT"], "2024-01-02", "2024-01-05", 1).await;
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    let then = query_at(&lake, "latest").await;
    let s1 = ds.latest().await.unwrap();
    tag::create(&ds, "v1", None, "first", false).await.unwrap();
    assert!(tag::create(&ds, "v1", None, "", false).await.is_err(), "tags are not silently moved");

    // Later overwrites of the same partitions, and a new partition.
    ingest_synthetic(&lake, &["AAPL", "MSFT"], "2024-01-02", "2024-01-05", 2).await;
    ingest_synthetic(&lake, &["AAPL"], "2024-01-03", "2024-01-08", 3).await;
    assert_ne!(query_at(&lake, "latest").await, then);

    let at_time = s1.committed_at.unwrap().to_rfc3339();
    for spec in ["1", "v1", at_time.as_str(), "raw_synthetic_bars@1"] {
        assert_eq!(query_at(&lake, spec).await, then, "--as-of {spec}");
    }
    assert!(matches!(ds.snapshot(&SnapshotSpec::Id(9)).await, Err(Error::SnapshotNotFound { .. })));

    // Restore commits a new snapshot with exactly the tagged content.
    let r = restore::restore(&ds, &SnapshotSpec::parse("v1").unwrap()).await.unwrap();
    assert_eq!(r.snapshot_id, 4);
    assert_eq!(query_at(&lake, "latest").await, then);
    let d = history::diff(&ds, &SnapshotSpec::Tag("v1".into()), &SnapshotSpec::Latest).await.unwrap();
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    assert!(verify::verify(&ds, true).await.unwrap().is_clean());
    let ops: Vec<String> = history::list(&ds, 10).await.unwrap().into_iter().map(|s| s.operation).collect();
    assert_eq!(ops, ["restore", "ingest", "ingest", "ingest"]);
}
both_backends!(time_travel_test, time_travel);

async fn vacuum_keeps_what_is_retained(backend: Backend) {
    let t = TestLake::new(backend);
    let lake = t.init().await;
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    for seed in 1..=3 {
        ingest_synthetic(&lake, &["AAPL"], "2024-01-02", "2024-01-03", seed).await;
    }
    tag::create(&ds, "first", Some(1), "", false).await.unwrap();
    let s2_time = ds.log().read_commit(2).await.unwrap().unwrap().committed_at;
    let tagged = query_at(&lake, "first").await;
    let latest = query_at(&lake, "latest").await;

    let dry = vacuum::vacuum(&ds, std::time::Duration::ZERO, true).await.unwrap();
    assert_eq!(dry.files_deleted, 2, "snapshot 2's two files: {dry:?}");
    assert_eq!(ds.log().list_snapshots().await.unwrap().len(), 3, "dry run deletes nothing");
    let done = vacuum::vacuum(&ds, std::time::Duration::ZERO, false).await.unwrap();
    assert_eq!((done.files_deleted, done.oldest_retained_snapshot, done.log_entries_deleted), (2, 3, 1), "{done:?}");

    assert_eq!(query_at(&lake, "first").await, tagged);
    assert_eq!(query_at(&lake, "latest").await, latest);
    assert!(matches!(ds.snapshot(&SnapshotSpec::Id(2)).await, Err(Error::SnapshotNotFound { .. })));
    // A time when snapshot 2 was current is no longer resolvable either (not silently snapshot 1).
    let at2 = SnapshotSpec::AsOf(s2_time + chrono::Duration::microseconds(1));
    assert!(
        matches!(ds.snapshot(&at2).await, Err(Error::SnapshotNotFound { .. })),
        "{:?}",
        ds.snapshot(&at2).await.map(|s| s.snapshot_id)
    );
    assert!(verify::verify(&ds, true).await.unwrap().is_clean());
    // A long retention keeps everything that is left.
    let again = vacuum::vacuum(&ds, std::time::Duration::from_secs(86_400), false).await.unwrap();
    assert_eq!(again.files_deleted, 0);
    assert_eq!(again.oldest_retained_snapshot, 3, "the scan stops at the gap the first vacuum left");
    assert_eq!(query_at(&lake, "first").await, tagged);

    // A slow writer may put back a partition table older than the vacuumed log: opening must not
    // stop there (and then reuse snapshot numbers), but start from the newer checkpoint.
    let stale = quantlake::table::manifest::encode_table(
        &ds.snapshot(&SnapshotSpec::Tag("first".into())).await.unwrap(),
        ds.paths(),
    )
    .unwrap();
    lake.store().put(&ds.paths().partition_table(), stale).await.unwrap();
    assert_eq!(ds.latest().await.unwrap().snapshot_id, 3);
    let next = ingest_synthetic(&lake, &["AAPL"], "2024-01-04", "2024-01-04", 9).await;
    assert_eq!(next.snapshots, [4]);
}
both_backends!(vacuum_test, vacuum_keeps_what_is_retained);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_reads_the_partition_table_then_checkpoints_not_the_whole_log() {
    let t = TestLake::new(Backend::Local);
    let lake = t.init().await;
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    let sessions = quantlake::calendar::NyseCalendar.sessions(crate::day("2024-01-02"), crate::day("2024-03-01"));
    for s in sessions.iter().take(25) {
        let d = s.date.to_string();
        ingest_synthetic(&lake, &["AAPL"], &d, &d, 1).await;
    }
    let latest = ds.latest().await.unwrap();
    assert_eq!(latest.snapshot_id, 25);
    assert_eq!(ds.log().list_checkpoints().await.unwrap(), [10, 20]);

    // The same state from a full replay, and with the partition table gone (checkpoint 20 + 5 commits).
    let mut replayed = quantlake::table::manifest::TableState::empty("raw_synthetic_bars");
    for n in 1..=25 {
        replayed.apply(&ds.log().read_commit(n).await.unwrap().unwrap());
    }
    assert_eq!(latest, replayed);
    lake.store().delete(&ds.paths().partition_table()).await.unwrap();
    assert_eq!(ds.latest().await.unwrap(), replayed);
    let at15 = ds.snapshot(&SnapshotSpec::Id(15)).await.unwrap();
    assert_eq!(at15.partitions.len(), 15);
}

fn contract_dir(extra_column: &str, version: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(crate::support::repo().join("schemas/raw_synthetic_bars.toml")).unwrap();
    let text = base
        .replace("schema_version = 1", &format!("schema_version = {version}"))
        .replace("\n]\n", &format!("\n  {extra_column}\n]\n"));
    std::fs::write(dir.path().join("raw_synthetic_bars.toml"), text).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_evolution_allows_only_new_nullable_columns() {
    let t = TestLake::new(Backend::Local);
    let lake = t.init().await;
    ingest_synthetic(&lake, &["AAPL"], "2024-01-02", "2024-01-02", 1).await;

    let evolved = contract_dir(r#"{ name = "exchange", type = "utf8", nullable = true },"#, 2);
    let lake2 = Lake::open(&t.url, LakeOptions { schemas_dir: Some(evolved.path().into()), ..Default::default() })
        .await
        .unwrap();
    ingest_synthetic(&lake2, &["AAPL"], "2024-01-03", "2024-01-03", 1).await;
    let ds2 = lake2.dataset("raw_synthetic_bars").unwrap();
    let state = ds2.latest().await.unwrap();
    assert_eq!(state.schema.as_ref().unwrap().version, 2);
    let rows = ds2.read(&state, &Default::default()).await.unwrap();
    assert!(rows.iter().all(|b| b.column_by_name("exchange").is_some()), "old files read with the new nullable column");
    let engine = QueryEngine::open(&lake2, &AsOf::latest()).await.unwrap();
    let n: i64 = engine
        .connection()
        .query_row("SELECT count(*) FROM raw_synthetic_bars WHERE exchange IS NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 780);

    // Changing a column's type, or adding a NOT NULL column, is refused and writes nothing.
    for (col, v) in [
        (r#"{ name = "exchange", type = "int64", nullable = true },"#, 3),
        (
            r#"{ name = "exchange", type = "utf8", nullable = true },{ name = "x", type = "int64", nullable = false },"#,
            3,
        ),
    ] {
        let dir = contract_dir(col, v);
        let lake3 = Lake::open(&t.url, LakeOptions { schemas_dir: Some(dir.path().into()), ..Default::default() })
            .await
            .unwrap();
        let source = quantlake::sources::synthetic::SyntheticSource::new(Default::default()).unwrap();
        let req = quantlake::ingest::IngestRequest {
            symbols: vec![quantlake::symbol::Symbol::from_static("AAPL")],
            start: crate::day("2024-01-04"),
            end: crate::day("2024-01-04"),
            bar_size: quantlake::sources::BarSize::Minute,
            chunk_sessions: 1,
            job_id: None,
            resume: false,
        };
        let err = quantlake::ingest::ingest(&lake3, &source, &req, &quantlake::progress::NoProgress).await;
        let msg = match err {
            Err(e @ (Error::SchemaEvolution { .. } | Error::SchemaMismatch { .. })) => e.to_string(),
            other => panic!("expected a schema error, got {other:?}"),
        };
        assert!(msg.contains("raw_synthetic_bars"), "{msg}");
        assert_eq!(ds2.latest().await.unwrap().snapshot_id, 2, "nothing committed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_that_break_the_contract_are_refused_by_column() {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let t = TestLake::new(Backend::Local);
    let lake = t.init().await;
    let ds = lake.dataset("raw_synthetic_bars").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec!["A"])) as ArrayRef, Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let err = ds.write(vec![batch]).execute().await.unwrap_err().to_string();
    assert!(err.contains("schema mismatch for dataset 'raw_synthetic_bars'") && err.contains("'ts'"), "{err}");
    assert_eq!(ds.latest().await.unwrap().snapshot_id, 0);
    let names: BTreeSet<String> =
        lake.store().list(&"".into()).await.unwrap().into_iter().map(|m| m.location.to_string()).collect();
    assert_eq!(names, BTreeSet::from(["_lake.json".to_string()]), "nothing written");
}
