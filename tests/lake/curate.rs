//! `quantlake curate` and `bars` on data whose defects are known exactly: a file with gaps, a bad
//! tick, a duplicate, out-of-order and invalid rows, extended-hours bars, a DST change and an early
//! close, a second source for one symbol-session; and the real S&P 500 minute fixture.

use std::fmt::Write as _;

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestLake, repo, stderr};

/// Session opens in UTC: 2024-03-08 (EST), 2024-03-11 (EDT, the Monday after the change), 2024-11-29
/// (the day after Thanksgiving: closes at 13:00 New York after 210 minutes).
const SESSIONS: [(&str, i64, usize); 3] =
    [("A", 1_709_908_200, 390), ("B", 1_710_163_800, 390), ("C", 1_732_890_600, 210)];

fn price(i: usize) -> f64 {
    100.0 + 0.05 * (((i * 7) % 11) as f64 - 5.0)
}

fn row(out: &mut String, t: i64, open: f64, close: f64, low: Option<f64>) {
    let ts = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let low = low.unwrap_or(open.min(close) - 0.01);
    writeln!(out, "TEST,{ts},{open},{},{low},{close},1000", open.max(close) + 0.01).unwrap();
}

/// The file described in the module docs; returns its path.
fn defect_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from("symbol,ts,open,high,low,close,volume\n");
    for (name, open_ts, minutes) in SESSIONS {
        let mut rows = String::new();
        let mut prev = price(0);
        for i in 0..minutes {
            let t = open_ts + 60 * i as i64;
            let missing =
                (name == "A" && (50..=54).contains(&i)) || (name == "B" && i == 389) || (name == "C" && i == 0);
            let close = if name == "A" && i == 200 { 125.0 } else { price(i) };
            if !missing {
                let low = (name == "B" && i == 300).then_some(prev + 1.0); // low above open: invalid
                row(&mut rows, t, prev, close, low);
                if name == "B" && i == 10 {
                    row(&mut rows, t, prev, close, None); // an exact duplicate
                }
            }
            prev = close;
        }
        match name {
            // Pre-market (08:00 New York) and the 16:00 bar: extended hours.
            "A" => {
                row(&mut rows, open_ts - 90 * 60, 100.0, 100.0, None);
                row(&mut rows, open_ts + 390 * 60, prev, prev, None);
            }
            // After the early close.
            "C" => row(&mut rows, open_ts + 210 * 60, prev, prev, None),
            _ => {}
        }
        if name == "B" {
            // Out of order: the session backwards.
            let mut lines: Vec<&str> = rows.lines().collect();
            lines.reverse();
            rows = lines.join("\n") + "\n";
        }
        csv += &rows;
    }
    let path = dir.join("defects.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn q(t: &TestLake, sql: &str) -> serde_json::Value {
    t.json(&["query", sql])
}

