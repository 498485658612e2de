//! I5 stages: one curation run commits `curated_1m_bars`, `curation_rejects` and `dq_metrics` as one
//! stage. A process killed at any step of it leaves no visible half-state; `validate` flags the
//! unfinished stage until `recover` completes or undoes it; lake-wide tags and restores act on the
//! whole lake in one commit.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestLake, stderr};

const SYMBOLS: &str = "AAPL,MSFT,NVDA";
const START: &str = "2024-01-02";
const END: &str = "2024-01-05";

fn ingest(t: &TestLake, seed: u64) {
    let out = t.run(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        SYMBOLS,
        "--start",
        START,
        "--end",
        END,
        "--quiet",
        "--seed",
        &seed.to_string(),
    ]);
    assert!(out.status.success(), "ingest: {}", stderr(&out));
}

fn curate(t: &TestLake, job: &str) -> std::process::Command {
    let mut c = t.cli();
    c.args(["curate", "--start", START, "--end", END, "--job-id", job, "--quiet"]);
    c
}

/// The curation runs whose rows each dataset holds, read through one query (one view of the lake).
fn runs(t: &TestLake) -> (Vec<String>, Vec<String>) {
    let v = t.json(&[
        "query",
        "SELECT (SELECT list(DISTINCT job_id ORDER BY job_id) FROM curated_1m_bars) AS bars, \
                (SELECT list(DISTINCT job_id ORDER BY job_id) FROM dq_metrics WHERE dataset = 'curated_1m_bars') AS metrics",
    ]);
    let list = |k: &str| {
        v[0][k].as_array().map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect()).unwrap_or_default()
    };
    (list("bars"), list("metrics"))
}

