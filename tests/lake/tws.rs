//! `quantlake ingest --source tws` (the binary, the real ibapi client) against the fake TWS: a
//! multi-symbol, multi-day ingest that keeps IB's pacing rules (windows scaled down by config, the
//! fake checking the same scaled rules), per-symbol failures, "no data" days, daily bars, and the
//! message when nothing listens.

use std::process::Output;

use serde_json::json;

use crate::fake_tws::{FakeTws, Reply, Script, test_pacing};
use crate::support::{Backend, TestLake, stderr};

/// The CLI against `port`, with the pacing windows of `test_pacing`, as the fake's.
async fn cli(t: &TestLake, port: u16, args: &[&str]) -> Output {
    let mut cmd = t.cli();
    cmd.env("QUANTLAKE_TWS__PORT", port.to_string())
        .env("QUANTLAKE_TWS__TIMEOUT", "5s")
        .env("QUANTLAKE_TWS__RECONNECT_ATTEMPTS", "1")
        .env("QUANTLAKE_TWS__PACING__IDENTICAL_GAP", "75ms")
        .env("QUANTLAKE_TWS__PACING__PER_CONTRACT_WINDOW", "100ms")
        .env("QUANTLAKE_TWS__PACING__WINDOW", "3s")
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run quantlake")).await.unwrap()
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_symbol_ingest_keeps_ib_pacing() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let mut script = Script::new();
    // A holiday-like answer for one day; a pacing violation IB reports anyway is retried.
    script.push("MSFT", "2024-01-05", Reply::no_data());
    script.push("NVDA", "2024-01-08", Reply::pacing());
    let fake = FakeTws::start(script, test_pacing()).await;
    let symbols = "AAPL,MSFT,AMZN,NVDA,GOOG,META,TSLA,SPY";
    // 8 symbols x 10 sessions = 80 day requests: more than the 60 of one (scaled) 10-minute window.
    let out = cli(
        &t,
        fake.addr.port(),
        &[
            "--json",
            "ingest",
            "--source",
            "tws",
            "--symbols",
            symbols,
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-16",
            "--chunk-sessions",
            "5",
        ],
    )
    .await;
    let report = ok_json(&out);
    assert_eq!(fake.violations(), Vec::<String>::new(), "the fake saw pacing violations");
    assert_eq!(report["dataset"], "raw_tws_bars");
    assert_eq!(report["sessions"], 10, "2024-01-15 is a holiday: never asked for");
    assert_eq!(report["empty"], 1);
    assert_eq!(report["rows"], 79 * 390);
    let history = fake.requests().iter().filter(|r| r.bar_size == "1 min").count();
    assert_eq!(history, 81, "80 day requests and one retry after the scripted 162");
    assert!(fake.requests().iter().all(|r| r.duration == "1 D" && r.use_rth && r.what_to_show == "TRADES"));
    let got =
        t.json(&["query", "SELECT count(DISTINCT symbol) AS s, count(*) AS n, min(source) AS src FROM raw_tws_bars"]);
    assert_eq!(got, json!([{ "s": 8, "n": 79 * 390, "src": "tws" }]));
    let progress = t.json(&["query", "SELECT status, count(*) AS n FROM ingest_progress GROUP BY 1 ORDER BY 1"]);
    assert_eq!(progress, json!([{ "status": "done", "n": 79 }, { "status": "empty", "n": 1 }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_symbol_fails_alone_and_resume_retries_it() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let fake = FakeTws::start(Script::with_symbols(["AAPL", "MSFT"]), test_pacing()).await;
    let port = fake.addr.port();
    let out = cli(
        &t,
        port,
        &[
            "--json",
            "ingest",
            "--source",
            "tws",
            "--symbols",
            "AAPL,ZZZZ,MSFT",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-04",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "a failed symbol is a partial success: WARNING");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows"], 2 * 3 * 390, "the other symbols are committed");
    assert_eq!(report["failed"][0]["symbol"], "ZZZZ");
    assert!(report["failed"][0]["error"].as_str().unwrap().contains("no security definition (IB 200)"), "{report}");
    // Fail fast: IB answered 200 to the first request and ZZZZ was asked nothing more.
    assert!(fake.requests().iter().filter(|r| r.symbol == "ZZZZ").count() <= 1);
    let failed =
        t.json(&["query", "SELECT count(*) AS n FROM ingest_progress WHERE status = 'failed' AND symbol = 'ZZZZ'"]);
    assert_eq!(failed, json!([{ "n": 3 }]));

    // Resume asks only for what is not finished: ZZZZ again (still unknown), nothing else.
    let before = fake.requests().len();
    let out = cli(
        &t,
        port,
        &[
            "--json",
            "ingest",
            "--source",
            "tws",
            "--symbols",
            "AAPL,ZZZZ,MSFT",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-04",
            "--resume",
        ],
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["skipped"], 6);
    let asked: Vec<String> = fake.requests()[before..].iter().map(|r| r.symbol.clone()).collect();
    assert!(asked.iter().all(|s| s == "ZZZZ"), "{asked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn universe_con_ids_and_head_timestamp_shape_the_requests() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("u.csv");
    std::fs::write(&csv, "symbol,con_id\nAAPL,265598\nNEWCO,\n").unwrap();
    t.json(&["universe", "rebuild", "--csv", csv.to_str().unwrap()]);
    let mut script = Script::new();
    // NEWCO's data starts on 2024-01-04 (14:30 UTC, the open): earlier sessions are not asked for.
    script.head_timestamp("NEWCO", 1_704_378_600);
    let fake = FakeTws::start(script, test_pacing()).await;
    let report = ok_json(
        &cli(
            &t,
            fake.addr.port(),
            &[
                "--json",
                "ingest",
                "--source",
                "tws",
                "--symbols",
                "AAPL,NEWCO",
                "--start",
                "2024-01-02",
                "--end",
                "2024-01-05",
            ],
        )
        .await,
    );
    assert_eq!(report["empty"], 2, "NEWCO before its head timestamp");
    assert_eq!(report["rows"], (4 + 2) * 390);
    let requests = fake.requests();
    assert!(
        requests.iter().filter(|r| r.symbol == "AAPL").all(|r| r.con_id == 265598),
        "AAPL is asked for by its contract id"
    );
    let mut newco: Vec<&str> =
        requests.iter().filter(|r| r.symbol == "NEWCO").map(|r| r.end_date_time.as_str()).collect();
    newco.sort();
    assert_eq!(newco, ["20240104 21:00:00 UTC", "20240105 21:00:00 UTC"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_bars_and_extended_hours() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let fake = FakeTws::start(Script::new(), test_pacing()).await;
    let report = ok_json(
        &cli(
            &t,
            fake.addr.port(),
            &[
                "--json",
                "ingest",
                "--source",
                "tws",
                "--symbols",
                "AAPL",
                "--start",
                "2024-07-01",
                "--end",
                "2024-07-05",
                "--frequency",
                "1d",
            ],
        )
        .await,
    );
    assert_eq!(report["dataset"], "raw_tws_daily_bars");
    assert_eq!(report["rows"], 4, "July 4 is a holiday");
    // Midnight New York, in UTC.
    let got = t.json(&["query", "SELECT strftime(ts, '%Y-%m-%d %H:%M') AS t FROM raw_tws_daily_bars ORDER BY ts"]);
    assert_eq!(
        got,
        json!([{ "t": "2024-07-01 04:00" }, { "t": "2024-07-02 04:00" }, { "t": "2024-07-03 04:00" }, { "t": "2024-07-05 04:00" }])
    );
    assert!(fake.requests().iter().all(|r| r.bar_size == "1 day"));

    let mut cmd = t.cli();
    cmd.env("QUANTLAKE_TWS__PORT", fake.addr.port().to_string()).env("QUANTLAKE_TWS__REGULAR_HOURS", "false").args([
        "--json",
        "ingest",
        "--source",
        "tws",
        "--symbols",
        "MSFT",
        "--start",
        "2024-07-01",
        "--end",
        "2024-07-01",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(ok_json(&out)["rows"], 960, "04:00-20:00 New York");
    let last = fake.requests().last().cloned().unwrap();
    assert!(!last.use_rth);
    assert_eq!(last.end_date_time, "20240702 00:00:00 UTC", "extended hours end at 20:00 New York");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_clear_error_and_commits_nothing() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let out = cli(
        &t,
        port,
        &["ingest", "--source", "tws", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "2024-01-02"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("cannot connect to TWS/IB Gateway at 127.0.0.1:{port}; is the API enabled?")),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "a refused connection must not hang");
    let datasets = t.json(&["datasets"]);
    assert!(datasets.as_array().unwrap().iter().all(|d| d["rows"] == 0), "{datasets}");
}

/// `check tws`, the runbook's connectivity check: against the fake, connected with the server version
/// and time, then disconnected (exit 0); with nothing listening, the runbook's error and exit 3, and
/// the log's `Failed to` line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_tws_connects_asks_the_time_and_disconnects() {
    let t = TestLake::new(Backend::Local);
    let fake = FakeTws::start(Script::new(), test_pacing()).await;
    let out = cli(&t, fake.addr.port(), &["--json", "check", "tws"]).await;
    let check = ok_json(&out);
    assert_eq!(check["address"], format!("127.0.0.1:{}", fake.addr.port()));
    assert!(check["server_version"].as_i64().is_some_and(|v| v >= 200), "{check}");
    assert!(check["clock_skew_seconds"].as_i64().is_some_and(|s| s.abs() <= 2), "{check}");
    assert_eq!(fake.connections(), 1);
    // The flags win over the config: a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = cli(&t, fake.addr.port(), &["check", "tws", "--port", &port.to_string()]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot connect to TWS/IB Gateway at 127.0.0.1:{port}")),
        "{}",
        stderr(&out)
    );
    let log = std::fs::read_to_string(t.log_file()).unwrap();
    assert!(log.contains("Failed to run the command: ") && log.contains("cannot connect to TWS"), "{log}");
}
