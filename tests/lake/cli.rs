//! The command line: the README's flows, and bad input (a clear error naming the thing, a non-zero
//! exit, nothing written).

use std::collections::BTreeSet;

use crate::both_backends;
use crate::support::{Backend, TestLake, stderr};

async fn demo_runs_on_a_fresh_lake(backend: Backend) {
    let t = TestLake::new(backend);
    let out = t.run(&["demo", "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verify: OK") && text.contains("Read the live files directly"), "{text}");
    // Run twice: the same README command works on a lake that already has the demo's data.
    let again = t.json(&["demo"]);
    assert_eq!(again["verify"]["problems"], serde_json::json!([]));
    assert_ne!(again["before"], again["after"], "the correction changed AAPL on 2024-01-09");
    // Curated: 20 symbols x 9 full sessions; the injected gaps filled, the duplicates gone.
    assert_eq!(again["curate"]["rows"], 20 * 9 * 390);
    assert!(
        again["curate"]["filled_rows"].as_u64().unwrap() > 0
            && again["curate"]["duplicates_removed"].as_u64().unwrap() > 0,
        "{}",
        again["curate"]
    );
    assert_eq!(again["quality"]["sessions_with_data"], 9);
    // 20 symbols is below the guide's critical breadth of 100.
    assert_eq!(
        (again["health"]["status"].clone(), again["health"]["severity"].clone()),
        (serde_json::json!("RED"), serde_json::json!("SEV-2"))
    );
    assert!(text.contains("7. curated 9 sessions") && text.contains("9. health"), "{text}");
    assert!(text.contains("RED because of breadth") && text.contains("FEATURE_BREADTH_MIN_SYMBOLS=10"), "{text}");
    // With thresholds for a lake this size, as the demo says: GREEN.
    let sized = t
        .cli()
        .env("FEATURE_BREADTH_MIN_SYMBOLS", "10")
        .env("FEATURE_BREADTH_WARN_SYMBOLS", "20")
        .args(["demo", "--quiet"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sized.stdout);
    assert!(text.contains("GREEN: every check passed."), "{text}");
    let datasets = t.json(&["datasets"]);
    let bars = datasets.as_array().unwrap().iter().find(|d| d["dataset"] == "raw_synthetic_bars").unwrap();
    assert_eq!(bars["partitions"], 9);
}
both_backends!(demo_test, demo_runs_on_a_fresh_lake);

#[test]
fn snapshot_commands_round_trip() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let ingest = |seed: &str, syms: &str| {
        t.json(&[
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            syms,
            "--start",
            "2024-02-01",
            "--end",
            "2024-02-02",
            "--seed",
            seed,
        ])
    };
    let first = ingest("1", "AAPL,MSFT");
    assert_eq!(first["rows"], 2 * 2 * 390);
    t.json(&["snapshot", "tag", "raw_synthetic_bars", "good"]);
    ingest("2", "AAPL");
    let diff = t.json(&["snapshot", "diff", "raw_synthetic_bars", "good"]);
    assert_eq!(diff["changes"].as_array().unwrap().len(), 2);
    let restored = t.json(&["snapshot", "restore", "raw_synthetic_bars", "good"]);
    assert_eq!(restored["snapshot_id"], 3);
    assert_eq!(t.json(&["snapshot", "diff", "raw_synthetic_bars", "good"])["changes"], serde_json::json!([]));
    let csv = t.run(&[
        "query",
        "--format",
        "csv",
        "SELECT symbol, count(*) AS n FROM raw_synthetic_bars GROUP BY 1 ORDER BY 1",
    ]);
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "symbol,n\nAAPL,780\nMSFT,780\n");
    let tags = t.json(&["snapshot", "tags", "raw_synthetic_bars"]);
    assert_eq!(tags[0]["name"], "good");
    let snaps = t.json(&["snapshots", "raw_synthetic_bars"]);
    assert_eq!(snaps[0]["operation"], "restore");
    assert_eq!(snaps[2]["tags"], serde_json::json!(["good"]));
    assert!(t.run(&["snapshot", "untag", "raw_synthetic_bars", "good"]).status.success());
    assert!(!t.run(&["query", "--as-of", "good", "SELECT count(*) FROM raw_synthetic_bars"]).status.success());
}