/// validate's checks by (dataset, check) -> status.
fn validate(t: &TestLake) -> Vec<(String, String, String, String)> {
    let out = t.cli().args(["--json", "validate", "--as-of-date", END]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("validate: {e}: {}", stderr(&out)));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["dataset"].as_str().unwrap().into(),
                c["check"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
                c["detail"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Integrity and stage-output checks that are not GREEN.
fn stage_problems(t: &TestLake) -> Vec<String> {
    validate(t)
        .into_iter()
        .filter(|(_, check, status, _)| {
            (check.starts_with("integrity") || check == "stage outputs") && status != "GREEN"
        })
        .map(|(d, c, s, detail)| format!("{d} {c} {s}: {detail}"))
        .collect()
}

/// Each step of a stage commit, and whether the stage is committed when it fires.
const STAGE_FAILPOINTS: &[(&str, bool)] = &[
    ("stage.after_reserve:1", false),
    ("stage.after_reserve:2", false),
    ("stage.before_decide", false),
    ("stage.after_decide", true),
    ("commit.apply:1", true),
    ("commit.after_apply", true),
    ("commit.before_table", true),
];

async fn killed_stage_is_all_or_nothing(backend: Backend) {
    for &(failpoint, committed) in STAGE_FAILPOINTS {
        let t = TestLake::new(backend);
        t.json(&["init"]);
        ingest(&t, 1);
        let first = curate(&t, "run-a").output().unwrap();
        assert!(first.status.success(), "{}", stderr(&first));
        assert_eq!(runs(&t), (vec!["run-a".to_string()], vec!["run-a".to_string()]));
        assert_eq!(stage_problems(&t), Vec::<String>::new(), "clean before the crash");

        ingest(&t, 2);
        let crashed = curate(&t, "run-b").env("QUANTLAKE_FAILPOINT", failpoint).output().unwrap();
        assert!(!crashed.status.success(), "{failpoint}: the process must die");
        assert!(stderr(&crashed).contains("failpoint"), "{failpoint}: {}", stderr(&crashed));

        // Readers see one whole run: the old one until the stage's commit point, the new one after.
        let want = if committed { "run-b" } else { "run-a" };
        assert_eq!(runs(&t), (vec![want.to_string()], vec![want.to_string()]), "{failpoint}");
        let problems = stage_problems(&t);
        if committed {
            assert_eq!(
                problems,
                Vec::<String>::new(),
                "{failpoint}: a committed stage's apply is finished by any opener"
            );
        } else {
            assert!(
                !problems.is_empty() && problems.iter().all(|p| p.contains("not committed")),
                "{failpoint}: validate must flag the unfinished stage: {problems:?}"
            );
        }

        let recovered = t.json(&["recover"]);
        let decided: Vec<&Value> =
            recovered.as_array().unwrap().iter().flat_map(|r| r["stages"].as_array().unwrap()).collect();
        if !committed {
            assert!(
                !decided.is_empty()
                    && decided.iter().all(|d| d["outcome"] == "aborted" && d["decided_by"] == "recovery"),
                "{failpoint}: {recovered}"
            );
        }
        assert_eq!(stage_problems(&t), Vec::<String>::new(), "{failpoint}: clean after recover");
        assert_eq!(
            runs(&t),
            (vec![want.to_string()], vec![want.to_string()]),
            "{failpoint}: recover changes nothing readers saw"
        );
        assert!(
            t.json(&["verify", "--history"]).as_array().unwrap().iter().all(|r| r["problems"] == json!([])),
            "{failpoint}"
        );

        // The lake takes the next run as usual.
        let again = curate(&t, "run-c").output().unwrap();
        assert!(again.status.success(), "{failpoint}: {}", stderr(&again));
        assert_eq!(runs(&t), (vec!["run-c".to_string()], vec!["run-c".to_string()]), "{failpoint}");
    }
}
both_backends!(killed_stage, killed_stage_is_all_or_nothing);

/// Curation stages each partition's file as soon as it computes it, before its stage begins: a run
/// killed there leaves readers the previous run and no stage to decide; its orphan files are not part
/// of any snapshot, and the next run commits as usual.
async fn killed_while_staging_partitions(backend: Backend) {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    ingest(&t, 1);
    assert!(curate(&t, "run-a").output().unwrap().status.success());
    ingest(&t, 2);
    let crashed = curate(&t, "run-b").env("QUANTLAKE_FAILPOINT", "commit.after_stage:2").output().unwrap();
    assert!(
        !crashed.status.success() && stderr(&crashed).contains("failpoint commit.after_stage"),
        "{}",
        stderr(&crashed)
    );
    assert_eq!(runs(&t), (vec!["run-a".to_string()], vec!["run-a".to_string()]));
    assert_eq!(stage_problems(&t), Vec::<String>::new(), "no stage began");
    assert!(t.json(&["verify", "--history"]).as_array().unwrap().iter().all(|r| r["problems"] == json!([])));
    let parts = t.json(&["partitions", "curated_1m_bars"]);
    assert_eq!(parts["partitions"].as_array().unwrap().len(), 4, "{parts}");
    let again = curate(&t, "run-c").output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(runs(&t), (vec!["run-c".to_string()], vec!["run-c".to_string()]));
}
both_backends!(killed_staging, killed_while_staging_partitions);

/// A stage killed without recovery is decided by the next writer that meets it (its process is gone).
async fn next_writer_undoes_a_dead_stage(backend: Backend) {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    ingest(&t, 1);
    assert!(curate(&t, "run-a").output().unwrap().status.success());
    let crashed = curate(&t, "run-b").env("QUANTLAKE_FAILPOINT", "stage.after_reserve:1").output().unwrap();
    assert!(!crashed.status.success());
    let started = Instant::now();
    let next = curate(&t, "run-c").output().unwrap();
    assert!(next.status.success(), "{}", stderr(&next));
    assert!(started.elapsed() < Duration::from_secs(50), "a dead holder is noticed at once, not after the 60 s lease");
    assert_eq!(runs(&t), (vec!["run-c".to_string()], vec!["run-c".to_string()]));
    let lake_log = t.json(&["snapshots", "--all"]);
    let outcomes: Vec<(&str, &str)> = lake_log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["stage_id"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes.iter().map(|o| o.1).collect::<Vec<_>>(),
        vec!["committed", "aborted", "committed"],
        "newest first: run-c, run-b undone, run-a: {lake_log}"
    );
    assert_eq!(lake_log[1]["decided_by"], "recovery");
}
both_backends!(dead_stage, next_writer_undoes_a_dead_stage);

/// `kill -9` at arbitrary moments of repeated curate runs while a reader polls: every observation is
/// one whole run (bars and metrics of the same job).
async fn kill_loop_with_polling_reader(backend: Backend) {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    ingest(&t, 1);
    let started = Instant::now();
    assert!(curate(&t, "run-0").output().unwrap().status.success());
    let run_time = started.elapsed();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (observations, kills) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let (bars, metrics) = runs(&t);
                assert_eq!(bars.len(), 1, "one run's bars at a time: {bars:?}");
                assert_eq!(bars, metrics, "bars and metrics of the same run");
                seen.push(bars[0].clone());
                // The summary reads metrics and the curated partitions through one view: never half.
                let summary = t.json(&["dq", "summary", "--start", START, "--end", END]);
                assert_eq!(summary["sessions_with_data"], 4, "{summary}");
                assert_eq!(summary["total"]["symbol_sessions"], 12, "{summary}");
            }
            seen
        });
        let mut kills = 0;
        // Kills spread over a run's life (start-up, SQL, staging, reserving, deciding, applying), and
        // one run left to finish.
        for k in 1..=12u32 {
            let mut child = curate(&t, &format!("run-{k}")).stderr(std::process::Stdio::null()).spawn().unwrap();
            std::thread::sleep(run_time * k / 11);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
            child.wait().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (reader.join().unwrap(), kills)
    });
    assert!(observations.len() >= 5, "the reader polled throughout: {observations:?}");
    assert!(kills >= 3, "most runs were killed mid-way ({kills})");
    // Whatever state the kills left, recover makes it clean and keeps what readers last saw.
    let before = runs(&t);
    t.json(&["recover"]);
    assert_eq!(runs(&t), before);
    assert_eq!(stage_problems(&t), Vec::<String>::new());
}
both_backends!(kill_loop, kill_loop_with_polling_reader);

