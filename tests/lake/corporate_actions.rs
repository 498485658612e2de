//! Corporate actions and what depends on them: imports from Polygon (the vendor's own fixtures, served
//! by tests/python/vendor_server.py), Alpaca (a page in its documented shape) and CSV, each upserted
//! twice without duplicates; factors checked by hand; a split inside a window gives continuous
//! adjusted returns while the stored curated files stay byte-identical; the cross-day fill and the
//! daily outlier check across a split; ADV with its fallbacks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::support::{Backend, TestLake, VendorServer, repo, stderr};

const POLYGON_KEY: &str = "pk-ca-secret";
const ALPACA_ID: &str = "ak-ca-id";
const ALPACA_SECRET: &str = "as-ca-secret";

/// The CLI against `server`, with test keys and no client-side rate limit.
fn vendor_cli(t: &TestLake, server: &VendorServer, args: &[&str]) -> serde_json::Value {
    let out = t
        .cli()
        .env("POLYGON_API_KEY", POLYGON_KEY)
        .env("POLYGON_BASE_URL", &server.url)
        .env("APCA_API_KEY_ID", ALPACA_ID)
        .env("APCA_API_SECRET_KEY", ALPACA_SECRET)
        .env("APCA_API_DATA_URL", &server.url)
        .env("QUANTLAKE_POLYGON__HTTP__REQUESTS_PER_MINUTE", "0")
        .env("QUANTLAKE_ALPACA__HTTP__REQUESTS_PER_MINUTE", "0")
        .arg("--json")
        .args(args)
        .output()
        .expect("run quantlake");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    for key in [POLYGON_KEY, ALPACA_ID, ALPACA_SECRET] {
        assert!(!all.contains(key), "a key leaked: {all}");
    }
    assert!(out.status.success(), "failed:\n{all}");
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Query rows, with null values left out (as the JSON writer leaves them out).
fn q(t: &TestLake, sql: &str) -> serde_json::Value {
    without_nulls(t.json(&["query", sql]))
}

fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(a) => a.into_iter().map(without_nulls).collect(),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect(),
        ),
        v => v,
    }
}

fn counts(r: &serde_json::Value) -> [u64; 5] {
    ["rows", "inserted", "replaced", "splits", "dividends"]
        .map(|k| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}")))
}

