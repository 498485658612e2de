//! The security master: imports from a file, Polygon and the lake's own universe; resolution by date
//! across a rename, a reused ticker and a delisting; idempotent upserts; refused overlaps; what the
//! lake knew at an earlier snapshot.

use serde_json::json;

use crate::support::{Backend, TestLake, VendorServer, stderr};

/// Meta's rename, Alphabet's reused ticker and a delisting, as ticker intervals.
const MASTER_CSV: &str = "\
key,ticker,valid_from,valid_to,name,composite_figi,delisted,delisted_reason
meta,FB,2012-05-18,2022-06-08,Meta Platforms Inc,BBG000MM2P62,,
meta,META,2022-06-09,,Meta Platforms Inc,BBG000MM2P62,,
goog_a,GOOG,2004-08-19,2014-04-02,Alphabet Inc Class A,,,
goog_a,GOOGL,2014-04-03,,Alphabet Inc Class A,,,
goog_c,GOOCV,2014-03-27,2014-04-02,Alphabet Inc Class C,,,
goog_c,GOOG,2014-04-03,,Alphabet Inc Class C,,,
twtr,TWTR,2013-11-07,,Twitter Inc,,2022-10-27,acquired
";

fn write(t: &TestLake, name: &str, text: &str) -> String {
    let path = t.dir.as_ref().expect("a local lake").path().join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

/// Runs `args`, which must succeed.
fn succeeds(t: &TestLake, args: &[&str]) {
    let out = t.run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

/// `securities resolve TICKER --at D` as (exit code, security id).
fn resolve(t: &TestLake, ticker: &str, at: &str, as_of: &str) -> (i32, Option<i64>) {
    let out = t.cli().args(["--json", "securities", "resolve", ticker, "--at", at, "--as-of", as_of]).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["security"]["security_id"].as_i64());
    (code, id)
}

fn ids_by_name(report: &serde_json::Value) -> std::collections::BTreeMap<String, i64> {
    report["securities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["security_id"].as_i64().unwrap()))
        .collect()
}

#[test]
fn a_rename_a_reused_ticker_and_a_delisting_resolve_by_date() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let path = write(&t, "master.csv", MASTER_CSV);
    let first = t.json(&["securities", "import", "--source", "csv", "--path", &path, "--universe", "us"]);
    assert_eq!(
        (first["delivered"].as_u64(), first["minted"].as_u64(), first["changed"].as_u64()),
        (Some(4), Some(4), Some(4))
    );
    assert_eq!(first["intervals"], 7, "{first}");
    let ids = ids_by_name(&first);
    let (meta, class_a, class_c, twtr) =
        (ids["Meta Platforms Inc"], ids["Alphabet Inc Class A"], ids["Alphabet Inc Class C"], ids["Twitter Inc"]);
    assert_eq!(ids.values().collect::<std::collections::BTreeSet<_>>().len(), 4);
    let snapshot = first["lake_seq"].as_u64().unwrap().to_string();

    // The rename: both tickers are one security; neither names it outside its own dates.
    assert_eq!(resolve(&t, "FB", "2020-01-02", "latest"), (0, Some(meta)));
    assert_eq!(resolve(&t, "META", "2022-06-09", "latest"), (0, Some(meta)));
    assert_eq!(resolve(&t, "META", "2022-06-08", "latest"), (1, None), "META named nothing before the rename");
    // The reused ticker: GOOG is the class A share before 2014-04-03 and the class C share after.
    assert_eq!(resolve(&t, "GOOG", "2010-01-04", "latest"), (0, Some(class_a)));
    assert_eq!(resolve(&t, "GOOG", "2014-04-03", "latest"), (0, Some(class_c)));
    assert_eq!(resolve(&t, "GOOCV", "2014-03-28", "latest"), (0, Some(class_c)));
    // The delisting closes the open ticker interval.
    assert_eq!(resolve(&t, "TWTR", "2022-10-27", "latest"), (0, Some(twtr)));
    assert_eq!(resolve(&t, "TWTR", "2022-10-28", "latest"), (1, None));

    // Membership as of a date: the delisted security is a member before its delisting, not after.
    let members = |at: &str| -> Vec<(i64, String)> {
        let v = t.json(&["universe", "show", "--at", at, "--universe", "us"]);
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["security_id"].as_i64().unwrap(), m["ticker"].as_str().unwrap_or("").to_string()))
            .collect()
    };
    let in_2020 = members("2020-01-02");
    assert!(in_2020.contains(&(twtr, "TWTR".into())) && in_2020.contains(&(meta, "FB".into())), "{in_2020:?}");
    assert!(in_2020.contains(&(class_a, "GOOGL".into())) && in_2020.contains(&(class_c, "GOOG".into())));
    let in_2023 = members("2023-01-03");
    assert!(!in_2023.iter().any(|(id, _)| *id == twtr), "delisted in 2022: {in_2023:?}");
    assert!(in_2023.contains(&(meta, "META".into())));
    // Before the class C share existed, it was no member.
    assert!(!members("2010-01-04").iter().any(|(id, _)| *id == class_c));

    // The same file again changes nothing and commits nothing.
    let again = t.json(&["securities", "import", "--source", "csv", "--path", &path, "--universe", "us"]);
    assert_eq!(
        (again["matched"].as_u64(), again["changed"].as_u64(), again["unchanged"].as_u64()),
        (Some(4), Some(0), Some(4)),
        "{again}"
    );
    assert!(again["lake_seq"].is_null(), "{again}");
    assert_eq!(ids_by_name(&again), ids, "matched to the same securities");
    let rows = t.json(&["query", "SELECT count(*) AS n FROM reference_symbology"]);
    assert_eq!(rows[0]["n"], 7);

    // A correction: the file's key names the same securities (by FIGI for Meta); the lake at the first
    // import's snapshot still answers what it knew then.
    let corrected = MASTER_CSV.replace("2022-06-08", "2022-06-10").replace("META,2022-06-09", "META,2022-06-13");
    let path2 = write(&t, "corrected.csv", &corrected);
    let third = t.json(&["securities", "import", "--source", "csv", "--path", &path2]);
    assert_eq!((third["changed"].as_u64(), third["minted"].as_u64()), (Some(1), Some(0)), "{third}");
    assert_eq!(resolve(&t, "FB", "2022-06-10", "latest"), (0, Some(meta)));
    assert_eq!(resolve(&t, "FB", "2022-06-10", &snapshot), (1, None), "at the first snapshot FB ended 06-08");
    assert_eq!(resolve(&t, "META", "2022-06-10", &snapshot), (0, Some(meta)));

    // A security's history, every source's rows.
    let history = t.json(&["securities", "history", "META"]);
    let tickers: Vec<&str> =
        history["history"].as_array().unwrap().iter().map(|r| r["ticker"].as_str().unwrap()).collect();
    assert_eq!(tickers, ["FB", "META"]);
    assert_eq!(history["security"]["composite_figi"], "BBG000MM2P62");
}

