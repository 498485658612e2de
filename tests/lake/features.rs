//! Features, labels and point-in-time sets: the kernels against the peer benchmark's DuckDB job on
//! its own generated input; labels checked by hand on a series built for it; training and inference
//! through one join; the target fallback exactly at its threshold; a planted lookahead caught by the
//! leakage check; annotated unusable cells left out and listed in the lineage; the streamed training
//! set equal, row for row and bit for bit, to the SQL reference.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use quantlake::Error;
use quantlake::bars::BarSize;
use quantlake::calendar::NyseCalendar;
use quantlake::curate::{CurateRequest, CurateSettings, curate, curate_with_progress};
use quantlake::dq::annotations::{NewAnnotation, annotate};
use quantlake::features::{FeaturesRequest, compute_features, compute_features_with_progress};
use quantlake::ingest::ingest_files;
use quantlake::sets::{
    FallbackSettings, TrainingRequest, get_features_for_inference, get_features_for_training, training_set_sql,
};
use quantlake::sources::file::FileImport;
use quantlake::table::AsOf;
use quantlake::table::{Lake, LakeOptions};

use crate::support::{Backend, TestLake, python, repo};
use crate::{day, ingest_synthetic};

/// The peer benchmark's DuckDB job and `quantlake bench peer-job` on the same generated input agree:
/// same rows, gaps and outliers, no null mismatch, every value within 1e-9. The job's product is a lake,
/// read in place as the harness reads it.
#[test]
fn peer_job_equals_the_duckdb_peer() {
    let dir = tempfile::tempdir().unwrap();
    let peers = repo().join("tests/python/peer");
    let run = |c: &mut Command| {
        let out = c.output().expect("run");
        assert!(
            out.status.success(),
            "{c:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(Command::new(python())
        .arg(peers.join("gen_bars.py"))
        .arg(dir.path().join("raw"))
        .current_dir(dir.path())
        .env("N_SYM", "6")
        .env("N_DAYS", "4")
        .env("OUTLIERS", "12"));
    run(Command::new(python())
        .arg(peers.join("job_duckdb.py"))
        .arg(dir.path().join("raw"))
        .arg(dir.path().join("out_duckdb")));
    let t = TestLake::new(Backend::Local);
    let out =
        run(t.cli().args(["bench", "peer-job"]).arg(dir.path().join("raw")).arg(dir.path().join("out_quantlake")));
    let line = String::from_utf8_lossy(&out.stdout);
    let last = line.trim_end().lines().last().unwrap();
    assert!(last.starts_with("ENGINE=quantlake-"), "the harness's last line: {line}");
    assert!(last.contains(&format!(" rows_out={} ", 6 * 4 * 390)), "the harness's last line: {line}");
    assert!(dir.path().join("out_quantlake/_lake.json").exists(), "the job's product is a lake");
    let again = t
        .cli()
        .args(["bench", "peer-job"])
        .arg(dir.path().join("raw"))
        .arg(dir.path().join("out_quantlake"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3), "a folder that is not empty is refused: {again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"), "{again:?}");
    let cmp = run(Command::new(python())
        .arg(repo().join("tests/python/compare_peer.py"))
        .arg(dir.path().join("out_duckdb"))
        .arg(dir.path().join("out_quantlake")));
    let r: serde_json::Value = serde_json::from_slice(&cmp.stdout).unwrap();
    assert_eq!(r["peer_rows"], 6 * 4 * 390, "{r}");
    assert_eq!(r["quantlake_rows"], r["peer_rows"], "{r}");
    assert_eq!(r["joined"], r["peer_rows"], "{r}");
    for k in ["null_mismatch", "gap_mismatch", "outlier_mismatch"] {
        assert_eq!(r[k], 0, "{k}: {r}");
    }
    assert!(r["peer_outliers"].as_u64().unwrap() > 0, "the input has outliers to find: {r}");
    for (col, diff) in r["max_diff"].as_object().unwrap() {
        assert!(diff.as_f64().unwrap() <= 1e-9, "{col} differs by {diff}: {r}");
    }
}

