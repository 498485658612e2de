//! Polygon and Alpaca through the CLI, against tests/python/vendor_server.py replaying the vendors'
//! own response formats (tests/fixtures/vendor): pagination, empty shapes, 429 with Retry-After,
//! 401/403/422, malformed bodies, and keys that never reach the output.

use serde_json::json;

use crate::support::{Backend, TestLake, VendorServer, stderr};

const POLYGON_KEY: &str = "pk-secret-123";
const ALPACA_ID: &str = "ak-id-456";
const ALPACA_SECRET: &str = "as-secret-789";

/// The CLI against `server`, with test keys and fast retries.
fn cli(t: &TestLake, server: &VendorServer, args: &[&str]) -> std::process::Output {
    t.cli()
        .env("POLYGON_API_KEY", POLYGON_KEY)
        .env("POLYGON_BASE_URL", &server.url)
        .env("APCA_API_KEY_ID", ALPACA_ID)
        .env("APCA_API_SECRET_KEY", ALPACA_SECRET)
        .env("APCA_API_DATA_URL", &server.url)
        .env("QUANTLAKE_POLYGON__HTTP__REQUESTS_PER_MINUTE", "0")
        .env("QUANTLAKE_POLYGON__HTTP__RETRY_MIN_DELAY", "50ms")
        .env("QUANTLAKE_POLYGON__HTTP__MAX_RETRIES", "2")
        .env("QUANTLAKE_ALPACA__HTTP__RETRY_MIN_DELAY", "50ms")
        .env("QUANTLAKE_ALPACA__HTTP__MAX_RETRIES", "2")
        .args(args)
        .output()
        .expect("run quantlake")
}

fn ok_json(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn no_secrets(out: &std::process::Output) {
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    for key in [POLYGON_KEY, ALPACA_ID, ALPACA_SECRET] {
        assert!(!all.contains(key), "a key leaked into the output: {all}");
    }
}

fn rows(t: &TestLake, sql: &str) -> serde_json::Value {
    t.json(&["query", sql])
}

#[test]
fn polygon_pages_retry_after_and_legacy_null() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let server = VendorServer::start(
        "polygon",
        json!([
            { "path": "/v2/aggs/ticker/AAPL/range/1/day/2020-01-02/2020-01-03", "responses": [
                { "status": 429, "body_file": "error_429_rate_limit.json", "headers": { "Retry-After": "1" } },
                { "status": 200, "body_file": "aggs_AAPL_1_day_with_next_url.fixture.json" } ] },
            // next_url points at api.massive.com: only its path and query are followed, on our base URL.
            { "path": "/v2/aggs/ticker/AAPL/range/1/day/1626912000000/1629590400000", "query": { "cursor": "AGGSCURSOR" },
              "responses": [ { "status": 200, "body_file": "aggs_results_null_legacy.json" } ] },
            { "path": "/v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04", "responses": [
                { "status": 200, "body_file": "aggs_AAPL_1_day_2005-04-01_2005-04-04.fixture.json" } ] },
        ]),
    );
    let started = std::time::Instant::now();
    let out = cli(
        &t,
        &server,
        &[
            "--json",
            "ingest",
            "--source",
            "polygon",
            "--symbols",
            "AAPL",
            "--start",
            "2020-01-02",
            "--end",
            "2020-01-03",
            "--frequency",
            "1d",
        ],
    );
    let waited = started.elapsed();
    no_secrets(&out);
    let report = ok_json(out);
    assert_eq!(report["dataset"], "raw_polygon_daily_bars");
    assert_eq!(report["rows"], 2);
    assert!(waited >= std::time::Duration::from_secs(1), "Retry-After: 1 was not honoured ({waited:?})");
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "429, page 1, page 2: {requests:?}");
    for r in &requests {
        assert_eq!(r["headers"]["authorization"], format!("Bearer {POLYGON_KEY}"));
        assert!(r["query"].get("apiKey").is_none());
    }
    assert_eq!(requests[0]["query"]["adjusted"], "false");
    let got = rows(
        &t,
        "SELECT strftime(ts, '%Y-%m-%d %H:%M') AS t, open, volume, source FROM raw_polygon_daily_bars ORDER BY ts",
    );
    assert_eq!(
        got,
        json!([
            { "t": "2020-01-02 05:00", "open": 74.06, "volume": 135647456.0, "source": "polygon" },
            { "t": "2020-01-03 05:00", "open": 74.2875, "volume": 146535512.0, "source": "polygon" },
        ])
    );

    // The commit records how the bars were asked for.
    let log = t.json(&["snapshots", "raw_polygon_daily_bars"]);
    assert_eq!(log[0]["parameters"]["request"]["adjusted"], false, "{log}");

    // The vendor's own 2005 sample; fractional-capable float64 volume as delivered.
    let report = ok_json(cli(
        &t,
        &server,
        &[
            "--json",
            "ingest",
            "--source",
            "polygon",
            "--symbols",
            "AAPL",
            "--start",
            "2005-04-01",
            "--end",
            "2005-04-04",
            "--frequency",
            "1d",
        ],
    ));
    assert_eq!(report["rows"], 2);
    assert_eq!(report["empty"], 0);
    let got = rows(&t, "SELECT count(*) AS n, sum(volume) AS v FROM raw_polygon_daily_bars WHERE year = 2005");
    assert_eq!(got, json!([{ "n": 2, "v": 1220818704.0 }]));
}