#[test]
fn curation_counts_every_defect_exactly() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let file = defect_file(dir.path());
    let imported = t.json(&["ingest", "--source", "file", "--path", file.to_str().unwrap()]);
    assert_eq!(imported["rows"], 987);
    // A second source: TEST again on 2024-03-11 (the file wins it), SYN only there.
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "TEST,SYN",
        "--start",
        "2024-03-11",
        "--end",
        "2024-03-11",
    ]);

    let r = t.json(&["curate", "--start", "2024-03-08", "--end", "2024-11-29"]);
    let counts = |r: &serde_json::Value| {
        [
            "raw_rows",
            "superseded_rows",
            "duplicates_removed",
            "invalid_rows",
            "filled_rows",
            "unfilled_gaps",
            "extended_hours_rows",
            "rows",
        ]
        .map(|k| r[k].as_u64().unwrap())
    };
    assert_eq!(counts(&r), [987 + 780, 390, 1, 1, 8, 0, 3, 993 + 390], "{r}");
    assert_eq!(r["inputs"], json!({ "raw_file_bars": 1, "raw_synthetic_bars": 1 }));

    // Per session: DST moves the open, the early close ends at 13:00 New York, extended bars are flagged.
    let sessions = q(
        &t,
        "SELECT CAST(date AS VARCHAR) AS d, count(*) FILTER (WHERE is_rth) AS rth, count(*) FILTER (WHERE NOT is_rth) AS ext, \
        count(*) FILTER (WHERE is_filled) AS filled, count(*) FILTER (WHERE is_outlier) AS outliers, \
        strftime(min(ts) FILTER (WHERE is_rth), '%H:%M') AS first, strftime(max(ts) FILTER (WHERE is_rth), '%H:%M') AS last, max(minute_idx) AS last_idx \
        FROM curated_1m_bars WHERE symbol = 'TEST' GROUP BY ALL ORDER BY d",
    );
    assert_eq!(
        sessions,
        json!([
            { "d": "2024-03-08", "rth": 390, "ext": 2, "filled": 5, "outliers": 1, "first": "14:30", "last": "20:59", "last_idx": 389 },
            { "d": "2024-03-11", "rth": 390, "ext": 0, "filled": 2, "outliers": 0, "first": "13:30", "last": "19:59", "last_idx": 389 },
            { "d": "2024-11-29", "rth": 210, "ext": 1, "filled": 1, "outliers": 0, "first": "14:30", "last": "17:59", "last_idx": 209 },
        ])
    );
    // The bad tick is the outlier; fills carry the last close with no volume; the 2024-03-11 bars are
    // the file's, SYN's the synthetic source's.
    assert_eq!(
        q(&t, "SELECT minute_idx, close FROM curated_1m_bars WHERE is_outlier AND symbol = 'TEST'"),
        json!([{ "minute_idx": 200, "close": 125.0 }])
    );
    let fills = q(
        &t,
        "SELECT count(*) AS n, sum(volume) AS v, count(*) FILTER (WHERE open = close AND high = close AND low = close) AS flat FROM curated_1m_bars WHERE is_filled",
    );
    assert_eq!(fills, json!([{ "n": 8, "v": 0.0, "flat": 8 }]));
    assert_eq!(
        q(
            &t,
            "SELECT close FROM curated_1m_bars WHERE symbol = 'TEST' AND date = DATE '2024-03-08' AND minute_idx = 52"
        ),
        q(
            &t,
            "SELECT close FROM curated_1m_bars WHERE symbol = 'TEST' AND date = DATE '2024-03-08' AND minute_idx = 49"
        )
    );
    let by_source = q(
        &t,
        "SELECT symbol, source, count(*) AS n FROM curated_1m_bars WHERE date = DATE '2024-03-11' GROUP BY ALL ORDER BY 1",
    );
    assert_eq!(
        by_source,
        json!([{ "symbol": "SYN", "source": "synthetic", "n": 390 }, { "symbol": "TEST", "source": "file", "n": 390 }])
    );
    let rejects = q(&t, "SELECT symbol, dataset, reason FROM curation_rejects");
    assert_eq!(
        rejects,
        json!([{ "symbol": "TEST", "dataset": "raw_file_bars", "reason": "OHLC out of order (needs low <= open, close <= high)" }])
    );

    // Each partition's verdict and null counts are committed in its manifest entry with its rows.
    let parts = t.json(&["partitions", "curated_1m_bars"]);
    let verdict = |parts: &serde_json::Value, p: usize| {
        let e = &parts["partitions"][p];
        (
            e["partition"].clone(),
            e["quality"]["status"].clone(),
            e["quality"]["filled_bars"].clone(),
            e["quality"]["problems"].as_array().map_or(0, Vec::len),
        )
    };
    assert_eq!(verdict(&parts, 0), (json!("date=2024-03-08"), json!("YELLOW"), json!(5), 2), "{parts}");
    assert_eq!(
        verdict(&parts, 2),
        (json!("date=2024-11-29"), json!("GREEN"), json!(1), 0),
        "coverage 209/210 is above 0.99"
    );
    // Fills have no vwap or trade count; extended-hours bars no minute index; no row has a security (the
    // lake has no security master).
    assert_eq!(
        parts["partitions"][0]["null_counts"],
        json!({ "minute_idx": 2, "security_id": 392, "trade_count": 392, "vwap": 392 })
    );

    // Data quality per symbol-session, stored in dq_metrics and summarized per session.
    let dq = q(
        &t,
        "SELECT symbol, strftime(session_open, '%Y-%m-%d') AS d, source, expected_bars AS e, present_bars AS p, gap_count AS g, filled_bars AS f, \
        invalid_rows AS i, duplicates_removed AS dup, superseded_rows AS sup, outlier_count AS o, extended_hours_bars AS x, null_rate_vwap AS nv \
        FROM dq_metrics WHERE dataset = 'curated_1m_bars' ORDER BY 1, 2",
    );
    assert_eq!(
        dq,
        json!([
            { "symbol": "SYN", "d": "2024-03-11", "source": "synthetic", "e": 390, "p": 390, "g": 0, "f": 0, "i": 0, "dup": 0, "sup": 0, "o": 0, "x": 0, "nv": 0.0 },
            { "symbol": "TEST", "d": "2024-03-08", "source": "file", "e": 390, "p": 385, "g": 5, "f": 5, "i": 0, "dup": 0, "sup": 0, "o": 1, "x": 2, "nv": 1.0 },
            { "symbol": "TEST", "d": "2024-03-11", "source": "file", "e": 390, "p": 388, "g": 2, "f": 2, "i": 1, "dup": 1, "sup": 390, "o": 0, "x": 0, "nv": 1.0 },
            { "symbol": "TEST", "d": "2024-11-29", "source": "file", "e": 210, "p": 209, "g": 1, "f": 1, "i": 0, "dup": 0, "sup": 0, "o": 0, "x": 1, "nv": 1.0 },
        ])
    );
    let summary = t.json(&["dq", "summary", "--start", "2024-03-08", "--end", "2024-03-11"]);
    assert_eq!((summary["sessions_expected"].as_u64(), summary["sessions_with_data"].as_u64()), (Some(2), Some(2)));
    let total = &summary["total"];
    assert_eq!(
        [&total["expected_bars"], &total["present_bars"], &total["gap_count"], &total["invalid_rows"]],
        [&json!(1170), &json!(1163), &json!(7), &json!(1)]
    );
    assert!((summary["sessions"][1]["min_symbol_coverage"].as_f64().unwrap() - 388.0 / 390.0).abs() < 1e-12);
    assert_eq!(
        summary["null_rates"]["minute_idx"],
        json!(2.0 / 1172.0),
        "two extended-hours rows of 1172 in the range"
    );

    // Health: the contract's rules over the last five sessions, freshness and breadth.
    let check = |date: &str, min: &str, window: &str| {
        let out = t
            .cli()
            .env("FEATURE_BREADTH_MIN_SYMBOLS", min)
            .env("FEATURE_BREADTH_WARN_SYMBOLS", min)
            .env("QUANTLAKE_HEALTH__WINDOW_SESSIONS", window)
            .args(["--json", "health-check", "--as-of-date", date])
            .output()
            .unwrap();
        let h: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), h["status"].as_str().unwrap().to_string(), h["severity"].clone())
    };
    // 2024-11-29 alone: one symbol, 209 of 210 minutes, nothing invalid.
    assert_eq!(check("2024-11-29", "1", "1"), (Some(0), "GREEN".into(), serde_json::Value::Null));
    // 2024-03-11 with 03-08 in the window: coverage 385/390, a bad tick in 385 bars, 1 invalid in 780.
    assert_eq!(check("2024-03-11", "1", "2"), (Some(1), "YELLOW".into(), json!("SEV-3")));
    // Five sessions back from 03-11: the three before the data's first session (03-08) are not judged.
    assert_eq!(check("2024-03-11", "1", "5"), (Some(1), "YELLOW".into(), json!("SEV-3")));
    // Five back from 11-29: the four before it were never curated, after the data started: partial
    // loss. Nothing since 03-11 by 03-13: no new data.
    assert_eq!(check("2024-11-29", "1", "5"), (Some(2), "RED".into(), json!("SEV-2")));
    assert_eq!(check("2024-03-13", "1", "5"), (Some(2), "RED".into(), json!("SEV-1")));
    let health: serde_json::Value = serde_json::from_slice(
        &t.cli()
            .env("QUANTLAKE_HEALTH__WINDOW_SESSIONS", "2")
            .args(["--json", "health", "--as-of-date", "2024-03-11"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bad: Vec<(String, String)> = health["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"] != "GREEN")
                .map(|c| (p["partition"].as_str().unwrap().to_string(), c["name"].as_str().unwrap().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        bad,
        [
            ("date=2024-03-08".into(), "coverage".into()),
            ("date=2024-03-08".into(), "outlier_rate".into()),
            ("date=2024-03-11".into(), "invalid_rate".into())
        ]
    );
    assert_eq!(health["snapshot_id"], 1, "the snapshot judged");
    // The default breadth (100 symbols) is critical for two; no data at all is SEV-1.
    assert_eq!(check("2024-03-11", "100", "2"), (Some(2), "RED".into(), json!("SEV-2")));
    assert_eq!(check("2024-12-20", "1", "5"), (Some(2), "RED".into(), json!("SEV-1")));

    // validate: every dataset's files, and curated_1m_bars' health.
    let out = t
        .cli()
        .env("FEATURE_BREADTH_MIN_SYMBOLS", "1")
        .env("FEATURE_BREADTH_WARN_SYMBOLS", "1")
        .env("QUANTLAKE_HEALTH__WINDOW_SESSIONS", "1")
        .args(["--json", "validate", "--full", "--as-of-date", "2024-11-29"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status.code(), report["status"].clone()), (Some(0), json!("GREEN")), "{report}");
    let checked: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["dataset"].as_str().unwrap(), c["check"].as_str().unwrap()))
        .collect();
    assert!(
        checked.contains(&"curated_1m_bars health".to_string())
            && checked.contains(&"dq_metrics integrity (all snapshots)".to_string()),
        "{checked:?}"
    );
    let damaged = t.local_root().unwrap().join("curated/curated_1m_bars/date=2024-11-29/part.parquet");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    // A new file over the live one (the live file shares its inode with the version file).
    let tmp = damaged.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, &damaged).unwrap();
    let out = t
        .cli()
        .env("FEATURE_BREADTH_MIN_SYMBOLS", "1")
        .env("FEATURE_BREADTH_WARN_SYMBOLS", "1")
        .env("QUANTLAKE_HEALTH__WINDOW_SESSIONS", "1")
        .args(["validate", "--as-of-date", "2024-11-29"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an altered file is RED");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("date=2024-11-29"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // recover --full puts the snapshot's file back.
    assert!(t.run(&["recover", "--full"]).status.success());
    assert_eq!(
        t.cli()
            .env("FEATURE_BREADTH_MIN_SYMBOLS", "1")
            .env("FEATURE_BREADTH_WARN_SYMBOLS", "1")
            .env("QUANTLAKE_HEALTH__WINDOW_SESSIONS", "1")
            .args(["validate", "--as-of-date", "2024-11-29"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );

    // Resampled within sessions: daily = session OHLCV, the early close's last hour is 30 minutes.
    let daily = t.json(&[
        "bars",
        "--symbols",
        "TEST",
        "--start",
        "2024-03-08",
        "--end",
        "2024-11-29",
        "--frequency",
        "1d",
        "--format",
        "json",
    ]);
    let minutes: Vec<u64> = daily.as_array().unwrap().iter().map(|b| b["minutes"].as_u64().unwrap()).collect();
    assert_eq!(minutes, [390, 390, 210]);
    assert_eq!((daily[0]["high"].clone(), daily[0]["has_outlier"].clone()), (json!(125.01), json!(true)));
    let hourly =
        t.json(&["bars", "--symbols", "TEST", "--start", "2024-11-29", "--frequency", "1h", "--format", "json"]);
    let minutes: Vec<u64> = hourly.as_array().unwrap().iter().map(|b| b["minutes"].as_u64().unwrap()).collect();
    assert_eq!(minutes, [60, 60, 60, 30]);
    let five = t.json(&[
        "bars",
        "--symbols",
        "TEST,SYN",
        "--start",
        "2024-03-08",
        "--end",
        "2024-03-11",
        "--frequency",
        "5m",
        "--format",
        "json",
    ]);
    assert_eq!(five.as_array().unwrap().len(), 78 * 3);
    let with_ext =
        t.json(&["bars", "--symbols", "TEST", "--start", "2024-03-08", "--extended-hours", "--format", "json"]);
    assert_eq!(with_ext.as_array().unwrap().len(), 392);
    let out = dir.path().join("bars.parquet");
    assert!(
        t.run(&[
            "bars",
            "--symbols",
            "TEST",
            "--start",
            "2024-03-08",
            "--format",
            "parquet",
            "--output",
            out.to_str().unwrap()
        ])
        .status
        .success()
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 1000);
    let refused = t.run(&["bars", "--symbols", "TEST", "--start", "2024-03-08", "--format", "arrow"]);
    assert!(!refused.status.success() && stderr(&refused).contains("--output FILE"), "{}", stderr(&refused));
    // A symbol without bars is named and the read is a partial success (exit 1), its rows still out;
    // `all` is no list of symbols.
    let partial = t.run(&["bars", "--symbols", "TEST,NOPE", "--start", "2024-03-08", "--format", "json"]);
    assert_eq!(partial.status.code(), Some(1), "{}", stderr(&partial));
    assert!(stderr(&partial).contains("no bars between 2024-03-08 and 2024-03-08 for NOPE"), "{}", stderr(&partial));
    assert_eq!(stderr(&partial).matches("NOPE").count(), 1, "said once, without colour codes: {}", stderr(&partial));
    assert!(!stderr(&partial).contains('\u{1b}'));
    let rows: serde_json::Value = serde_json::from_slice(&partial.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 390);
    let all = t.run(&["bars", "--symbols", "all", "--start", "2024-03-08"]);
    assert_eq!(all.status.code(), Some(3));
    assert!(stderr(&all).contains("'all' means every symbol"), "{}", stderr(&all));

    // Without fills, the gaps stay gaps (and are counted); that session's metrics are replaced, the others stay.
    let r = t.json(&["curate", "--start", "2024-03-08", "--end", "2024-03-08", "--fill", "none"]);
    assert_eq!(
        (r["filled_rows"].as_u64(), r["unfilled_gaps"].as_u64(), r["rows"].as_u64()),
        (Some(0), Some(5), Some(387))
    );
    let metrics = q(
        &t,
        "SELECT strftime(session_open, '%Y-%m-%d') AS d, count(*) AS n, sum(filled_bars) AS f, sum(gap_count) AS g FROM dq_metrics GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(
        metrics,
        json!([{ "d": "2024-03-08", "n": 1, "f": 0, "g": 5 }, { "d": "2024-03-11", "n": 2, "f": 2, "g": 2 }, { "d": "2024-11-29", "n": 1, "f": 1, "g": 1 }])
    );
    // Re-curating one session replaced exactly its partition, and the earlier result is still readable.
    let diff = t.json(&["snapshot", "diff", "curated_1m_bars", "1"]);
    let changed: Vec<&str> =
        diff["changes"].as_array().unwrap().iter().map(|c| c["partition"].as_str().unwrap()).collect();
    assert_eq!(changed, ["date=2024-03-08"]);
    let before = t.json(&[
        "bars",
        "--symbols",
        "TEST",
        "--start",
        "2024-03-08",
        "--as-of",
        "curated_1m_bars@1",
        "--format",
        "json",
    ]);
    assert_eq!(before.as_array().unwrap().len(), 390);
    // The verdict travels with the snapshot: the first one still has the filled session's.
    assert_eq!(verdict(&t.json(&["partitions", "curated_1m_bars", "--as-of", "1"]), 0).2, json!(5));
    assert_eq!(verdict(&t.json(&["partitions", "curated_1m_bars"]), 0).2, json!(0));
}

/// The real Yahoo SPY daily fixture: two rows with open below low are refused, their sessions are gaps.
#[test]
fn yahoo_daily_bars_curate_by_year() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let file = repo().join("tests/fixtures/bars/mplfinance_yahoofinance-SPY-20080101-20180101.csv");
    t.json(&["ingest", "--source", "file", "--path", file.to_str().unwrap(), "--symbol", "SPY", "--frequency", "1d"]);
    // A minute bar on a Saturday: refused by minute curation; daily curation leaves that refusal alone.
    let dir = tempfile::tempdir().unwrap();
    let saturday = dir.path().join("saturday.csv");
    std::fs::write(&saturday, "symbol,ts,open,high,low,close,volume\nSPY,2015-03-07T15:00:00Z,200,201,199,200,10\n")
        .unwrap();
    t.json(&["ingest", "--source", "file", "--path", saturday.to_str().unwrap()]);
    t.json(&["curate", "--start", "2015-03-06", "--end", "2015-03-09"]);

    // Ten whole years (the range grows to its years): 2,518 sessions, 2 refused, 2 gaps, no outlier in
    // 2008's crash (a 10% day is 3-4 times the previous month's std, not 10).
    let r = t.json(&["curate", "--frequency", "1d", "--start", "2008-03-03", "--end", "2017-12-29"]);
    let counts = ["sessions", "raw_rows", "invalid_rows", "unfilled_gaps", "duplicates_removed", "outliers", "rows"]
        .map(|k| r[k].as_u64().unwrap());
    assert_eq!(counts, [2518, 2518, 2, 2, 0, 0, 2516], "{r}");
    assert_eq!((r["dataset"].clone(), r["start"].clone()), (json!("curated_1d_bars"), json!("2008-01-01")));
    let rejects =
        q(&t, "SELECT symbol, strftime(ts, '%Y-%m-%d %H:%M') AS ts, dataset, reason FROM curation_rejects ORDER BY ts");
    let oob = "OHLC out of order (needs low <= open, close <= high)";
    assert_eq!(
        rejects,
        json!([
            { "symbol": "SPY", "ts": "2015-03-05 05:00", "dataset": "raw_file_daily_bars", "reason": oob },
            { "symbol": "SPY", "ts": "2015-03-07 15:00", "dataset": "raw_file_bars", "reason": "not an NYSE session" },
            { "symbol": "SPY", "ts": "2015-03-30 04:00", "dataset": "raw_file_daily_bars", "reason": oob },
        ])
    );
    // One bar per session, stamped midnight New York, partitioned by year.
    let years =
        q(&t, "SELECT year, count(*) AS n, count(DISTINCT ts) AS d FROM curated_1d_bars GROUP BY year ORDER BY year");
    assert_eq!(years[7], json!({ "year": 2015, "n": 250, "d": 250 }));
    assert_eq!(years.as_array().unwrap().len(), 10);

    // The year with the refused rows: coverage 250/252 and 2 invalid in 252 warn; the others are GREEN.
    let parts = t.json(&["partitions", "curated_1d_bars"]);
    let status: Vec<(String, String)> = parts["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["partition"].as_str().unwrap().into(), p["quality"]["status"].as_str().unwrap().into()))
        .collect();
    assert!(
        status.iter().all(|(p, s)| (p == "year=2015") == (s == "YELLOW") && (s == "YELLOW" || s == "GREEN")),
        "{status:?}"
    );
    assert_eq!(
        parts["partitions"][7]["quality"]["problems"].as_array().unwrap().len(),
        2,
        "{}",
        parts["partitions"][7]
    );
    let summary =
        t.json(&["dq", "summary", "--dataset", "curated_1d_bars", "--start", "2015-01-01", "--end", "2015-12-31"]);
    let total = &summary["total"];
    assert_eq!(
        [&total["expected_bars"], &total["present_bars"], &total["gap_count"], &total["invalid_rows"]],
        [&json!(252), &json!(250), &json!(2), &json!(2)]
    );
    assert_eq!(
        summary["null_rates"],
        json!({ "security_id": 1.0, "trade_count": 1.0, "vwap": 1.0 }),
        "Yahoo gives neither; no security master"
    );
    let health = t
        .cli()
        .env("FEATURE_BREADTH_MIN_SYMBOLS", "1")
        .env("FEATURE_BREADTH_WARN_SYMBOLS", "1")
        .args(["--json", "health-check", "--dataset", "curated_1d_bars", "--as-of-date", "2017-12-29"])
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(0), "{}", String::from_utf8_lossy(&health.stdout));
    let health = t
        .cli()
        .env("FEATURE_BREADTH_MIN_SYMBOLS", "1")
        .env("FEATURE_BREADTH_WARN_SYMBOLS", "1")
        .args(["--json", "health-check", "--dataset", "curated_1d_bars", "--as-of-date", "2015-03-31"])
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1), "{}", String::from_utf8_lossy(&health.stdout));

    // Re-curating a date in 2015 replaces exactly that year; nothing doubles.
    t.json(&["curate", "--frequency", "1d", "--start", "2015-06-01"]);
    let diff = t.json(&["snapshot", "diff", "curated_1d_bars", "1"]);
    let changed: Vec<&str> =
        diff["changes"].as_array().unwrap().iter().map(|c| c["partition"].as_str().unwrap()).collect();
    assert_eq!(changed, ["year=2015"]);
    assert_eq!(q(&t, "SELECT count(*) AS n FROM curation_rejects"), json!([{ "n": 3 }]));
    assert_eq!(q(&t, "SELECT count(*) AS n FROM curated_1d_bars"), json!([{ "n": 2516 }]));
    assert_eq!(q(&t, "SELECT count(*) AS n FROM dq_metrics WHERE dataset = 'curated_1d_bars'"), json!([{ "n": 2518 }]));
}