#[test]
fn polygon_splits_and_dividends_upsert_without_duplicates() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    // Splits: a first page with one row and a next_url (on Polygon's host: only its path and query
    // are followed, on our base), then the vendor's fixture. Dividends: the fixture.
    let page1 = json!({ "results": [{ "execution_date": "2022-08-25", "split_from": 1, "split_to": 3, "ticker": "TSLA", "id": "E-TSLA" }],
                        "status": "OK", "next_url": "https://api.polygon.io/v3/reference/splits?cursor=PAGE2" });
    let server = VendorServer::start(
        "polygon",
        json!([
            { "path": "/v3/reference/splits", "query": { "cursor": "PAGE2" }, "responses": [{ "status": 200, "body_file": "splits_v3.fixture.json" }] },
            { "path": "/v3/reference/splits", "responses": [{ "status": 200, "body": page1.to_string() }] },
            { "path": "/v3/reference/dividends", "responses": [{ "status": 200, "body_file": "dividends_v3.fixture.json" }] },
        ]),
    );
    let args = [
        "corporate-actions",
        "import",
        "--source",
        "polygon",
        "--symbols",
        "TSLA,GOOGL,SHOP,CSSEN,AIRTP",
        "--start",
        "2020-01-01",
    ];
    let first = vendor_cli(&t, &server, &args);
    // TSLA 1, GOOGL 1, SHOP 2 splits; CSSEN 8 and AIRTP 2 dividends. Each symbol's request returned
    // the whole listing: other listed symbols' rows merged, unlisted ones (GOOG, CTO, ...) skipped.
    assert_eq!(counts(&first), [14, 14, 0, 4, 10], "{first}");
    assert_eq!(first["skipped"]["other symbol"], 5 * 7, "{first}");
    assert_eq!((first["fetched"].as_u64(), first["merged"].as_u64()), (Some(5 * 21), Some(5 * 14 - 14)));
    let requests = server.requests();
    assert_eq!(requests.len(), 5 * 3, "splits page 1 and 2, dividends, per symbol");
    for r in &requests {
        assert_eq!(r["headers"]["authorization"], format!("Bearer {POLYGON_KEY}"));
    }
    let tsla = requests.iter().find(|r| r["query"]["ticker"] == "TSLA" && r["path"] == "/v3/reference/splits").unwrap();
    assert_eq!(tsla["query"]["execution_date.gte"], "2020-01-01");
    let again = vendor_cli(&t, &server, &args);
    assert_eq!(counts(&again), [14, 0, 14, 4, 10], "the same rows again replace themselves: {again}");
    let stored = q(
        &t,
        "SELECT kind, count(*) AS n, count(DISTINCT (symbol, ex_date, kind, source)) AS keys FROM reference_corporate_actions GROUP BY kind ORDER BY kind",
    );
    assert_eq!(
        stored,
        json!([{ "kind": "cash_dividend", "n": 10, "keys": 10 }, { "kind": "split", "n": 4, "keys": 4 }])
    );
    let shop = t.json(&["corporate-actions", "show", "--symbols", "SHOP,AIRTP"]);
    let got: Vec<(String, String, String)> = shop
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["symbol"].as_str().unwrap().into(),
                a["ex_date"].as_str().unwrap().into(),
                a["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("AIRTP".into(), "2023-08-11".into(), "cash_dividend".into()),
            ("AIRTP".into(), "2023-11-13".into(), "cash_dividend".into()),
            ("SHOP".into(), "2022-06-22".into(), "split".into()),
            ("SHOP".into(), "2022-06-29".into(), "split".into()),
        ]
    );
    let airtp = &shop[0];
    assert_eq!(
        (
            airtp["cash_amount"].as_f64(),
            airtp["pay_date"].as_str(),
            airtp["record_date"].as_str(),
            airtp["declaration_date"].as_str()
        ),
        (Some(0.5), Some("2023-08-15"), Some("2023-08-14"), Some("2022-02-10"))
    );
    assert_eq!(
        (airtp["dividend_type"].as_str(), airtp["frequency"].as_i64(), airtp["source"].as_str()),
        (Some("CD"), Some(4), Some("polygon"))
    );
    let tsla = q(&t, "SELECT split_from, split_to, vendor_id FROM reference_corporate_actions WHERE symbol = 'TSLA'");
    assert_eq!(tsla, json!([{ "split_from": 1.0, "split_to": 3.0, "vendor_id": "E-TSLA" }]));
    // Two commits, each recording the precedence the reads will use.
    let log = t.json(&["snapshots", "reference_corporate_actions"]);
    assert_eq!(log[0]["parameters"]["source_precedence"], json!(["csv", "polygon", "alpaca"]), "{log}");
}

/// A page of Alpaca's `/v1beta1/corporate-actions` in its documented shape (research-data.md).
fn alpaca_page(actions: serde_json::Value, token: Option<&str>) -> String {
    json!({ "corporate_actions": actions, "next_page_token": token }).to_string()
}