#[test]
fn polygon_errors_name_the_request_and_keep_committed_data() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let server = VendorServer::start(
        "polygon",
        json!([
            { "path": "/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-03", "responses": [ { "status": 200, "body": "{\"status\":\"OK\",\"results\":[{\"t\":1704205800000,\"o\":1,\"h\":2,\"l\":0.5,\"c\":1.5,\"v\":10.5}]}" } ] },
            { "path": "/v2/aggs/ticker/AAPL/range/1/minute/2024-01-04/2024-01-04", "responses": [ { "status": 403, "body_file": "error_403_not_authorized.json" } ] },
            { "path": "/v2/aggs/ticker/MSFT/range/1/minute/2024-01-04/2024-01-04", "responses": [ { "status": 401, "body_file": "error_401_unknown_api_key.json" } ] },
            { "path": "/v2/aggs/ticker/NVDA/range/1/minute/2024-01-04/2024-01-04", "responses": [ { "status": 200, "body": "{\"status\":\"OK\",\"results\":[{\"t\":17043" } ] },
            // A cursor that keeps coming back.
            { "path": "/v2/aggs/ticker/TSLA/range/1/minute/2024-01-04/2024-01-04", "responses": [ { "status": 200,
              "body": "{\"status\":\"OK\",\"results\":[],\"next_url\":\"https://api.massive.com/v2/aggs/ticker/TSLA/range/1/minute/2024-01-04/2024-01-04?cursor=LOOP\"}" } ] },
        ]),
    );
    let first = ok_json(cli(
        &t,
        &server,
        &[
            "--json",
            "ingest",
            "--source",
            "polygon",
            "--symbols",
            "AAPL",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-03",
        ],
    ));
    // One bar on 01-02 (fractional volume kept), none on 01-03 (recorded as empty).
    assert_eq!(first["rows"], 1);
    assert_eq!(first["empty"], 1);
    let before = rows(&t, "SELECT count(*) AS n, sum(volume) AS v FROM raw_polygon_bars");
    assert_eq!(before, json!([{ "n": 1, "v": 10.5 }]));
    let status =
        rows(&t, "SELECT strftime(session_open, '%Y-%m-%d') AS d, status, rows FROM ingest_progress ORDER BY d");
    assert_eq!(
        status,
        json!([{ "d": "2024-01-02", "status": "done", "rows": 1 }, { "d": "2024-01-03", "status": "empty", "rows": 0 }])
    );

    for (symbol, expect) in [
        (
            "AAPL",
            "polygon: AAPL 1m bars 2024-01-04..2024-01-04 (page 1): HTTP 403 Forbidden: You are not entitled to this data",
        ),
        ("MSFT", "polygon: MSFT 1m bars 2024-01-04..2024-01-04 (page 1): HTTP 401 Unauthorized: Unknown API Key"),
        ("NVDA", "polygon: NVDA 1m bars 2024-01-04..2024-01-04 (page 1): malformed response body"),
        ("TSLA", "polygon: TSLA 1m bars 2024-01-04..2024-01-04 (page 2): next_url repeats an earlier page's; stopping"),
    ] {
        let out = cli(
            &t,
            &server,
            &["ingest", "--source", "polygon", "--symbols", symbol, "--start", "2024-01-04", "--end", "2024-01-04"],
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains(expect), "{symbol}: {}", stderr(&out));
        no_secrets(&out);
    }
    // 4xx is not retried; the failed runs committed nothing.
    let tries =
        server.requests().iter().filter(|r| r["path"].as_str().unwrap().ends_with("2024-01-04/2024-01-04")).count();
    assert_eq!(tries, 3 + 2, "one request each, two pages for the looping cursor");
    assert_eq!(rows(&t, "SELECT count(*) AS n, sum(volume) AS v FROM raw_polygon_bars"), before);
    // A missing key is a configuration error that says where keys come from.
    let out = t
        .cli()
        .env("POLYGON_BASE_URL", &server.url)
        .args(["ingest", "--source", "polygon", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "2024-01-02"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("POLYGON_API_KEY"), "{}", stderr(&out));
}

