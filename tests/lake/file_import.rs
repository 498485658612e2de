//! File import (CSV, Parquet) with the real fixtures in tests/fixtures/bars/: column mapping by
//! name, naive New York times, minute and daily bars, and quarantine of bad rows with line numbers.

use crate::both_backends;
use crate::support::{Backend, TestLake, repo, stderr};

fn fixture(name: &str) -> String {
    repo().join("tests/fixtures/bars").join(name).display().to_string()
}

async fn sp500_minute_csv(backend: Backend) {
    let t = TestLake::new(backend);
    assert!(t.run(&["init"]).status.success());
    let path = fixture("mplfinance_SP500_NOV2019_IDay.csv");
    let r = t.json(&["ingest", "--source", "file", "--path", &path, "--symbol", "SPX"]);
    assert_eq!((r["rows"].as_u64(), r["rejected"].as_u64(), r["partitions"].as_u64()), (Some(1563), Some(0), Some(4)));
    // Three days have a 16:00 bar (391 bars), one does not: raw keeps what the file has.
    let days =
        t.json(&["query", "SELECT CAST(date AS VARCHAR) AS d, count(*) AS n FROM raw_file_bars GROUP BY 1 ORDER BY 1"]);
    let counts: Vec<u64> = days.as_array().unwrap().iter().map(|d| d["n"].as_u64().unwrap()).collect();
    let mut sorted = counts.clone();
    sorted.sort();
    assert_eq!(sorted, [390, 391, 391, 391], "{days}");
    // `11/5/2019 9:30` is New York time (UTC-5 in November); Close comes before High in the file.
    let first = t.json(&[
        "query",
        "SELECT CAST(ts AS VARCHAR) AS ts, open, high, low, close, volume FROM raw_file_bars ORDER BY ts LIMIT 1",
    ]);
    assert_eq!(first[0]["ts"], "2019-11-05 14:30:00+00");
    assert_eq!(
        (first[0]["open"].as_f64(), first[0]["high"].as_f64(), first[0]["low"].as_f64(), first[0]["close"].as_f64()),
        (Some(3080.8), Some(3081.47), Some(3080.3), Some(3080.49))
    );
    // A snapshot number only has to exist in the datasets the query reads.
    assert_eq!(t.json(&["query", "--as-of", "1", "SELECT count(*) AS n FROM raw_file_bars"])[0]["n"], 1563);
    // Importing the file again replaces the same rows.
    t.json(&["ingest", "--source", "file", "--path", &path, "--symbol", "SPX"]);
    assert_eq!(t.json(&["query", "SELECT count(*) AS n FROM raw_file_bars"])[0]["n"], 1563);
}
both_backends!(sp500_test, sp500_minute_csv);

#[test]
fn yahoo_daily_csv_goes_to_yearly_partitions() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let r = t.json(&[
        "ingest",
        "--source",
        "file",
        "--path",
        &fixture("mplfinance_yahoofinance-SPY-20080101-20180101.csv"),
        "--symbol",
        "SPY",
        "--frequency",
        "1d",
    ]);
    assert_eq!(
        (r["dataset"].as_str(), r["rows"].as_u64(), r["partitions"].as_u64()),
        (Some("raw_file_daily_bars"), Some(2519), Some(11))
    );
    let q = t.json(&["query", "SELECT CAST(ts AS VARCHAR) AS ts, open, low FROM raw_file_daily_bars WHERE ts < TIMESTAMPTZ '2008-01-03' ORDER BY ts"]);
    assert_eq!(q[1]["ts"], "2008-01-02 05:00:00+00", "a session date at midnight New York time");
    // The file's own defects stay in the raw layer (curation flags them): open below low on 2015-03-05.
    let bad = t.json(&["query", "SELECT count(*) AS n FROM raw_file_daily_bars WHERE open < low"]);
    assert!(bad[0]["n"].as_u64().unwrap() >= 2, "{bad}");
    // The human table prints timestamps (named time zones need arrow's chrono-tz).
    let table = t.run(&["query", "SELECT ts FROM raw_file_daily_bars ORDER BY ts LIMIT 1"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("2007-12-31T05:00:00Z"), "{}", stderr(&table));
}

