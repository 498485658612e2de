//! The baseline model and batch scoring: a model trained twice on the same rows is one model (same id,
//! the same stored bytes, one registry row); scoring writes one prediction row per feature row with the
//! model id; a re-score replaces its sessions' partitions and never duplicates; the prediction checks
//! turn RED on a shifted session; and, end to end on a synthetic lake, `features`, `train`, `models`,
//! `score` and `health --dataset predictions` through the command line.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use chrono::{NaiveDate, Utc};
use quantlake::calendar::NyseCalendar;
use quantlake::models::score::{ScoreRequest, score_batches};
use quantlake::models::train::{TrainingInput, train_on};
use quantlake::models::{ModelSettings, TrainOptions, registry};
use quantlake::table::Lake;
use serde_json::json;

use crate::both_backends;
use crate::day;
use crate::support::{Backend, TestLake, stderr};

const SYMBOLS: [&str; 4] = ["AAA", "BBB", "CCC", "DDD"];

/// Feature rows of `sessions`, 30 minutes x 4 symbols each, shaped like a training set: symbol, ts,
/// decision_time, ret_1, flag, target = 0.4 ret_1 + noise (+ `shift` on the features).
fn rows(sessions: &[NaiveDate], shift: f64, with_target: bool) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut k = 0u64;
    for d in sessions {
        let open = NyseCalendar.session(*d).unwrap().open.timestamp_micros();
        let (mut sym, mut ts, mut x, mut flag, mut y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for m in 0..30i64 {
            for s in SYMBOLS {
                k += 1;
                let r = ((k * 7919) % 1009) as f64 / 1009.0 - 0.5 + shift;
                sym.push(s);
                ts.push(open + m * 60_000_000);
                x.push(if k.is_multiple_of(23) { None } else { Some(r) });
                flag.push(Some(k.is_multiple_of(5)));
                y.push(Some(0.4 * r + ((k * 104729) % 97) as f64 / 9700.0));
            }
        }
        let stamp = |v: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) };
        let mut cols: Vec<(&str, ArrayRef)> = vec![
            ("symbol", Arc::new(StringArray::from(sym))),
            ("ts", stamp(ts.clone())),
            ("decision_time", stamp(ts.iter().map(|t| t + 60_000_000).collect())),
            ("ret_1", Arc::new(Float64Array::from(x))),
            ("is_outlier", Arc::new(BooleanArray::from(flag))),
        ];
        if with_target {
            cols.push(("target", Arc::new(Float64Array::from(y))));
        }
        out.push(RecordBatch::try_from_iter(cols).unwrap());
    }
    out
}

fn sessions(start: &str, end: &str) -> Vec<NaiveDate> {
    NyseCalendar.sessions(day(start), day(end)).iter().map(|s| s.date).collect()
}

/// A training set of `batches`, with a fresh lineage record each time (as every training-set call makes).
fn input(batches: Vec<RecordBatch>) -> TrainingInput {
    let id = format!("ts-test-{}", uuid::Uuid::new_v4().simple());
    TrainingInput {
        batches,
        feature_columns: vec!["ret_1".into(), "is_outlier".into()],
        target: "fwd_ret_15m".into(),
        feature_set_version: "1".into(),
        target_sessions_ahead: 0,
        lineage: json!({ "id": id, "created_at": Utc::now().to_rfc3339() }),
        lineage_id: Some(id),
    }
}

async fn prediction_rows(lake: &Lake, date: &str) -> Vec<(String, i64, Option<f64>, String)> {
    let ds = lake.dataset("predictions").unwrap();
    let state = ds.latest().await.unwrap();
    let filter = quantlake::table::ReadFilter { start: Some(day(date)), end: Some(day(date)), ..Default::default() };
    let mut out = Vec::new();
    for b in ds.read(&state, &filter).await.unwrap() {
        let sym = b.column_by_name("symbol").unwrap().as_string::<i32>();
        let ts = b.column_by_name("ts").unwrap().as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let p = b.column_by_name("prediction").unwrap().as_primitive::<arrow::datatypes::Float64Type>();
        let m = b.column_by_name("model_id").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                sym.value(i).to_string(),
                ts.value(i),
                (!arrow::array::Array::is_null(p, i)).then(|| p.value(i)),
                m.value(i).to_string(),
            ));
        }
    }
    out
}

