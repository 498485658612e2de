//! `quantlake fundamentals upsert|show` and the library's `fundamentals_as_of`: Polygon's
//! `/vX/reference/financials` (the vendor's own fixture, replayed by tests/python/vendor_server.py,
//! with a `next_url` page), upserts that replace and never duplicate, restatements as new rows,
//! the point-in-time lookup, and CSV/Parquet imports with their errors.

use std::sync::Arc;

use arrow::array::{Date32Array, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use serde_json::{Value, json};

use crate::support::{Backend, TestLake, VendorServer, repo, stderr};
use quantlake::reference::fundamentals::{fundamentals_as_of, read_filings, upsert_from_file};
use quantlake::table::AsOf;

const POLYGON_KEY: &str = "pk-fund-secret-42";

fn fixture() -> Value {
    let path = repo().join("tests/fixtures/vendor/polygon/financials_vX.fixture.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

/// The fixture's one result (NXPI 2022 Q1, filed 2022-05-03) with some fields replaced.
fn result_with(changes: Value) -> Value {
    let mut r = fixture()["results"][0].clone();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            r.as_object_mut().unwrap().remove(k);
        } else {
            r[k] = v.clone();
        }
    }
    r
}

fn cli(t: &TestLake, server: &VendorServer, args: &[&str]) -> std::process::Output {
    let out = t
        .cli()
        .env("POLYGON_API_KEY", POLYGON_KEY)
        .env("POLYGON_BASE_URL", &server.url)
        .env("QUANTLAKE_POLYGON__HTTP__REQUESTS_PER_MINUTE", "0")
        .env("QUANTLAKE_POLYGON__HTTP__RETRY_MIN_DELAY", "50ms")
        .args(args)
        .output()
        .expect("run quantlake");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!all.contains(POLYGON_KEY), "the key leaked: {all}");
    out
}