#[test]
fn bad_rows_are_quarantined_with_line_numbers() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bars.csv");
    std::fs::write(
        &csv,
        "Time,Ticker,O,H,L,C,Vol\n\
         2024-01-02 09:30,AAPL,1,2,0.5,1.5,100\n\
         yesterday,AAPL,1,2,0.5,1.5,100\n\
         2024-01-02 09:31,AAPL,-1,2,0.5,1.5,100\n\
         2024-01-02 09:32,AAPL,1,2,0.5,NaN,100\n\
         2024-01-02 09:33,AAPL,1,2\n\
         2024-01-02 09:34,../x,1,2,0.5,1.5,100\n\
         2024-01-02 09:35,MSFT,1,2,0.5,1.5,100\n",
    )
    .unwrap();
    let path = csv.display().to_string();
    let (code, r) = t.json_report(&[
        "ingest",
        "--source",
        "file",
        "--path",
        &path,
        "--columns",
        "ts=Time,open=O,high=H,low=L,close=C,volume=Vol",
    ]);
    assert_eq!((r["rows"].as_u64(), r["rejected"].as_u64(), r["symbols"].as_u64()), (Some(2), Some(5), Some(2)));
    assert_eq!(code, 1, "rows quarantined: a partial success");
    let q = t.json(&["query", "SELECT line, reason FROM quarantine_rows ORDER BY line"]);
    let lines: Vec<u64> = q.as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7]);
    assert!(q[0]["reason"].as_str().unwrap().contains("'yesterday'"));
    assert!(q[2]["reason"].as_str().unwrap().contains("close"));
    // Quarantine lives outside the bar layers.
    assert!(t.local_root().unwrap().join("ops/quarantine_rows").is_dir());

    // A file without a column the bars need is refused whole, naming it; nothing is written.
    std::fs::write(&csv, "ts,open,high,close\n2024-01-02 09:30,1,2,1.5\n").unwrap();
    let out = t.run(&["ingest", "--source", "file", "--path", &path, "--symbol", "AAPL"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no column for 'low'"), "{}", stderr(&out));
    assert_eq!(t.json(&["query", "SELECT count(*) AS n FROM raw_file_bars"])[0]["n"], 2);
    let missing = t.run(&["ingest", "--source", "file", "--path", "/nonexistent/bars.csv", "--symbol", "AAPL"]);
    assert!(stderr(&missing).contains("cannot read /nonexistent/bars.csv"), "{}", stderr(&missing));
}

#[test]
fn parquet_files_import_with_their_symbol_column() {
    let t = TestLake::new(Backend::Local);
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
            "2024-01-03",
            "--quiet"
        ])
        .status
        .success()
    );
    // A live file of the lake is a Parquet file with symbol and ts (timestamp[us, UTC]) columns.
    let part = t.local_root().unwrap().join("raw/raw_synthetic_bars/date=2024-01-02/part.parquet");
    let r = t.json(&["ingest", "--source", "file", "--path", part.to_str().unwrap()]);
    assert_eq!((r["rows"].as_u64(), r["rejected"].as_u64(), r["symbols"].as_u64()), (Some(3 * 390), Some(0), Some(3)));
    let same = t.json(&[
        "query",
        "SELECT count(*) AS n FROM raw_file_bars f JOIN raw_synthetic_bars s USING (symbol, ts) WHERE f.open = s.open AND f.close = s.close AND f.volume = s.volume",
    ]);
    assert_eq!(same[0]["n"], 3 * 390);
}

