//! Lake engine benchmarks (not timed tests): commit throughput and open time as the log grows.
//!
//!     CARGO_TARGET_DIR=$HOME/.cache/quantlake/target cargo bench --bench lake_engine
//!
//! - commit throughput: one commit of K partitions (K = 1, 100, 1000; one symbol-session each), on a
//!   local lake and on S3 (moto on 127.0.0.1, from the test venv; skipped when the venv is missing).
//! - stage latency: K partitions (K = 1, 100) in each of three datasets, committed as three separate
//!   commits and as one stage (what a curation run does), on both stores: the price of atomicity.
//! - open time: `Dataset::latest()` after 100, 1000 and 10,000 commits (QUANTLAKE_BENCH_COMMITS), against a
//!   replay of the whole log, to show that checkpoints keep opening flat.
//! - claim cost: a worker's claim of the one queued job among 10, 1,000 and 10,000 finished ones
//!   (QUANTLAKE_BENCH_FINISHED_JOBS, the largest), on both stores, with the requests it made on S3.
//!
//! `QUANTLAKE_BENCH_ONLY=claims` (or `commits`, `stages`, `open`) runs one of them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use futures::StreamExt;
use quantlake::calendar::NyseCalendar;
use quantlake::ingest::{IngestRequest, ingest};
use quantlake::ops::jobs::{Finish, JobSettings, JobSpec, JobStore};
use quantlake::sources::BarSize;
use quantlake::sources::synthetic::{SyntheticSettings, SyntheticSource};
use quantlake::table::operations::write::WriteMode;
use quantlake::table::{Lake, LakeOptions};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// One symbol's bars for each of `n` sessions from 2001 on, as rows in the raw contract.
async fn rows(n: usize) -> Vec<RecordBatch> {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::init(dir.path().to_str().expect("path"), LakeOptions::default()).await.expect("lake");
    let sessions = NyseCalendar.sessions(day("2001-01-02"), day("2030-12-31"));
    let end = sessions[n - 1].date;
    let source = SyntheticSource::new(SyntheticSettings::default()).expect("source");
    let req = IngestRequest {
        symbols: vec![quantlake::symbol::Symbol::from_static("AAPL")],
        start: day("2001-01-02"),
        end,
        bar_size: BarSize::Minute,
        chunk_sessions: n,
        job_id: None,
        resume: false,
    };
    ingest(&lake, &source, &req, &quantlake::progress::NoProgress).await.expect("ingest");
    let ds = lake.dataset("raw_synthetic_bars").expect("dataset");
    ds.read(&ds.latest().await.expect("state"), &Default::default()).await.expect("read")
}

async fn commit_throughput(label: &str, url: &str, options: &LakeOptions, batches: &[RecordBatch]) {
    let lake = Lake::init(url, options.clone()).await.expect("lake");
    let ds = lake.dataset("raw_synthetic_bars").expect("dataset");
    for k in [1usize, 100, 1000] {
        let subset = first_sessions(batches, k);
        let started = Instant::now();
        let r = ds.write(subset).mode(WriteMode::Overwrite).operation("bench").execute().await.expect("write");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{label:6} commit of {k:5} partitions: {secs:8.3} s  {:9.1} partitions/s  ({} rows, {:.1} MiB written)",
            k as f64 / secs,
            r.rows_written,
            r.bytes_written as f64 / 1048576.0
        );
    }
}

/// Rows of `batches` before the close of the K-th session.
fn first_sessions(batches: &[RecordBatch], k: usize) -> Vec<RecordBatch> {
    let sessions = NyseCalendar.sessions(day("2001-01-02"), day("2030-12-31"));
    let cutoff = NyseCalendar.session(sessions[k - 1].date).expect("session").close.timestamp_micros();
    batches
        .iter()
        .filter_map(|b| {
            let ts = arrow::array::AsArray::as_primitive::<arrow::datatypes::TimestampMicrosecondType>(
                b.column_by_name("ts").expect("ts"),
            );
            let keep: arrow::array::BooleanArray = ts.iter().map(|t| t.map(|t| t < cutoff)).collect();
            let f = arrow::compute::filter_record_batch(b, &keep).expect("filter");
            (f.num_rows() > 0).then_some(f)
        })
        .collect()
}