async fn train_store_score_rescore(backend: Backend) {
    let t = TestLake::new(backend);
    let lake = t.init().await;
    let settings = ModelSettings { holdout_fraction: 0.25, ..Default::default() };
    let request =
        TrainOptions { end: Some(day("2024-02-29")), ..Default::default() }.resolve(&settings, Utc::now()).unwrap();
    let train_days = sessions("2024-02-01", "2024-02-29");

    // Trained twice on the same rows (cut into other batches): one id, one artifact, one registry row.
    let first = train_on(&lake, &request, &input(rows(&train_days, 0.0, true))).await.unwrap();
    assert!(first.new_artifact);
    let key = format!("_models/{}/model.json", first.model_id);
    let stored = lake.store().get(&key.as_str().into()).await.unwrap().expect("artifact stored");
    let recut = vec![
        arrow::compute::concat_batches(&rows(&train_days, 0.0, true)[0].schema(), &rows(&train_days, 0.0, true))
            .unwrap(),
    ];
    let second = train_on(&lake, &request, &input(recut)).await.unwrap();
    assert_eq!(second.model_id, first.model_id);
    assert!(!second.new_artifact, "the same content is already stored");
    let artifact = registry::load_artifact(&lake, &first.model_id).await.unwrap();
    assert_eq!(artifact.to_bytes().unwrap(), stored.to_vec());
    assert_eq!(lake.store().get(&key.as_str().into()).await.unwrap().unwrap(), stored, "never rewritten");
    let listed = registry::list(&lake).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].model_id.as_str(), listed[0].feature_set_version.as_str()), (first.model_id.as_str(), "1"));
    // The holdout is the last quarter of February's sessions, after one embargo session.
    assert_eq!(artifact.holdout_sessions.last, Some(day("2024-02-29")));
    assert!(artifact.train_sessions.last < artifact.embargo_sessions.first);
    assert_eq!(artifact.rows.train + artifact.rows.embargo + artifact.rows.holdout, artifact.rows.used);
    assert!(artifact.rows.skipped_null_feature > 0, "null features are skipped and counted");
    assert!(artifact.metrics.holdout.as_ref().unwrap().ic.unwrap() > 0.9);
    assert_eq!(
        artifact.training_set["id"].as_str(),
        first.training_set_id.as_deref(),
        "the first training set's lineage stays with the model"
    );
    assert_eq!(second.training_set_id, first.training_set_id);
    assert_eq!(listed[0].training_set_id, first.training_set_id);

    // Scoring: one prediction row per feature row, with the model id; null where a feature is null.
    let score_days = sessions("2024-03-01", "2024-03-05");
    let features = rows(&score_days, 0.0, false);
    let feature_rows: usize = features.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(artifact.fit_end(), day("2024-02-29"), "a 15-minute target: the window's last session");
    let request = ScoreRequest::new(day("2024-03-01"), day("2024-03-05"));
    let q = settings.quality.clone();
    let report = score_batches(&lake, &request, &artifact, &features, &q).await.unwrap();
    assert_eq!((report.rows as usize, report.sessions, report.partitions), (feature_rows, 3, 3));
    assert!(report.null_predictions > 0);
    let day1 = prediction_rows(&lake, "2024-03-01").await;
    assert_eq!(day1.len(), 120);
    assert!(day1.iter().all(|r| r.3 == first.model_id));
    assert_eq!(day1.iter().filter(|r| r.2.is_none()).count() as u64, report.quality[0].null_predictions);
    // Against the stored model: the prediction of the first row by hand.
    let fit = artifact.ridge();
    let r0 = &features[0];
    let x0 = r0.column_by_name("ret_1").unwrap().as_primitive::<arrow::datatypes::Float64Type>().value(0);
    let f0 = r0.column_by_name("is_outlier").unwrap().as_boolean().value(0);
    let stored0 = day1
        .iter()
        .find(|r| r.0 == "AAA" && r.1 == NyseCalendar.session(day("2024-03-01")).unwrap().open.timestamp_micros())
        .unwrap();
    assert_eq!(stored0.2, Some(fit.predict_row(&[x0, if f0 { 1.0 } else { 0.0 }])));

    // A re-score of the range replaces its partitions: the same rows, not twice as many.
    let again = score_batches(&lake, &request, &artifact, &features, &q).await.unwrap();
    assert_eq!(again.rows, report.rows);
    let total = lake.dataset("predictions").unwrap().latest().await.unwrap().rows();
    assert_eq!(total as usize, feature_rows, "no duplicate after a re-score");
    // Re-scoring one session with two symbols replaces exactly that partition.
    let two: Vec<RecordBatch> = rows(&sessions("2024-03-04", "2024-03-04"), 0.0, false)
        .iter()
        .map(|b| {
            let keep: BooleanArray = b
                .column_by_name("symbol")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|s| Some(matches!(s, Some("AAA" | "BBB"))))
                .collect();
            arrow::compute::filter_record_batch(b, &keep).unwrap()
        })
        .collect();
    let one = ScoreRequest {
        symbols: vec![quantlake::symbol::Symbol::from_static("AAA"), quantlake::symbol::Symbol::from_static("BBB")],
        ..ScoreRequest::new(day("2024-03-04"), day("2024-03-04"))
    };
    score_batches(&lake, &one, &artifact, &two, &q).await.unwrap();
    assert_eq!(prediction_rows(&lake, "2024-03-04").await.len(), 60);
    assert_eq!(prediction_rows(&lake, "2024-03-01").await, day1, "other sessions untouched");

    // A session whose features moved: the shift check turns RED (against the 3 earlier sessions).
    let shifted = rows(&sessions("2024-03-06", "2024-03-06"), 3.0, false);
    let q_small = quantlake::models::PredictionQualitySettings { min_reference_rows: 50, ..q.clone() };
    let moved =
        score_batches(&lake, &ScoreRequest::new(day("2024-03-06"), day("2024-03-06")), &artifact, &shifted, &q_small)
            .await
            .unwrap();
    assert_eq!(moved.status, quantlake::dq::Status::Red, "{:?}", moved.quality);
    assert_eq!(moved.quality[0].reference_sessions, 3);
    assert!(moved.quality[0].mean_shift.unwrap() > 1.0);
    let health = quantlake::models::predictions_health(&lake, Some(day("2024-03-06")), &Default::default(), &q_small)
        .await
        .unwrap();
    assert_eq!(health.status, quantlake::dq::Status::Red);
    let last = health.partitions.last().unwrap();
    assert_eq!((last.partition.as_str(), last.status), ("date=2024-03-06", quantlake::dq::Status::Red));
    assert_eq!(health.partitions[0].partition, "date=2024-03-01", "nothing is judged before the first scored session");

    // Rows outside the asked sessions are refused, a bad model id is named.
    let err = score_batches(&lake, &one, &artifact, &features, &q).await.unwrap_err().to_string();
    assert!(err.contains("outside the scored sessions"), "{err}");
    assert!(registry::load_artifact(&lake, "../../x").await.unwrap_err().to_string().contains("model id"));

    // Sessions the model saw are refused, and only scored when allowed: flagged, a warning.
    let seen = rows(&sessions("2024-02-28", "2024-03-01"), 0.0, false);
    let straddling = ScoreRequest::new(day("2024-02-28"), day("2024-03-01"));
    let err = score_batches(&lake, &straddling, &artifact, &seen, &q).await.unwrap_err();
    assert_eq!(quantlake::Outcome::from(&err), quantlake::Outcome::Unknown);
    let err = err.to_string();
    assert!(err.contains("saw the sessions through 2024-02-29") && err.contains("score from 2024-03-01 on"), "{err}");
    assert!(err.contains("--walk-forward") && err.contains("--allow-in-sample"), "{err}");
    let allowed = ScoreRequest { allow_in_sample: true, ..straddling };
    let report = score_batches(&lake, &allowed, &artifact, &seen, &q).await.unwrap();
    assert_eq!(report.in_sample_sessions, [day("2024-02-28"), day("2024-02-29")]);
    assert!(report.outcome() >= quantlake::Outcome::Warning, "in sample is never exit 0");
    let state = lake.dataset("predictions").unwrap().latest().await.unwrap();
    let mut by_day = std::collections::BTreeMap::<NaiveDate, (u64, u64)>::new();
    for b in lake.dataset("predictions").unwrap().read(&state, &Default::default()).await.unwrap() {
        let ts = b.column_by_name("ts").unwrap().as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let flag = b.column_by_name("in_sample").unwrap().as_boolean();
        let fit_end = b.column_by_name("model_fit_end").unwrap().as_primitive::<arrow::datatypes::Date32Type>();
        for i in 0..b.num_rows() {
            let d = NyseCalendar.trading_date(chrono::DateTime::from_timestamp_micros(ts.value(i)).unwrap());
            assert_eq!(fit_end.value_as_date(i), Some(day("2024-02-29")));
            let e = by_day.entry(d).or_default();
            e.0 += 1;
            e.1 += u64::from(flag.value(i));
        }
    }
    for (d, (rows, flagged)) in by_day {
        let expected = if d <= day("2024-02-29") { rows } else { 0 };
        assert_eq!(flagged, expected, "{d}: rows flagged in_sample exactly on sessions the model saw");
    }
}
both_backends!(train_store_score_rescore_test, train_store_score_rescore);

