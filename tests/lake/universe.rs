//! `quantlake universe rebuild|show`: the unpartitioned reference_universe dataset, active flags across
//! rebuilds, CSV columns filled with defaults, breadth thresholds, and its use by backfill and TWS.

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestLake, stderr};

async fn rebuilds_keep_history_and_known_ids(backend: Backend) {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    let first = t.json(&["universe", "rebuild", "--symbols", "AAPL,MSFT"]);
    assert_eq!(first["added"], json!(["AAPL", "MSFT"]));
    assert_eq!(first["breadth"], "below_min", "2 symbols < the default minimum of 100");

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("universe.csv");
    std::fs::write(
        &csv,
        "Ticker,ConId,Name,Primary_Exchange\nAAPL,265598,Apple Inc,NASDAQ\nNVDA,4815747,NVIDIA,NASDAQ\n",
    )
    .unwrap();
    let second = t.json(&["universe", "rebuild", "--csv", csv.to_str().unwrap()]);
    assert_eq!((second["added"].clone(), second["deactivated"].clone()), (json!(["NVDA"]), json!(["MSFT"])));
    assert_eq!((second["active"].as_u64(), second["inactive"].as_u64()), (Some(2), Some(1)));

    // Back to the list: MSFT returns, NVDA is kept inactive, AAPL keeps the con_id the CSV gave it.
    let third = t.json(&["universe", "rebuild", "--symbols", "AAPL,MSFT"]);
    assert_eq!((third["reactivated"].clone(), third["deactivated"].clone()), (json!(["MSFT"]), json!(["NVDA"])));
    let shown = t.json(&["universe", "show"]);
    let members = shown["members"].as_array().unwrap();
    let row = |s: &str| members.iter().find(|m| m["symbol"] == s).unwrap().clone();
    assert_eq!(
        (row("AAPL")["con_id"].clone(), row("AAPL")["name"].clone(), row("AAPL")["exchange"].clone()),
        (json!(265598), json!("Apple Inc"), json!("SMART"))
    );
    assert_eq!((row("NVDA")["active"].clone(), row("MSFT")["active"].clone()), (json!(false), json!(true)));
    assert!(row("AAPL")["first_seen"].as_i64() < row("AAPL")["last_seen"].as_i64(), "first_seen survives rebuilds");

    // One unpartitioned table, each rebuild a snapshot: time travel shows the CSV's universe.
    let at_second = t.json(&[
        "query",
        "--as-of",
        "reference_universe@2",
        "SELECT symbol FROM reference_universe WHERE active ORDER BY 1",
    ]);
    assert_eq!(at_second, json!([{ "symbol": "AAPL" }, { "symbol": "NVDA" }]));
    let datasets = t.json(&["datasets"]);
    let universe = datasets.as_array().unwrap().iter().find(|d| d["dataset"] == "reference_universe").unwrap();
    assert_eq!((universe["partitions"].as_u64(), universe["rows"].as_u64()), (Some(1), Some(3)));
    assert!(t.json(&["verify", "reference_universe"])[0]["problems"] == json!([]));
}
both_backends!(rebuilds_keep_history_and_known_ids_test, rebuilds_keep_history_and_known_ids);

#[test]
fn the_files_read_with_a_plain_glob() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    t.json(&["universe", "rebuild", "--symbols", "SPY,QQQ"]);
    let root = t.local_root().unwrap();
    let files: Vec<_> = std::fs::read_dir(root.join("reference/reference_universe/all"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("part.parquet")]);
    // DuckDB, pandas and polars, each the way a user would point it at the folder.
    let script = "import sys, duckdb, pandas as pd, polars as pl\n\
        d = sys.argv[1] + '/reference/reference_universe'\n\
        print(duckdb.sql(f\"SELECT count(*) FROM read_parquet('{d}/*/*.parquet')\").fetchone()[0], \
        sorted(pd.read_parquet(d)['symbol']), pl.scan_parquet(d + '/*/*.parquet').collect().height)";
    let out = std::process::Command::new(crate::support::python()).arg("-c").arg(script).arg(root).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2 ['QQQ', 'SPY'] 2");
}

#[test]
fn bad_input_and_breadth_thresholds() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let no_symbol = dir.path().join("a.csv");
    std::fs::write(&no_symbol, "name,exchange\nApple,SMART\n").unwrap();
    let out = t.run(&["universe", "rebuild", "--csv", no_symbol.to_str().unwrap()]);
    assert!(
        !out.status.success() && stderr(&out).contains("no 'symbol' or 'ticker' column (columns: name, exchange)"),
        "{}",
        stderr(&out)
    );
    let bad_id = dir.path().join("b.csv");
    std::fs::write(&bad_id, "symbol,con_id\nAAPL,1\nMSFT,x1\n").unwrap();
    let out = t.run(&["universe", "rebuild", "--csv", bad_id.to_str().unwrap()]);
    assert!(
        !out.status.success() && stderr(&out).contains("line 3: con_id 'x1' is not an integer"),
        "{}",
        stderr(&out)
    );
    let out = t.run(&["universe", "rebuild", "--symbols", "AAPL,../x"]);
    assert!(!out.status.success() && stderr(&out).contains("invalid symbol '../x'"), "{}", stderr(&out));
    let out = t.run(&["universe", "rebuild"]);
    assert!(!out.status.success() && stderr(&out).contains("no symbols"), "{}", stderr(&out));
    assert_eq!(
        t.json(&["datasets"]).as_array().unwrap().iter().map(|d| d["rows"].as_u64().unwrap()).sum::<u64>(),
        0,
        "nothing committed"
    );

    let mut cmd = t.cli();
    let out = cmd
        .env("FEATURE_BREADTH_MIN_SYMBOLS", "2")
        .env("FEATURE_BREADTH_WARN_SYMBOLS", "4")
        .args(["--json", "universe", "rebuild", "--symbols", "A,B,C"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["breadth"].clone(), report["breadth_min_symbols"].clone()), (json!("warn"), json!(2)));
    let human = t
        .cli()
        .env("FEATURE_BREADTH_MIN_SYMBOLS", "5")
        .args(["universe", "rebuild", "--symbols", "A,B,C"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("below FEATURE_BREADTH_MIN_SYMBOLS (5)"));
}

#[test]
fn backfill_defaults_to_the_active_universe() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let out = t.run(&["backfill-history", "--end", "2024-03-28"]);
    assert!(!out.status.success() && stderr(&out).contains("no --symbols and no active universe"), "{}", stderr(&out));
    t.json(&["universe", "rebuild", "--symbols", "AAPL,MSFT,NVDA"]);
    t.json(&["universe", "rebuild", "--symbols", "AAPL,MSFT"]);
    let report: serde_json::Value = {
        let out = t
            .cli()
            .env("BACKFILL_TARGET_DAYS", "3")
            .args(["--json", "backfill-history", "--end", "2024-03-28"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(report["symbols"], 2);
    let got = t.json(&["query", "SELECT DISTINCT symbol FROM raw_synthetic_bars ORDER BY 1"]);
    assert_eq!(got, json!([{ "symbol": "AAPL" }, { "symbol": "MSFT" }]));
}