const STAGE_DATASETS: [&str; 3] = ["raw_alpaca_bars", "raw_file_bars", "raw_synthetic_bars"];

async fn stage_latency(label: &str, url: &str, options: &LakeOptions, batches: &[RecordBatch]) {
    let lake = Lake::init(url, options.clone()).await.expect("lake");
    for k in [1usize, 100] {
        let subset = first_sessions(batches, k);
        let mut separate = Vec::new();
        let mut staged = Vec::new();
        for round in 0..5 {
            let started = Instant::now();
            for name in STAGE_DATASETS {
                let ds = lake.dataset(name).expect("dataset");
                ds.write(subset.clone())
                    .mode(WriteMode::Overwrite)
                    .operation("bench")
                    .parameter("round", round)
                    .execute()
                    .await
                    .expect("write");
            }
            separate.push(started.elapsed().as_secs_f64());
            let datasets: Vec<_> = STAGE_DATASETS.iter().map(|n| lake.dataset(n).expect("dataset")).collect();
            let started = Instant::now();
            let mut stage = lake.stage("bench").parameter("round", round);
            for ds in &datasets {
                stage = stage.write(ds.write(subset.clone()).mode(WriteMode::Overwrite).operation("bench"));
            }
            stage.commit().await.expect("stage");
            staged.push(started.elapsed().as_secs_f64());
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{label:6} 3 datasets x {k:3} partitions: 3 commits {:8.1} ms, 1 stage {:8.1} ms (median of 5)",
            median(&mut separate) * 1e3,
            median(&mut staged) * 1e3
        );
    }
}