/// A synthetic lake through every stage: ingest, curate, features, train (twice: one model), models,
/// score a session, re-score a range, health of the predictions.
#[test]
fn demo_lake_end_to_end() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    t.json(&["ingest", "--source", "synthetic", "--symbols", "6", "--start", "2024-01-02", "--end", "2024-01-12"]);
    t.json(&["curate", "--start", "2024-01-02", "--end", "2024-01-12"]);
    t.json(&["features", "--start", "2024-01-02", "--end", "2024-01-12"]);

    let first = t.json(&["train", "--end", "2024-01-11", "--holdout-fraction", "0.25"]);
    let id = first["model_id"].as_str().unwrap().to_string();
    assert_eq!(first["new_artifact"], true);
    assert_eq!(first["feature_set"], "features_price_1m_v1");
    assert_eq!(first["holdout_sessions"]["sessions"], 2, "{first}");
    assert_eq!(first["embargo_sessions"]["sessions"], 1);
    assert!(first["rows"]["used"].as_u64().unwrap() > 1000, "{first}");
    assert!(first["metrics"]["holdout"]["rows"].as_u64().unwrap() > 0);
    assert!(first["training_set_id"].as_str().unwrap().starts_with("ts-"));
    let target = first["target"].as_str().unwrap();
    assert!(target == "fwd_ret_resid_15m" || target == "fwd_ret_15m", "{target}");
    assert_eq!(first["fallback"], target != "fwd_ret_resid_15m");
    // Training again on the same snapshot: the same model.
    let second = t.json(&["train", "--end", "2024-01-11", "--holdout-fraction", "0.25"]);
    assert_eq!((second["model_id"].as_str(), second["new_artifact"].as_bool()), (Some(id.as_str()), Some(false)));
    let listed = t.json(&["models"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["model_id"], id.as_str());
    assert_eq!(listed[0]["feature_set_version"], "1");
    let artifact = std::fs::read(t.local_root().unwrap().join(format!("_models/{id}/model.json"))).unwrap();
    let artifact: serde_json::Value = serde_json::from_slice(&artifact).unwrap();
    assert_eq!(
        artifact["training_set"]["id"], first["training_set_id"],
        "the lineage of the training set is in the artifact"
    );
    assert_eq!(artifact["features"].as_array().unwrap().len(), 8);

    let feature_rows = |d: &str| {
        t.json(&["query", &format!("SELECT count(*) AS n FROM features_price_1m_v1 WHERE date = DATE '{d}'")])[0]["n"]
            .as_u64()
            .unwrap()
    };
    let prediction_rows = |d: &str| {
        t.json(&["query", &format!("SELECT count(*) AS n, count(DISTINCT model_id) AS models, min(model_id) AS model FROM predictions WHERE date = DATE '{d}'")])
    };
    let (code, scored) = t.json_report(&["score", "--date", "2024-01-12"]);
    assert_eq!(scored["model_id"], id.as_str());
    assert_eq!(scored["rows"].as_u64(), Some(feature_rows("2024-01-12")));
    assert_eq!(
        code,
        scored["status"]
            .as_str()
            .map(|s| ["GREEN", "YELLOW", "RED"].iter().position(|x| *x == s).unwrap() as i32)
            .unwrap()
    );
    let p = prediction_rows("2024-01-12");
    assert_eq!(
        (p[0]["n"].as_u64(), p[0]["models"].as_u64(), p[0]["model"].as_str()),
        (Some(feature_rows("2024-01-12")), Some(1), Some(id.as_str()))
    );

    assert_eq!(first["fit_end"], "2024-01-11");
    assert_eq!(scored["in_sample_sessions"], json!([]));
    assert_eq!(
        scored["models"],
        json!([{ "model_id": id, "fit_end": "2024-01-11", "first": "2024-01-12", "last": "2024-01-12", "sessions": 1 }])
    );

    // Sessions the model saw are refused, with what to do instead.
    let seen = t.run(&["score", "--start", "2024-01-10", "--end", "2024-01-12", "--model", &id]);
    assert_eq!(seen.status.code(), Some(3));
    let err = stderr(&seen);
    assert!(err.contains("saw the sessions through 2024-01-11") && err.contains("--allow-in-sample"), "{err}");
    assert_eq!(prediction_rows("2024-01-10")[0]["n"], 0, "nothing written");

    // Re-scoring a range (as after a backfill) replaces its partitions: one row per feature row. The
    // sessions the model saw only when allowed: flagged, and never exit 0.
    let (code, rescored) =
        t.json_report(&["score", "--start", "2024-01-10", "--end", "2024-01-12", "--model", &id, "--allow-in-sample"]);
    assert!(code >= 1, "in sample exits 1 at least: {rescored}");
    assert_eq!(rescored["in_sample_sessions"], json!(["2024-01-10", "2024-01-11"]));
    let flagged = t.json(&["query", "SELECT date, bool_and(in_sample) AS all_in, bool_or(in_sample) AS any_in, min(model_fit_end) AS fit_end FROM predictions GROUP BY date ORDER BY date"]);
    assert_eq!(
        flagged,
        json!([
            { "date": "2024-01-10", "all_in": true, "any_in": true, "fit_end": "2024-01-11" },
            { "date": "2024-01-11", "all_in": true, "any_in": true, "fit_end": "2024-01-11" },
            { "date": "2024-01-12", "all_in": false, "any_in": false, "fit_end": "2024-01-11" },
        ])
    );
    let text = t.run(&["score", "--start", "2024-01-10", "--end", "2024-01-12", "--model", &id, "--allow-in-sample"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("WARNING: 2 session(s) scored in sample (2024-01-10..2024-01-11)"), "{text}");
    assert_eq!(rescored["sessions"], 3);
    let total = t.json(&["query", "SELECT count(*) AS n FROM predictions"])[0]["n"].as_u64().unwrap();
    assert_eq!(total, feature_rows("2024-01-10") + feature_rows("2024-01-11") + feature_rows("2024-01-12"));
    let q = &rescored["quality"];
    assert_eq!(q[2]["reference_sessions"], 2, "2024-01-12 against the two sessions before it: {q}");

    // A hole after the first scored session is RED; the sessions before it are not judged.
    t.json_report(&["score", "--date", "2024-01-08", "--model", &id, "--allow-in-sample"]);
    let (_, health) = t.json_report(&["health", "--dataset", "predictions", "--as-of-date", "2024-01-12"]);
    assert_eq!(health["partitions"][0]["partition"], "date=2024-01-08", "{health}");
    assert_eq!(health["dataset"], "predictions");
    assert_eq!(health["latest_session"], "2024-01-12");
    assert!(
        health["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["partition"] == "date=2024-01-09" && p["status"] == "RED"),
        "an unscored session: {health}"
    );
    // The same verdict is an alert condition.
    let (_, alerts) = t.json_report(&["alerts", "check", "--as-of-date", "2024-01-12"]);
    let condition = alerts["conditions"].as_array().unwrap().iter().find(|c| c["key"] == "health:predictions").cloned();
    assert_eq!(condition.map(|c| c["severity"].clone()), Some(json!("CRITICAL")), "{alerts}");
    let bad = t.run(&["score", "--date", "2024-01-12", "--model", "0123456789abcdef"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(stderr(&bad).contains("no model '0123456789abcdef'"), "{}", stderr(&bad));

    // A range longer than one read of `score` (9 sessions, read 5 at a time): every feature row of
    // each session scored once, with the values a one-session score gives.
    let predictions = |d: &str| {
        t.json(&[
            "query",
            &format!("SELECT symbol, ts, prediction FROM predictions WHERE date = DATE '{d}' ORDER BY symbol, ts"),
        ])
    };
    let before = predictions("2024-01-12");
    let (_, all) =
        t.json_report(&["score", "--start", "2024-01-02", "--end", "2024-01-12", "--model", &id, "--allow-in-sample"]);
    let days = ["02", "03", "04", "05", "08", "09", "10", "11", "12"].map(|d| format!("2024-01-{d}"));
    assert_eq!(all["sessions"], days.len(), "{all}");
    let expected: u64 = days.iter().map(|d| feature_rows(d)).sum();
    assert_eq!(all["rows"].as_u64(), Some(expected), "{all}");
    let total = t.json(&["query", "SELECT count(*) AS n FROM predictions"])[0]["n"].as_u64().unwrap();
    assert_eq!(total, expected);
    assert_eq!(predictions("2024-01-12"), before);

    // Walk-forward: a model retrained on a window ending 2024-01-05 scores the sessions after it up
    // to 2024-01-11, the first model the one after its fit end; a session no model was fitted
    // before is refused.
    let early = t.json(&["train", "--end", "2024-01-05", "--holdout-fraction", "0.25"]);
    let early_id = early["model_id"].as_str().unwrap().to_string();
    assert_eq!(early["target"], first["target"], "{early}");
    let (code, walked) = t.json_report(&["score", "--walk-forward", "--start", "2024-01-08", "--end", "2024-01-12"]);
    assert!(code < 3, "{walked}");
    assert_eq!(walked["in_sample_sessions"], json!([]));
    // The commit records the lake state scoring read, and which model scored which sessions.
    let commit = t
        .json(&["snapshots", "predictions"])
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|s| s["snapshot_id"].as_u64())
        .cloned()
        .unwrap();
    let read = commit["parameters"]["features_read"].as_str().unwrap_or_default().to_string();
    assert!(read.starts_with("features_price_1m_v1@"), "{commit}");
    assert_eq!(
        commit["parameters"]["models"],
        json!(format!("{early_id}:2024-01-08..2024-01-11,{id}:2024-01-12..2024-01-12")),
        "{commit}"
    );
    assert_eq!(
        walked["models"],
        json!([
            { "model_id": early_id, "fit_end": "2024-01-05", "first": "2024-01-08", "last": "2024-01-11", "sessions": 4 },
            { "model_id": id, "fit_end": "2024-01-11", "first": "2024-01-12", "last": "2024-01-12", "sessions": 1 },
        ])
    );
    let by_model = t.json(&["query", "SELECT date, min(model_id) AS model, bool_or(in_sample) AS any_in FROM predictions WHERE date >= DATE '2024-01-08' GROUP BY date ORDER BY date"]);
    let models: Vec<(&str, &str, bool)> = by_model
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["date"].as_str().unwrap(), r["model"].as_str().unwrap(), r["any_in"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        models,
        [
            ("2024-01-08", early_id.as_str(), false),
            ("2024-01-09", early_id.as_str(), false),
            ("2024-01-10", early_id.as_str(), false),
            ("2024-01-11", early_id.as_str(), false),
            ("2024-01-12", id.as_str(), false),
        ]
    );
    let too_early = t.run(&["score", "--walk-forward", "--start", "2024-01-05", "--end", "2024-01-12"]);
    assert_eq!(too_early.status.code(), Some(3));
    assert!(stderr(&too_early).contains("walk-forward scoring can start at 2024-01-08"), "{}", stderr(&too_early));
    let both = t.run(&["score", "--walk-forward", "--allow-in-sample", "--date", "2024-01-12"]);
    assert_eq!(both.status.code(), Some(3), "the flags conflict");
}

/// The schedule's retraining (`train` jobs, here dispatched by hand): refused, naming the partitions,
/// when the window's feature partitions are RED (a stricter contract's null-rate rule: `ret_60` is null
/// in each session's first hour, 15% of the rows); otherwise the model is fitted and registered, and
/// walk-forward scoring picks it up.
#[test]
fn the_retraining_job_refuses_a_red_window_and_registers_its_model() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    t.json(&["ingest", "--source", "synthetic", "--symbols", "6", "--start", "2024-01-02", "--end", "2024-01-12"]);
    t.json(&["curate", "--start", "2024-01-02", "--end", "2024-01-12"]);
    t.json(&["features", "--start", "2024-01-02", "--end", "2024-01-12"]);
    let strict = tempfile::tempdir().unwrap();
    let contract = std::fs::read_to_string(crate::support::repo().join("schemas/features_price_1m_v1.toml")).unwrap();
    let rule = "ret_60 = { warn = 0.35, fail = 0.60 }";
    assert!(contract.contains(rule), "the contract's ret_60 rule changed: update this test");
    std::fs::write(
        strict.path().join("features_price_1m_v1.toml"),
        contract.replace(rule, "ret_60 = { warn = 0.05, fail = 0.10 }"),
    )
    .unwrap();
    let strict_cli = |args: &[&str]| {
        t.cli().env("QUANTLAKE_LAKE__SCHEMAS_DIR", strict.path()).arg("--json").args(args).output().unwrap()
    };
    let as_json = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(out)))
    };

    // Health says why: the rule, the rate, the limit; and the log has the runbook's alert phrase.
    let out = strict_cli(&["health", "--dataset", "features_price_1m_v1", "--as-of-date", "2024-01-12"]);
    assert_eq!(out.status.code(), Some(0), "health reports, health-check exits by it: {}", stderr(&out));
    let health = as_json(&out);
    assert_eq!(health["status"], "RED");
    let checks = health["partitions"][0]["checks"].to_string();
    assert!(checks.contains("null_rate:ret_60") && checks.contains("0.1538 above 0.1"), "{checks}");
    let log = std::fs::read_to_string(t.log_file()).unwrap();
    assert!(log.contains("High null rate in ret_60: 0.1538 above 0.1"), "{log}");

    let queued = as_json(&strict_cli(&["dispatch", "train", "--end", "2024-01-11"]));
    assert_eq!((queued["kind"].as_str(), queued["status"].as_str()), (Some("train"), Some("QUEUED")), "{queued}");
    let worked = as_json(&strict_cli(&["worker", "--once"]));
    let job = &worked[0];
    assert_eq!(job["status"], "FAILED", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("Failed to train through 2024-01-11: 8 RED partition(s) in the window"), "{error}");
    assert!(error.contains("features_price_1m_v1 date=2024-01-11: null_rate:ret_60 0.1538 above 0.1"), "{error}");
    assert_eq!(t.json(&["models"]), json!([]), "nothing registered");

    // With the built-in contract the window is GREEN: the model is registered, fitted through its end.
    t.json(&["dispatch", "train", "--end", "2024-01-11"]);
    let worked = t.json(&["worker", "--once"]);
    let job = &worked[0];
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    let id = job["report"]["model_id"].as_str().unwrap();
    assert_eq!(job["report"]["fit_end"], "2024-01-11");
    assert!(job["snapshots"]["models"].as_u64().is_some(), "{job}");
    let models = t.json(&["models"]);
    assert_eq!(models[0]["model_id"], id, "{models}");
    let (_, scored) = t.json_report(&["score", "--walk-forward", "--start", "2024-01-12", "--end", "2024-01-12"]);
    assert_eq!(scored["models"][0]["model_id"], id, "{scored}");

    // `validate` judges the predictions too, and checks a range of sessions of some datasets.
    let (_, report) = t.json_report(&["validate", "--as-of-date", "2024-01-12"]);
    let of = |report: &serde_json::Value, dataset: &str, check: &str| {
        report["checks"].as_array().unwrap().iter().find(|c| c["dataset"] == dataset && c["check"] == check).cloned()
    };
    let predictions = of(&report, "predictions", "health").unwrap_or_else(|| panic!("{report}"));
    assert!(predictions["detail"].as_str().unwrap().starts_with(predictions["status"].as_str().unwrap()));
    let (_, ranged) = t.json_report(&[
        "validate",
        "--dataset",
        "curated_1m_bars,predictions",
        "--start",
        "2024-01-10",
        "--end",
        "2024-01-12",
    ]);
    assert_eq!(ranged["sessions"], json!(["2024-01-10", "2024-01-12"]));
    let datasets: std::collections::BTreeSet<&str> =
        ranged["checks"].as_array().unwrap().iter().map(|c| c["dataset"].as_str().unwrap()).collect();
    assert_eq!(datasets, ["curated_1m_bars", "predictions"].into(), "{ranged}");
    // Three partitions: each version file and its live copy.
    let integrity = of(&ranged, "curated_1m_bars", "integrity").unwrap();
    assert!(integrity["detail"].as_str().unwrap().starts_with("6 files"), "{integrity}");
    let stage = of(&ranged, "curated_1m_bars", "stage outputs").unwrap();
    assert!(stage["detail"].as_str().unwrap().starts_with("3 partitions, each with its metrics"), "{stage}");
    let out = t.run(&["validate", "--dataset", "curated_1m_bar"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("curated_1m_bars"), "did you mean: {}", stderr(&out));
}