#[test]
fn overlapping_ticker_intervals_are_refused_naming_the_rows() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let bad = write(&t, "bad.csv", "key,ticker,valid_from,valid_to\na,XYZ,2010-01-04,2015-06-30\nb,XYZ,2015-01-02,\n");
    let out = t.run(&["securities", "import", "--source", "csv", "--path", &bad]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("overlapping ticker intervals, refused"), "{err}");
    assert!(err.contains("line 2") && err.contains("line 3"), "names both rows: {err}");
    assert!(err.contains("2010-01-04..2015-06-30") && err.contains("2015-01-02.."), "{err}");
    let stored = t.json(&["query", "SELECT count(*) AS n FROM reference_securities"]);
    assert_eq!(stored[0]["n"], 0, "nothing was written");

    // Against the stored rows: another security (another FIGI) claiming the ticker while it is taken.
    let ok = write(&t, "ok.csv", "ticker,valid_from,valid_to,composite_figi\nXYZ,2010-01-04,2015-06-30,BBG000000001\n");
    t.json(&["securities", "import", "--source", "csv", "--path", &ok]);
    let clash = write(&t, "clash.csv", "ticker,valid_from,composite_figi\nXYZ,2015-01-02,BBG000000002\n");
    let out = t.run(&["securities", "import", "--source", "csv", "--path", &clash]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("overlaps the stored XYZ 2010-01-04..2015-06-30") && err.contains("ok.csv"), "{err}");
    // After the first one's last day, the ticker is free.
    let later = write(&t, "later.csv", "ticker,valid_from,composite_figi\nXYZ,2015-07-01,BBG000000002\n");
    let r = t.json(&["securities", "import", "--source", "csv", "--path", &later]);
    assert_eq!(r["minted"], 1, "{r}");
    // One security with two tickers at once is refused too.
    let two = write(&t, "two.csv", "key,ticker,valid_from\nk,AAA,2020-01-02\nk,BBB,2021-01-04\n");
    let err = stderr(&t.run(&["securities", "import", "--source", "csv", "--path", &two]));
    assert!(
        err.contains("one security with two tickers at once") && err.contains("line 2") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn polygon_listings_and_ticker_events_build_the_history() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let meta = json!({ "status": "OK", "results": [{ "ticker": "META", "name": "Meta Platforms, Inc. Class A Common Stock", "market": "stocks",
        "type": "CS", "active": true, "primary_exchange": "XNAS", "currency_name": "usd", "cik": "0001326801",
        "composite_figi": "BBG000MM2P62", "share_class_figi": "BBG001SQCQB9" }] });
    let gone = json!({ "status": "OK", "results": [{ "ticker": "OLDCO", "name": "Old Co", "market": "stocks", "type": "CS", "active": false,
        "delisted_utc": "2023-01-07T05:00:00Z" }] });
    let none = json!({ "status": "OK", "results": [] });
    let server = VendorServer::start(
        "polygon",
        json!([
            { "path": "/v3/reference/tickers", "query": { "ticker": "META", "active": "true" }, "responses": [{ "status": 200, "body": meta.to_string() }] },
            { "path": "/v3/reference/tickers", "query": { "ticker": "OLDCO", "active": "false" }, "responses": [{ "status": 200, "body": gone.to_string() }] },
            { "path": "/v3/reference/tickers", "responses": [{ "status": 200, "body": none.to_string() }] },
            { "path": "/vX/reference/tickers/BBG000MM2P62", "responses": [{ "status": 200, "body_file": "ticker_events_META.fixture.json" }] },
        ]),
    );
    let import = |args: &[&str]| {
        let out = t
            .cli()
            .env("POLYGON_API_KEY", "pk-sec-secret")
            .env("POLYGON_BASE_URL", &server.url)
            .env("QUANTLAKE_POLYGON__HTTP__REQUESTS_PER_MINUTE", "0")
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!all.contains("pk-sec-secret"), "the key leaked: {all}");
        assert!(out.status.success(), "{all}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let r = import(&["securities", "import", "--source", "polygon", "--symbols", "META,OLDCO"]);
    assert_eq!((r["delivered"].as_u64(), r["minted"].as_u64()), (Some(2), Some(2)), "{r}");
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        2 * 2 + 1,
        "active and delisted listings per ticker, events for the one FIGI: {requests:?}"
    );
    assert!(requests.iter().all(|r| r["headers"]["authorization"] == "Bearer pk-sec-secret"));

    // The event dated Saturday 2022-06-11 takes effect on Monday 06-13; FB ends Friday 06-10.
    let history = t.json(&["securities", "history", "META"]);
    let spans: Vec<(String, Option<String>, Option<String>, Option<String>)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().map(str::to_string);
            (s("ticker").unwrap(), s("valid_from"), s("valid_to"), s("vendor_date"))
        })
        .collect();
    assert_eq!(
        spans,
        [
            ("FB".into(), Some("2012-05-18".into()), Some("2022-06-10".into()), None),
            ("META".into(), Some("2022-06-13".into()), None, Some("2022-06-11".into())),
        ]
    );
    assert_eq!(history["security"]["cik"], "0001326801");
    assert_eq!(history["security"]["currency"], "USD");
    // The delisted listing: its last session is the Friday before the Saturday Polygon gives.
    let old = t.json(&["securities", "show", "--symbols", "OLDCO", "--at", "2023-01-06"]);
    assert_eq!(old[0]["delisted"], "2023-01-06", "{old}");
    let (code, after) = t.json_report(&["securities", "show", "--symbols", "OLDCO", "--at", "2023-01-09"]);
    assert_eq!((code, after.as_array().map(Vec::len)), (1, Some(0)), "a ticker that names nothing then is a warning");

    // A file ranks above Polygon (securities.source_precedence): it corrects the switch to the real
    // first META session, matched to the same security by its FIGI.
    let fix = write(
        &t,
        "fix.csv",
        "composite_figi,ticker,valid_from,valid_to\nBBG000MM2P62,FB,2012-05-18,2022-06-08\nBBG000MM2P62,META,2022-06-09,\n",
    );
    let r = t.json(&["securities", "import", "--source", "csv", "--path", &fix]);
    assert_eq!(
        (r["matched"].as_u64(), r["securities"][0]["matched_by"].as_str()),
        (Some(1), Some("composite_figi")),
        "{r}"
    );
    let id = r["securities"][0]["security_id"].as_i64();
    assert_eq!(resolve(&t, "META", "2022-06-09", "latest"), (0, id));
    assert_eq!(resolve(&t, "FB", "2022-06-09", "latest"), (1, None));
}