async fn open_time(commits: u64, batches: &[RecordBatch]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::init(dir.path().to_str().expect("path"), LakeOptions::default()).await.expect("lake");
    let ds = lake.dataset("raw_synthetic_bars").expect("dataset");
    // Commits cycle over 20 partitions: the log grows, the table does not.
    let per_partition: Vec<RecordBatch> = batches.iter().take(20).cloned().collect();
    let started = Instant::now();
    let mut checkpoints = [100, 1000, 10_000, 100_000].into_iter().filter(|c| *c <= commits).peekable();
    for n in 1..=commits {
        let b = per_partition[(n as usize) % per_partition.len()].clone();
        ds.write(vec![b]).mode(WriteMode::Overwrite).operation("bench").execute().await.expect("write");
        if checkpoints.peek() == Some(&n) {
            checkpoints.next();
            let t = Instant::now();
            let state = ds.latest().await.expect("latest");
            let open = t.elapsed();
            let t = Instant::now();
            let mut replay = quantlake::table::manifest::TableState::empty(ds.name());
            for i in 1..=n {
                replay.apply(&ds.log().read_commit(i).await.expect("read").expect("commit"));
            }
            let full = t.elapsed();
            assert_eq!(state, replay);
            println!(
                "open after {n:6} commits: {:8.2} ms (full log replay {:9.2} ms); {:.1} commits/s so far",
                open.as_secs_f64() * 1e3,
                full.as_secs_f64() * 1e3,
                n as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
}

/// `JobStore::claim_next` with one queued job among `n` finished ones, for each `n` of 10, 1,000 and
/// 10,000 (at most `QUANTLAKE_BENCH_FINISHED_JOBS`): the time of the claim and, on S3, the requests
/// the server counted under `_jobs/`.
async fn claim_cost(label: &str, url: &str, options: &LakeOptions, s3_port: Option<u16>) {
    let lake = Lake::init(url, options.clone()).await.expect("lake");
    let jobs = JobStore::new(&lake, JobSettings::default());
    let most = std::env::var("QUANTLAKE_BENCH_FINISHED_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let mut finished = 0;
    for n in [10usize, 1000, 10_000].into_iter().filter(|n| *n <= most) {
        futures::stream::iter(finished..n)
            .for_each_concurrent(32, |_| async {
                let job = jobs.start(JobSpec::new("curate", serde_json::json!({}))).await.expect("start");
                job.finish(Finish::succeeded(0, 0)).await.expect("finish");
            })
            .await;
        finished = n;
        jobs.enqueue(JobSpec::new("curate", serde_json::json!({}))).await.expect("enqueue");
        let prefix = url.strip_prefix("s3://").map(|lake| format!("/{lake}/_jobs/"));
        let counted = |prefix: Option<String>| async move {
            let (port, prefix) = (s3_port?, prefix?);
            let url = format!("http://127.0.0.1:{port}/_requests?prefix={prefix}");
            let client = reqwest::Client::builder().no_proxy().build().ok()?;
            let body = client.get(url).send().await.ok()?.bytes().await.ok()?;
            let counts: std::collections::BTreeMap<String, u64> = serde_json::from_slice(&body).ok()?;
            Some(counts.values().sum::<u64>())
        };
        let before = counted(prefix.clone()).await;
        let started = Instant::now();
        let job = jobs.claim_next(&[]).await.expect("claim").expect("the queued job");
        let secs = started.elapsed().as_secs_f64();
        let requests = counted(prefix).await.zip(before).map(|(a, b)| format!(", {} requests", a - b));
        println!("{label:6} claim among {n:6} finished jobs: {:9.2} ms{}", secs * 1e3, requests.unwrap_or_default());
        job.finish(Finish::succeeded(0, 0)).await.expect("finish");
    }
}

/// moto on 127.0.0.1 from the test venv, or None.
fn start_moto() -> Option<(std::process::Child, u16)> {
    // The workspace root, two folders above the cli crate that builds the benches.
    let root = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        println!("S3: skipped (no .venv; scripts/test.sh creates it)");
        return None;
    }
    let mut child = Command::new(python)
        .arg(root.join("tests/python/s3_server.py"))
        .arg("quantlake-bench")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?).read_line(&mut line).ok()?;
    Some((child, line.trim().parse().ok()?))
}

#[tokio::main]
async fn main() {
    let only = std::env::var("QUANTLAKE_BENCH_ONLY").ok();
    let runs = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let batches = if runs("claims") && only.is_some() { Vec::new() } else { rows(1000).await };
    let dir = tempfile::tempdir().expect("tempdir");
    if runs("commits") {
        commit_throughput("local", &dir.path().join("lake").display().to_string(), &LakeOptions::default(), &batches)
            .await;
    }
    if runs("claims") {
        claim_cost("local", &dir.path().join("claims").display().to_string(), &LakeOptions::default(), None).await;
    }
    if let Some((_child, port)) = start_moto() {
        let storage = vec![
            ("aws_endpoint".to_string(), format!("http://127.0.0.1:{port}")),
            ("aws_allow_http".into(), "true".into()),
            ("aws_access_key_id".into(), "test".into()),
            ("aws_secret_access_key".into(), "test".into()),
            ("aws_region".into(), "us-east-1".into()),
        ];
        let options = LakeOptions { storage, ..Default::default() };
        if runs("commits") {
            commit_throughput("s3", "s3://quantlake-bench/throughput", &options, &batches).await;
        }
        if runs("stages") {
            stage_latency("s3", "s3://quantlake-bench/stages", &options, &batches).await;
        }
        if runs("claims") {
            claim_cost("s3", "s3://quantlake-bench/claims", &options, Some(port)).await;
        }
    }
    if runs("stages") {
        let stages = tempfile::tempdir().expect("tempdir");
        stage_latency("local", &stages.path().join("lake").display().to_string(), &LakeOptions::default(), &batches)
            .await;
    }
    if runs("open") {
        let commits = std::env::var("QUANTLAKE_BENCH_COMMITS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
        open_time(commits, &batches).await;
    }
}