/// The real S&P 500 minute fixture, on a local lake and on S3.
async fn sp500_minute_fixture(backend: Backend) {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    let file = repo().join("tests/fixtures/bars/mplfinance_SP500_NOV2019_IDay.csv");
    t.json(&["ingest", "--source", "file", "--path", file.to_str().unwrap(), "--symbol", "SPX"]);
    let r = t.json(&["curate", "--start", "2019-11-05", "--end", "2019-11-08"]);
    // Four sessions of 390 minutes, all present; the three days with a 16:00 bar keep it, flagged.
    assert_eq!(
        (r["rows"].as_u64(), r["filled_rows"].as_u64(), r["extended_hours_rows"].as_u64(), r["invalid_rows"].as_u64()),
        (Some(1563), Some(0), Some(3), Some(0))
    );
    // Three 0.18% one-minute moves in a quiet index are ten times the preceding half hour's std.
    assert_eq!(r["outliers"], 3);
    let ext =
        q(&t, "SELECT strftime(ts, '%H:%M') AS t, count(*) AS n FROM curated_1m_bars WHERE NOT is_rth GROUP BY 1");
    assert_eq!(ext, json!([{ "t": "21:00", "n": 3 }]));
    // The runbook's name reads the same data.
    assert_eq!(q(&t, "SELECT count(*) AS n FROM curated_tws_1m_bars"), json!([{ "n": 1563 }]));
    assert_eq!(t.json(&["snapshots", "curated_tws_1m_bars"])[0]["operation"], "curate");
    let nothing = t.run(&["curate", "--start", "2019-11-08", "--end", "2019-11-05"]);
    assert!(!nothing.status.success() && stderr(&nothing).contains("before start"), "{}", stderr(&nothing));
    for (args, expect) in [
        (["2019-11-09", "2019-11-10"], "no NYSE session between"),
        (["2019-11-08", "2030-01-02"], "after the last completed session"),
    ] {
        let out = t.run(&["curate", "--start", args[0], "--end", args[1]]);
        assert!(!out.status.success() && stderr(&out).contains(expect), "{}", stderr(&out));
    }

    // A bar on a Saturday is refused, not stored; a universe symbol with no bars shows as a gap.
    let dir = tempfile::tempdir().unwrap();
    let saturday = dir.path().join("saturday.csv");
    std::fs::write(&saturday, "symbol,ts,open,high,low,close,volume\nSPX,2019-11-09T15:00:00Z,3090,3091,3089,3090,0\n")
        .unwrap();
    t.json(&["ingest", "--source", "file", "--path", saturday.to_str().unwrap()]);
    t.json(&["universe", "rebuild", "--symbols", "SPX,GONE"]);
    let r = t.json(&["curate", "--start", "2019-11-05", "--end", "2019-11-11"]);
    assert_eq!(r["invalid_rows"], 1);
    assert_eq!(q(&t, "SELECT reason FROM curation_rejects"), json!([{ "reason": "not an NYSE session" }]));
    let gone = q(
        &t,
        "SELECT count(*) AS sessions, sum(present_bars) AS present, min(coverage) AS coverage FROM dq_metrics WHERE symbol = 'GONE'",
    );
    assert_eq!(gone, json!([{ "sessions": 5, "present": 0, "coverage": 0.0 }]));
    // Half the universe has bars: the coverage rate warns. GONE is a key symbol, SPX too.
    let parts = t.json(&["partitions", "curated_1m_bars"]);
    assert_eq!(parts["partitions"][0]["quality"]["covered_symbol_sessions"], 1);
    assert_eq!(parts["partitions"][0]["quality"]["symbol_sessions"], 2);
    let health = |keys: &str, args: &[&str]| {
        let out = t
            .cli()
            .env("FEATURE_BREADTH_MIN_SYMBOLS", "1")
            .env("FEATURE_BREADTH_WARN_SYMBOLS", "1")
            .env("QUANTLAKE_HEALTH__WINDOW_SESSIONS", "4")
            .env("QUANTLAKE_HEALTH__KEY_SYMBOLS", keys)
            .args(["--json"])
            .args(args)
            .output()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        (out.status.code(), v)
    };
    let (code, h) = health(r#"["SPX", "GONE"]"#, &["health", "--as-of-date", "2019-11-08"]);
    assert_eq!((code, h["severity"].clone()), (Some(0), json!("SEV-2")), "{h}");
    let keys: Vec<(String, String)> = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("key_symbol"))
        .map(|c| (c["name"].as_str().unwrap().into(), c["status"].as_str().unwrap().into()))
        .collect();
    assert_eq!(keys, [("key_symbol SPX".into(), "GREEN".into()), ("key_symbol GONE".into(), "RED".into())]);
    let covered = &h["partitions"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "symbols_covered")
        .unwrap()["status"];
    assert_eq!(covered, "YELLOW", "1 of 2 symbols: below the 90% warning, not below the 50% failure");
    // validate --full checks key symbols over every session since the data starts: SPX expected only
    // from 2019-11-06 is complete there; expected from 2019-11-01 it misses its first sessions.
    let (code, v) =
        health(r#"[{ symbol = "SPX", start = "2019-11-06" }]"#, &["validate", "--full", "--as-of-date", "2019-11-08"]);
    let full =
        v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "key_symbol SPX (all sessions)").unwrap().clone();
    assert_eq!((full["status"].clone(), code), (json!("GREEN"), Some(2)), "{v}");
    let (_, v) =
        health(r#"[{ symbol = "SPX", start = "2019-11-01" }]"#, &["validate", "--full", "--as-of-date", "2019-11-08"]);
    let full =
        v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "key_symbol SPX (all sessions)").unwrap().clone();
    assert_eq!(full["status"], "GREEN", "the data starts 2019-11-05: sessions before it are not judged: {v}");
}
both_backends!(sp500_minute_fixture_test, sp500_minute_fixture);