#[test]
fn migration_from_a_ticker_keyed_lake_is_one_command_and_idempotent() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let out = t.run(&["securities", "migrate"]);
    assert!(stderr(&out).contains("reference_universe is empty"), "{}", stderr(&out));
    t.json(&["universe", "rebuild", "--symbols", "AAA,BBB,CCC"]);
    t.json(&["universe", "rebuild", "--symbols", "AAA,BBB"]);
    let r = t.json(&["securities", "migrate"]);
    assert_eq!(
        (r["minted"].as_u64(), r["members"].as_u64(), r["universe"].as_str()),
        (Some(3), Some(3), Some("default")),
        "{r}"
    );
    let again = t.json(&["securities", "migrate"]);
    assert_eq!((again["changed"].as_u64(), again["matched"].as_u64()), (Some(0), Some(3)), "{again}");

    // CCC was last listed by today's rebuild: a member through today, not after.
    let today = chrono::Utc::now().date_naive();
    let members = t.json(&["universe", "show", "--at", &today.succ_opt().unwrap().to_string()]);
    let tickers: Vec<&str> =
        members["members"].as_array().unwrap().iter().map(|m| m["ticker"].as_str().unwrap()).collect();
    assert_eq!(tickers.len(), 2, "CCC left the universe: {members}");
    assert!(tickers.contains(&"AAA") && tickers.contains(&"BBB"));
    let earlier = t.json(&["universe", "show", "--at", "2020-01-02"]);
    assert_eq!(earlier["members"].as_array().unwrap().len(), 3, "CCC was a member before it was dropped");

    // A file's history of AAA (a rename from ZZZ) ranks above the migration and keeps its id.
    let aaa = resolve(&t, "AAA", &today.to_string(), "latest").1;
    let file = write(&t, "aaa.csv", "date,old_ticker,new_ticker\n2021-03-01,ZZZ,AAA\n");
    let r = t.json(&["securities", "import", "--source", "csv", "--path", &file]);
    assert_eq!(
        (r["securities"][0]["matched_by"].as_str(), r["securities"][0]["security_id"].as_i64()),
        (Some("ticker"), aaa),
        "{r}"
    );
    assert_eq!(resolve(&t, "ZZZ", "2020-01-02", "latest").1, aaa);
    assert_eq!(
        resolve(&t, "AAA", "2020-01-02", "latest"),
        (1, None),
        "the file's history replaces the migration's open interval"
    );
    let out = t.run(&["universe", "show", "--at", "2020-01-02", "--universe", "sp500"]);
    assert!(stderr(&out).contains("no membership of universe 'sp500'"), "{}", stderr(&out));
}