/// The lake's files but job records.
fn lake_files(t: &TestLake) -> BTreeSet<String> {
    let root = t.local_root().unwrap();
    let files = walk(root).into_iter().map(|p| p.strip_prefix(root).unwrap().display().to_string());
    files.filter(|f| !f.starts_with("_jobs/")).collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Runs a command that must fail with `needle` in its error, and must leave the lake's data as it
/// was (a stage command's FAILED job record, the audit trail of the attempt, is no data).
fn refused(t: &TestLake, args: &[&str], needle: &str) {
    let before = t.local_root().map(|_| lake_files(t));
    let out = t.run(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = stderr(&out);
    assert!(err.contains(needle), "{args:?}: expected {needle:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    if let Some(before) = before {
        assert_eq!(lake_files(t), before, "{args:?} wrote something");
    }
}

#[test]
fn bad_input_is_refused_by_name() {
    let t = TestLake::new(Backend::Local);
    refused(&t, &["datasets"], "no lake at");
    assert!(t.run(&["init"]).status.success());
    assert!(
        t.run(&[
            "ingest",
            "--source",
            "synthetic",
            "--symbols",
            "AAPL",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-02",
            "--quiet"
        ])
        .status
        .success()
    );
    refused(&t, &["calendar", "--start", "2024-13-01", "--end", "2024-12-31"], "expected a date YYYY-MM-DD");
    refused(&t, &["bars", "--symbols", "AAPL", "--start", "01/02/2024"], "expected a date YYYY-MM-DD");
    let typo = t.cli().env("QUANTLAKE_INGEST__CHUNK_SESIONS", "3").arg("datasets").output().unwrap();
    assert_eq!(typo.status.code(), Some(3));
    assert!(stderr(&typo).contains("did you mean 'ingest.chunk_sessions'?"), "{}", stderr(&typo));
    refused(&t, &["snapshots", "nope"], "unknown dataset 'nope'");
    refused(&t, &["snapshots", "../x"], "invalid dataset name '../x'");
    refused(&t, &["snapshots", "/"], "invalid dataset name '/'");
    refused(&t, &["snapshots", "a\u{1}b"], "invalid dataset name");
    refused(
        &t,
        &["ingest", "--source", "synthetic", "--symbols", "AAPL,../x", "--start", "2024-01-02", "--end", "2024-01-02"],
        "invalid symbol '../x'",
    );
    refused(
        &t,
        &["ingest", "--source", "synthetic", "--symbols", "A/B", "--start", "2024-01-02", "--end", "2024-01-02"],
        "invalid symbol 'A/B'",
    );
    refused(
        &t,
        &["ingest", "--source", "synthetic", "--symbols", "AAPL", "--start", "2024-01-05", "--end", "2024-01-02"],
        "before start",
    );
    refused(&t, &["snapshot", "tag", "raw_synthetic_bars", "../v1"], "invalid tag '../v1'");
    refused(&t, &["query", "--as-of", "7", "SELECT count(*) FROM raw_synthetic_bars"], "no snapshot matching '7'");
    refused(&t, &["query", "SELECT * FROM nope"], "nope");

    // A manifest written by a newer quantlake.
    let log = t.local_root().unwrap().join("_manifest/raw_synthetic_bars/log/00000000000000000002.json");
    std::fs::write(&log, br#"{"format_version": 3, "dataset": "raw_synthetic_bars", "snapshot_id": 2}"#).unwrap();
    refused(&t, &["datasets"], "format version 3, newer than this quantlake supports (2)");
    refused(
        &t,
        &["ingest", "--source", "synthetic", "--symbols", "AAPL", "--start", "2024-01-03", "--end", "2024-01-03"],
        "format version 3",
    );
    std::fs::remove_file(&log).unwrap();

    // A lake URL that cannot be reached (nothing listens on port 9).
    let mut c = t.cli();
    c.args(["--lake", "s3://bucket/prefix", "datasets"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true");
    c.env("AWS_ACCESS_KEY_ID", "k").env("AWS_SECRET_ACCESS_KEY", "s").env("AWS_REGION", "us-east-1");
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot reach the lake at s3://bucket/prefix"), "{}", stderr(&out));
    refused(&t, &["--lake", "gs://x/y", "datasets"], "supported schemes are s3:// and file://");
    // S3 without credentials: the error says where they are looked for (the instance metadata
    // endpoint, the last place, is on loopback here, where nothing listens).
    let mut c = t.cli();
    c.args(["--lake", "s3://bucket/prefix", "datasets"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), "{err}");
}

#[test]
fn calendar_lists_sessions_with_early_closes_and_dst() {
    let t = TestLake::new(Backend::Local);
    // Thanksgiving week 2024: Thursday closed, Friday closes at 13:00 New York (18:00 UTC).
    let week = t.json(&["calendar", "--start", "2024-11-25", "--end", "2024-11-29"]);
    let days: Vec<&str> = week.as_array().unwrap().iter().map(|s| s["date"].as_str().unwrap()).collect();
    assert_eq!(days, ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29"]);
    assert_eq!(week[3]["early_close"], true);
    assert_eq!(week[3]["close"], "2024-11-29T18:00:00Z");
    assert_eq!(week[3]["close_new_york"], "2024-11-29T13:00:00-05:00");
    // The DST change: 14:30 UTC before, 13:30 UTC after.
    let dst = t.json(&["calendar", "--start", "2024-03-08", "--end", "2024-03-11"]);
    assert_eq!(
        (dst[0]["open"].as_str(), dst[1]["open"].as_str()),
        (Some("2024-03-08T14:30:00Z"), Some("2024-03-11T13:30:00Z"))
    );
    let text = String::from_utf8_lossy(&t.run(&["calendar", "--start", "2025-01-06", "--end", "2025-01-10"]).stdout)
        .into_owned();
    assert!(text.contains("4 session(s)") && !text.contains("2025-01-09"), "Carter day of mourning: {text}");
    assert!(!t.run(&["calendar", "--start", "2024-02-01", "--end", "2024-01-01"]).status.success());
}

/// The exit-code contract (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), each class from a real command.
/// (A partial ingest exiting 1 is in `tws.rs`, a YELLOW `health-check` in `curate.rs`.)
#[test]
fn exit_codes_follow_the_contract() {
    let t = TestLake::new(Backend::Local);
    let code = |args: &[&str]| {
        let out = t.run(args);
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
        out.status.code()
    };
    // 3 UNKNOWN: the command could not run.
    assert_eq!(code(&["datasets"]), Some(3), "a lake that does not exist");
    assert_eq!(code(&["--lake", "gs://x/y", "datasets"]), Some(3), "an unsupported lake URL");
    assert_eq!(code(&["datasets", "--no-such-flag"]), Some(3), "an unknown flag (clap's usage error)");
    assert_eq!(code(&["calendar", "--start", "2024-13-01", "--end", "2024-12-31"]), Some(3), "a bad date");
    assert_eq!(code(&[]), Some(3), "no command");
    // 0 OK, and the contract under --help.
    assert_eq!(code(&["init"]), Some(0));
    assert_eq!(code(&["--version"]), Some(0));
    for help in [&["--help"][..], &["help", "verify"], &["snapshot", "tag", "--help"]] {
        let out = t.run(help);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{help:?}");
        assert!(text.contains("Exit codes") && text.contains("3  UNKNOWN"), "{help:?}: {text}");
    }
    assert_eq!(code(&["snapshots", "nope"]), Some(3), "an unknown dataset");
    assert_eq!(
        code(&[
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
        ]),
        Some(0)
    );
    assert_eq!(
        code(&["ingest", "--source", "synthetic", "--symbols", "3", "--start", "2024-01-05", "--end", "2024-01-02"]),
        Some(3),
        "end before start"
    );
    assert_eq!(code(&["verify"]), Some(0));
    // 2 CRITICAL: health RED (3 symbols is below the default breadth of 100), and a damaged live file.
    assert_eq!(code(&["curate", "--start", "2024-01-02", "--end", "2024-01-03"]), Some(0));
    assert_eq!(code(&["health-check", "--as-of-date", "2024-01-03"]), Some(2));
    assert_eq!(
        code(&["health", "--as-of-date", "2024-01-03"]),
        Some(0),
        "health prints the report; health-check exits by it"
    );
    let live = t.local_root().unwrap().join("raw/raw_synthetic_bars/date=2024-01-02/part.parquet");
    let mut bytes = std::fs::read(&live).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&live, bytes).unwrap();
    assert_eq!(code(&["verify"]), Some(2));
    assert_eq!(code(&["verify", "raw_synthetic_bars"]), Some(2));
}

/// SIGINT and SIGTERM stop a long command with exit 130 and one line saying what stays and how to
/// resume, in the log too; the lake verifies after, and the command's job record is CANCELLED.
#[test]
fn a_signal_stops_a_command_with_130() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    for signal in ["INT", "TERM"] {
        let child = t
            .cli()
            .args([
                "ingest",
                "--source",
                "synthetic",
                "--symbols",
                "300",
                "--start",
                "2023-01-03",
                "--end",
                "2024-12-31",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let kill = std::process::Command::new("kill").args([format!("-{signal}"), child.id().to_string()]).status();
        assert!(kill.unwrap().success());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(err.contains(&format!("interrupted by SIG{signal}")) && err.contains("--resume"), "{err}");
        let log = std::fs::read_to_string(t.log_file()).unwrap();
        assert!(
            log.contains(&format!("interrupted by SIG{signal}")) && log.contains("exit 130 (interrupted)"),
            "{log}"
        );
    }
    assert_eq!(t.run(&["verify"]).status.code(), Some(0), "what was committed is whole");
    // Each ingest's job record says how it ended, at once (not RUNNING until its lease runs out).
    let jobs = t.json(&["jobs", "--kind", "ingest"]);
    let ended: Vec<(&str, &str)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["status"].as_str().unwrap(), j["error"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(ended.len(), 2, "{jobs}");
    for (status, error) in ended {
        assert_eq!(status, "CANCELLED", "{jobs}");
        assert!(error.starts_with("interrupted by SIG"), "{jobs}");
    }
}

/// Without a configured log file, a command run from any folder logs beside the lake, never into a
/// `logs/` of the folder it runs from.
#[test]
fn the_log_file_goes_beside_the_lake() {
    let t = TestLake::new(Backend::Local);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = t.cli().env_remove("QUANTLAKE_LOG_FILE").current_dir(elsewhere.path()).arg("init").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!elsewhere.path().join("logs").exists(), "no logs/ in the working directory");
    let beside = t.local_root().unwrap().parent().unwrap().join("logs/app.log");
    let log = std::fs::read_to_string(&beside).unwrap_or_default();
    assert!(log.contains(" init") && log.contains("exit 0"), "{}: {log}", beside.display());
}

/// Every stage command is a job record: the job id an ingest, curate or features report prints is one
/// `jobs show` finds, with the command line, the log, the report and the peak memory; train and score are recorded too, and a
/// command that fails is a FAILED record with its error.
#[test]
fn stage_commands_are_job_records() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    let ingest =
        t.json(&["ingest", "--source", "synthetic", "--symbols", "3", "--start", "2024-01-02", "--end", "2024-01-05"]);
    let curate = t.json(&["curate", "--start", "2024-01-02", "--end", "2024-01-05"]);
    let features = t.json(&["features", "--start", "2024-01-02", "--end", "2024-01-05"]);
    for (kind, report) in [("ingest", &ingest), ("curate", &curate), ("features", &features)] {
        let id = report["job_id"].as_str().unwrap();
        let shown = t.json(&["jobs", "show", id]);
        assert_eq!((shown["kind"].as_str(), shown["status"].as_str()), (Some(kind), Some("SUCCEEDED")), "{shown}");
        assert!(shown["params"]["command"].as_str().unwrap().contains(&format!(" {kind} --")), "{shown}");
        // What the command printed is the record's report, with the process's peak memory.
        let printed = shown["report"]["report"].as_object().unwrap_or_else(|| panic!("{shown}"));
        assert_eq!(printed.get("job_id"), Some(&report["job_id"]), "{shown}");
        assert!(shown["peak_rss_bytes"].as_u64().is_some_and(|b| b > 1 << 20), "{shown}");
        // Rows and snapshots as for a worker's job: 3 symbols x 4 sessions x 390 minutes (per set).
        let sets = if kind == "features" { 2 } else { 1 };
        assert_eq!(shown["rows_out"], sets * 3 * 4 * 390, "{shown}");
        let made: Vec<&str> = shown["snapshots"].as_object().unwrap().keys().map(String::as_str).collect();
        let expected: &[&str] = match kind {
            "ingest" => &["raw_synthetic_bars"],
            "curate" => &["curated_1m_bars"],
            _ => &["features_price_1m_v1", "labels_fwd_ret_v1"],
        };
        assert_eq!(made, expected, "{shown}");
    }
    let failed = t.run(&["score", "--date", "2024-01-05"]);
    assert_eq!(failed.status.code(), Some(3), "no model yet");
    // The error once on stderr: the job's own "Failed to complete job" line is for the log file.
    let err = stderr(&failed);
    assert_eq!(err.matches("no model in the registry").count(), 1, "{err}");
    let scores = t.json(&["jobs", "--kind", "score"]);
    assert_eq!(scores.as_array().unwrap().len(), 1, "{scores}");
    assert_eq!(scores[0]["status"], "FAILED");
    assert!(scores[0]["error"].as_str().unwrap().contains("no model in the registry"), "{scores}");
    // The guide greps the log for failures by one phrase.
    let log = std::fs::read_to_string(t.log_file()).unwrap();
    assert!(log.contains("Failed to run the command: invalid argument: no model in the registry"), "{log}");
    assert!(log.contains("Failed to complete job"), "{log}");
    // Commands that only read make no record.
    t.json(&["datasets"]);
    let kinds: BTreeSet<String> =
        t.json(&["jobs"]).as_array().unwrap().iter().map(|j| j["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["curate", "features", "ingest", "score"].map(String::from).into());
}

/// `query` never downloads an extension: a time-zone conversion (DuckDB's ICU, not in this build)
/// is refused offline, with what to do instead.
#[test]
fn query_says_how_to_do_without_time_zones() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    t.json(&["ingest", "--source", "synthetic", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "2024-01-02"]);
    let out = t.run(&["query", "SELECT ts AT TIME ZONE 'America/New_York' AS t FROM raw_synthetic_bars LIMIT 1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("Failed to download") && !err.contains("http"), "nothing is downloaded: {err}");
    assert!(err.contains("needs DuckDB's ICU extension") && err.contains("`date` column"), "{err}");
}

/// On a terminal, tables fit its width (a pseudo-terminal from util-linux's `script`, sized with
/// `stty`): a report's long cells wrap; a query's columns that do not fit are left out and named.
#[test]
fn tables_fit_the_terminal() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    t.json(&["ingest", "--source", "synthetic", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "2024-01-02"]);
    let shell = format!(
        "stty cols 80 rows 40; {} --config {} query 'SELECT * FROM raw_synthetic_bars LIMIT 3'",
        env!("CARGO_BIN_EXE_quantlake"),
        crate::support::repo().join("tests/python/empty.toml").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &shell, "/dev/null"])
        .env("QUANTLAKE_LAKE", &t.url)
        .env("QUANTLAKE_LOG_FILE", t.log_file())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux's script");
    let text = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> =
        text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| l.starts_with(['┌', '│', '╞', '└'])).collect();
    assert!(table.len() > 5, "{text}");
    assert!(table.iter().all(|l| l.chars().count() <= 80), "{text}");
    assert!(text.contains("3 row(s); ") && text.contains("column(s) left out at this width: "), "{text}");
    assert!(text.contains("job_id"), "the last column is named: {text}");
}