#[test]
fn alpaca_splits_and_dividends_upsert_without_duplicates() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let page1 = alpaca_page(
        json!({
            "forward_splits": [
                { "id": "fs-1", "symbol": "AAPL", "cusip": "037833100", "new_rate": 4, "old_rate": 1, "process_date": "2020-08-31",
                  "ex_date": "2020-08-31", "record_date": "2020-08-24", "payable_date": "2020-08-28" },
                // No ex-date: left out (counted), never placed on its payable date.
                { "id": "fs-2", "symbol": "AAPL", "new_rate": 2, "old_rate": 1, "process_date": "2021-01-04", "payable_date": "2021-01-04" }
            ],
            "reverse_splits": [
                { "id": "rs-1", "symbol": "GE", "new_rate": 1, "old_rate": 8, "process_date": "2021-08-02", "ex_date": "2021-08-02",
                  "record_date": "2021-07-30", "payable_date": "2021-07-30" }
            ],
            "cash_dividends": [
                { "id": "cd-1", "symbol": "AAPL", "cusip": "037833100", "rate": 0.24, "special": false, "foreign": false,
                  "process_date": "2023-08-17", "ex_date": "2023-08-11", "record_date": "2023-08-14", "payable_date": "2023-08-17" }
            ]
        }),
        Some("NEXT-1"),
    );
    let page2 = alpaca_page(
        json!({ "cash_dividends": [
            { "id": "cd-2", "symbol": "MSFT", "rate": 0.68, "special": false, "foreign": false, "process_date": "2023-09-14",
              "ex_date": "2023-08-16", "record_date": "2023-08-17", "payable_date": "2023-09-14" },
            { "id": "cd-3", "symbol": "MSFT", "rate": 3.0, "special": true, "foreign": false, "process_date": "2023-12-14",
              "ex_date": "2023-11-15", "record_date": "2023-11-16", "payable_date": "2023-12-14" }
        ] }),
        None,
    );
    let server = VendorServer::start(
        "alpaca",
        json!([
            { "path": "/v1beta1/corporate-actions", "query": { "page_token": "NEXT-1" }, "responses": [{ "status": 200, "body": page2 }] },
            { "path": "/v1beta1/corporate-actions", "responses": [{ "status": 200, "body": page1 }] },
        ]),
    );
    let args = [
        "corporate-actions",
        "import",
        "--source",
        "alpaca",
        "--symbols",
        "AAPL,GE,MSFT",
        "--start",
        "2020-01-01",
        "--end",
        "2023-12-31",
    ];
    let first = vendor_cli(&t, &server, &args);
    assert_eq!(counts(&first), [5, 5, 0, 2, 3], "{first}");
    assert_eq!(first["skipped"]["no ex_date"], 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["query"]["symbols"], "AAPL,GE,MSFT");
    assert_eq!(requests[0]["query"]["types"], "forward_split,reverse_split,cash_dividend");
    assert_eq!(
        (requests[0]["query"]["start"].as_str(), requests[0]["query"]["end"].as_str()),
        (Some("2020-01-01"), Some("2023-12-31"))
    );
    assert_eq!(requests[1]["query"]["page_token"], "NEXT-1");
    assert_eq!(requests[0]["headers"]["apca-api-key-id"], ALPACA_ID);
    let again = vendor_cli(&t, &server, &args);
    assert_eq!(counts(&again), [5, 0, 5, 2, 3], "{again}");
    let rows = q(
        &t,
        "SELECT symbol, CAST(ex_date AS VARCHAR) AS ex, kind, split_from, split_to, cash_amount, dividend_type, CAST(pay_date AS VARCHAR) AS pay \
                      FROM reference_corporate_actions ORDER BY symbol, ex_date",
    );
    assert_eq!(
        rows,
        without_nulls(json!([
            { "symbol": "AAPL", "ex": "2020-08-31", "kind": "split", "split_from": 1.0, "split_to": 4.0, "cash_amount": null, "dividend_type": null, "pay": "2020-08-28" },
            { "symbol": "AAPL", "ex": "2023-08-11", "kind": "cash_dividend", "split_from": null, "split_to": null, "cash_amount": 0.24, "dividend_type": "CD", "pay": "2023-08-17" },
            { "symbol": "GE", "ex": "2021-08-02", "kind": "split", "split_from": 8.0, "split_to": 1.0, "cash_amount": null, "dividend_type": null, "pay": "2021-07-30" },
            { "symbol": "MSFT", "ex": "2023-08-16", "kind": "cash_dividend", "split_from": null, "split_to": null, "cash_amount": 0.68, "dividend_type": "CD", "pay": "2023-09-14" },
            { "symbol": "MSFT", "ex": "2023-11-15", "kind": "cash_dividend", "split_from": null, "split_to": null, "cash_amount": 3.0, "dividend_type": "SC", "pay": "2023-12-14" },
        ]))
    );
}

