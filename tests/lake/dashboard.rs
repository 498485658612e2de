//! The dashboard (issue 13): `quantlake serve` on a demo lake, its JSON API over HTTP (figures,
//! actions, 4xx for bad input, the access token), and every page in headless Chromium
//! (tests/python/browser.py with Debian's chromium and chromedriver), which compares the figures
//! shown with the API's and saves a screenshot of each page.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Backend, TestLake, python, repo, stderr};

const SYMBOLS: &str = "AAPL,MSFT,SPY";
const START: &str = "2024-01-02";
const END: &str = "2024-01-10";

/// A lake with a bit of everything the pages show: raw, curated (1m and 1d), features and labels,
/// a training set with its lineage, a daily run's jobs, an alert history, and a hole (MSFT has no
/// bars on 2024-01-05) for the coverage map. `noisy`: AAPL and SPY also have gaps, duplicates and
/// bad ticks (for the charts' marks), and a second training set falls back to the plain target.
fn demo_lake(noisy: bool) -> TestLake {
    let t = TestLake::new(Backend::Local);
    let env = [("FEATURE_BREADTH_MIN_SYMBOLS", "1"), ("FEATURE_BREADTH_WARN_SYMBOLS", "1"), ("DAYS_BACK", "5")];
    let mut first: Vec<&str> =
        vec!["ingest", "--source", "synthetic", "--symbols", "AAPL,SPY", "--start", START, "--end", END, "--quiet"];
    if noisy {
        first.extend(["--gap-rate", "0.01", "--duplicate-rate", "0.005", "--outlier-rate", "0.002"]);
    }
    let steps: &[&[&str]] = &[
        &["init"],
        &first,
        &["ingest", "--source", "synthetic", "--symbols", "MSFT", "--start", START, "--end", "2024-01-04", "--quiet"],
        &["ingest", "--source", "synthetic", "--symbols", "MSFT", "--start", "2024-01-08", "--end", END, "--quiet"],
        &[
            "ingest",
            "--source",
            "synthetic",
            "--frequency",
            "1d",
            "--symbols",
            SYMBOLS,
            "--start",
            START,
            "--end",
            END,
            "--quiet",
        ],
        &["curate", "--start", START, "--end", END],
        &["curate", "--frequency", "1d", "--start", START, "--end", END],
        &["features", "--start", START, "--end", END],
        &["run", "--date", END, "--symbols", SYMBOLS],
        &["alerts", "check", "--as-of-date", END],
    ];
    for args in steps {
        let out = t.cli().envs(env).args(*args).output().expect("run quantlake");
        // `run` and `alerts check` exit by what they judged (a hole is a warning); they must have run.
        assert!(matches!(out.status.code(), Some(0..=2)), "{args:?}: {}", stderr(&out));
    }
    let set = t.dir.as_ref().expect("local lake").path().join("train.parquet");
    let labels: &[&str] = if noisy { &["fwd_ret_15m", "fwd_ret_resid_15m"] } else { &["fwd_ret_15m"] };
    for label in labels {
        let out = t
            .cli()
            .envs(env)
            .args(["training-set", "--label", label, "--start", START, "--end", END, "--output"])
            .arg(&set)
            .output()
            .unwrap();
        assert!(out.status.success(), "training-set {label}: {}", stderr(&out));
    }
    t
}

/// `quantlake serve --port 0` on the lake; stopped on drop.
struct Server {
    child: Child,
    base: String,
    /// Kept open: the server's stdout must not become a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(t: &TestLake, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = t
            .cli()
            .envs([("FEATURE_BREADTH_MIN_SYMBOLS", "1"), ("FEATURE_BREADTH_WARN_SYMBOLS", "1")])
            .envs(env.iter().copied())
            .args(["serve", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quantlake serve");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut line).expect("read the address line");
        let base = line.trim().rsplit(' ').next().unwrap_or_default().trim_end_matches('/').to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "serve printed {line:?}");
        Self { child, base, _stdout: stdout }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(120)).build().unwrap()
}