#[test]
fn alpaca_multi_page_chain_and_empty_shapes() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let server = VendorServer::start(
        "alpaca",
        json!([
            { "path": "/v2/stocks/bars", "query": { "symbols": "META", "page_token": "TUVUQXxEfDIwMjItMDYtMDlUMDQ6MDA6MDAuMDAwMDAwMDAwWg==" },
              "responses": [ { "status": 200, "body_file": "bars_multi_META_1Day_page2.fixture.json" } ] },
            { "path": "/v2/stocks/bars", "query": { "symbols": "META", "page_token": "TUVUQXxEfDIwMjItMDYtMTNUMDQ6MDA6MDAuMDAwMDAwMDAwWg==" },
              "responses": [ { "status": 200, "body_file": "bars_multi_empty.json" } ] },
            { "path": "/v2/stocks/bars", "query": { "symbols": "META" }, "responses": [ { "status": 200, "body_file": "bars_multi_META_1Day_page1.fixture.json" } ] },
            { "path": "/v2/stocks/bars", "query": { "symbols": "AAPL,TSLA" }, "responses": [
                { "status": 429, "body_file": "error_429_rate_limit_plaintext.txt", "headers": { "Content-Type": "text/plain", "Retry-After": "1" } },
                { "status": 200, "body_file": "bars_multi_AAPL_TSLA_1Day.fixture.json" } ] },
            { "path": "/v2/stocks/bars", "query": { "symbols": "SPY" }, "responses": [ { "status": 200, "body_file": "bars_single_empty_null.json" } ] },
            { "path": "/v2/stocks/bars", "query": { "symbols": "QQQ" }, "responses": [ { "status": 422, "body_file": "error_422_end_too_late.json" } ] },
            { "path": "/v2/stocks/bars", "query": { "symbols": "IWM" }, "responses": [ { "status": 403, "body_file": "error_403_recent_sip.json" } ] },
        ]),
    );
    let out = cli(
        &t,
        &server,
        &[
            "--json",
            "ingest",
            "--source",
            "alpaca",
            "--symbols",
            "META",
            "--start",
            "2022-06-08",
            "--end",
            "2022-06-13",
            "--frequency",
            "1d",
        ],
    );
    no_secrets(&out);
    let report = ok_json(out);
    assert_eq!(report["dataset"], "raw_alpaca_daily_bars");
    assert_eq!(report["rows"], 4, "two pages of two bars, then an empty last page");
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r["headers"]["apca-api-key-id"], ALPACA_ID);
        assert_eq!(r["headers"]["apca-api-secret-key"], ALPACA_SECRET);
        assert_eq!(r["query"]["timeframe"], "1Day");
        assert_eq!(r["query"]["feed"], "iex");
    }
    assert!(requests[0]["query"].get("page_token").is_none());
    let got =
        rows(&t, "SELECT strftime(ts, '%Y-%m-%d %H:%M') AS t, close, volume FROM raw_alpaca_daily_bars ORDER BY ts");
    assert_eq!(got.as_array().unwrap().len(), 4);
    assert_eq!(got[0], json!({ "t": "2022-06-08 04:00", "close": 196.64, "volume": 22211813 }));
    assert_eq!(got[3], json!({ "t": "2022-06-13 04:00", "close": 164.26, "volume": 31514255 }));

    // 429 (plain-text body) then success; both symbols from one multi-symbol request.
    let report = ok_json(cli(
        &t,
        &server,
        &[
            "--json",
            "ingest",
            "--source",
            "alpaca",
            "--symbols",
            "AAPL,TSLA",
            "--start",
            "2022-03-09",
            "--end",
            "2022-03-09",
            "--frequency",
            "1d",
        ],
    ));
    assert_eq!(report["rows"], 2);
    // `bars: null` (the single-symbol empty shape) is an empty session, recorded as such.
    let report = ok_json(cli(
        &t,
        &server,
        &[
            "--json",
            "ingest",
            "--source",
            "alpaca",
            "--symbols",
            "SPY",
            "--start",
            "2022-03-09",
            "--end",
            "2022-03-09",
            "--frequency",
            "1d",
        ],
    ));
    assert_eq!((report["rows"].as_u64(), report["empty"].as_u64()), (Some(0), Some(1)));

    for (symbol, expect) in [
        (
            "QQQ",
            "alpaca: QQQ 1d bars 2022-03-09..2022-03-09 (page 1): HTTP 422 Unprocessable Entity: end is too late for subscription",
        ),
        (
            "IWM",
            "alpaca: IWM 1d bars 2022-03-09..2022-03-09 (page 1): HTTP 403 Forbidden: subscription does not permit querying recent SIP data",
        ),
    ] {
        let out = cli(
            &t,
            &server,
            &[
                "ingest",
                "--source",
                "alpaca",
                "--symbols",
                symbol,
                "--start",
                "2022-03-09",
                "--end",
                "2022-03-09",
                "--frequency",
                "1d",
            ],
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains(expect), "{symbol}: {}", stderr(&out));
        no_secrets(&out);
    }
    let total = rows(&t, "SELECT count(*) AS n FROM raw_alpaca_daily_bars");
    assert_eq!(total, json!([{ "n": 6 }]));
}