#[test]
fn csv_imports_upsert_and_bad_rows_name_line_and_column() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("actions.csv");
    std::fs::write(&path, "symbol,ex_date,split_from,split_to,cash_amount,pay_date\nAAPL,2014-06-09,1,7,,\nAAPL,2014-05-08,,,3.29,2014-05-15\nGE,2021-08-02,8,1,,\n").unwrap();
    let p = path.to_str().unwrap();
    let first = t.json(&["corporate-actions", "import", "--source", "csv", "--path", p]);
    assert_eq!(counts(&first), [3, 3, 0, 2, 1], "{first}");
    // The amount corrected: the row is replaced, not added.
    std::fs::write(&path, "symbol,ex_date,cash_amount\nAAPL,2014-05-08,3.30\n").unwrap();
    let second = t.json(&["corporate-actions", "import", "--source", "csv", "--path", p]);
    assert_eq!(counts(&second), [1, 0, 1, 0, 1], "{second}");
    let stored = q(
        &t,
        "SELECT symbol, kind, cash_amount, CAST(pay_date AS VARCHAR) AS pay FROM reference_corporate_actions ORDER BY symbol, ex_date",
    );
    assert_eq!(
        stored,
        without_nulls(json!([
            { "symbol": "AAPL", "kind": "cash_dividend", "cash_amount": 3.3, "pay": null },
            { "symbol": "AAPL", "kind": "split", "cash_amount": null, "pay": null },
            { "symbol": "GE", "kind": "split", "cash_amount": null, "pay": null },
        ]))
    );
    // --symbols filters a file's rows, and says so.
    std::fs::write(&path, "symbol,ex_date,split_from,split_to\nNVDA,2024-06-10,1,10\nGE,2021-08-02,8,1\n").unwrap();
    let filtered = t.json(&["corporate-actions", "import", "--source", "csv", "--path", p, "--symbols", "NVDA"]);
    assert_eq!((filtered["rows"].as_u64(), filtered["skipped"]["other symbol"].as_u64()), (Some(1), Some(1)));

    let bad = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let out = t.run(&["corporate-actions", "import", "--source", "csv", "--path", p]);
        assert_eq!(out.status.code(), Some(3), "bad input is UNKNOWN");
        stderr(&out)
    };
    let e = bad("symbol,ex_date,split_from,split_to\nAAPL,2014-06-09,1,7\nAAPL,2014-06-10,1,seven\n");
    assert!(e.contains("line 3, column split_to: 'seven' is not a positive number"), "{e}");
    let e = bad("symbol,ex_date,cash_amount\nAAPL,09/06/2014,0.5\n");
    assert!(e.contains("line 2, column ex_date: '09/06/2014' is not a date"), "{e}");
    let e = bad("symbol,ex_date,split_from,split_to\nAAPL,2014-06-09,1,\n");
    assert!(e.contains("line 2, column split_to: empty while split_from is given"), "{e}");
    let e = bad("symbol,ex_date,ratio\nAAPL,2014-06-09,7\n");
    assert!(e.contains("column ratio: unknown column"), "{e}");
    let e = bad("symbol,ex_date,cash_amount\nAAPL,2014-06-09,-1\n");
    assert!(e.contains("line 2, column cash_amount: '-1' is not a positive number"), "{e}");
    // A failed import changes nothing.
    assert_eq!(q(&t, "SELECT count(*) AS n FROM reference_corporate_actions"), json!([{ "n": 4 }]));
}

/// Session opens (UTC seconds) of 2024-03-07 and 2024-03-08 (EST).
const DAY1: i64 = 1_709_821_800;
const DAY2: i64 = 1_709_908_200;

/// SPLT trades at 700 on 2024-03-07 and, after a 7-for-1 with ex-date 2024-03-08, at 101, with the
/// 2024-03-08 09:30 minute missing (filled from the previous session's last close).
fn split_minutes(dir: &Path) -> std::path::PathBuf {
    let mut csv = String::from("symbol,ts,open,high,low,close,volume\n");
    for (open, price, volume, skip_first) in [(DAY1, 700.0, 100.0, false), (DAY2, 101.0, 700.0, true)] {
        for i in usize::from(skip_first)..390 {
            let ts = chrono::DateTime::from_timestamp(open + 60 * i as i64, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            writeln!(csv, "SPLT,{ts},{price},{price},{price},{price},{volume}").unwrap();
        }
    }
    let path = dir.join("split_minutes.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// SHA-256 of every file under `dir`, by path.
fn file_hashes(dir: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap())));
            }
        }
    }
    out
}

fn closes(bars: &serde_json::Value) -> Vec<f64> {
    bars.as_array().unwrap().iter().map(|b| b["close"].as_f64().unwrap()).collect()
}