/// Two curations at once: on disjoint sessions both commit; on the same sessions one waits for the
/// other, and the lake holds one whole run.
#[test]
fn concurrent_stages() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    ingest(&t, 1);
    // Two curate processes at once, over (job, start, end) each; both must succeed.
    let pair = |x: [&str; 3], y: [&str; 3]| {
        let run = |[job, start, end]: [&str; 3]| {
            t.cli().args(["curate", "--start", start, "--end", end, "--job-id", job, "--quiet"]).output().unwrap()
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| run(x));
            let b = s.spawn(|| run(y));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(a.status.success() && b.status.success(), "{} {}", stderr(&a), stderr(&b));
    };
    pair(["left", "2024-01-02", "2024-01-03"], ["right", "2024-01-04", "2024-01-05"]);
    assert_eq!(
        runs(&t),
        (vec!["left".to_string(), "right".to_string()], vec!["left".to_string(), "right".to_string()])
    );
    pair(["one", START, END], ["two", START, END]);
    let (bars, metrics) = runs(&t);
    assert_eq!(bars.len(), 1, "{bars:?}");
    assert_eq!(bars, metrics);
    assert_eq!(stage_problems(&t), Vec::<String>::new());
}

/// The sha256 of every partition of some datasets, from the manifest, and of their live files.
fn fingerprint(t: &TestLake, datasets: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for d in datasets {
        let p = t.json(&["partitions", d]);
        let parts: Vec<Value> =
            p["partitions"].as_array().unwrap().iter().map(|e| json!([e["partition"], e["sha256"]])).collect();
        out.insert(d.to_string(), Value::Array(parts));
    }
    Value::Object(out)
}

async fn lake_tag_and_restore_round_trip(backend: Backend) {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    ingest(&t, 1);
    assert!(curate(&t, "run-a").output().unwrap().status.success());
    let datasets = ["raw_synthetic_bars", "curated_1m_bars", "dq_metrics"];
    let tagged = fingerprint(&t, &datasets);
    let tag = t.json(&["snapshot", "tag", "--all", "before", "--message", "before the re-run"]);
    assert_eq!(tag["name"], "before");
    assert!(tag["datasets"]["curated_1m_bars"].as_u64().unwrap() > 0);
    assert!(
        t.run(&["snapshot", "tag", "--all", "before"]).status.code() != Some(0),
        "an existing lake tag is not moved without --force"
    );

    ingest(&t, 2);
    assert!(curate(&t, "run-b").output().unwrap().status.success());
    assert_ne!(fingerprint(&t, &datasets), tagged);
    // Time travel by the lake tag: every dataset at the tagged cut.
    let old = t.json(&["query", "--as-of", "before", "SELECT (SELECT list(DISTINCT job_id) FROM curated_1m_bars) AS bars, (SELECT list(DISTINCT job_id) FROM dq_metrics) AS metrics"]);
    assert_eq!(old, json!([{"bars": ["run-a"], "metrics": ["run-a"]}]));

    let restored = t.json(&["snapshot", "restore", "--all", "before"]);
    assert!(restored["lake_seq"].as_u64().unwrap() > 0, "one lake commit: {restored}");
    assert_eq!(fingerprint(&t, &datasets), tagged, "byte-identical to the tagged state");
    assert_eq!(runs(&t), (vec!["run-a".to_string()], vec!["run-a".to_string()]));
    let lake_log = t.json(&["snapshots", "--all", "--limit", "1"]);
    assert_eq!(lake_log[0]["operation"], "restore");
    let restored_sets: BTreeSet<&str> =
        lake_log[0]["datasets"].as_object().unwrap().keys().map(String::as_str).collect();
    assert!(
        datasets.iter().all(|d| restored_sets.contains(d)),
        "the restore is one commit over every changed dataset: {lake_log}"
    );
    // The live files match the manifest (glob readers see the restored state too).
    assert!(t.json(&["verify"]).as_array().unwrap().iter().all(|r| r["problems"] == json!([])));
    let tags = t.json(&["snapshot", "tags", "--all"]);
    assert_eq!(tags.as_array().unwrap().len(), 1);
}
both_backends!(lake_tags, lake_tag_and_restore_round_trip);

/// A half-stage made by hand (the metrics of a curated range removed on their own) is flagged.
#[test]
fn validate_flags_bars_without_metrics() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    ingest(&t, 1);
    assert!(curate(&t, "run-a").output().unwrap().status.success());
    assert_eq!(stage_problems(&t), Vec::<String>::new());
    t.json(&["snapshot", "restore", "dq_metrics", "0"]);
    let problems = stage_problems(&t);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("curated_1m_bars stage outputs RED") && p.contains("4 partition(s) without metrics")),
        "{problems:?}"
    );
}