#[test]
fn a_parquet_file_imports_like_a_csv() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let path = t.dir.as_ref().expect("a local lake").path().join("master.parquet");
    let script = format!(
        "import pyarrow as pa, pyarrow.parquet as pq, datetime as dt\n\
         pq.write_table(pa.table({{'key': ['m', 'm'], 'ticker': ['FB', 'META'], \
         'valid_from': [dt.date(2012, 5, 18), dt.date(2022, 6, 9)], 'valid_to': [dt.date(2022, 6, 8), None]}}), {:?})\n",
        path.display().to_string()
    );
    let out = std::process::Command::new(crate::support::python()).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = t.json(&["securities", "import", "--source", "csv", "--path", &path.display().to_string()]);
    assert_eq!((r["minted"].as_u64(), r["intervals"].as_u64()), (Some(1), Some(2)), "{r}");
    assert_eq!(resolve(&t, "FB", "2022-06-08", "latest").1, resolve(&t, "META", "2022-06-09", "latest").1);
}

#[test]
fn ingestion_asks_for_each_days_ticker_and_bars_run_across_the_rename() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    // NEWX was OLDX through 2024-01-09; DEADX is delisted after 2024-01-05; REUSE names security A
    // through 2024-01-08 and security B from 2024-01-09.
    let master = write(
        &t,
        "master.csv",
        "key,ticker,valid_from,valid_to,delisted\n\
         x,OLDX,2020-01-02,2024-01-09,\nx,NEWX,2024-01-10,,\n\
         d,DEADX,2020-01-02,,2024-01-05\n\
         a,REUSE,2020-01-02,2024-01-08,\nb,REUSE,2024-01-09,,\n",
    );
    let imported = t.json(&["securities", "import", "--source", "csv", "--path", &master]);
    let id_of = |ticker: &str, at: &str| resolve(&t, ticker, at, "latest").1.unwrap();
    let (x, a, b) = (id_of("NEWX", "2024-01-10"), id_of("REUSE", "2024-01-08"), id_of("REUSE", "2024-01-09"));
    assert_eq!(imported["minted"], 4);

    let range = ["--start", "2024-01-02", "--end", "2024-01-12"];
    let ingest = |symbols: &str, range: &[&str]| {
        let mut args = vec!["ingest", "--source", "synthetic", "--symbols", symbols, "--quiet"];
        args.extend_from_slice(range);
        t.json(&args)
    };
    let r = ingest("NEWX,DEADX,REUSE", &range);
    assert_eq!(r["asked_as"]["NEWX"], "OLDX 2024-01-02..2024-01-09, NEWX 2024-01-10..2024-01-12", "{r}");
    assert_eq!(r["asked_as"]["DEADX"], "DEADX 2024-01-02..2024-01-05", "nothing after the delisting: {r}");
    assert_eq!(r["asked_as"]["REUSE"], "REUSE 2024-01-09..2024-01-12", "REUSE on the end date is B: {r}");
    // Security A's sessions: asked for by a range that ends while REUSE named it.
    let r = ingest("REUSE", &["--start", "2024-01-02", "--end", "2024-01-08"]);
    assert!(r["asked_as"].is_null(), "REUSE over A's own dates is itself: {r}");
    let days = |sql: &str| -> Vec<(String, String)> {
        t.json(&["query", sql])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["symbol"].as_str().unwrap().to_string(), r["d"].as_str().unwrap().to_string()))
            .collect()
    };
    let raw = days(
        "SELECT symbol, strftime(min(date), '%Y-%m-%d') || '..' || strftime(max(date), '%Y-%m-%d') AS d FROM raw_synthetic_bars GROUP BY symbol ORDER BY symbol",
    );
    assert_eq!(
        raw,
        [
            ("DEADX".to_string(), "2024-01-02..2024-01-05".to_string()),
            ("NEWX".into(), "2024-01-10..2024-01-12".into()),
            ("OLDX".into(), "2024-01-02..2024-01-09".into()),
            ("REUSE".into(), "2024-01-02..2024-01-12".into()),
        ],
        "the raw layer keeps each day's ticker"
    );
    let out = t.run(&["curate", "--start", "2024-01-02", "--end", "2024-01-12"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The reused ticker's curated rows are stamped with the security of their day, and each security's
    // rows are its own source rows: nothing carried from one to the other.
    let stamped = t.json(&[
        "query",
        "SELECT security_id, strftime(min(date), '%Y-%m-%d') AS first, strftime(max(date), '%Y-%m-%d') AS last,          count(*) FILTER (WHERE is_filled) AS filled FROM curated_1m_bars WHERE symbol = 'REUSE' GROUP BY 1 ORDER BY 2",
    ]);
    assert_eq!(
        stamped,
        json!([
            { "security_id": a, "first": "2024-01-02", "last": "2024-01-08", "filled": 0 },
            { "security_id": b, "first": "2024-01-09", "last": "2024-01-12", "filled": 0 },
        ])
    );
    let differ = t.json(&[
        "query",
        "SELECT count(*) AS n FROM curated_1m_bars c JOIN raw_synthetic_bars r USING (symbol, ts)          WHERE c.symbol = 'REUSE' AND (c.close <> r.close OR c.volume <> r.volume)",
    ]);
    assert_eq!(differ[0]["n"], 0);

    // One continuous series across the rename, each row with its day's ticker.
    let bars = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["bars", "--frequency", "1d"];
        all.extend_from_slice(args);
        t.json(&all).as_array().unwrap().clone()
    };
    let newx = bars(&["--symbols", "NEWX", "--start", "2024-01-02", "--end", "2024-01-12"]);
    let shape: Vec<(String, String, i64)> = newx
        .iter()
        .map(|r| {
            (
                r["symbol"].as_str().unwrap().into(),
                r["ticker"].as_str().unwrap().into(),
                r["security_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shape.len(), 9, "every session of the range: {newx:?}");
    assert!(shape.iter().all(|(s, _, id)| s == "NEWX" && *id == x));
    assert_eq!(shape.iter().filter(|r| r.1 == "OLDX").count(), 6);
    let dates: Vec<&str> = newx.iter().map(|r| r["date"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "in time order: {dates:?}");
    // The FB-era rows are OLDX's curated rows, unchanged.
    let oldx = bars(&["--symbols", "OLDX", "--start", "2024-01-02", "--end", "2024-01-09"]);
    assert_eq!(oldx.len(), 6);
    for (o, n) in oldx.iter().zip(&newx) {
        assert_eq!((&o["close"], &o["volume"], &o["ts"]), (&n["close"], &n["volume"], &n["ts"]));
    }

    // The reused ticker never mixes the two securities: by default REUSE is B (the end date's);
    // --resolve-at chooses A.
    let reuse_b = bars(&["--symbols", "REUSE", "--start", "2024-01-02", "--end", "2024-01-12"]);
    assert_eq!(reuse_b.len(), 4, "{reuse_b:?}");
    assert!(
        reuse_b.iter().all(|r| r["security_id"].as_i64() == Some(b) && r["date"].as_str().unwrap() >= "2024-01-09")
    );
    let reuse_a =
        bars(&["--symbols", "REUSE", "--start", "2024-01-02", "--end", "2024-01-12", "--resolve-at", "2024-01-03"]);
    assert_eq!(reuse_a.len(), 5, "{reuse_a:?}");
    assert!(
        reuse_a.iter().all(|r| r["security_id"].as_i64() == Some(a) && r["date"].as_str().unwrap() <= "2024-01-08")
    );
    // The delisted security's series ends at its delisting, asked for by its ticker then.
    let dead = bars(&["--symbols", "DEADX", "--start", "2024-01-02", "--end", "2024-01-12"]);
    assert_eq!(dead.len(), 4);
}

/// A training set over 2024-01-03..2024-01-11 (its flags but `--output`).
const TRAINING_SET: [&str; 7] =
    ["training-set", "--label", "fwd_ret_15m", "--start", "2024-01-03", "--end", "2024-01-11"];

#[test]
fn training_sets_hold_the_members_of_each_decision_date() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    for args in [
        &[
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            "AAA,BBB,CCC",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-12",
            "--quiet",
        ][..],
        &["curate", "--start", "2024-01-02", "--end", "2024-01-12"],
        &["features", "--start", "2024-01-02", "--end", "2024-01-12"],
    ] {
        let out = t.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    // (lineage, rows as (symbol, first decision date, last decision date))
    let set = |extra: &[&str]| -> (serde_json::Value, Vec<(String, String, String)>) {
        let file = dir.path().join("set.parquet");
        let mut args = vec!["--json"];
        args.extend_from_slice(&TRAINING_SET);
        args.push("--output");
        let path = file.display().to_string();
        args.push(&path);
        args.extend_from_slice(extra);
        let out = t.cli().args(&args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let lineage: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let script = format!(
            "import duckdb, json\n\
             rows = duckdb.sql(\"SELECT symbol, strftime(min(decision_time AT TIME ZONE 'America/New_York'), '%Y-%m-%d'), \
             strftime(max(decision_time AT TIME ZONE 'America/New_York'), '%Y-%m-%d') FROM '{path}' GROUP BY symbol ORDER BY symbol\").fetchall()\n\
             print(json.dumps(rows))\n"
        );
        let out = std::process::Command::new(crate::support::python()).arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let rows: Vec<(String, String, String)> = serde_json::from_slice(&out.stdout).unwrap();
        (lineage, rows)
    };
    let (before, all_rows) = set(&[]);
    assert!(before["universe"].is_null(), "no membership yet: every symbol with data: {before}");
    assert_eq!(all_rows.len(), 3);

    // BBB is delisted after 2024-01-05; CCC joins on 2024-01-09; AAA is a member throughout.
    let members = write(
        &t,
        "members.csv",
        "ticker,valid_from,valid_to,listed,delisted\nAAA,2020-01-02,,,\nBBB,2020-01-02,,,2024-01-05\nCCC,2020-01-02,,2024-01-09,\n",
    );
    t.json(&["securities", "import", "--source", "csv", "--path", &members, "--universe", "default"]);
    let (lineage, rows) = set(&[]);
    assert_eq!(
        rows,
        [
            ("AAA".to_string(), "2024-01-03".to_string(), "2024-01-11".to_string()),
            ("BBB".into(), "2024-01-03".into(), "2024-01-05".into()),
            ("CCC".into(), "2024-01-09".into(), "2024-01-11".into()),
        ],
        "members on each decision date: the delisted one before its delisting, the new one after joining"
    );
    assert_eq!(lineage["universe"], "default", "{lineage}");
    assert!(lineage["rows_not_members"].as_u64().unwrap() > 0);
    assert_eq!(
        lineage["rows"].as_u64().unwrap() + lineage["rows_not_members"].as_u64().unwrap(),
        before["rows"].as_u64().unwrap(),
        "every row is kept or counted"
    );
    assert!(
        lineage["inputs"]["reference_membership"].as_u64().unwrap() > 0,
        "the membership snapshot is in the lineage"
    );
    // Today's universe does not hold BBB; the set of the past window does.
    let today = t.json(&["universe", "show", "--at", "2024-01-12"]);
    assert!(!today["members"].as_array().unwrap().iter().any(|m| m["ticker"] == "BBB"));
    // `--universe all` opts out; an unknown universe is refused.
    let (_, everything) = set(&["--universe", "all"]);
    assert_eq!(everything, all_rows);
    let mut args = TRAINING_SET.to_vec();
    args.extend(["--output", "x.parquet", "--universe", "sp500"]);
    let out = t.run(&args);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no membership of universe 'sp500'"), "{}", stderr(&out));
    // An inference set of every symbol holds the members at its decision time.
    let at = |time: &str| -> Vec<String> {
        t.json(&["inference-set", "--at", time])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["symbol"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(at("2024-01-08T15:00:00Z"), ["AAA"]);
    assert_eq!(at("2024-01-10T15:00:00Z"), ["AAA", "CCC"]);
}

#[test]
fn the_security_master_on_s3() {
    let t = TestLake::new(Backend::S3);
    t.json(&["init"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.csv");
    std::fs::write(&path, MASTER_CSV).unwrap();
    let path = path.display().to_string();
    let first = t.json(&["securities", "import", "--source", "csv", "--path", &path, "--universe", "us"]);
    assert_eq!(first["minted"], 4, "{first}");
    let again = t.json(&["securities", "import", "--source", "csv", "--path", &path, "--universe", "us"]);
    assert_eq!((again["changed"].as_u64(), again["lake_seq"].is_null()), (Some(0), true), "{again}");
    let ids = ids_by_name(&first);
    assert_eq!(resolve(&t, "GOOG", "2010-01-04", "latest"), (0, Some(ids["Alphabet Inc Class A"])));
    assert_eq!(resolve(&t, "GOOG", "2014-04-03", "latest"), (0, Some(ids["Alphabet Inc Class C"])));
    let members = t.json(&["universe", "show", "--at", "2023-01-03", "--universe", "us"]);
    assert_eq!(members["members"].as_array().unwrap().len(), 3, "{members}");
}

/// The set's rows in `file` that `other` lacks, as (symbol, New York date) with a count, and how many
/// of `other`'s rows `file` lacks.
fn set_difference(file: &str, other: &str) -> (Vec<(String, String, i64)>, i64) {
    let script = format!(
        "import duckdb, json\n\
         extra = duckdb.sql(\"SELECT symbol, strftime(decision_time AT TIME ZONE 'America/New_York', '%Y-%m-%d') AS d, count(*) \
         FROM (SELECT * FROM '{file}' EXCEPT ALL SELECT * FROM '{other}') GROUP BY ALL ORDER BY ALL\").fetchall()\n\
         missing = duckdb.sql(\"SELECT count(*) FROM (SELECT * FROM '{other}' EXCEPT ALL SELECT * FROM '{file}')\").fetchone()[0]\n\
         print(json.dumps([extra, missing]))\n"
    );
    let out = std::process::Command::new(crate::support::python()).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_rename_inside_a_window_is_one_series_and_a_set_changes_only_where_the_knowledge_did() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let ok = |args: &[&str]| succeeds(&t, args);
    // The vendor delivered OLDX through 2024-01-09 and NEWX from 2024-01-10; nobody has said yet that
    // they are one company.
    for (symbols, start, end) in [("OLDX,AAA", "2024-01-02", "2024-01-09"), ("NEWX,AAA", "2024-01-10", "2024-01-12")] {
        ok(&["ingest", "--source", "synthetic", "--symbols", symbols, "--start", start, "--end", end, "--quiet"]);
    }
    let range = ["--start", "2024-01-02", "--end", "2024-01-12"];
    ok(&[&["curate"][..], &range].concat());
    ok(&[&["features"][..], &range].concat());
    ok(&["snapshot", "tag", "--all", "before-the-rename"]);
    let dir = tempfile::tempdir().unwrap();
    let set = |name: &str, as_of: &str| -> String {
        let path = dir.path().join(name).display().to_string();
        ok(&[
            "training-set",
            "--label",
            "fwd_ret_1d",
            "--start",
            "2024-01-03",
            "--end",
            "2024-01-11",
            "--output",
            &path,
            "--as-of",
            as_of,
        ]);
        path
    };
    let before = set("before.parquet", "latest");

    // The rename arrives: OLDX and NEWX are one security.
    let master = write(
        &t,
        "rename.csv",
        "key,ticker,valid_from,valid_to\nx,OLDX,2020-01-02,2024-01-09\nx,NEWX,2024-01-10,\na,AAA,2020-01-02,\n",
    );
    let imported = t.json(&["securities", "import", "--source", "csv", "--path", &master]);
    assert_eq!(
        imported["restamp"],
        json!({"start": "2024-01-02", "end": "2024-01-12", "datasets": ["curated_1m_bars"]}),
        "the import names the curated sessions stamped before it: {imported}"
    );
    let x = resolve(&t, "NEWX", "2024-01-10", "latest").1.unwrap();
    ok(&[&["curate"][..], &range].concat());
    let stale = t.json(&["features", "--stale"]);
    assert!(
        !stale["features"]["runs"].as_array().unwrap().is_empty(),
        "re-curated sessions make features and labels stale: {stale}"
    );

    // Curated bars, features and labels carry the security next to each day's ticker.
    for dataset in ["curated_1m_bars", "features_price_1m_v1", "labels_fwd_ret_v1"] {
        let ids = t.json(&["query", &format!("SELECT DISTINCT symbol, security_id FROM {dataset} ORDER BY symbol")]);
        let by_symbol: std::collections::BTreeMap<String, Option<i64>> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["symbol"].as_str().unwrap().to_string(), r["security_id"].as_i64()))
            .collect();
        assert_eq!(by_symbol["OLDX"], Some(x), "{dataset}: {ids}");
        assert_eq!(by_symbol["NEWX"], Some(x), "{dataset}: {ids}");
        assert!(by_symbol["AAA"].is_some_and(|a| a != x), "{dataset}: {ids}");
    }
    // The one-session return of OLDX's last session reaches NEWX's first: one series, no gap.
    let last = t.json(&[
        "query",
        "SELECT count(fwd_ret_1d) AS n FROM labels_fwd_ret_v1 WHERE symbol = 'OLDX' AND date = DATE '2024-01-09'",
    ]);
    assert!(last[0]["n"].as_i64().unwrap() > 300, "{last}");

    // Built again at the snapshot before the import, the set is what it was; built today, it differs
    // only by OLDX's decisions of its last session, whose label the rename made known.
    let then = set("then.parquet", "before-the-rename");
    assert_eq!(set_difference(&then, &before), (Vec::new(), 0));
    let today = set("today.parquet", "latest");
    let (extra, missing) = set_difference(&today, &before);
    assert_eq!(missing, 0, "no row of the set before the import changed or went");
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert_eq!((extra[0].0.as_str(), extra[0].1.as_str()), ("OLDX", "2024-01-09"), "{extra:?}");
}

#[test]
fn curation_expects_the_members_of_each_session() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let ok = |args: &[&str]| succeeds(&t, args);
    ok(&["universe", "rebuild", "--symbols", "AAA,BBB"]);
    // BBB stops trading after 2024-01-05.
    ok(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAA",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-10",
        "--quiet",
    ]);
    ok(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "BBB",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-05",
        "--quiet",
    ]);
    let range = ["--start", "2024-01-02", "--end", "2024-01-10"];
    let bbb_sessions = || -> Vec<String> {
        t.json(&[
            "query",
            "SELECT strftime(session_open, '%Y-%m-%d') AS d FROM dq_metrics \
             WHERE dataset = 'curated_1m_bars' AND symbol = 'BBB' ORDER BY d",
        ])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["d"].as_str().unwrap().to_string())
        .collect()
    };
    // (symbol-sessions expected, covered) of the last partition, as its committed verdict counts them.
    let last_partition = || {
        let parts = t.json(&["partitions", "curated_1m_bars"]);
        let last =
            parts["partitions"].as_array().unwrap().iter().max_by_key(|p| p["partition"].to_string()).unwrap().clone();
        (last["quality"]["symbol_sessions"].as_u64(), last["quality"]["covered_symbol_sessions"].as_u64())
    };
    ok(&[&["curate"][..], &range].concat());
    assert_eq!(bbb_sessions().len(), 7, "without membership, an active universe symbol is expected every session");
    assert_eq!(last_partition(), (Some(2), Some(1)), "BBB is a gap on 2024-01-10");
    // The master says BBB was delisted on 2024-01-05: after it, nothing is expected of it.
    let members =
        write(&t, "members.csv", "ticker,valid_from,valid_to,delisted\nAAA,2020-01-02,,\nBBB,2020-01-02,,2024-01-05\n");
    t.json(&["securities", "import", "--source", "csv", "--path", &members, "--universe", "default"]);
    ok(&[&["curate"][..], &range].concat());
    assert_eq!(bbb_sessions(), ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]);
    assert_eq!(last_partition(), (Some(1), Some(1)), "a delisted security is no gap after its delisting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ib_contract_details_give_contract_ids_a_file_then_matches() {
    use crate::fake_tws::{FakeTws, Script, test_pacing};
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let mut script = Script::with_symbols(["AAPL", "MSFT"]);
    script.contract("AAPL", 265_598, "APPLE INC", "NASDAQ");
    let fake = FakeTws::start(script, test_pacing()).await;
    let run = |args: &[&str]| {
        let mut cmd = t.cli();
        cmd.env("QUANTLAKE_TWS__PORT", fake.addr.port().to_string())
            .env("QUANTLAKE_TWS__TIMEOUT", "5s")
            .env("QUANTLAKE_TWS__PACING__IDENTICAL_GAP", "75ms")
            .env("QUANTLAKE_TWS__PACING__PER_CONTRACT_WINDOW", "100ms")
            .env("QUANTLAKE_TWS__PACING__WINDOW", "3s")
            .arg("--json")
            .args(args);
        cmd
    };
    let mut import = run(&["securities", "import", "--source", "tws", "--symbols", "AAPL,MSFT,NOPE"]);
    let out = tokio::task::spawn_blocking(move || import.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "a ticker IB does not know makes the import partial: {}", stderr(&out));
    assert!(stderr(&out).contains("NOPE unknown to tws"), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["delivered"].as_u64(), report["minted"].as_u64()), (Some(2), Some(2)), "{report}");
    assert_eq!(report["not_found"], json!(["NOPE"]));
    let show = t.json(&["securities", "show", "--symbols", "AAPL"]);
    let aapl = &show.as_array().unwrap()[0];
    assert_eq!(
        (&aapl["con_id"], &aapl["name"], &aapl["primary_exchange"], &aapl["kind"]),
        (&json!(265_598), &json!("APPLE INC"), &json!("NASDAQ"), &json!("STK")),
        "{show}"
    );
    // A file with the contract id meets IB's security, whatever ticker it lists first.
    let file = write(&t, "aapl.csv", "ticker,valid_from,valid_to,con_id\nAAPL,1980-12-12,,265598\n");
    let r = t.json(&["securities", "import", "--source", "csv", "--path", &file]);
    assert_eq!(r["securities"][0]["matched_by"], "con_id", "{r}");
    assert_eq!(r["securities"][0]["security_id"], aapl["security_id"]);
}