#[test]
fn a_split_is_adjusted_at_read_time_and_the_curated_files_stay() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let file = split_minutes(dir.path());
    t.json(&["ingest", "--source", "file", "--path", file.to_str().unwrap()]);
    t.json(&["curate", "--start", "2024-03-07", "--end", "2024-03-08"]);
    let curated = Path::new(&t.url).join("curated");
    let before = file_hashes(&curated);
    assert!(!before.is_empty());
    let daily = |adjust: &str| {
        t.json(&[
            "bars",
            "--symbols",
            "SPLT",
            "--start",
            "2024-03-07",
            "--end",
            "2024-03-08",
            "--frequency",
            "1d",
            "--adjust",
            adjust,
        ])
    };
    // No split known yet: the fill carried 700 into the ex-date's first minute.
    let first_minute = "SELECT close, is_filled FROM curated_1m_bars WHERE symbol = 'SPLT' AND date = DATE '2024-03-08' AND minute_idx = 0";
    assert_eq!(q(&t, first_minute), json!([{ "close": 700.0, "is_filled": true }]));
    assert_eq!(closes(&daily("splits")), [700.0, 101.0], "nothing to adjust for yet");

    let actions = dir.path().join("split.csv");
    std::fs::write(&actions, "symbol,ex_date,split_from,split_to\nSPLT,2024-03-08,1,7\n").unwrap();
    t.json(&["corporate-actions", "import", "--source", "csv", "--path", actions.to_str().unwrap()]);
    assert_eq!(file_hashes(&curated), before, "importing a split rewrites no curated file");

    // Stored prices by default; back-adjusted on request: 700 x 1/7 = 100, so the 1-day log return is
    // ln(101/100) = +0.00995 instead of ln(101/700) = -1.936.
    assert_eq!(closes(&daily("none")), [700.0, 101.0]);
    let adjusted = daily("splits");
    let c = closes(&adjusted);
    assert!((c[0] - 100.0).abs() < 1e-9, "{adjusted}");
    assert!(((c[1] / c[0]).ln() - 0.00995).abs() < 5e-6, "{c:?}");
    assert_eq!(adjusted[0]["volume"].as_f64(), Some(390.0 * 100.0 * 7.0), "volume scaled by the inverse");
    assert_eq!(adjusted[1]["volume"].as_f64(), Some(389.0 * 700.0));
    let minutes =
        t.json(&["bars", "--symbols", "SPLT", "--start", "2024-03-07", "--end", "2024-03-07", "--adjust", "all"]);
    let m = &minutes[389];
    assert!(
        (m["open"].as_f64().unwrap() - 100.0).abs() < 1e-9 && (m["low"].as_f64().unwrap() - 100.0).abs() < 1e-9,
        "1m bars too: {m}"
    );
    assert_eq!(m["volume"].as_f64(), Some(700.0));
    assert_eq!(file_hashes(&curated), before, "reading adjusted bars rewrites nothing either");

    // Curated again now that the split is known: the fill's seed is on the ex-date's basis.
    let r = t.json(&["curate", "--start", "2024-03-08", "--end", "2024-03-08"]);
    assert_eq!(r["inputs"]["reference_corporate_actions"], 1, "the actions snapshot is part of the lineage: {r}");
    let seed = q(&t, first_minute);
    assert!((seed[0]["close"].as_f64().unwrap() - 100.0).abs() < 1e-9, "{seed}");
    assert_eq!(
        q(
            &t,
            "SELECT close FROM curated_1m_bars WHERE symbol = 'SPLT' AND date = DATE '2024-03-07' AND minute_idx = 389"
        ),
        json!([{ "close": 700.0 }]),
        "stored prices stay raw"
    );
}

/// Yahoo's AAPL daily bars for 2014 up to July (split-adjusted by Yahoo), as (date, open, high, low, close, volume).
fn yahoo_aapl() -> Vec<(String, [f64; 5])> {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/bars/mplfinance_yahoofinance-AAPL-20040819-20180120.csv"))
            .unwrap();
    text.lines()
        .skip(1)
        .filter(|l| l.starts_with("2014-0") && l.as_bytes()[6] <= b'7')
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].parse::<f64>().unwrap();
            (f[0].to_string(), [n(1), n(2), n(3), n(4), n(6)])
        })
        .collect()
}

