//! Operations (issue 12): the daily run and its job records, the job store's claims and leases,
//! backfills (plan, tag, resume after kill -9, impact, PARTIAL on a refused symbol, the large-span
//! rule) and the worker queue.

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use quantlake::ops::jobs::{Finish, JobSettings, JobSpec, JobStatus, JobStore, Shard};

use crate::both_backends;
use crate::fake_tws::{FakeTws, Script, test_pacing};
use crate::support::{Backend, TestLake, stderr};

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out)))
}

/// Breadth thresholds for a three-symbol lake (the defaults expect hundreds of symbols).
fn small_universe(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("FEATURE_BREADTH_MIN_SYMBOLS", "1").env("FEATURE_BREADTH_WARN_SYMBOLS", "1")
}

fn run(t: &TestLake, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = t.cli();
    small_universe(&mut cmd).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run quantlake")
}

fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stage"] == name))
        .unwrap_or_else(|| panic!("no stage {name} in {report}"))
}

/// The exit code the contract gives a run report: the worst of its stages and its health.
fn expected_exit(report: &Value) -> i32 {
    match report["outcome"].as_str() {
        Some("OK") => 0,
        Some("WARNING") => 1,
        Some("CRITICAL") => 2,
        other => panic!("outcome {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_run_records_a_job_per_stage() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let out = run(&t, &["--json", "run", "--date", "2024-03-05", "--symbols", "AAPL,MSFT,SPY"], &[]);
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(expected_exit(&report)), "{report}");
    assert_eq!(report["status"], "SUCCEEDED", "{report}");
    for name in ["ingest_1m", "curate_1m", "ingest_1d", "curate_1d", "features", "data_quality"] {
        assert_eq!(stage(&report, name)["status"], "SUCCEEDED", "{name}: {report}");
    }
    assert_eq!(stage(&report, "ingest_1m")["rows_out"], 3 * 390);
    assert_eq!(stage(&report, "curate_1m")["rows_out"], 3 * 390);
    assert_eq!(stage(&report, "score")["status"], "SKIPPED", "no model registered");
    assert!(report["lag_seconds"].as_f64().unwrap() > 0.0, "run long after its 17:30 schedule");

    // One record per stage, children of the run; the summary counts them.
    let run_id = report["job_id"].as_str().unwrap();
    let jobs = t.json(&["jobs"]);
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 7, "{jobs:?}");
    assert!(jobs.iter().filter(|j| j["id"] != run_id).all(|j| j["parent"] == run_id && j["status"] == "SUCCEEDED"));
    let curate = jobs.iter().find(|j| j["kind"] == "curate" && j["params"]["bar_size"] == "1m").unwrap();
    assert_eq!(curate["rows_out"], 3 * 390);
    assert!(curate["snapshots"]["curated_1m_bars"].as_u64().unwrap() > 0);
    let summary = t.json(&["jobs", "--summary"]);
    let ingest = summary.as_array().unwrap().iter().find(|k| k["kind"] == "ingest").unwrap();
    assert_eq!(ingest["jobs"], 2);
    assert_eq!(ingest["by_status"]["SUCCEEDED"], 2);

    // The job's own log, and the plain-text log file the runbook greps.
    let shown = t.json(&["jobs", "show", run_id]);
    assert_eq!(shown["children"].as_array().unwrap().len(), 6);
    let log = shown["log"]["1"].as_str().unwrap();
    assert!(log.contains("daily run for 2024-03-05 starting"), "{log}");
    let file = std::fs::read_to_string(t.log_file()).unwrap();
    assert!(
        file.contains("--json run --date 2024-03-05 --symbols AAPL,MSFT,SPY")
            && file.contains(&format!("job{{job_id={run_id}")),
        "{file}"
    );
    assert!(t.json(&["jobs", "--since", "1h", "--kind", "features"]).as_array().unwrap().len() == 1);

    // A holiday is skipped, with its name.
    let out = run(&t, &["--json", "run", "--date", "2024-07-04", "--symbols", "AAPL"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["status"], "SKIPPED");
    assert!(report["skipped"].as_str().unwrap().contains("Independence Day"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_input_partition_blocks_its_stage_unless_forced() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    // 30% of the minutes missing: the curated partition's coverage is RED (fail below 95%).
    let noisy = [("QUANTLAKE_SYNTHETIC__GAP_RATE", "0.3")];
    let out = run(&t, &["--json", "run", "--date", "2024-03-05", "--symbols", "AAPL,MSFT"], &noisy);
    let report = json_of(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert_eq!(report["status"], "FAILED");
    assert_eq!(stage(&report, "curate_1m")["status"], "SUCCEEDED");
    let features = stage(&report, "features");
    assert_eq!(features["status"], "BLOCKED", "{report}");
    assert!(features["error"].as_str().unwrap().contains("curated_1m_bars date=2024-03-05"), "{features}");
    assert_eq!(stage(&report, "data_quality")["status"], "SUCCEEDED", "lake-wide checks never block");

    let out = run(&t, &["--json", "run", "--date", "2024-03-05", "--symbols", "AAPL,MSFT", "--force"], &noisy);
    let report = json_of(&out);
    assert_eq!(stage(&report, "features")["status"], "SUCCEEDED", "{report}");
}

async fn claims_and_leases(backend: Backend) {
    let t = TestLake::new(backend);
    let lake = t.init().await;
    let settings =
        JobSettings { lease: Duration::from_secs(2), heartbeat: Duration::from_millis(500), ..Default::default() };
    let jobs = JobStore::new(&lake, settings);
    let queued = jobs.enqueue(JobSpec::new("run_validation", json!({}))).await.unwrap();
    assert_eq!(queued.status, JobStatus::Queued);

    // Six claimers race: exactly one gets the job.
    let claims = futures::future::join_all((0..6).map(|_| {
        let jobs = jobs.clone();
        tokio::spawn(async move { jobs.claim_next(&[]).await.unwrap() })
    }))
    .await;
    let mut held: Vec<_> = claims.into_iter().filter_map(|c| c.unwrap()).collect();
    assert_eq!(held.len(), 1, "two processes must never hold one job");
    let job = held.pop().unwrap();
    assert_eq!(jobs.get(&queued.id).await.unwrap().status, JobStatus::Running);
    assert!(jobs.claim(&queued.id).await.is_err(), "a running job cannot be taken over");

    // Its holder stops (dropped: no more heartbeats): a queued job returns to the queue once the
    // lease runs out, and the next claim is attempt 2.
    drop(job);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(jobs.get(&queued.id).await.unwrap().status, JobStatus::Queued);
    let job = jobs.claim_next(&["run_validation"]).await.unwrap().expect("re-claimed");
    assert_eq!(job.attempt(), 2);

    // Cancel reaches a running job at its next append; it ends CANCELLED.
    let record = jobs.cancel(&queued.id, "test").await.unwrap();
    assert!(record.cancel_requested && record.status == JobStatus::Running);
    job.save_progress().await.unwrap();
    assert!(job.cancel_requested() && job.check().is_err());
    let done = job
        .finish_with(Err(quantlake::error::Error::Job { id: queued.id.clone(), reason: "stopped".into() }))
        .await
        .unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Cancelled, 2));
    assert!(jobs.cancel(&queued.id, "again").await.is_err(), "a finished job cannot be cancelled");

    // A job nobody holds is cancelled at once; a finished one is kept by a young clean.
    let other = jobs.enqueue(JobSpec::new("monthly_maintenance", json!({}))).await.unwrap();
    assert_eq!(jobs.cancel(&other.id, "not needed").await.unwrap().status, JobStatus::Cancelled);
    let started = jobs.start(JobSpec::new("curate", json!({ "date": "2024-03-05" }))).await.unwrap();
    started.checkpoint("curate:2024-03-05", json!({ "rows": 1 })).await.unwrap();
    let id = started.id().to_string();
    let done = started.finish(Finish::succeeded(1, 1)).await.unwrap();
    assert_eq!(done.checkpoints.len(), 1);
    assert_eq!(jobs.clean_older_than(Duration::from_secs(3600)).await.unwrap().jobs_removed, 0);
    assert_eq!(jobs.list(None).await.unwrap().len(), 3);
    assert!(jobs.get(&id).await.is_ok());
    assert!(jobs.get("../x").await.is_err(), "job ids are checked");
}

both_backends!(job_claims_and_leases, claims_and_leases);

/// Objects a claim reads or lists under `_jobs/` on the S3 test server.
async fn claim_requests(t: &TestLake, jobs: &JobStore) -> u64 {
    let count = || async { t.s3_requests("_jobs/").await.expect("an S3 lake").values().sum::<u64>() };
    let before = count().await;
    let job = jobs.claim_next(&[]).await.unwrap().expect("the queued job");
    let requests = count().await - before;
    job.finish(Finish::succeeded(0, 0)).await.unwrap();
    requests
}

/// A claim reads the queue's index and the jobs in it, so its cost follows what is queued, not the
/// jobs that ever ran; entries a crash leaves behind are dropped, and a lake from before the index is
/// indexed by the first claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_costs_what_is_queued_not_what_ran() {
    let t = TestLake::new(Backend::S3);
    let lake = t.init().await;
    let jobs = JobStore::new(&lake, JobSettings::default());
    let finish = |n: usize| {
        let jobs = jobs.clone();
        async move {
            for _ in 0..n {
                let job = jobs.start(JobSpec::new("curate", json!({}))).await.unwrap();
                job.finish(Finish::succeeded(0, 0)).await.unwrap();
            }
        }
    };
    finish(3).await;
    // The lake's first claim also marks it indexed (a lake from before the index: below).
    assert!(jobs.claim_next(&[]).await.unwrap().is_none());
    jobs.enqueue(JobSpec::new("run_validation", json!({}))).await.unwrap();
    let among_few = claim_requests(&t, &jobs).await;
    finish(30).await;
    jobs.enqueue(JobSpec::new("run_validation", json!({}))).await.unwrap();
    let among_many = claim_requests(&t, &jobs).await;
    assert_eq!(among_few, among_many, "a claim among 33 finished jobs costs what it does among 3");
    assert!(jobs.claim_next(&[]).await.unwrap().is_none(), "finished jobs leave the queue");

    // A crash after a job finished but before its entry went: the next claim drops the entry.
    let store = lake.store();
    let done = jobs.list(None).await.unwrap().into_iter().find(|r| r.queued).expect("a finished queued job");
    let entry = object_store::path::Path::from(format!("_jobs/_queue/{}", done.id));
    store.put(&entry, bytes::Bytes::new()).await.unwrap();
    assert!(jobs.claim_next(&[]).await.unwrap().is_none());
    assert!(store.head(&entry).await.unwrap().is_none(), "the stale entry was dropped");

    // A lake from before the index: its queued job is found (and indexed) by a new process's claim.
    let queued = jobs.enqueue(JobSpec::new("monthly_maintenance", json!({}))).await.unwrap();
    store.delete(&object_store::path::Path::from(format!("_jobs/_queue/{}", queued.id))).await.unwrap();
    store.delete(&object_store::path::Path::from("_jobs/_queue.v1")).await.unwrap();
    let fresh = JobStore::new(&lake, JobSettings::default());
    let job = fresh.claim_next(&[]).await.unwrap().expect("the job queued before the index");
    assert_eq!(job.id(), queued.id);
    job.finish(Finish::succeeded(0, 0)).await.unwrap();
}

const SCOPE: &[&str] = &["--symbols", "AAPL,MSFT", "--start", "2024-03-04", "--end", "2024-03-15"];

/// A lake with two symbols curated, with features, over 2024-03-04..15 (seed 1).
fn prepared(backend: Backend) -> TestLake {
    let t = TestLake::new(backend);
    for args in [
        &["init"][..],
        &[
            "ingest",
            "--source",
            "synthetic",
            "--seed",
            "1",
            "--quiet",
            "--symbols",
            "AAPL,MSFT",
            "--start",
            "2024-03-04",
            "--end",
            "2024-03-15",
        ][..],
        &["curate", "--start", "2024-03-04", "--end", "2024-03-15"][..],
        &["features", "--start", "2024-03-04", "--end", "2024-03-15"][..],
    ] {
        let out = t.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    t
}

fn totals(t: &TestLake) -> (Value, Value) {
    let bars = t.json(&["query", "SELECT symbol, count(*) AS n, CAST(sum(round(close * 100)) AS BIGINT) AS cents FROM curated_1m_bars GROUP BY 1 ORDER BY 1"]);
    let features = t.json(&["query", "SELECT symbol, count(*) AS n, CAST(sum(round(coalesce(ret_15, 0) * 1e9)) AS BIGINT) AS r FROM features_price_1m_v1 GROUP BY 1 ORDER BY 1"]);
    (bars, features)
}

/// The backfill the kill tests interrupt: re-fetch the scope with another seed, re-derive curated bars
/// and features, four chunks of three sessions per step.
fn backfill(t: &TestLake, failpoint: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = t.cli();
    small_universe(&mut cmd)
        .env("QUANTLAKE_SYNTHETIC__SEED", "2")
        .env("QUANTLAKE_INGEST__CHUNK_SESSIONS", "3")
        .arg("--json")
        .args(args);
    if let Some(f) = failpoint {
        cmd.env("QUANTLAKE_FAILPOINT", f);
    }
    cmd.output().expect("run quantlake")
}

fn trigger_args() -> Vec<&'static str> {
    [&["backfill", "trigger", "curated_1m_bars"][..], SCOPE, &["--reingest", "--overwrite-features"]].concat()
}

/// No (symbol, ts) twice in the live files a glob reader sees.
fn glob_sees_no_duplicates(t: &TestLake) {
    let Some(root) = t.local_root() else { return };
    let sql = format!(
        "SELECT count(*) AS n, count(DISTINCT (symbol, ts)) AS d FROM read_parquet('{}/curated/curated_1m_bars/*/*.parquet')",
        root.display()
    );
    let got = t.json(&["query", &sql]);
    assert_eq!(got[0]["n"], got[0]["d"], "duplicates visible to a glob reader: {got}");
}

async fn killed_backfill_resumes(backend: Backend) {
    // The reference: the same backfill, uninterrupted.
    let reference = prepared(backend);
    let out = backfill(&reference, None, &trigger_args());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = totals(&reference);

    let t = prepared(backend);
    let before = totals(&t);
    assert_ne!(before, expected, "the backfill changes the data");
    let out = backfill(&t, Some("backfill.after_chunk:2"), &trigger_args());
    assert!(!out.status.success(), "the failpoint kills it");
    glob_sees_no_duplicates(&t);
    let job = t.json(&["jobs", "--kind", "backfill"]);
    let id = job[0]["id"].as_str().unwrap().to_string();
    assert_eq!(job[0]["status"], "ABANDONED", "{job}");
    // Killed again at other points of later commits, then resumed to the end.
    for failpoint in ["commit.after_log:2", "commit.after_stage:3", "backfill.after_chunk:4"] {
        let out = backfill(&t, Some(failpoint), &["backfill", "resume", &id]);
        assert!(!out.status.success(), "{failpoint}: {}", stderr(&out));
        assert!(stderr(&out).contains("failpoint"), "{failpoint}: {}", stderr(&out));
        glob_sees_no_duplicates(&t);
    }
    let out = backfill(&t, None, &["backfill", "resume", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = json_of(&out);
    assert_eq!(status["job"]["status"], "SUCCEEDED", "{status}");
    assert_eq!(status["job"]["attempts"], 5);
    let result = &status["result"];
    assert!(result["chunks_resumed"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["chunks_committed"], 12);
    assert!(status["steps"].as_array().unwrap().iter().all(|s| s["done"] == s["total"]), "{status}");
    assert_eq!(totals(&t), expected, "a resumed backfill ends where an uninterrupted one does");
    glob_sees_no_duplicates(&t);

    // The impact report, and the status command.
    let impact = &result["impact"];
    assert_eq!(
        impact["partitions"].as_array().unwrap().iter().filter(|p| p["dataset"] == "curated_1m_bars").count(),
        10
    );
    assert!(impact["largest_price_change"]["relative"].as_f64().unwrap() > 0.0);
    assert_eq!(impact["feature_partitions_refreshed"]["features_price_1m_v1"], 10);
    assert_eq!(t.json(&["backfill", "status", &id])["job"]["status"], "SUCCEEDED");

    // The tag taken before writing puts the old data back in one commit.
    let tag = result["tag"].as_str().unwrap();
    assert_eq!(tag, format!("pre-{id}"));
    let out = t.run(&["snapshot", "restore", "--all", tag]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(totals(&t), before);
}

both_backends!(killed_backfill_resumes_to_the_same_lake, killed_backfill_resumes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_plans_before_it_runs() {
    let t = prepared(Backend::Local);
    // Dry run: the plan, nothing written.
    let plan = json_of(&backfill(&t, None, &[trigger_args(), vec!["--dry-run"]].concat()));
    assert_eq!(plan["dataset"], "curated_1m_bars");
    let steps: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["reingest", "curate", "features"]);
    assert_eq!(plan["cells_to_fetch"], 20, "--reingest: every symbol-session");
    assert!(plan["bytes_to_write"].as_u64().unwrap() > 0);
    assert!(t.json(&["jobs", "--kind", "backfill"]).as_array().unwrap().is_empty(), "a dry run creates no job");
    // Without --reingest only missing raw cells are fetched: none here.
    let plan =
        json_of(&backfill(&t, None, &[&["backfill", "trigger", "curated_1m_bars", "--dry-run"][..], SCOPE].concat()));
    assert_eq!(plan["cells_to_fetch"], 0);
    // An annotation on the scope is in the plan.
    let out = t.run(&[
        "annotate",
        "curated_1m_bars",
        "--symbols",
        "AAPL",
        "--start",
        "2024-03-05",
        "--end",
        "2024-03-05",
        "--reason",
        "TWS outage",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan =
        json_of(&backfill(&t, None, &[&["backfill", "trigger", "curated_1m_bars", "--dry-run"][..], SCOPE].concat()));
    assert!(plan["annotations"].to_string().contains("TWS outage"), "{plan}");

    // Runbook 5.3: a long span is refused until a smaller window of the scope has completed.
    let long = [
        "backfill",
        "trigger",
        "curated_1m_bars",
        "--symbols",
        "AAPL,MSFT",
        "--start",
        "2024-02-01",
        "--end",
        "2024-03-15",
    ];
    let out = backfill(&t, None, &long);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("--force-large"), "{}", stderr(&out));
    assert!(t.json(&["alerts", "list"]).as_array().unwrap().is_empty(), "no job has judged the lake yet");
    let out = backfill(&t, None, &[&["backfill", "trigger", "curated_1m_bars"][..], SCOPE].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    // The backfill judged the lake's alert conditions itself: as of today, data from 2024 is stale.
    let alerts = t.json(&["alerts", "list"]);
    assert!(
        alerts.as_array().unwrap().iter().any(|a| a["key"] == "health:curated_1m_bars" && a["severity"] == "CRITICAL"),
        "{alerts}"
    );
    let plan = json_of(&backfill(&t, None, &[&long[..], &["--dry-run"]].concat()));
    assert!(plan["tested_by"].is_string() && plan["refused"].is_null(), "{plan}");

    // --not-before queues it; a worker leaves it until then.
    let queued = json_of(&backfill(
        &t,
        None,
        &[&["backfill", "trigger", "curated_1m_bars"][..], SCOPE, &["--not-before", "2099-01-01T00:00:00Z"]].concat(),
    ));
    assert_eq!(queued["job"]["status"], "QUEUED", "{queued}");
    let worked = t.json(&["worker", "--once"]);
    assert_eq!(worked.as_array().unwrap().len(), 0, "not due yet");
}

async fn a_dead_workers_job_is_taken_over(backend: Backend) {
    let t = prepared(backend);
    let queued = json_of(&backfill(
        &t,
        None,
        &[&["dispatch", "backfill", "curated_1m_bars"][..], SCOPE, &["--overwrite-features"]].concat(),
    ));
    let id = queued["id"].as_str().unwrap().to_string();
    assert_eq!(queued["status"], "QUEUED");
    // The first worker dies holding the job (kill -9 after its second chunk).
    let out = backfill(&t, Some("backfill.after_chunk:2"), &["worker", "--once"]);
    assert!(!out.status.success());
    // Another worker takes it over: the dead worker was on this host, so at once.
    let worked = json_of(&backfill(&t, None, &["worker", "--once"]));
    assert_eq!(worked.as_array().unwrap().len(), 1, "{worked}");
    assert_eq!(worked[0]["id"], id.as_str());
    assert_eq!(worked[0]["status"], "SUCCEEDED", "{worked}");
    assert_eq!(worked[0]["attempts"], 2);
    let status = t.json(&["backfill", "status", &id]);
    assert!(status["result"]["chunks_resumed"].as_u64().unwrap() >= 1, "{status}");
}

both_backends!(a_dead_workers_job_is_taken_over_by_another, a_dead_workers_job_is_taken_over);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_the_source_refuses_makes_the_backfill_partial() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let fake = FakeTws::start(Script::with_symbols(["AAPL", "MSFT"]), test_pacing()).await;
    let mut cmd = t.cli();
    small_universe(&mut cmd)
        .env("QUANTLAKE_TWS__PORT", fake.addr.port().to_string())
        .env("QUANTLAKE_TWS__TIMEOUT", "5s")
        .env("QUANTLAKE_TWS__RECONNECT_ATTEMPTS", "1")
        .env("QUANTLAKE_TWS__PACING__IDENTICAL_GAP", "75ms")
        .env("QUANTLAKE_TWS__PACING__PER_CONTRACT_WINDOW", "100ms")
        .env("QUANTLAKE_TWS__PACING__WINDOW", "3s")
        .args([
            "--json",
            "backfill",
            "trigger",
            "raw_tws_bars",
            "--symbols",
            "AAPL,ZZZZ,MSFT",
            "--start",
            "2024-01-02",
            "--end",
            "2024-01-04",
            "--overwrite-curated",
        ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "PARTIAL is a warning: {}", stderr(&out));
    let status = json_of(&out);
    assert_eq!(status["job"]["status"], "PARTIAL", "{status}");
    assert!(status["job"]["error"].as_str().unwrap().contains("ZZZZ"), "{status}");
    assert_eq!(status["result"]["failed"][0]["symbol"], "ZZZZ");
    let got = t.json(&["query", "SELECT count(DISTINCT symbol) AS s, count(*) AS n FROM curated_1m_bars"]);
    assert_eq!(got, json!([{ "s": 2, "n": 2 * 3 * 390 }]), "the other symbols are committed and curated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_fires_each_event_once_and_pauses() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let tick = |at: &str| t.json(&["schedule", "--once", "--no-worker", "--at", at])[0].clone();
    let queued = |tick: &Value| {
        tick["queued"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| format!("{} {}", j["kind"].as_str().unwrap(), j["params"]["date"].as_str().unwrap_or("-")))
            .collect::<Vec<_>>()
    };
    // 17:30 New York on Tuesday 2024-03-05 is 22:30 UTC.
    let first = tick("2024-03-05T22:31:00Z");
    assert_eq!(queued(&first), ["daily_run 2024-03-05"]);
    assert_eq!(first["next"]["id"], "daily_run-2024-03-06");
    assert!(queued(&tick("2024-03-05T22:40:00Z")).is_empty(), "an event fires once");
    assert!(queued(&tick("2024-03-05T22:20:00Z")).is_empty(), "nothing due yet");

    let paused = t.json(&["schedule", "pause", "--reason", "vendor outage"]);
    assert_eq!(paused["reason"], "vendor outage");
    let skipped = tick("2024-03-06T22:31:00Z");
    assert!(queued(&skipped).is_empty());
    assert_eq!(skipped["skipped"][0]["id"], "daily_run-2024-03-06");
    // Ticks at a given time (`--at`) are not a scheduler: none is alive, a warning.
    let (code, status) = t.json_report(&["schedule", "status"]);
    assert_eq!((code, status["alive"].as_bool()), (1, Some(false)), "{status}");
    assert!(status["paused"]["since"].is_string());
    t.json(&["schedule", "resume"]);
    assert_eq!(queued(&tick("2024-03-07T22:31:00Z")), ["daily_run 2024-03-07"]);
    // Friday ends the week (weekly checks an hour later); Monday April 1st starts the month.
    assert_eq!(queued(&tick("2024-03-08T23:31:00Z")), ["daily_run 2024-03-08", "run_validation -"]);
    assert_eq!(queued(&tick("2024-04-01T23:31:00Z")), ["daily_run 2024-04-01", "monthly_maintenance -"]);
    // The retraining, an hour after the maintenance, on the window ending at the month's first session.
    let train = tick("2024-04-02T00:31:00Z");
    assert_eq!(queued(&train), ["train -"]);
    assert_eq!(train["queued"][0]["params"], json!({ "end": "2024-04-01", "scheduled": "train-2024-04" }));
    // A scheduler's tick (here one, `--once`, with nothing to catch up at the real time) is a
    // heartbeat: alive.
    let once = t.cli().env("QUANTLAKE_SCHEDULE__CATCH_UP", "0s").args(["schedule", "--once", "--no-worker"]).output();
    assert!(once.unwrap().status.success());
    let status = t.json(&["schedule", "status"]);
    assert!(status["paused"].is_null());
    assert_eq!(status["alive"], true, "{status}");
    assert_eq!(status["heartbeat"]["pid"].as_u64().map(|p| p > 0), Some(true));

    // The queued validation runs on a worker; `jobs` shows what is still queued.
    let worked = t.json(&["worker", "--once", "--tasks", "run_validation"]);
    assert_eq!(worked[0]["kind"], "run_validation");
    assert_eq!(worked[0]["status"], "SUCCEEDED", "{worked}");
    let jobs = t.json(&["jobs"]);
    assert_eq!(jobs.as_array().unwrap().iter().filter(|j| j["status"] == "QUEUED").count(), 6);
    let out = t.run(&["dispatch", "no_such_task"]);
    assert_eq!(out.status.code(), Some(3));

    // `jobs clean` removes the markers of events fired before its cutoff, with old job records.
    assert_eq!(t.json(&["jobs", "clean", "--older-than", "1h"])["schedule_markers_removed"], 0);
    assert_eq!(
        t.json(&["jobs", "clean", "--older-than", "0s"])["schedule_markers_removed"],
        8,
        "5 daily runs (one skipped), a weekly, a monthly and a retraining event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_runs_the_guides_order_and_resumes() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    assert!(t.run(&["universe", "rebuild", "--symbols", "AAPL,MSFT,SPY"]).status.success());
    let env = [("BACKFILL_TARGET_DAYS", "20")];
    // Killed during the historical backfill's commits, then run again: it resumes.
    let out = run(&t, &["--json", "bootstrap"], &[env[0], ("QUANTLAKE_FAILPOINT", "commit.after_log:3")]);
    assert!(!out.status.success());
    let jobs = t.json(&["jobs", "--kind", "bootstrap"]);
    assert_eq!(jobs[0]["status"], "ABANDONED", "{jobs}");
    let out = run(&t, &["--json", "bootstrap"], &env);
    let report = json_of(&out);
    assert_eq!(report["job"]["status"], "SUCCEEDED", "{report}\n{}", stderr(&out));
    assert_eq!(report["job"]["attempts"], 2);
    assert_eq!(report["job"]["id"], jobs[0]["id"]);
    let steps: Vec<&str> = report["job"]["checkpoints"].as_object().unwrap().keys().map(String::as_str).collect();
    for step in quantlake::ops::tasks::bootstrap::STEPS {
        assert!(steps.contains(step), "{step} missing from {steps:?}");
    }
    assert!(report["job"]["checkpoints"]["fundamentals"]["skipped"].is_string());
    assert!(!t.json(&["models"]).as_array().unwrap().is_empty(), "training registered a model");
    let got = t.json(&["query", "SELECT count(DISTINCT symbol) AS s FROM features_price_1m_v1"]);
    assert_eq!(got[0]["s"], 3);
}

/// The backfill of [`trigger_args`] queued for workers on a prepared S3 lake: the lake, the
/// backfill's job id, and the totals a single process's run of it leaves on another such lake.
fn backfill_for_workers() -> (TestLake, String, (Value, Value)) {
    let reference = prepared(Backend::S3);
    let out = backfill(&reference, None, &trigger_args());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = totals(&reference);
    let t = prepared(Backend::S3);
    let queued = json_of(&backfill(
        &t,
        None,
        &[&["dispatch", "backfill", "curated_1m_bars"][..], SCOPE, &["--reingest", "--overwrite-features"]].concat(),
    ));
    let id = queued["id"].as_str().unwrap().to_string();
    (t, id, expected)
}

/// Scale-out: three worker processes share one backfill on the S3 lake. Its chunks are claimed one
/// worker each; a worker killed after committing a chunk leaves it to another, which recognises the
/// commit; the lake ends as an uninterrupted run leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_a_backfill_on_s3() {
    let (t, id, expected) = backfill_for_workers();
    let spawn = |failpoint: Option<&str>| {
        let mut cmd = t.cli();
        small_universe(&mut cmd)
            .env("QUANTLAKE_SYNTHETIC__SEED", "2")
            .env("QUANTLAKE_INGEST__CHUNK_SESSIONS", "3")
            .args(["--json", "worker", "--once", "--poll", "200ms"]);
        if let Some(f) = failpoint {
            cmd.env("QUANTLAKE_FAILPOINT", f);
        }
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("start worker")
    };
    let a = spawn(None);
    // The others start once the first has queued the first step's chunks.
    let mut waited = 0;
    while t.json(&["jobs", "--kind", "backfill_chunk"]).as_array().unwrap().is_empty() {
        assert!(waited < 300, "no chunk was queued");
        std::thread::sleep(Duration::from_millis(200));
        waited += 1;
    }
    let b = spawn(Some("backfill.after_chunk:1"));
    let c = spawn(None);
    let (a, b, c) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap(), c.wait_with_output().unwrap());
    assert!(
        !b.status.success() && stderr(&b).contains("failpoint"),
        "the second worker dies after its first chunk: {}",
        stderr(&b)
    );
    for w in [&a, &c] {
        assert!(w.status.code().is_some_and(|c| c <= 1), "{}", stderr(w));
    }

    let parent = t.json(&["backfill", "status", &id]);
    assert_eq!(parent["job"]["status"], "SUCCEEDED", "{parent}");
    let chunks = t.json(&["jobs", "--kind", "backfill_chunk"]);
    let chunks = chunks.as_array().unwrap();
    assert_eq!(chunks.len(), 12, "one job per chunk, none twice");
    assert!(chunks.iter().all(|c| c["status"] == "SUCCEEDED" && c["parent"] == id.as_str()), "{chunks:?}");
    let attempts: u64 = chunks.iter().map(|c| c["attempts"].as_u64().unwrap()).sum();
    assert_eq!(attempts, 13, "the dead worker's chunk was claimed once more, every other chunk once");
    let pids: std::collections::BTreeSet<&str> =
        chunks.iter().filter_map(|c| c["worker"].as_str()).filter_map(|w| w.split(':').nth(1)).collect();
    assert!(pids.len() >= 2, "the chunks were shared: {pids:?}");
    assert_eq!(totals(&t), expected);
}

/// A sharded worker takes its own share first, and another share's job only once it has waited a
/// lease in the queue (that share's worker never came).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_shares_job_is_taken_after_a_lease() {
    let t = TestLake::new(Backend::Local);
    let lake = t.init().await;
    let shard = Some(Shard::new(0, 2).unwrap());
    let jobs = JobStore::new(&lake, JobSettings { lease: Duration::from_secs(3), shard, ..Default::default() });
    let theirs = jobs.enqueue(JobSpec::new("run_validation", json!({})).share(1)).await.unwrap();
    let mine = jobs.enqueue(JobSpec::new("run_validation", json!({})).share(2)).await.unwrap();
    let first = jobs.claim_next(&[]).await.unwrap().expect("its own share's job");
    assert_eq!(first.id(), mine.id, "its own share first, though the other job is older");
    first.finish(Finish::succeeded(0, 0)).await.unwrap();
    assert!(jobs.claim_next(&[]).await.unwrap().is_none(), "another share's job waits a lease");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let taken = jobs.claim_next(&[]).await.unwrap().expect("taken once it waited a lease");
    assert_eq!(taken.id(), theirs.id);
    taken.finish(Finish::succeeded(0, 0)).await.unwrap();
}

/// Sharded workers (issue 28): four `worker --once` processes given their shard by the flag, a
/// Kubernetes Indexed Job's variables and an AWS Batch array job's, share one backfill on the S3 lake.
/// Each runs its own round-robin share of every step's chunks (the leases are long, so no share is
/// taken over); the second shard's process is killed twice after a chunk and restarted, and
/// continues its own share; the lake ends as a single process leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_share_a_backfill_on_s3() {
    let (t, id, expected) = backfill_for_workers();
    let spawn = |shard: u32, failpoint: Option<&str>| {
        let mut cmd = t.cli();
        small_universe(&mut cmd)
            .env("QUANTLAKE_SYNTHETIC__SEED", "2")
            .env("QUANTLAKE_INGEST__CHUNK_SESSIONS", "3")
            .env("QUANTLAKE_JOBS__LEASE", "30m")
            .args(["--json", "worker", "--once", "--poll", "200ms"]);
        match shard {
            1 => cmd.args(["--shard", "1/4"]),
            3 => cmd.env("AWS_BATCH_JOB_ARRAY_INDEX", "3").env("AWS_BATCH_JOB_ARRAY_SIZE", "4"),
            i => cmd.env("JOB_COMPLETION_INDEX", i.to_string()).env("JOB_COMPLETION_COUNT", "4"),
        };
        if let Some(f) = failpoint {
            cmd.env("QUANTLAKE_FAILPOINT", f);
        }
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("start worker")
    };
    let mut pids: Vec<Vec<u32>> = vec![Vec::new(); 4];
    let mut others = Vec::new();
    for shard in [0, 2, 3] {
        let child = spawn(shard, None);
        pids[shard as usize].push(child.id());
        others.push(child);
    }
    // The second shard dies after a chunk, twice; each restart continues its share.
    let mut deaths = 0;
    loop {
        let child = spawn(1, (deaths < 2).then_some("backfill.after_chunk:1"));
        pids[1].push(child.id());
        let out = child.wait_with_output().unwrap();
        if out.status.success() || out.status.code() == Some(1) {
            break;
        }
        assert!(stderr(&out).contains("failpoint"), "{}", stderr(&out));
        deaths += 1;
        assert!(deaths <= 2, "the third process of shard 1 has no failpoint: {}", stderr(&out));
    }
    assert_eq!(deaths, 2, "shard 1 died twice before it finished its share");
    for w in others {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{}", stderr(&out));
    }

    let parent = t.json(&["backfill", "status", &id]);
    assert_eq!(parent["job"]["status"], "SUCCEEDED", "{parent}");
    let chunks = t.json(&["jobs", "--kind", "backfill_chunk"]);
    let chunks = chunks.as_array().unwrap();
    assert_eq!(chunks.len(), 12, "one job per chunk, none twice");
    for chunk in chunks {
        assert_eq!(chunk["status"], "SUCCEEDED", "{chunk}");
        let share = chunk["share"].as_u64().expect("a chunk has a share") as usize;
        let pid: u32 = chunk["worker"].as_str().and_then(|w| w.split(':').nth(1)).unwrap().parse().unwrap();
        assert!(
            pids[share % 4].contains(&pid),
            "chunk {} of share {share} ran in {pid}, not its shard's {pids:?}",
            chunk["id"]
        );
    }
    let attempts: u64 = chunks.iter().map(|c| c["attempts"].as_u64().unwrap()).sum();
    assert!((12..=14).contains(&attempts), "each death leaves at most one chunk to claim again: {attempts}");
    assert_eq!(totals(&t), expected);
}

/// The Kubernetes Indexed Job and the AWS Batch array job in docs/operations.md are valid requests of
/// their APIs (checked offline against their schemas) and give each worker the count it needs.
#[test]
fn the_scale_out_manifests_in_the_docs_are_valid() {
    let out = std::process::Command::new(crate::support::python())
        .arg(crate::support::repo().join("tests/python/manifests.py"))
        .arg(crate::support::repo().join("docs/operations.md"))
        .output()
        .expect("run manifests.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(
        stdout.contains("kubernetes: Kubernetes") && stdout.contains("aws-batch-submit-job: AWS Batch"),
        "{stdout}"
    );
}