/// GET `path`: status and body (JSON when it parses).
async fn get(s: &Server, path: &str) -> (u16, Value) {
    let r = client().get(format!("{}{path}", s.base)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn get_ok(s: &Server, path: &str) -> Value {
    let (status, body) = get(s, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn post(s: &Server, path: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", s.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Polls `/api/jobs/{id}` until the job has finished.
async fn finished(s: &Server, id: &str) -> Value {
    for _ in 0..600 {
        let d = get_ok(s, &format!("/api/jobs/{id}")).await;
        if !["RUNNING", "QUEUED"].contains(&d["job"]["status"].as_str().unwrap_or_default()) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("job {id} did not finish in 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_the_library_over_http() {
    let t = demo_lake(false);
    let s = Server::start(&t, &[], &[]);

    // Health: every dataset, judged as of the lake's last session; one dataset in full.
    let o = get_ok(&s, &format!("/api/health?as_of_date={END}")).await;
    assert_eq!(o["reference_session"], END, "{o}");
    let curated = o["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dataset"] == "curated_1m_bars")
        .expect("curated_1m_bars listed");
    assert_eq!(curated["latest_session"], END);
    assert_eq!(curated["lag_sessions"], 0);
    assert!(["GREEN", "YELLOW", "RED"].contains(&curated["status"].as_str().unwrap()), "{curated}");
    assert!(o["conditions"].as_array().unwrap().iter().any(|c| c["key"] == "lag:curated"), "{o}");
    assert!(!o["last_jobs"].as_array().unwrap().is_empty(), "the daily run's jobs: {o}");
    let h = get_ok(&s, &format!("/api/health?dataset=curated_1m_bars&as_of_date={END}")).await;
    assert_eq!(h["status"], curated["status"]);

    // Data quality: the same figures as the library (CLI) gives.
    let api = get_ok(&s, &format!("/api/dq/summary?dataset=curated_1m_bars&start={START}&end={END}")).await;
    let cli = t.json(&["dq", "summary", "--dataset", "curated_1m_bars", "--start", START, "--end", END]);
    assert_eq!(api["total"], cli["total"]);
    assert_eq!(api["sessions_with_data"], 7);
    // The default range ends at the dataset's latest session.
    assert_eq!(get_ok(&s, "/api/dq/summary").await["end"], END);
    let msft = get_ok(&s, &format!("/api/dq/metrics?symbol=MSFT&start={START}&end={END}")).await;
    let delivered = msft
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["symbol"] == "MSFT" && m["present_bars"].as_u64() > Some(0))
        .count();
    assert_eq!(delivered, 6, "MSFT has bars in 6 of the 7 sessions: {msft}");

    let nulls = get_ok(&s, &format!("/api/dq/null_rates?start={START}&end={END}")).await;
    assert_eq!(nulls.as_array().unwrap().len(), 7, "{nulls}");
    let jan5 = nulls.as_array().unwrap().iter().find(|n| n["date"] == "2024-01-05").unwrap();
    assert_eq!(jan5["delivered_bars"], 2 * 390, "AAPL and SPY only: {jan5}");

    // Coverage: MSFT's missing session is the one hole.
    let c = get_ok(&s, &format!("/api/coverage?start={START}&end={END}")).await;
    assert_eq!(c["symbols"], json!(["AAPL", "MSFT", "SPY"]));
    assert_eq!(c["sessions"].as_array().unwrap().len(), 7);
    assert_eq!(c["holes"], 1, "{c}");
    let j = c["sessions"].as_array().unwrap().iter().position(|d| d == "2024-01-05").unwrap();
    assert!(c["cells"][1][j].as_f64().is_none_or(|v| v == 0.0), "{c}");
    assert_eq!(c["cells"][0][j], 1.0);

    // Bars: get_curated_bars for one session; resampled to days.
    let b = get_ok(&s, "/api/bars?symbols=AAPL&start=2024-01-03").await;
    assert_eq!(b["rows"], 390);
    assert_eq!(b["bars"].as_array().unwrap().len(), 390);
    assert_eq!(b["bars"][0]["symbol"], "AAPL");
    let d = get_ok(&s, &format!("/api/bars?symbols=AAPL,SPY&start={START}&end={END}&frequency=1d&adjust=splits")).await;
    assert_eq!(d["rows"], 14);

    // Jobs: the daily run's stages; one in detail with its log.
    let jobs = get_ok(&s, "/api/jobs?kind=daily_run").await;
    let run = &jobs.as_array().unwrap()[0];
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let detail = get_ok(&s, &format!("/api/jobs/{}", run["id"].as_str().unwrap())).await;
    assert!(!detail["log"].as_array().unwrap().is_empty(), "{detail}");

    // Backfills: a dry run is the plan, the real one a job that runs in the server and can be read
    // back with get_backfill_job_status.
    let scope =
        json!({ "dataset_name": "curated_1m_bars", "symbols": "MSFT", "start": "2024-01-05", "end": "2024-01-05" });
    let mut dry = scope.clone();
    dry["dry_run"] = json!(true);
    let (status, plan) = post(&s, "/api/backfills", &dry).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["triggered"], "plan");
    assert_eq!(plan["cells_to_fetch"], 1, "{plan}");
    let (status, queued) = post(&s, "/api/backfills", &scope).await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["job"]["id"].as_str().unwrap().to_string();
    let done = finished(&s, &id).await;
    assert_eq!(done["job"]["status"], "SUCCEEDED", "{done}");
    let status = get_ok(&s, &format!("/api/backfills/{id}")).await;
    assert_eq!(status["result"]["rows_ingested"], 390, "{status}");
    assert_eq!(get_ok(&s, &format!("/api/coverage?start={START}&end={END}")).await["holes"], 0);
    assert!(get_ok(&s, "/api/backfills").await.as_array().unwrap().iter().any(|j| j["id"] == id.as_str()));

    // Snapshots: the backfill's tag, a diff, and a restore that needs its confirmation.
    let snaps = get_ok(&s, "/api/snapshots").await;
    let tag = format!("pre-{id}");
    assert!(snaps["lake_tags"].as_array().unwrap().iter().any(|t| t["name"] == tag.as_str()), "{snaps}");
    let ds = get_ok(&s, "/api/snapshots?dataset=curated_1m_bars").await;
    assert!(ds["snapshots"].as_array().unwrap().len() >= 2);
    let diff = get_ok(&s, "/api/snapshots/diff?dataset=curated_1m_bars&from=1&to=latest").await;
    assert!(!diff["changes"].as_array().unwrap().is_empty(), "{diff}");
    let (status, refused) = post(&s, "/api/snapshots/restore", &json!({ "to": tag, "confirm": "yes" })).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("confirm with 'lake'"), "{refused}");
    let (status, restored) = post(&s, "/api/snapshots/restore", &json!({ "to": tag, "confirm": "lake" })).await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(
        get_ok(&s, &format!("/api/coverage?start={START}&end={END}")).await["holes"],
        1,
        "the restore undid the backfill"
    );

    // Lineage, alerts, validation.
    let l = get_ok(&s, "/api/lineage").await;
    assert_eq!(l["records"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l["records"][0]["leakage_check"]["passed"], true);
    let a = get_ok(&s, &format!("/api/alerts?as_of_date={END}")).await;
    assert!(!a["conditions"].as_array().unwrap().is_empty() && a["history"].is_array(), "{a}");
    assert_eq!(get_ok(&s, "/api/validation").await["report"], Value::Null);
    let (status, v) = post(&s, "/api/validation", &json!({ "full": true })).await;
    assert_eq!(status, 202, "{v}");
    finished(&s, v["id"].as_str().unwrap()).await;
    let report = get_ok(&s, "/api/validation").await;
    assert_eq!(report["report"]["full"], true, "{report}");
    assert!(!report["report"]["checks"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    let s = Server::start(&t, &[], &[]);
    let cases: &[(&str, u16, &str)] = &[
        ("/api/dq/summary?dataset=no_such_dataset", 404, "unknown dataset 'no_such_dataset'"),
        ("/api/dq/summary?dataset=../../etc", 400, "'../../etc'"),
        ("/api/coverage?start=2024-13-01", 400, "start"),
        ("/api/coverage?start=2024-01-10&end=2024-01-02", 400, "before start"),
        ("/api/health?as_of_date=yesterday", 400, "as_of_date"),
        ("/api/jobs/..%2F..%2Fetc%2Fpasswd", 400, "is not a job id"),
        ("/api/jobs/no-such-job", 400, "no job 'no-such-job'"),
        ("/api/bars?symbols=../x&start=2024-01-02", 400, "invalid symbol '../x'"),
        ("/api/bars?symbols=AAPL&start=2024-01-02&frequency=7m", 400, "frequency"),
        ("/api/snapshots?dataset=a/b", 400, "'a/b'"),
        ("/api/snapshots/diff?dataset=curated_1m_bars", 400, "diff needs from"),
        ("/api/nothing-here", 404, "no such endpoint"),
    ];
    for (path, status, says) in cases {
        let (got, body) = get(&s, path).await;
        assert_eq!(got, *status, "{path}: {body}");
        let message = body["error"].as_str().unwrap_or_else(|| panic!("{path}: no error message: {body}"));
        assert!(message.contains(says), "{path}: {message:?} does not say {says:?}");
    }
    let (status, body) =
        post(&s, "/api/backfills", &json!({ "dataset_name": "curated_1m_bars", "start": "2024-01-02" })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("end"), "{body}");
    let (status, body) = post(
        &s,
        "/api/backfills",
        &json!({ "dataset_name": "nope", "start": "2024-01-02", "end": "2024-01-02", "dry_run": true }),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // A page with bad input says why, with the same status.
    let (status, page) = get(&s, "/dq?dataset=nope").await;
    assert_eq!(status, 404);
    assert!(
        page.as_str().unwrap().contains("unknown dataset &#39;nope&#39;")
            || page.as_str().unwrap().contains("unknown dataset 'nope'"),
        "{page}"
    );
    // A page's bad parameter: the page with the reason, not JSON.
    let (status, page) = get(&s, "/coverage?start=2024-13-01").await;
    assert_eq!(status, 400);
    let page = page.as_str().unwrap();
    assert!(page.contains("<html") && page.contains("data-error") && page.contains("is not a date"), "{page}");
    let (status, body) = get(&s, "/api/health?as_of_date=+262143-12-31").await;
    assert_eq!(status, 400, "{body}");
    // A site whose name re-resolves to 127.0.0.1 (DNS rebinding) gets nothing without a token.
    let r = client().get(format!("{}/api/health", s.base)).header("host", "evil.example:8080").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Another site's page cannot post through the browser.
    let r = client()
        .post(format!("{}/api/validation", s.base))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_address_needs_the_token() {
    let t = TestLake::new(Backend::Local);
    assert!(t.run(&["init"]).status.success());
    // Refused without a token.
    let out = t.run(&["serve", "--port", "0", "--bind", "0.0.0.0"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("QUANTLAKE_TOKEN"), "{}", stderr(&out));

    let token = "tok-SECRET-dashboard";
    let s = Server::start(&t, &[], &[("QUANTLAKE_TOKEN", token)]);
    let (status, body) = get(&s, "/api/health").await;
    assert_eq!(status, 401, "{body}");
    let r = client().get(format!("{}/api/health", s.base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client().get(format!("{}/api/health", s.base)).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // People: the login form sets a session cookie that is not the token.
    let no_redirects =
        reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(format!("{}/jobs", s.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/login?next=%2Fjobs");
    let r = no_redirects
        .post(format!("{}/login", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2Fjobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(!cookie.contains(token), "{cookie}");
    let r = no_redirects.get(format!("{}/jobs", s.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = no_redirects
        .post(format!("{}/login", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=guess&next=%2F")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The token never shows in the log file.
    let log = std::fs::read_to_string(t.log_file()).unwrap_or_default();
    assert!(!log.contains(token), "the token leaked into the log");
}

/// Where the browser test leaves its screenshots (a CI artifact).
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_headless_chromium() {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: scripts/test.sh installs Debian's chromium and chromium-driver"
        );
    }
    let t = demo_lake(true);
    let s = Server::start(&t, &[], &[]);
    let dir = screenshots();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(python())
        .arg(repo().join("tests/python/browser.py"))
        .args([&s.base, dir.to_str().unwrap(), END])
        .output()
        .expect("run the browser test");
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "browser test failed:\n{log}");
    for page in
        ["overview", "dq", "coverage", "jobs", "backfill-plan", "snapshots", "bars", "lineage", "validation", "alerts"]
    {
        let png = dir.join(format!("{page}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is missing or blank ({size} bytes)\n{log}", png.display());
    }
    eprintln!("screenshots in {}", dir.display());
}