/// A lake with extra contracts from `schemas` (test-only feature and label sets).
async fn lake_with_schemas(t: &TestLake, schemas: &[(&str, String)]) -> (Lake, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in schemas {
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    let lake =
        Lake::init(&t.url, LakeOptions { schemas_dir: Some(dir.path().to_path_buf()), ..t.options() }).await.unwrap();
    (lake, dir)
}

/// `labels_fwd_ret_v1` against the symbol MKT, with a 3-session beta from at least 2: for short series.
fn test_label_set() -> String {
    include_str!("../../schemas/labels_fwd_ret_v1.toml")
        .replace("name = \"labels_fwd_ret_v1\"", "name = \"labels_test_v1\"")
        .replace("market = \"equal_weight\"", "market = \"MKT\"")
        .replace("beta_sessions = 60", "beta_sessions = 3")
        .replace("beta_min_sessions = 20", "beta_min_sessions = 2")
}

/// The market's log price at minute `m` of session `d`.
fn market_log_price(d: usize, m: usize) -> f64 {
    (100.0f64).ln()
        + 0.02 * ((d as f64) * 1.3).sin()
        + 0.0004 * (m as f64) * if d.is_multiple_of(2) { 1.0 } else { -0.7 }
        + 0.001 * ((m as f64) * 0.21).cos()
}

/// MKT, and AAA whose log price is twice the market's (so its beta is exactly 2), over `sessions`.
fn beta_two_file(dir: &Path, sessions: &[quantlake::calendar::Session]) -> std::path::PathBuf {
    let mut csv = String::from("symbol,ts,open,high,low,close,volume\n");
    for (symbol, scale, offset) in [("MKT", 1.0, 0.0), ("AAA", 2.0, -(100.0f64).ln())] {
        for (d, s) in sessions.iter().enumerate() {
            for m in 0..s.minutes() as usize {
                let close = (scale * market_log_price(d, m) + offset).exp();
                let ts = (s.open + Duration::minutes(m as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                writeln!(csv, "{symbol},{ts},{close},{close},{close},{close},100").unwrap();
            }
        }
    }
    let path = dir.join("beta_two.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

async fn import_and_curate(lake: &Lake, file: &Path, start: NaiveDate, end: NaiveDate) {
    let import = FileImport {
        path: file.into(),
        format: None,
        columns: Vec::new(),
        timezone: chrono_tz::America::New_York,
        bar_size: BarSize::Minute,
        symbol: None,
    };
    ingest_files(lake, &import, 10, None).await.unwrap();
    curate(lake, &CurateSettings::default(), &CurateRequest { start, end, job_id: None, bar_size: BarSize::Minute })
        .await
        .unwrap();
}

fn f64_at(b: &RecordBatch, col: &str, i: usize) -> Option<f64> {
    let c = b.column_by_name(col).unwrap_or_else(|| panic!("no column {col}")).as_primitive::<Float64Type>();
    (!c.is_null(i)).then(|| c.value(i))
}

fn ts_at(b: &RecordBatch, col: &str, i: usize) -> Option<DateTime<Utc>> {
    let c = b.column_by_name(col).unwrap().as_primitive::<TimestampMicrosecondType>();
    (!c.is_null(i)).then(|| DateTime::from_timestamp_micros(c.value(i)).unwrap())
}

/// A query's rows, in one batch.
async fn query(lake: &Lake, sql: &str) -> RecordBatch {
    let engine = quantlake::query::QueryEngine::open_for_sql(lake, &AsOf::latest(), sql).await.unwrap();
    let batches = tokio::task::block_in_place(|| engine.query(sql)).unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_checked_by_hand() {
    let t = TestLake::new(Backend::Local);
    let (lake, _schemas) = lake_with_schemas(&t, &[("labels_test_v1", test_label_set())]).await;
    let sessions = NyseCalendar.sessions(day("2024-03-04"), day("2024-03-12"));
    assert_eq!(sessions.len(), 7);
    let files = tempfile::tempdir().unwrap();
    import_and_curate(&lake, &beta_two_file(files.path(), &sessions), sessions[0].date, sessions[6].date).await;
    let report = compute_features(
        &lake,
        &FeaturesRequest {
            sets: vec!["labels_test_v1".into()],
            start: sessions[0].date,
            end: sessions[6].date,
            job_id: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.sets[0].rows, 2 * 7 * 390);

    let b = query(&lake, "SELECT * FROM labels_test_v1 WHERE symbol = 'AAA' ORDER BY ts").await;
    let close = |d: usize, m: usize| (2.0 * market_log_price(d, m) - (100.0f64).ln()).exp();
    let row = |d: usize, m: usize| d * 390 + m;
    // A 15-minute forward return: from the decision bar's close to the close 15 bars on.
    let i = row(2, 100);
    let want = (close(2, 115) / close(2, 100)).ln();
    assert!((f64_at(&b, "fwd_ret_15m", i).unwrap() - want).abs() < 1e-12);
    assert_eq!(
        ts_at(&b, "decision_time", i).unwrap(),
        sessions[2].open + Duration::minutes(101),
        "known when the bar ends"
    );
    assert_eq!(
        ts_at(&b, "fwd_ret_15m_end", i).unwrap(),
        sessions[2].open + Duration::minutes(116),
        "known when bar 115 ends"
    );
    // Never past the session: the last 15 minutes have none.
    assert!(f64_at(&b, "fwd_ret_15m", row(2, 375)).is_none());
    assert!(f64_at(&b, "fwd_ret_15m", row(2, 374)).is_some());
    // One session on: the same minute of the next session; none for the last session.
    let want = (close(3, 10) / close(2, 10)).ln();
    assert!((f64_at(&b, "fwd_ret_1d", row(2, 10)).unwrap() - want).abs() < 1e-12);
    assert!(f64_at(&b, "fwd_ret_1d", row(6, 10)).is_none(), "the session after the data is unknown");
    // Beta from the sessions before the decision day only: none until two daily returns precede it.
    assert!(f64_at(&b, "beta", row(2, 0)).is_none(), "one daily return before session 2");
    for d in 3..7 {
        let beta = f64_at(&b, "beta", row(d, 50)).unwrap();
        assert!((beta - 2.0).abs() < 1e-9, "session {d}: beta {beta}");
        // AAA moves exactly twice the market: nothing residual.
        let resid = f64_at(&b, "fwd_ret_resid_15m", row(d, 50)).unwrap();
        assert!(resid.abs() < 1e-9, "session {d}: residual {resid}");
    }
    let resid_1d = f64_at(&b, "fwd_ret_resid_1d", row(4, 50)).unwrap();
    assert!(resid_1d.abs() < 1e-9);
    assert!(f64_at(&b, "fwd_ret_resid_1d", row(6, 50)).is_none());
}

/// A 1-for-2 split of AAA on session 4: its raw prices before are twice what they would be. Once the
/// split is imported, returns across it are continuous: the 1-session label over the ex-date, the daily
/// returns beta is fitted on, and so the residual, are what they are without a split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_across_a_split_are_split_adjusted() {
    let t = TestLake::new(Backend::Local);
    let (lake, _schemas) = lake_with_schemas(&t, &[("labels_test_v1", test_label_set())]).await;
    let sessions = NyseCalendar.sessions(day("2024-03-04"), day("2024-03-12"));
    let files = tempfile::tempdir().unwrap();
    let file = beta_two_file(files.path(), &sessions);
    // Unadjusted, as vendors deliver: AAA's prices before the ex-date (session 4) doubled.
    let ex = sessions[4].date;
    let text = std::fs::read_to_string(&file).unwrap();
    let mut raw = String::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        let before = cols[0] == "AAA"
            && DateTime::parse_from_rfc3339(cols[1])
                .map(|t| NyseCalendar.trading_date(t.with_timezone(&Utc)) < ex)
                .unwrap_or(false);
        if before {
            let p: f64 = cols[2].parse::<f64>().unwrap() * 2.0;
            writeln!(raw, "{},{},{p},{p},{p},{p},{}", cols[0], cols[1], cols[6]).unwrap();
        } else {
            writeln!(raw, "{line}").unwrap();
        }
    }
    std::fs::write(&file, raw).unwrap();
    import_and_curate(&lake, &file, sessions[0].date, sessions[6].date).await;
    let actions = files.path().join("splits.csv");
    std::fs::write(&actions, format!("symbol,ex_date,split_from,split_to\nAAA,{ex},1,2\n")).unwrap();
    let settings = quantlake::reference::corporate_actions::CorporateActionSettings::default();
    let (polygon, alpaca) = (Default::default(), Default::default());
    let vendors = quantlake::reference::corporate_actions::Vendors { polygon: &polygon, alpaca: &alpaca };
    let request = quantlake::reference::corporate_actions::ImportRequest {
        source: quantlake::reference::corporate_actions::ActionSource::Csv,
        path: Some(actions),
        symbols: None,
        start: None,
        end: None,
    };
    quantlake::reference::corporate_actions::import(&lake, &settings, vendors, &request).await.unwrap();
    compute_features(
        &lake,
        &FeaturesRequest {
            sets: vec!["labels_test_v1".into()],
            start: sessions[0].date,
            end: sessions[6].date,
            job_id: None,
        },
    )
    .await
    .unwrap();

    let b = query(&lake, "SELECT * FROM labels_test_v1 WHERE symbol = 'AAA' ORDER BY ts").await;
    let close = |d: usize, m: usize| (2.0 * market_log_price(d, m) - (100.0f64).ln()).exp();
    let row = |d: usize, m: usize| d * 390 + m;
    let want = (close(4, 10) / close(3, 10)).ln();
    let got = f64_at(&b, "fwd_ret_1d", row(3, 10)).unwrap();
    assert!((got - want).abs() < 1e-12, "across the ex-date: {got}, unadjusted it would be {}", want - 2f64.ln());
    for d in 3..7 {
        let beta = f64_at(&b, "beta", row(d, 50)).unwrap();
        assert!((beta - 2.0).abs() < 1e-9, "session {d}: beta {beta}: the split is not a return");
    }
    assert!(f64_at(&b, "fwd_ret_resid_1d", row(3, 50)).unwrap().abs() < 1e-9);
    // The curated layer stays as delivered.
    let stored = query(
        &lake,
        &format!(
            "SELECT close FROM curated_1m_bars WHERE symbol = 'AAA' AND date = DATE '{}' AND minute_idx = 10",
            sessions[3].date
        ),
    )
    .await;
    assert!((f64_at(&stored, "close", 0).unwrap() - 2.0 * close(3, 10)).abs() < 1e-9);
}

/// A synthetic lake with 25 sessions of 4 symbols, curated, with features and labels.
async fn research_lake(t: &TestLake, extra: &[(&str, String)]) -> (Lake, tempfile::TempDir) {
    let (lake, schemas) = lake_with_schemas(t, extra).await;
    ingest_synthetic(&lake, &["AAA", "BBB", "CCC", "DDD"], "2024-01-02", "2024-02-06", 7).await;
    curate(
        &lake,
        &CurateSettings::default(),
        &CurateRequest { start: day("2024-01-02"), end: day("2024-02-06"), job_id: None, bar_size: BarSize::Minute },
    )
    .await
    .unwrap();
    let mut sets = vec!["features_price_1m_v1".to_string(), "labels_fwd_ret_v1".to_string()];
    sets.extend(extra.iter().map(|(n, _)| n.to_string()));
    compute_features(&lake, &FeaturesRequest { sets, start: day("2024-01-02"), end: day("2024-02-06"), job_id: None })
        .await
        .unwrap();
    (lake, schemas)
}

fn training(label: &str, threshold: f64) -> TrainingRequest {
    TrainingRequest {
        feature_set: "features_price_1m_v1".into(),
        label: label.into(),
        symbols: Vec::new(),
        start: day("2024-01-29"),
        end: day("2024-02-06"),
        as_of: AsOf::latest(),
        embargo: None,
        fallback: FallbackSettings { min_target_coverage: threshold, days_back: 25 },
        fundamentals: Vec::new(),
        universe: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sets_are_point_in_time_with_lineage() {
    let t = TestLake::new(Backend::Local);
    let trap = include_str!("../../schemas/features_price_1m_v1.toml")
        .replace("name = \"features_price_1m_v1\"", "name = \"features_trap_v1\"")
        .replace(
            "{ name = \"ret_5\",      kernel = \"log_return\", lag = 5 }",
            "{ name = \"ret_5\",      kernel = \"log_return\", lag = -1 }",
        );
    let (lake, _schemas) = research_lake(&t, &[("features_trap_v1", trap)]).await;

    // The fallback, exactly at its threshold: coverage C is enough at C, not at the next float up.
    let coverage =
        quantlake::dq::target_coverage(&lake, "labels_fwd_ret_v1", day("2024-02-06"), 25, 0.6, &AsOf::latest())
            .await
            .unwrap();
    let c = coverage.target("fwd_ret_resid_15m").unwrap().coverage;
    assert!(c > 0.0 && c < 1.0, "beta needs 20 sessions of history, so the residual is partly covered: {c}");
    let at = get_features_for_training(&lake, &training("fwd_ret_resid_15m", c)).await.unwrap();
    assert_eq!(at.target, "fwd_ret_resid_15m");
    assert!(at.lineage.fallback.is_none());
    let above = get_features_for_training(&lake, &training("fwd_ret_resid_15m", f64::from_bits(c.to_bits() + 1)))
        .await
        .unwrap();
    assert_eq!(above.target, "fwd_ret_15m", "below the threshold: the plain forward return");
    let fb = above.lineage.fallback.as_ref().unwrap();
    assert_eq!((fb.coverage, fb.days_back), (c, 25));
    let recorded = query(&lake, "SELECT requested, chosen, coverage FROM target_fallbacks").await;
    assert_eq!(recorded.num_rows(), 1, "one activation recorded");
    assert_eq!(recorded.column(1).as_string::<i32>().value(0), "fwd_ret_15m");

    // The lineage: inputs at their snapshots, the leakage check, the code, and the purge.
    let l = &above.lineage;
    for input in ["features_price_1m_v1", "labels_fwd_ret_v1", "curated_1m_bars"] {
        assert!(l.inputs[input] > 0, "{input} in {:?}", l.inputs);
    }
    assert!(l.leakage_check.max_feature_lead_us.unwrap() <= 0);
    assert_eq!(l.code.crate_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(l.code.definitions_sha256.len(), 64);
    assert_eq!(l.rows, above.batches.iter().map(|b| b.num_rows() as u64).sum::<u64>());
    assert_eq!(l.rows_purged, 0, "every 15-minute label ends by the close");
    // One-session labels of the range's last session end after it: purged; with a 1-day embargo, the
    // session before's too (they end on the last session, within a day of its close).
    let mut one_day = training("fwd_ret_1d", 0.6);
    one_day.end = day("2024-02-05");
    let purged = get_features_for_training(&lake, &one_day).await.unwrap();
    assert_eq!(purged.lineage.rows_purged, 4 * 390);
    one_day.embargo = Some(Duration::days(1));
    let embargoed = get_features_for_training(&lake, &one_day).await.unwrap();
    assert_eq!(embargoed.lineage.rows_purged, 2 * 4 * 390);
    assert_eq!(embargoed.lineage.embargo_seconds, 86_400);
    let lineage_rows = query(&lake, "SELECT id, target, rows FROM lineage ORDER BY created_at").await;
    assert_eq!(lineage_rows.num_rows(), 4);

    // Inference at a training row's decision time returns that row's features: one join for both.
    let set = arrow::compute::concat_batches(&above.batches[0].schema(), &above.batches).unwrap();
    for i in [0, set.num_rows() / 3, set.num_rows() - 1] {
        let symbol: quantlake::symbol::Symbol =
            set.column_by_name("symbol").unwrap().as_string::<i32>().value(i).parse().unwrap();
        let decision = ts_at(&set, "decision_time", i).unwrap();
        let inf = get_features_for_inference(
            &lake,
            "features_price_1m_v1",
            std::slice::from_ref(&symbol),
            &Default::default(),
            decision,
            &AsOf::latest(),
        )
        .await
        .unwrap();
        let inf = &inf[0];
        assert_eq!(ts_at(inf, "feature_ts", 0), ts_at(&set, "feature_ts", i));
        for f in &above.feature_columns {
            if f == "is_outlier" {
                assert_eq!(
                    inf.column_by_name(f).unwrap().as_boolean().value(0),
                    set.column_by_name(f).unwrap().as_boolean().value(i)
                );
            } else {
                assert_eq!(f64_at(inf, f, 0), f64_at(&set, f, i), "{f} of {symbol} at {decision}");
            }
        }
    }
    // At a time between bars, inference has the last complete bar, never the one in progress.
    let mid = NyseCalendar.session(day("2024-02-06")).unwrap().open + Duration::seconds(10 * 60 + 30);
    let inf = get_features_for_inference(
        &lake,
        "features_price_1m_v1",
        &[quantlake::symbol::Symbol::from_static("AAA")],
        &Default::default(),
        mid,
        &AsOf::latest(),
    )
    .await
    .unwrap();
    assert_eq!(
        ts_at(&inf[0], "feature_ts", 0).unwrap(),
        mid - Duration::seconds(90),
        "the bar stamped 09:39 ends at 09:40"
    );

    // A feature that peeks one bar ahead is caught, in training and in inference.
    let mut trap = training("fwd_ret_15m", 0.6);
    trap.feature_set = "features_trap_v1".into();
    let err = get_features_for_training(&lake, &trap).await.unwrap_err();
    assert!(matches!(err, Error::Leakage { .. }), "{err}");
    assert!(err.to_string().contains("lookahead 1"), "{err}");
    let err = get_features_for_inference(
        &lake,
        "features_trap_v1",
        &[quantlake::symbol::Symbol::from_static("AAA")],
        &Default::default(),
        mid,
        &AsOf::latest(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Leakage { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_cells_are_left_out_and_listed() {
    let t = TestLake::new(Backend::Local);
    let (lake, _schemas) = research_lake(&t, &[]).await;
    let before = get_features_for_training(&lake, &training("fwd_ret_15m", 0.6)).await.unwrap();
    let session = NyseCalendar.session(day("2024-02-01")).unwrap();
    let (start, end) = (session.open + Duration::minutes(60), session.open + Duration::minutes(119));
    let note = annotate(
        &lake,
        NewAnnotation {
            dataset: "curated_1m_bars".into(),
            symbols: Some(vec![quantlake::symbol::Symbol::from_static("BBB")]),
            start,
            end,
            reason: "vendor outage".into(),
            unusable: true,
        },
    )
    .await
    .unwrap();
    // A note that is not `unusable` changes nothing.
    annotate(
        &lake,
        NewAnnotation {
            dataset: "curated_1m_bars".into(),
            symbols: None,
            start,
            end,
            reason: "accepted upstream quirk".into(),
            unusable: false,
        },
    )
    .await
    .unwrap();
    let after = get_features_for_training(&lake, &training("fwd_ret_15m", 0.6)).await.unwrap();
    let l = &after.lineage;
    assert_eq!(l.excluded.len(), 1);
    assert_eq!(l.excluded[0].annotation, note.id);
    // Rows whose decision bar or 15-minute label window touches the hour: 60 bars + the 15 before.
    assert_eq!(l.excluded[0].rows, 75);
    assert_eq!(l.rows_excluded_by_annotations, 75);
    assert_eq!(l.rows, before.lineage.rows - 75);
    let set = arrow::compute::concat_batches(&after.batches[0].schema(), &after.batches).unwrap();
    let symbol = set.column_by_name("symbol").unwrap().as_string::<i32>();
    let inside = (0..set.num_rows())
        .filter(|&i| symbol.value(i) == "BBB" && ts_at(&set, "ts", i).is_some_and(|ts| ts >= start && ts <= end))
        .count();
    assert_eq!(inside, 0, "no BBB row inside the outage");
}

/// `batches` as one batch sorted by (symbol, decision_time), every column cast to the reference's types.
fn by_symbol_and_time(batches: &[RecordBatch], schema: &arrow::datatypes::SchemaRef) -> RecordBatch {
    let one = arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap();
    let columns = schema
        .fields()
        .iter()
        .map(|f| arrow::compute::cast(one.column_by_name(f.name()).unwrap(), f.data_type()).unwrap())
        .collect();
    let one = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let order = arrow::compute::lexsort_to_indices(
        &[
            arrow::compute::SortColumn { values: one.column_by_name("symbol").unwrap().clone(), options: None },
            arrow::compute::SortColumn { values: one.column_by_name("decision_time").unwrap().clone(), options: None },
        ],
        None,
    )
    .unwrap();
    arrow::compute::take_record_batch(&one, &order).unwrap()
}

/// The streamed training set (a merge per session) and the SQL reference (one ASOF JOIN over the
/// window) give the same rows, bit for bit, and the same counts, leakage check and lineage, over the
/// cases that differ: a symbol without features for the first half hour of a session (its decisions
/// take its last row of the session before), an unusable annotation, a purge with an embargo, a
/// symbol filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_training_sets_equal_the_sql_reference() {
    let t = TestLake::new(Backend::Local);
    let (lake, _schemas) = research_lake(&t, &[]).await;
    // CCC loses its first 30 feature rows of 2024-02-01.
    let hole = NyseCalendar.session(day("2024-02-01")).unwrap();
    let features = lake.dataset("features_price_1m_v1").unwrap();
    let state = features.latest().await.unwrap();
    let filter = quantlake::table::ReadFilter { start: Some(hole.date), end: Some(hole.date), ..Default::default() };
    let kept: Vec<RecordBatch> = features
        .read(&state, &filter)
        .await
        .unwrap()
        .iter()
        .map(|b| {
            let symbol = b.column_by_name("symbol").unwrap().as_string::<i32>();
            let ts = b.column_by_name("ts").unwrap().as_primitive::<TimestampMicrosecondType>();
            let cut = (hole.open + Duration::minutes(30)).timestamp_micros();
            let keep: arrow::array::BooleanArray =
                (0..b.num_rows()).map(|i| Some(!(symbol.value(i) == "CCC" && ts.value(i) < cut))).collect();
            arrow::compute::filter_record_batch(b, &keep).unwrap()
        })
        .collect();
    features
        .write(kept)
        .mode(quantlake::table::operations::write::WriteMode::Overwrite)
        .covering([quantlake::table::layout::PartitionKey::Date(hole.date)])
        .operation("test_hole")
        .execute()
        .await
        .unwrap();
    let session = NyseCalendar.session(day("2024-01-31")).unwrap();
    annotate(
        &lake,
        NewAnnotation {
            dataset: "curated_1m_bars".into(),
            symbols: Some(vec![quantlake::symbol::Symbol::from_static("BBB")]),
            start: session.open + Duration::minutes(60),
            end: session.open + Duration::minutes(119),
            reason: "vendor outage".into(),
            unusable: true,
        },
    )
    .await
    .unwrap();

    let mut day_horizon = training("fwd_ret_1d", 0.6);
    day_horizon.embargo = Some(Duration::hours(20));
    let mut some = training("fwd_ret_15m", 0.6);
    some.symbols = ["CCC", "BBB"].map(quantlake::symbol::Symbol::from_static).to_vec();
    for request in [training("fwd_ret_15m", 0.6), training("fwd_ret_resid_15m", 0.99), day_horizon, some] {
        let sql = training_set_sql(&lake, &request).await.unwrap();
        let streamed = get_features_for_training(&lake, &request).await.unwrap();
        let (a, b) = (&sql.lineage, &streamed.lineage);
        let what = format!("{} {:?}", request.label, request.symbols);
        assert_eq!(streamed.target, sql.target, "{what}");
        assert_eq!(streamed.feature_columns, sql.feature_columns, "{what}");
        assert_eq!(
            (b.rows, b.candidate_rows, b.rows_without_target, b.rows_purged, b.rows_without_features),
            (a.rows, a.candidate_rows, a.rows_without_target, a.rows_purged, a.rows_without_features),
            "{what}"
        );
        assert_eq!(b.rows_excluded_by_annotations, a.rows_excluded_by_annotations, "{what}");
        assert_eq!(
            b.excluded.iter().map(|e| e.rows).collect::<Vec<_>>(),
            a.excluded.iter().map(|e| e.rows).collect::<Vec<_>>(),
            "{what}"
        );
        assert_eq!(b.leakage_check, a.leakage_check, "{what}");
        assert_eq!((&b.inputs, b.label_cutoff, &b.fallback), (&a.inputs, a.label_cutoff, &a.fallback), "{what}");
        assert!(a.rows > 0, "{what}");
        let reference = by_symbol_and_time(&sql.batches, &sql.batches[0].schema());
        let merged = by_symbol_and_time(&streamed.batches, &sql.batches[0].schema());
        for (f, (x, y)) in reference.schema().fields().iter().zip(reference.columns().iter().zip(merged.columns())) {
            assert_eq!(x.to_data(), y.to_data(), "{what}: column {}", f.name());
        }
        if request.label == "fwd_ret_15m" && request.symbols.is_empty() {
            assert!(b.rows_excluded_by_annotations > 0, "the annotation leaves rows out");
            // CCC's first decisions of the hole session take its last row of the session before.
            let carried = (0..merged.num_rows())
                .filter(|&i| {
                    merged.column_by_name("symbol").unwrap().as_string::<i32>().value(i) == "CCC"
                        && ts_at(&merged, "ts", i) == Some(hole.open)
                })
                .map(|i| ts_at(&merged, "feature_ts", i).unwrap())
                .collect::<Vec<_>>();
            let last_before = NyseCalendar.session(day("2024-01-31")).unwrap().close - Duration::minutes(1);
            assert_eq!(carried, vec![last_before]);
        }
    }
}

/// After curated bars of one session are replaced, exactly the partitions that read them are stale:
/// that session's features; the labels of the session before (its 1-session horizon) and of every later
/// one (their trailing beta window). `refresh_stale` recomputes them and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_partitions_follow_their_inputs() {
    let t = TestLake::new(Backend::Local);
    let (lake, _schemas) = research_lake(&t, &[]).await;
    assert!(quantlake::features::inputs::stale_sessions(&lake, "features_price_1m_v1").await.unwrap().is_empty());
    curate(
        &lake,
        &CurateSettings::default(),
        &CurateRequest { start: day("2024-01-30"), end: day("2024-01-30"), job_id: None, bar_size: BarSize::Minute },
    )
    .await
    .unwrap();
    let features = quantlake::features::inputs::stale_sessions(&lake, "features_price_1m_v1").await.unwrap();
    assert_eq!(features.iter().map(|p| p.date).collect::<Vec<_>>(), [day("2024-01-30")]);
    assert_eq!(features[0].changed, ["curated_1m_bars/date=2024-01-30"]);
    let labels = quantlake::features::inputs::stale_sessions(&lake, "labels_fwd_ret_v1").await.unwrap();
    let want: Vec<NaiveDate> =
        NyseCalendar.sessions(day("2024-01-29"), day("2024-02-06")).iter().map(|s| s.date).collect();
    assert_eq!(labels.iter().map(|p| p.date).collect::<Vec<_>>(), want);

    // Predictions scored from the features: a model trained before, three sessions scored.
    let train = quantlake::models::TrainRequest {
        feature_set: "features_price_1m_v1".into(),
        label: "fwd_ret_15m".into(),
        symbols: Vec::new(),
        features: vec!["ret_1".into(), "ret_5".into(), "ret_15".into()],
        start: day("2024-01-02"),
        end: day("2024-01-26"),
        window_years: 1,
        alpha: 1.0,
        holdout_fraction: 0.2,
        embargo_sessions: 1,
        as_of: AsOf::latest(),
        universe: Default::default(),
    };
    let model =
        quantlake::models::train::train(&lake, &train, FallbackSettings::default(), &quantlake::progress::NoProgress)
            .await
            .unwrap();
    let quality = quantlake::models::PredictionQualitySettings::default();
    let score = |start: &str, end: &str| quantlake::models::ScoreRequest::new(day(start), day(end));
    let no_progress = &quantlake::progress::NoProgress;
    quantlake::models::score::score(&lake, &score("2024-01-29", "2024-01-31"), &quality, no_progress).await.unwrap();

    let sets = ["features_price_1m_v1".to_string(), "labels_fwd_ret_v1".to_string()];
    let report = quantlake::features::refresh_stale(&lake, &sets).await.unwrap();
    assert_eq!(report.runs.len(), 2, "one run per set: each set's stale sessions are consecutive");
    assert_eq!((report.runs[0].start, report.runs[0].end), (day("2024-01-30"), day("2024-01-30")));
    assert_eq!((report.runs[1].start, report.runs[1].end), (day("2024-01-29"), day("2024-02-06")));
    for set in &sets {
        assert!(
            quantlake::features::inputs::stale_sessions(&lake, set).await.unwrap().is_empty(),
            "{set} is fresh again"
        );
    }
    // Then the predictions of the recomputed feature partition, and only those, with their model.
    let predictions = quantlake::models::score::refresh_stale_predictions(&lake, &quality).await.unwrap();
    assert_eq!(predictions.stale.iter().map(|p| p.date).collect::<Vec<_>>(), [day("2024-01-30")]);
    assert_eq!(predictions.runs.len(), 1);
    assert_eq!((predictions.runs[0].start, predictions.runs[0].end), (day("2024-01-30"), day("2024-01-30")));
    assert_eq!(predictions.runs[0].model_id, model.model_id);
    assert!(quantlake::features::inputs::stale_sessions(&lake, "predictions").await.unwrap().is_empty());
}

/// Fundamentals join a training set point in time: a row sees the latest filing dated strictly before
/// its decision date, never one filed that day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sets_see_filings_dated_before_the_decision() {
    let t = TestLake::new(Backend::Local);
    let (lake, _schemas) = research_lake(&t, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("filings.csv");
    std::fs::write(
        &csv,
        "symbol,fiscal_year,fiscal_period,period_end,filing_date,revenues\n\
         AAA,2023,Q3,2023-09-30,2023-11-02,100\n\
         AAA,2023,Q4,2023-12-31,2024-01-31,200\n\
         BBB,2023,Q4,2023-12-31,2024-02-05,300\n",
    )
    .unwrap();
    quantlake::reference::fundamentals::upsert_from_file(&lake, &csv, None, None).await.unwrap();
    let mut request = training("fwd_ret_15m", 0.6);
    request.fundamentals = vec!["revenues".into()];
    let set = get_features_for_training(&lake, &request).await.unwrap();
    assert!(set.feature_columns.ends_with(&["revenues".to_string()]));
    assert_eq!(set.lineage.fundamentals, ["revenues"]);
    assert!(set.lineage.inputs["fundamentals"] > 0);
    assert!(set.lineage.leakage_check.max_filing_lead_days.unwrap() < 0);
    let b = arrow::compute::concat_batches(&set.batches[0].schema(), &set.batches).unwrap();
    let symbol = b.column_by_name("symbol").unwrap().as_string::<i32>();
    let revenues = |s: &str, d: &str| -> Vec<Option<f64>> {
        let mut seen: Vec<Option<f64>> = (0..b.num_rows())
            .filter(|&i| {
                symbol.value(i) == s && ts_at(&b, "ts", i).is_some_and(|t| NyseCalendar.trading_date(t) == day(d))
            })
            .map(|i| f64_at(&b, "revenues", i))
            .collect();
        seen.dedup();
        seen
    };
    assert_eq!(revenues("AAA", "2024-01-31"), [Some(100.0)], "Q4 was filed that day: not yet");
    assert_eq!(revenues("AAA", "2024-02-01"), [Some(200.0)]);
    assert_eq!(revenues("BBB", "2024-02-02"), [None], "BBB's first filing is later");
    assert_eq!(revenues("BBB", "2024-02-06"), [Some(300.0)]);
    request.fundamentals = vec!["no_such_item".into()];
    assert!(
        get_features_for_training(&lake, &request)
            .await
            .unwrap_err()
            .to_string()
            .contains("no item column 'no_such_item'")
    );
}

/// The commands on a short demo lake: the residual target has no coverage yet (beta needs 20 sessions),
/// so `debug target-coverage` exits 2 and a training set falls back, saying so in the runbook's words.
#[test]
fn commands_report_coverage_and_fall_back() {
    let t = TestLake::new(Backend::Local);
    let ok = |args: &[&str]| {
        let out = t.run(args);
        assert!(out.status.success(), "{args:?}: {}", crate::support::stderr(&out));
        out
    };
    ok(&["init"]);
    ok(&["ingest", "--source", "synthetic", "--symbols", "3", "--start", "2024-01-02", "--end", "2024-01-10"]);
    ok(&["curate", "--start", "2024-01-02", "--end", "2024-01-10"]);
    let report = t.json(&["features", "--start", "2024-01-02", "--end", "2024-01-10"]);
    assert_eq!(report["sets"].as_array().unwrap().len(), 2);
    assert_eq!(report["sets"][0]["rows"], 3 * 7 * 390);

    let coverage = t.run(&["--json", "debug", "target-coverage", "--end", "2024-01-10", "--days-back", "7"]);
    assert_eq!(coverage.status.code(), Some(2), "a target below MIN_TARGET_COVERAGE is critical");
    let coverage: serde_json::Value = serde_json::from_slice(&coverage.stdout).unwrap();
    let resid = coverage["targets"].as_array().unwrap().iter().find(|t| t["target"] == "fwd_ret_resid_15m").unwrap();
    assert_eq!(resid["coverage"], 0.0);
    assert_eq!(coverage["days"].as_array().unwrap().len(), 7 * 4, "per session and target");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("train.arrow");
    let out = t
        .cli()
        .env("RUST_LOG", "warn")
        .env("DAYS_BACK", "7")
        .args([
            "--json",
            "training-set",
            "--label",
            "fwd_ret_resid_15m",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-10",
            "--output",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let lineage: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lineage["target"], "fwd_ret_15m");
    assert_eq!(lineage["fallback"]["days_back"], 7, "DAYS_BACK sets the window");
    assert!(
        crate::support::stderr(&out).contains("falling back to fwd_ret_15m (fwd_ret_resid_15m coverage 0.0000 < 0.6)"),
        "{}",
        crate::support::stderr(&out)
    );
    let reader = arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&file).unwrap(), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows as u64, lineage["rows"].as_u64().unwrap());

    let inference = t.json(&["inference-set", "--at", "2024-01-10T15:00:00Z"]);
    assert_eq!(inference.as_array().unwrap().len(), 3, "one row per symbol");
    assert_eq!(inference[0]["feature_ts"], "2024-01-10T14:59:00Z", "the last bar complete at 15:00");
    // `--at` is the decision time, `--as-of` the lake state: before the features' first commit the
    // same decision time has no rows, and an unknown tag is refused by name.
    let before = t.json(&["inference-set", "--at", "2024-01-10T15:00:00Z", "--as-of", "features_price_1m_v1@0"]);
    assert_eq!(before.as_array().unwrap().len(), 0, "{before}");
    let unknown = t.run(&["inference-set", "--at", "2024-01-10T15:00:00Z", "--as-of", "no-such-tag"]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(crate::support::stderr(&unknown).contains("no-such-tag"), "{}", crate::support::stderr(&unknown));
    let with_label = |label: &str| {
        let out = t.run(&[
            "training-set",
            "--label",
            label,
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-10",
            "--output",
            "x.parquet",
        ]);
        assert_eq!(out.status.code(), Some(3));
        crate::support::stderr(&out)
    };
    let err = with_label("fwd_ret_2h");
    assert!(err.contains("no label set has a target 'fwd_ret_2h'") && err.contains("fwd_ret_15m, fwd_ret_1d"), "{err}");
    let err = with_label("fwd_ret_15");
    assert!(err.contains("did you mean 'fwd_ret_15m'?"), "{err}");

    // Live inference is reproducible: the lake state it read goes with its rows (the file's schema
    // metadata), and a tag taken then reads the same rows after later commits change the features.
    let at = "2024-01-10T15:00:00Z";
    let file = dir.path().join("inference.parquet");
    ok(&["inference-set", "--at", at, "--format", "parquet", "--output", file.to_str().unwrap()]);
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap();
    let read = reader.schema().metadata().get("quantlake.read").cloned().unwrap_or_default();
    assert!(read.starts_with("features_price_1m_v1@"), "{:?}", reader.schema().metadata());
    ok(&["snapshot", "tag", "--all", "live-2024-01-10"]);
    let tagged = || t.json(&["inference-set", "--at", at, "--as-of", "live-2024-01-10"]);
    assert_eq!(tagged(), inference);
    ok(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "3",
        "--start",
        "2024-01-10",
        "--end",
        "2024-01-10",
        "--seed",
        "7",
    ]);
    ok(&["curate", "--start", "2024-01-10", "--end", "2024-01-10"]);
    ok(&["features", "--start", "2024-01-10", "--end", "2024-01-10"]);
    assert_ne!(t.json(&["inference-set", "--at", at]), inference, "the later commits changed the features");
    assert_eq!(tagged(), inference, "the tag reads what live inference read");

    // Without --symbols, the rows are the members of the configured default universe on the decision
    // date (here "sp", two of the three symbols), or every symbol's with --universe all.
    let symbols: Vec<String> =
        inference.as_array().unwrap().iter().map(|r| r["symbol"].as_str().unwrap().to_string()).collect();
    let members = dir.path().join("sp.csv");
    let rows: String = symbols[..2].iter().map(|s| format!("{s},2020-01-02,,\n")).collect();
    std::fs::write(&members, format!("ticker,valid_from,valid_to,delisted\n{rows}")).unwrap();
    ok(&["securities", "import", "--source", "csv", "--path", members.to_str().unwrap(), "--universe", "sp"]);
    let rows_of = |extra: &[&str]| {
        let out = t
            .cli()
            .env("QUANTLAKE_SECURITIES__DEFAULT_UNIVERSE", "sp")
            .args(["--json", "inference-set", "--at", at])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", crate::support::stderr(&out));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array().unwrap().iter().map(|r| r["symbol"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(rows_of(&[]), symbols[..2], "the configured default universe's members");
    assert_eq!(rows_of(&["--universe", "all"]), symbols);
}

/// Counts what a command line's bar would show: the length, and the units done.
#[derive(Default)]
struct Counting {
    len: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

impl quantlake::progress::Progress for Counting {
    fn set_length(&self, len: u64) {
        self.len.store(len, std::sync::atomic::Ordering::SeqCst);
    }
    fn inc(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
    fn message(&self, _: &str) {}
    fn finish(&self) {}
}

impl Counting {
    fn seen(&self) -> (u64, u64) {
        (self.len.load(std::sync::atomic::Ordering::SeqCst), self.done.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Curate and features report their work as it goes (the command line draws it): the length up
/// front, every unit done by the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curate_and_features_report_progress() {
    let t = TestLake::new(Backend::Local);
    let lake = t.init().await;
    ingest_synthetic(&lake, &["AAA", "BBB"], "2024-01-02", "2024-01-10", 7).await;
    let curated = Counting::default();
    let request =
        CurateRequest { start: day("2024-01-02"), end: day("2024-01-10"), job_id: None, bar_size: BarSize::Minute };
    curate_with_progress(&lake, &CurateSettings::default(), &request, &curated).await.unwrap();
    assert_eq!(curated.seen(), (7, 7), "seven sessions");
    let computed = Counting::default();
    let sets = vec!["features_price_1m_v1".to_string(), "labels_fwd_ret_v1".to_string()];
    let request = FeaturesRequest { sets, start: day("2024-01-02"), end: day("2024-01-10"), job_id: None };
    compute_features_with_progress(&lake, &request, &computed).await.unwrap();
    assert_eq!(computed.seen(), (14, 14), "two sets of seven sessions");
}