/// The 7-for-1 of 2014-06-09.
const EX_DATE: &str = "2014-06-09";

/// The daily file: AAPL un-adjusted at the split (prices x 7, volumes / 7 before it); NEW with 8
/// sessions up to 2014-06-20 and SHORT with 3 (below adv.min_sessions).
fn daily_file(dir: &Path, yahoo: &[(String, [f64; 5])]) -> std::path::PathBuf {
    let mut csv = String::from("symbol,date,open,high,low,close,volume\n");
    for (d, [o, h, l, c, v]) in yahoo {
        let k = if d.as_str() < EX_DATE { 7.0 } else { 1.0 };
        writeln!(csv, "AAPL,{d},{},{},{},{},{}", o * k, h * k, l * k, c * k, v / k).unwrap();
    }
    let upto = yahoo.iter().position(|(d, _)| d == "2014-06-20").unwrap();
    for (symbol, n) in [("NEW", 8), ("SHORT", 3)] {
        for (i, (d, _)) in yahoo[upto + 1 - n..=upto].iter().enumerate() {
            writeln!(csv, "{symbol},{d},10,10,10,10,{}", 1000 + 100 * i).unwrap();
        }
    }
    let path = dir.join("daily.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn daily_returns_and_adv_cross_a_split_on_one_basis() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let yahoo = yahoo_aapl();
    t.json(&[
        "ingest",
        "--source",
        "file",
        "--path",
        daily_file(dir.path(), &yahoo).to_str().unwrap(),
        "--frequency",
        "1d",
    ]);
    t.json(&["universe", "rebuild", "--symbols", "AAPL,NEW,SHORT,GHOST"]);
    t.json(&["curate", "--frequency", "1d", "--start", "2014-01-02", "--end", "2014-07-31"]);
    let flagged = "SELECT strftime(ts, '%Y-%m-%d') AS d FROM curated_1d_bars WHERE symbol = 'AAPL' AND is_outlier";
    let outliers = q(&t, flagged);
    assert!(
        outliers.as_array().unwrap().iter().any(|r| r["d"] == EX_DATE),
        "unknown split: a -85% day is an outlier: {outliers}"
    );

    let actions = dir.path().join("split.csv");
    std::fs::write(&actions, format!("symbol,ex_date,split_from,split_to\nAAPL,{EX_DATE},1,7\n")).unwrap();
    t.json(&["corporate-actions", "import", "--source", "csv", "--path", actions.to_str().unwrap()]);
    t.json(&["curate", "--frequency", "1d", "--start", "2014-01-02", "--end", "2014-07-31"]);
    let outliers = q(&t, flagged);
    assert!(!outliers.as_array().unwrap().iter().any(|r| r["d"] == EX_DATE), "a known split is no outlier: {outliers}");
    let raw =
        q(&t, "SELECT close FROM curated_1d_bars WHERE symbol = 'AAPL' AND strftime(ts, '%Y-%m-%d') = '2014-06-06'");
    assert!((raw[0]["close"].as_f64().unwrap() - 92.224289 * 7.0).abs() < 1e-6, "stored as delivered: {raw}");

    // Split-adjusted closes (the library's factors) are Yahoo's adjusted series again: continuous returns.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        use quantlake::reference::corporate_actions::{Adjustment, AdjustmentFactors};
        let lake = quantlake::table::Lake::open(&t.url, t.options()).await.unwrap();
        let factors = AdjustmentFactors::load(&lake, &[quantlake::symbol::Symbol::from_static("AAPL")], &quantlake::table::AsOf::latest()).await.unwrap();
        let stored = q(&t, "SELECT strftime(ts, '%Y-%m-%d') AS d, close, volume FROM curated_1d_bars WHERE symbol = 'AAPL' ORDER BY ts");
        let stored = stored.as_array().unwrap();
        assert_eq!(stored.len(), yahoo.len());
        for (row, (d, [.., c, v])) in stored.iter().zip(&yahoo) {
            let day = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
            assert_eq!(row["d"].as_str(), Some(d.as_str()));
            let close = row["close"].as_f64().unwrap() * factors.price_factor("AAPL", day, Adjustment::Splits);
            let volume = row["volume"].as_f64().unwrap() * factors.volume_factor("AAPL", day, Adjustment::Splits);
            assert!((close - c).abs() < 1e-9 * c, "{d}: {close} vs {c}");
            assert!((volume - v).abs() < 1e-6 * v, "{d}: {volume} vs {v}");
        }
    });

    // ADV as of 2014-06-20: AAPL's 20 sessions hold the split (its share volumes on the date's basis
    // equal Yahoo's adjusted volumes); NEW has 8 (a shorter window), SHORT 3 and GHOST none (the
    // universe median of AAPL and NEW).
    let adv = t.json(&["recompute-adv", "--date", "2014-06-20"]);
    let upto = yahoo.iter().position(|(d, _)| d == "2014-06-20").unwrap();
    let window = &yahoo[upto - 19..=upto];
    assert!(window[0].0.as_str() < EX_DATE);
    let shares: f64 = window.iter().map(|(_, b)| b[4]).sum::<f64>() / 20.0;
    let dollars: f64 = window.iter().map(|(_, b)| b[3] * b[4]).sum::<f64>() / 20.0;
    let rows = q(
        &t,
        "SELECT symbol, adv_shares AS s, adv_dollars AS d, sessions_used AS n, method, window_sessions AS w FROM features_adv ORDER BY symbol",
    );
    let row = |s: &str| rows.as_array().unwrap().iter().find(|r| r["symbol"] == s).unwrap().clone();
    let aapl = row("AAPL");
    assert_eq!((aapl["method"].as_str(), aapl["n"].as_u64(), aapl["w"].as_u64()), (Some("full"), Some(20), Some(20)));
    assert!((aapl["s"].as_f64().unwrap() - shares).abs() < 1e-9 * shares, "{aapl} vs {shares}");
    assert!((aapl["d"].as_f64().unwrap() - dollars).abs() < 1e-9 * dollars, "{aapl} vs {dollars}");
    let new = row("NEW");
    let new_shares = (0..8).map(|i| 1000.0 + 100.0 * i as f64).sum::<f64>() / 8.0;
    assert_eq!(
        (new["method"].as_str(), new["n"].as_u64(), new["s"].as_f64(), new["d"].as_f64()),
        (Some("short_window"), Some(8), Some(new_shares), Some(new_shares * 10.0))
    );
    for s in ["GHOST", "SHORT"] {
        let r = row(s);
        assert_eq!((r["method"].as_str(), r["n"].as_u64()), (Some("universe_median"), Some(0)), "{r}");
        assert!((r["s"].as_f64().unwrap() - (shares + new_shares) / 2.0).abs() < 1e-6, "{r}");
        assert!((r["d"].as_f64().unwrap() - (dollars + new_shares * 10.0) / 2.0).abs() < 1e-3, "{r}");
    }
    assert_eq!(adv["by_method"], json!({ "full": 1, "short_window": 1, "universe_median": 2 }));
    assert_eq!(adv["window_start"], window[0].0);
    // A rerun replaces the date's partition; a non-session is refused with the session before it.
    t.json(&["recompute-adv", "--date", "2014-06-20"]);
    assert_eq!(q(&t, "SELECT count(*) AS n FROM features_adv"), json!([{ "n": 4 }]));
    // Another date of the same month file leaves the first date's rows as they were.
    t.json(&["recompute-adv", "--date", "2014-06-19"]);
    let by_date = q(
        &t,
        "SELECT strftime(ts, '%Y-%m-%d') AS d, count(*) AS n, sum(adv_shares) AS s FROM features_adv GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(
        by_date.as_array().unwrap().iter().map(|r| (r["d"].clone(), r["n"].clone())).collect::<Vec<_>>(),
        [(json!("2014-06-19"), json!(4)), (json!("2014-06-20"), json!(4))]
    );
    assert!(
        (by_date[1]["s"].as_f64().unwrap()
            - rows.as_array().unwrap().iter().map(|r| r["s"].as_f64().unwrap()).sum::<f64>())
        .abs()
            < 1e-6,
        "{by_date}"
    );
    let out = t.run(&["recompute-adv", "--date", "2014-06-21"]);
    assert!(
        stderr(&out).contains("2014-06-21 is not an NYSE session (the one before is 2014-06-20)"),
        "{}",
        stderr(&out)
    );
}