/// Concatenated rows of one read, with the schema they came with (an empty read has none to compare).
fn concat(batches: &[arrow::array::RecordBatch]) -> Option<arrow::array::RecordBatch> {
    let first = batches.first()?;
    Some(arrow::compute::concat_batches(&first.schema(), batches).unwrap())
}

/// The native one-minute read (`get_curated_bars`: only the symbols' pages, no DuckDB) returns exactly
/// what the DuckDB SQL over the snapshot returns: same columns, types, rows and order, for several
/// symbols over several row groups, extended hours on and off, an absent symbol, older snapshots
/// and split adjustment; most of the reads find their files' footers in the lake's cache. On S3 a
/// read makes at most two requests per partition file, one once the footer is cached.
async fn native_minute_reads_equal_sql_on(backend: Backend) {
    use quantlake::curate::{Adjustment, BarsRequest, Frequency, get_curated_bars};
    use quantlake::table::AsOf;

    let t = TestLake::new(backend);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let file = defect_file(dir.path());
    t.json(&["ingest", "--source", "file", "--path", file.to_str().unwrap()]);
    // 50 symbols x 390 minutes: two row groups (16,384 rows) and ten pages (2,048) per partition.
    t.json(&["ingest", "--source", "synthetic", "--symbols", "50", "--start", "2024-03-08", "--end", "2024-03-11"]);
    t.json(&["curate", "--start", "2024-03-08", "--end", "2024-11-29"]);
    // Snapshot 2 replaces 2024-03-11 with another version of the market.
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "50",
        "--start",
        "2024-03-11",
        "--end",
        "2024-03-11",
        "--seed",
        "7",
    ]);
    t.json(&["curate", "--start", "2024-03-11", "--end", "2024-03-11"]);
    let actions = dir.path().join("split.csv");
    std::fs::write(&actions, "symbol,ex_date,split_from,split_to\nMSFT,2024-03-11,1,4\n").unwrap();
    t.json(&["corporate-actions", "import", "--source", "csv", "--path", actions.to_str().unwrap()]);

    let lake = quantlake::table::Lake::open(&t.url, t.options()).await.unwrap();
    let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let cases: Vec<(&[&str], &str, &str, bool, Adjustment, &[&str])> = vec![
        (&["MSFT"], "2024-03-08", "2024-03-11", false, Adjustment::None, &[]),
        (&["TEST", "XOM", "AAPL", "NOPE", "MSFT", "AAPL"], "2024-03-01", "2024-12-31", false, Adjustment::None, &[]),
        (&["TEST", "SPY"], "2024-03-08", "2024-11-29", true, Adjustment::None, &[]),
        (&["TEST"], "2024-11-29", "2024-11-29", true, Adjustment::None, &[]),
        (&["NOPE"], "2024-03-08", "2024-03-11", false, Adjustment::None, &[]),
        (&["MSFT"], "2023-01-01", "2023-12-31", false, Adjustment::None, &[]),
        (&["MSFT", "AAPL"], "2024-03-08", "2024-03-11", true, Adjustment::None, &["curated_1m_bars@1"]),
        (&["MSFT", "AAPL"], "2024-03-08", "2024-03-11", false, Adjustment::None, &["1"]),
        (&["MSFT", "TEST"], "2024-03-08", "2024-03-11", false, Adjustment::Splits, &[]),
        (&["MSFT"], "2024-03-08", "2024-03-11", true, Adjustment::All, &[]),
    ];
    let mut seen = 0;
    for (symbols, start, end, extended_hours, adjust, as_of) in cases {
        let request = BarsRequest {
            symbols: symbols.iter().map(|s| s.parse().unwrap()).collect(),
            start: d(start),
            end: d(end),
            frequency: Frequency::M1,
            extended_hours,
            adjust,
            resolve_at: None,
        };
        let as_of = AsOf::parse(&as_of.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let what = format!("{symbols:?} {start}..{end} extended={extended_hours} {adjust:?} {as_of:?}");
        let native = get_curated_bars(&lake, &request, &as_of).await.unwrap();
        let sql = request.read_with_sql(&lake, &as_of).await.unwrap();
        let rows = |b: &[arrow::array::RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
        assert_eq!(rows(&native), rows(&sql), "{what}");
        seen += rows(&native);
        if let (Some(a), Some(b)) = (concat(&native), concat(&sql)) {
            assert_eq!(a.schema(), b.schema(), "{what}");
            assert_eq!(a, b, "{what}");
        }
    }
    // 2 x 390 MSFT + the mixed read + ...: the cases are not vacuous.
    assert!(seen > 10_000, "{seen}");
    // The older snapshot differs from the latest where the second curation replaced a partition.
    let request = BarsRequest {
        symbols: vec![quantlake::symbol::Symbol::from_static("MSFT")],
        start: d("2024-03-11"),
        end: d("2024-03-11"),
        frequency: Frequency::M1,
        extended_hours: false,
        adjust: Adjustment::None,
        resolve_at: None,
    };
    let old = get_curated_bars(&lake, &request, &"curated_1m_bars@1".parse::<AsOf>().unwrap()).await.unwrap();
    let new = get_curated_bars(&lake, &request, &AsOf::latest()).await.unwrap();
    assert_ne!(concat(&old), concat(&new));
    // A snapshot the dataset does not have is the same error on both paths.
    let bad = "curated_1m_bars@9".parse::<AsOf>().unwrap();
    let (a, b) = (
        get_curated_bars(&lake, &request, &bad).await.unwrap_err(),
        request.read_with_sql(&lake, &bad).await.unwrap_err(),
    );
    assert_eq!(a.to_string(), b.to_string());

    // Footers are parsed once per lake handle: the reads above filled its cache.
    let (footers, bytes) = lake.footer_cache().usage();
    assert!(footers >= 4 && bytes > 0, "{footers} footers, {bytes} bytes");
    // On S3, one read's requests for data files: with an empty cache the tail and the pages of each
    // file, then the pages only (none in a file whose statistics rule the symbol out).
    let fresh = quantlake::table::Lake::open(&t.url, t.options()).await.unwrap();
    let files = lake.dataset("curated_1m_bars").unwrap().latest().await.unwrap().partitions.len() as u64;
    let request = BarsRequest { start: d("2023-01-01"), end: d("2024-12-31"), ..request };
    let gets =
        || async { t.s3_requests("_versions/curated_1m_bars/").await.map(|c| c.get("GET").copied().unwrap_or(0)) };
    let before = gets().await;
    let cold = get_curated_bars(&fresh, &request, &AsOf::latest()).await.unwrap();
    let middle = gets().await;
    let warm = get_curated_bars(&fresh, &request, &AsOf::latest()).await.unwrap();
    let after = gets().await;
    assert_eq!(concat(&cold), concat(&warm));
    assert_eq!(fresh.footer_cache().usage().0 as u64, files);
    if let (Some(before), Some(middle), Some(after)) = (before, middle, after) {
        let (cold, warm) = (middle - before, after - middle);
        assert!(cold <= 2 * files && warm <= files && warm < cold, "{files} files: {cold} GETs cold, {warm} warm");
    }
}

both_backends!(native_minute_reads_equal_sql, native_minute_reads_equal_sql_on);