#[test]
fn directories_and_patterns_import_in_one_call() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    assert!(
        t.run(&[
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            "4",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-04",
            "--quiet"
        ])
        .status
        .success()
    );
    // Three daily Parquet files (the lake's own live files) and a CSV that adds a symbol to the middle
    // day, with one bad row.
    let dir = tempfile::tempdir().unwrap();
    for day in ["2024-01-02", "2024-01-03", "2024-01-04"] {
        let live = t.local_root().unwrap().join(format!("raw/raw_synthetic_bars/date={day}/part.parquet"));
        std::fs::create_dir_all(dir.path().join("nested")).unwrap();
        let to = if day == "2024-01-04" {
            dir.path().join("nested").join(format!("{day}.parquet"))
        } else {
            dir.path().join(format!("{day}.parquet"))
        };
        std::fs::copy(live, to).unwrap();
    }
    std::fs::write(dir.path().join("extra.csv"), "ts,symbol,open,high,low,close,volume\n2024-01-03 10:00,ZZZ,1,2,0.5,1.5,10\n2024-01-03 10:01,ZZZ,1,2,0.5,1.5,10\n2024-01-03 10:02,ZZZ,1,-2,0.5,1.5,10\n").unwrap();
    std::fs::write(dir.path().join("notes.txt.bak"), "not a bar file").unwrap();

    let path = dir.path().display().to_string();
    let (code, r) = t.json_report(&["ingest", "--source", "file", "--path", &path, "--chunk-sessions", "2"]);
    assert_eq!(code, 1, "a row quarantined: a partial success");
    let bars = 4 * 390 * 3;
    assert_eq!(
        (
            r["files"].as_u64(),
            r["rows"].as_u64(),
            r["rejected"].as_u64(),
            r["partitions"].as_u64(),
            r["symbols"].as_u64()
        ),
        (Some(4), Some(bars + 2), Some(1), Some(3), Some(5)),
        "{r}"
    );
    // Two chunks of whole partitions: each partition is written once, by one commit.
    assert_eq!(r["snapshots"].as_array().unwrap().len(), 2, "{r}");
    assert!(r["rejected_sample"][0]["file"].as_str().unwrap().ends_with("extra.csv"), "{r}");
    assert_eq!(r["rejected_sample"][0]["line"], 4);
    let same = t.json(&[
        "query",
        "SELECT count(*) AS n FROM raw_file_bars f JOIN raw_synthetic_bars s USING (symbol, ts) WHERE f.open = s.open AND f.close = s.close AND f.volume = s.volume",
    ]);
    assert_eq!(same[0]["n"], bars);
    let q = t.json(&["query", "SELECT file, line FROM quarantine_rows"]);
    assert!(q[0]["file"].as_str().unwrap().ends_with("extra.csv") && q[0]["line"] == 4, "{q}");

    // A quoted pattern: the Parquet files only. Their symbols' rows are replaced; ZZZ, which only the
    // CSV holds, stays.
    let pattern = format!("{path}/**/*.parquet");
    let again = t.json(&["ingest", "--source", "file", "--path", &pattern]);
    assert_eq!(
        (again["files"].as_u64(), again["rows"].as_u64(), again["snapshots"].as_array().unwrap().len()),
        (Some(3), Some(bars), 1),
        "{again}"
    );
    let counts =
        t.json(&["query", "SELECT count(*) AS n, count(*) FILTER (WHERE symbol = 'ZZZ') AS zzz FROM raw_file_bars"]);
    assert_eq!((counts[0]["n"].as_u64(), counts[0]["zzz"].as_u64()), (Some(bars + 2), Some(2)));
    // Bytes written per byte read stay near one: the raw files are the input plus constant columns.
    let ratio = again["bytes_written"].as_f64().unwrap() / again["bytes_read"].as_f64().unwrap();
    assert!(ratio < 1.5, "{ratio}: {again}");

    let none = t.run(&["ingest", "--source", "file", "--path", &format!("{path}/*.nothing")]);
    assert!(stderr(&none).contains("no CSV or Parquet files"), "{}", stderr(&none));
}