fn ok_json(out: std::process::Output) -> Value {
    assert!(out.status.success(), "failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Page 1: NXPI FY 2021 (filed 2022-02-24), a result without a filing date and a TTM sum, then a
/// `next_url` (on api.massive.com: only its path and query are followed) to page 2, the fixture.
fn two_page_server() -> VendorServer {
    let fy = result_with(
        json!({ "fiscal_period": "FY", "fiscal_year": "2021", "start_date": "2021-01-01", "end_date": "2021-12-31", "filing_date": "2022-02-24",
        "source_filing_url": "https://api.massive.com/v1/reference/sec/filings/0001413447-22-000003" }),
    );
    let undated = result_with(
        json!({ "fiscal_period": "Q4", "fiscal_year": "2021", "start_date": "2021-10-04", "end_date": "2021-12-31", "filing_date": null }),
    );
    let ttm = result_with(json!({ "fiscal_period": "TTM", "fiscal_year": "2022", "filing_date": "2022-05-03" }));
    let page1 = json!({ "status": "OK", "results": [fy, undated, ttm], "next_url": "https://api.massive.com/vX/reference/financials?cursor=PAGE2" });
    VendorServer::start(
        "polygon",
        json!([
            { "path": "/vX/reference/financials", "query": { "cursor": "PAGE2" }, "responses": [ { "status": 200, "body_file": "financials_vX.fixture.json" } ] },
            { "path": "/vX/reference/financials", "query": { "ticker": "NXPI" }, "responses": [ { "status": 200, "body": page1.to_string() } ] },
        ]),
    )
}

fn show(t: &TestLake, args: &[&str]) -> Value {
    t.json(&[&["fundamentals", "show", "--symbols", "NXPI"], args].concat())
}

#[test]
fn polygon_financials_upsert_without_duplicates_and_point_in_time() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let server = two_page_server();
    let first =
        ok_json(cli(&t, &server, &["--json", "fundamentals", "upsert", "--source", "polygon", "--symbols", "NXPI"]));
    assert_eq!(
        (first["filings_read"].as_u64(), first["inserted"].as_u64(), first["rows"].as_u64()),
        (Some(4), Some(2), Some(2)),
        "{first}"
    );
    let reasons: Vec<&str> =
        first["skipped"].as_array().unwrap().iter().map(|s| s["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{first}");
    assert!(reasons[0].contains("no filing_date") && reasons[1].contains("TTM"), "{reasons:?}");
    assert!(first["snapshot_id"].as_u64().is_some());
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "two pages: {requests:?}");
    assert_eq!(
        (requests[0]["query"]["ticker"].as_str(), requests[0]["query"]["sort"].as_str()),
        (Some("NXPI"), Some("filing_date"))
    );
    assert_eq!(requests[1]["query"], json!({ "cursor": "PAGE2" }));
    for r in &requests {
        assert_eq!(r["headers"]["authorization"], format!("Bearer {POLYGON_KEY}"));
        assert!(r["query"].get("apiKey").is_none());
    }

    // The fixture's figures, as columns and in the items JSON.
    let q1 = t.json(&[
        "query",
        "SELECT fiscal_year, fiscal_period, strftime(period_start, '%Y-%m-%d') AS s, strftime(period_end, '%Y-%m-%d') AS e, strftime(filing_date, '%Y-%m-%d') AS f, cik, filing_id, source, currency, \
         revenues, net_income_loss, diluted_earnings_per_share, assets, equity, net_cash_flow_from_operating_activities AS ocf, long_term_debt, \
         CAST(json_extract(items, '$.income_statement.gross_profit.value') AS DOUBLE) AS gross_profit, json_extract_string(items, '$.income_statement.diluted_earnings_per_share.unit') AS eps_unit, \
         CAST(json_extract(items, '$.comprehensive_income.comprehensive_income_loss.value') AS DOUBLE) AS ci \
         FROM fundamentals WHERE fiscal_period = 'Q1'",
    ]);
    assert_eq!(
        q1,
        json!([{ "fiscal_year": 2022, "fiscal_period": "Q1", "s": "2022-01-01", "e": "2022-04-03", "f": "2022-05-03", "cik": "0001413447", "filing_id": "0001413447-22-000014",
            "source": "polygon", "currency": "USD", "revenues": 3.136e9, "net_income_loss": 6.66e8, "diluted_earnings_per_share": 2.48, "assets": 2.1321e10, "equity": 6.76e9,
            "ocf": 8.56e8, "gross_profit": 1.777e9, "eps_unit": "USD / shares", "ci": 6.44e8 }])
    );

    // Null columns are left out of the JSON rows: no long-term debt in this filing.
    assert!(q1[0].get("long_term_debt").is_none());

    // The same upsert again: nothing duplicated, nothing committed.
    let snapshots_before = t.json(&["snapshots", "fundamentals"]).as_array().unwrap().len();
    let again =
        ok_json(cli(&t, &server, &["--json", "fundamentals", "upsert", "--source", "polygon", "--symbols", "NXPI"]));
    assert_eq!(
        (again["inserted"].as_u64(), again["replaced"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(0), Some(2)),
        "{again}"
    );
    assert_eq!(again["snapshot_id"], Value::Null);
    assert_eq!(t.json(&["snapshots", "fundamentals"]).as_array().unwrap().len(), snapshots_before);
    assert_eq!(t.json(&["query", "SELECT count(*) AS n FROM fundamentals"]), json!([{ "n": 2 }]));

    // A corrected value for the same filing replaces its row; a restatement (filed later) is a new row.
    let corrected =
        result_with(json!({ "financials": { "income_statement": { "revenues": { "value": 3.2e9, "unit": "USD" } } } }));
    let restated = result_with(json!({ "filing_date": "2022-08-01", "source_filing_url": null,
        "financials": { "income_statement": { "revenues": { "value": 3.3e9, "unit": "USD" } } } }));
    let server = VendorServer::start(
        "polygon",
        json!([{ "path": "/vX/reference/financials", "query": { "ticker": "NXPI" }, "responses": [ { "status": 200, "body": json!({ "status": "OK", "results": [corrected, restated] }).to_string() } ] }]),
    );
    let third =
        ok_json(cli(&t, &server, &["--json", "fundamentals", "upsert", "--source", "polygon", "--symbols", "NXPI"]));
    assert_eq!(
        (third["inserted"].as_u64(), third["replaced"].as_u64(), third["rows"].as_u64()),
        (Some(1), Some(1), Some(3)),
        "{third}"
    );
    let rows = t.json(&["query", "SELECT fiscal_period, strftime(filing_date, '%Y-%m-%d') AS f, revenues, gross_profit FROM fundamentals ORDER BY filing_date"]);
    assert_eq!(
        rows,
        json!([
            { "fiscal_period": "FY", "f": "2022-02-24", "revenues": 3.136e9, "gross_profit": 1.777e9 },
            { "fiscal_period": "Q1", "f": "2022-05-03", "revenues": 3.2e9 },
            { "fiscal_period": "Q1", "f": "2022-08-01", "revenues": 3.3e9 },
        ])
    );

    // Point in time: never a filing dated on or after the decision date.
    let pick = |date: &str| -> Vec<(String, String)> {
        show(&t, &["--as-of-date", date])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["fiscal_period"].as_str().unwrap().to_string(), r["filing_date"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(pick("2022-02-24"), vec![]);
    assert_eq!(pick("2022-02-25"), vec![("FY".to_string(), "2022-02-24".to_string())]);
    assert_eq!(pick("2022-05-03"), vec![("FY".to_string(), "2022-02-24".to_string())]);
    assert_eq!(pick("2022-05-04"), vec![("Q1".to_string(), "2022-05-03".to_string())]);
    assert_eq!(pick("2022-08-01"), vec![("Q1".to_string(), "2022-05-03".to_string())]);
    assert_eq!(pick("2022-08-02"), vec![("Q1".to_string(), "2022-08-01".to_string())]);
    // At an earlier snapshot, the first upsert's values.
    let pinned = show(&t, &["--as-of-date", "2022-05-04", "--as-of", "1"]);
    assert_eq!(pinned[0]["revenues"], 3.136e9, "{pinned}");
    // The whole history, and the table view (without the items JSON).
    assert_eq!(show(&t, &[]).as_array().unwrap().len(), 3);
    let table = t.run(&["fundamentals", "show", "--as-of-date", "2022-08-02"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success()
            && text.contains("2022-08-01")
            && text.contains("NXPI")
            && !text.contains("income_statement"),
        "{text}"
    );
    assert!(
        text.contains("revenues") && !text.contains("long_term_debt") && !text.contains("filing_id"),
        "columns empty in every row shown are left out: {text}"
    );
}

#[test]
fn polygon_errors_and_default_symbols() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let server = VendorServer::start(
        "polygon",
        json!([
            { "path": "/vX/reference/financials", "query": { "ticker": "AAPL" }, "responses": [ { "status": 403, "body_file": "error_403_not_authorized.json" } ] },
            { "path": "/vX/reference/financials", "query": { "ticker": "MSFT" }, "responses": [ { "status": 200, "body": "{\"status\":\"OK\",\"results\":[{\"fiscal" } ] },
            { "path": "/vX/reference/financials", "query": { "ticker": "SPY" }, "responses": [ { "status": 200, "body": "{\"status\":\"OK\"}" } ] },
        ]),
    );
    for (symbol, expect) in [
        ("AAPL", "polygon: AAPL financials (page 1): HTTP 403 Forbidden: You are not entitled"),
        ("MSFT", "polygon: MSFT financials (page 1): malformed response body"),
    ] {
        let out = cli(&t, &server, &["fundamentals", "upsert", "--source", "polygon", "--symbols", symbol]);
        assert_eq!(out.status.code(), Some(3));
        assert!(stderr(&out).contains(expect), "{symbol}: {}", stderr(&out));
    }
    // No universe and no --symbols: said so; with a universe, its active symbols are asked.
    let out = cli(&t, &server, &["fundamentals", "upsert", "--source", "polygon"]);
    assert!(!out.status.success() && stderr(&out).contains("no symbols"), "{}", stderr(&out));
    t.json(&["universe", "rebuild", "--symbols", "SPY"]);
    let report = ok_json(cli(&t, &server, &["--json", "fundamentals", "upsert", "--source", "polygon"]));
    assert_eq!(
        (report["symbols"].clone(), report["filings_read"].as_u64(), report["snapshot_id"].clone()),
        (json!(["SPY"]), Some(0), Value::Null)
    );
    let out =
        cli(&t, &server, &["fundamentals", "upsert", "--source", "polygon", "--symbols", "SPY", "--path", "x.csv"]);
    assert!(!out.status.success() && stderr(&out).contains("--path and --format are for --source file"));
    let out = t.run(&["fundamentals", "upsert", "--source", "polygon", "--symbols", "SPY"]);
    assert!(!out.status.success() && stderr(&out).contains("POLYGON_API_KEY"), "{}", stderr(&out));
}

const CSV: &str = "symbol,fiscal_year,fiscal_period,period_start,period_end,filing_date,cik,revenues,net_income_loss,diluted_earnings_per_share,income_statement.research_and_development\n\
AAPL,2023,Q4,2023-07-02,2023-09-30,2023-11-03,0000320193,89498000000,22956000000,1.46,7307000000\n\
AAPL,2024,Q1,2023-10-01,2023-12-30,2024-02-02,0000320193,119575000000,33916000000,2.18,7696000000\n\
MSFT,2024,Q2,2023-10-01,2023-12-31,2024-01-30,0000789019,62020000000,21870000000,2.93,\n";

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn days(s: &str) -> i32 {
    (NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

/// A Parquet file of MSFT fiscal-2024 filings with typed columns (date32, int32, float64) and the
/// vendor-style names `Ticker` and `end_date`.
fn msft_parquet(path: &std::path::Path, periods: &[&str], ends: &[&str], filed: &[&str], revenues: Vec<Option<f64>>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("Ticker", DataType::Utf8, false),
        Field::new("fiscal_year", DataType::Int32, false),
        Field::new("fiscal_period", DataType::Utf8, false),
        Field::new("end_date", DataType::Date32, false),
        Field::new("filing_date", DataType::Date32, false),
        Field::new("revenues", DataType::Float64, true),
    ]));
    let n = periods.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["MSFT"; n])),
            Arc::new(Int32Array::from(vec![2024; n])),
            Arc::new(StringArray::from(periods.to_vec())),
            Arc::new(Date32Array::from(ends.iter().map(|d| days(d)).collect::<Vec<_>>())),
            Arc::new(Date32Array::from(filed.iter().map(|d| days(d)).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(revenues)),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn csv_and_parquet_imports_and_their_errors() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "f.csv", CSV);
    let only = t.json(&["fundamentals", "upsert", "--source", "file", "--path", &csv, "--symbols", "MSFT"]);
    assert_eq!(
        (only["inserted"].as_u64(), only["not_selected"].as_u64(), only["symbols"].clone()),
        (Some(1), Some(2), json!(["MSFT"])),
        "{only}"
    );
    let all = t.json(&["fundamentals", "upsert", "--source", "file", "--path", &csv]);
    assert_eq!(
        (all["inserted"].as_u64(), all["unchanged"].as_u64(), all["rows"].as_u64()),
        (Some(2), Some(1), Some(3)),
        "{all}"
    );
    let got = t.json(&["query", "SELECT symbol, fiscal_period, revenues, diluted_earnings_per_share AS eps, currency, source, \
        CAST(json_extract(items, '$.income_statement.research_and_development.value') AS DOUBLE) AS rnd, json_extract_string(items, '$.income_statement.diluted_earnings_per_share.unit') AS eps_unit \
        FROM fundamentals ORDER BY symbol, filing_date"]);
    assert_eq!(
        got[0],
        json!({ "symbol": "AAPL", "fiscal_period": "Q4", "revenues": 8.9498e10, "eps": 1.46, "currency": "USD", "source": "file", "rnd": 7.307e9, "eps_unit": "USD / shares" })
    );
    assert_eq!(got[2]["rnd"], Value::Null, "an empty cell is no item");

    // Parquet: typed columns (date32, int32, float64), a restatement of MSFT's Q2 and a new quarter.
    let parquet_path = dir.path().join("f.parquet");
    msft_parquet(
        &parquet_path,
        &["Q2", "q3"],
        &["2023-12-31", "2024-03-31"],
        &["2024-06-01", "2024-04-25"],
        vec![Some(62.1e9), None],
    );
    let pq = t.json(&["fundamentals", "upsert", "--source", "file", "--path", parquet_path.to_str().unwrap()]);
    assert_eq!((pq["inserted"].as_u64(), pq["rows"].as_u64()), (Some(2), Some(5)), "{pq}");
    let msft = t.json(&["query", "SELECT fiscal_period, strftime(filing_date, '%Y-%m-%d') AS f, revenues FROM fundamentals WHERE symbol = 'MSFT' ORDER BY filing_date"]);
    assert_eq!(
        msft,
        json!([{ "fiscal_period": "Q2", "f": "2024-01-30", "revenues": 6.202e10 }, { "fiscal_period": "Q3", "f": "2024-04-25" }, { "fiscal_period": "Q2", "f": "2024-06-01", "revenues": 6.21e10 }])
    );

    // Errors name the line or row and the column; nothing is committed.
    let head = "symbol,fiscal_year,fiscal_period,period_end,filing_date,revenues\n";
    for (name, body, expect) in [
        (
            "bad_date.csv",
            format!("{head}AAPL,2024,Q1,2023-12-30,2024-02-02,1\nAAPL,2024,Q2,2024-03-30,2024-13-01,2\n"),
            "line 3, column 'filing_date': '2024-13-01' is not a date (YYYY-MM-DD)",
        ),
        (
            "bad_number.csv",
            format!("{head}AAPL,2024,Q1,2023-12-30,2024-02-02,12abc\n"),
            "line 2, column 'revenues': '12abc' is not a number",
        ),
        (
            "bad_period.csv",
            format!("{head}AAPL,2024,Q9,2023-12-30,2024-02-02,1\n"),
            "line 2: fiscal_period 'Q9' is not one of Q1, Q2, Q3, Q4, H1, H2, FY",
        ),
        (
            "early.csv",
            format!("{head}AAPL,2024,Q1,2023-12-30,2023-12-01,1\n"),
            "line 2: filing_date 2023-12-01 is before period_end 2023-12-30",
        ),
        (
            "twice.csv",
            format!("{head}AAPL,2024,Q1,2023-12-30,2024-02-02,1\nAAPL,2024,Q1,2023-12-30,2024-02-02,2\n"),
            "line 3: AAPL 2024 Q1 filed 2024-02-02 is also on line 2",
        ),
        (
            "empty.csv",
            format!("{head}AAPL,,Q1,2023-12-30,2024-02-02,1\n"),
            "line 2, column 'fiscal_year': empty (required)",
        ),
        ("symbol.csv", format!("{head}A/B,2024,Q1,2023-12-30,2024-02-02,1\n"), "line 2: invalid symbol 'A/B'"),
        (
            "unknown.csv",
            "symbol,fiscal_year,fiscal_period,period_end,filing_date,Revenue Growth\n".to_string(),
            "column 'Revenue Growth' is not a fundamentals column",
        ),
        ("missing.csv", "symbol,fiscal_year,period_end\n".to_string(), "missing column(s) fiscal_period, filing_date"),
        ("short.csv", format!("{head}AAPL,2024,Q1\n"), "line 2: unreadable row"),
        ("noext", head.to_string(), "cannot tell the format"),
    ] {
        let path = write(dir.path(), name, &body);
        let out = t.run(&["fundamentals", "upsert", "--source", "file", "--path", &path]);
        assert_eq!(out.status.code(), Some(3), "{name}");
        assert!(stderr(&out).contains(expect), "{name}: {}", stderr(&out));
    }
    let bad_path = dir.path().join("bad.parquet");
    msft_parquet(
        &bad_path,
        &["Q4", "Q4"],
        &["2024-06-30", "2024-06-30"],
        &["2024-07-30", "2024-05-30"],
        vec![Some(1.0), Some(f64::NAN)],
    );
    let out = t.run(&["fundamentals", "upsert", "--source", "file", "--path", bad_path.to_str().unwrap()]);
    assert!(
        !out.status.success() && stderr(&out).contains("row 2, column 'revenues': 'NaN' is not a number"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        t.json(&["query", "SELECT count(*) AS n FROM fundamentals"]),
        json!([{ "n": 5 }]),
        "nothing committed by the failed imports"
    );
    assert_eq!(t.json(&["snapshots", "fundamentals"]).as_array().unwrap().len(), 3);
}

/// The library's lookup against a brute-force answer: for every decision date over two years, each
/// symbol's row is the latest filing dated strictly before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fundamentals_as_of_never_looks_ahead() {
    let t = TestLake::new(Backend::Local);
    let lake = t.init().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "f.csv", CSV);
    upsert_from_file(&lake, std::path::Path::new(&csv), None, None).await.unwrap();
    let filings = read_filings(&lake, &[], &AsOf::latest()).await.unwrap();
    assert_eq!(filings.len(), 3);
    let symbols = vec![quantlake::symbol::Symbol::from_static("AAPL"), quantlake::symbol::Symbol::from_static("MSFT")];
    let mut d = NaiveDate::from_ymd_opt(2023, 6, 1).unwrap();
    while d < NaiveDate::from_ymd_opt(2024, 6, 1).unwrap() {
        let batches = fundamentals_as_of(&lake, &symbols, d, &AsOf::latest()).await.unwrap();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut got = Vec::new();
        for b in &batches {
            let symbol = b.column_by_name("symbol").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
            let filed = b.column_by_name("filing_date").unwrap().as_any().downcast_ref::<Date32Array>().unwrap();
            for i in 0..b.num_rows() {
                got.push((symbol.value(i).to_string(), filed.value_as_date(i).unwrap()));
            }
        }
        let want: Vec<(String, NaiveDate)> = symbols
            .iter()
            .filter_map(|s| {
                filings
                    .iter()
                    .filter(|f| &f.symbol == s && f.filing_date < d)
                    .map(|f| f.filing_date)
                    .max()
                    .map(|fd| (s.to_string(), fd))
            })
            .collect();
        assert_eq!(got, want, "decision date {d}");
        assert!(got.iter().all(|(_, fd)| *fd < d));
        assert_eq!(rows, want.len());
        d = d.succ_opt().unwrap();
    }
    // Only the symbols asked for.
    let one = fundamentals_as_of(
        &lake,
        &[quantlake::symbol::Symbol::from_static("MSFT")],
        NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
        &AsOf::latest(),
    )
    .await
    .unwrap();
    assert_eq!(one.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
}
