//! `quantlake annotate`, `annotations` and `annotate --remove`, the library's `list_annotations` and
//! `Annotation::covers`, and annotations beside their sessions in `health` and `dq summary` (text and
//! JSON), including a session an outage left without metrics.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, TestLake, stderr};
use quantlake::dq::list_annotations;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn annotate_list_remove(backend: Backend) {
    let t = TestLake::new(backend);
    t.json(&["init"]);
    let a = t.json(&[
        "annotate",
        "curated_1m_bars",
        "--symbols",
        "MSFT,AAPL",
        "--start",
        "2024-01-03",
        "--end",
        "2024-01-04",
        "--reason",
        "IB outage 09:30-11:00",
        "--unusable",
    ]);
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(
        (a["dataset"].clone(), a["symbols"].clone(), a["start"].clone(), a["end"].clone(), a["unusable"].clone()),
        (
            json!("curated_1m_bars"),
            json!(["AAPL", "MSFT"]),
            json!("2024-01-03T05:00:00Z"),
            json!("2024-01-05T04:59:59.999999Z"),
            json!(true)
        )
    );
    // The runbook's name for the dataset resolves to the same dataset; RFC 3339 times are taken as given.
    let b = t.json(&[
        "annotate",
        "curated_tws_1m_bars",
        "--symbols",
        "all",
        "--start",
        "2024-02-01T14:30:00Z",
        "--end",
        "2024-02-01T15:00:00-05:00",
        "--reason",
        "vendor gap accepted",
    ]);
    assert_eq!(
        (b["dataset"].clone(), b["symbols"].clone(), b["end"].clone(), b["unusable"].clone()),
        (json!("curated_1m_bars"), Value::Null, json!("2024-02-01T20:00:00Z"), json!(false))
    );
    let c = t.json(&[
        "annotate",
        "raw_synthetic_bars",
        "--symbols",
        "SPY",
        "--start",
        "2024-01-03",
        "--end",
        "2024-01-03",
        "--reason",
        "feed down",
    ]);

    let all = t.json(&["annotations"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let ids =
        |v: &Value| v.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(&t.json(&["annotations", "--dataset", "curated_1m_bars"])),
        vec![id.clone(), b["id"].as_str().unwrap().to_string()]
    );
    assert_eq!(ids(&t.json(&["annotations", "--start", "2024-01-05", "--end", "2024-01-31"])), Vec::<String>::new());
    assert_eq!(
        ids(&t.json(&["annotations", "--dataset", "curated_1m_bars", "--start", "2024-01-04", "--end", "2024-01-04"])),
        vec![id.clone()]
    );
    assert_eq!(
        ids(&t.json(&["annotations", "--dataset", "raw_synthetic_bars"])),
        vec![c["id"].as_str().unwrap().to_string()]
    );
    let text = t.run(&["annotations"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("IB outage 09:30-11:00"));

    // The library: overlap and covers.
    let lake = quantlake::table::Lake::open(&t.url, t.options()).await.unwrap();
    let found =
        list_annotations(&lake, Some("curated_1m_bars"), utc("2024-01-04T20:00:00Z"), utc("2024-01-10T00:00:00Z"))
            .await
            .unwrap();
    assert_eq!(found.len(), 1);
    let outage = &found[0];
    assert!(outage.unusable && outage.covers("AAPL", utc("2024-01-04T15:00:00Z")));
    assert!(!outage.covers("SPY", utc("2024-01-04T15:00:00Z")) && !outage.covers("AAPL", utc("2024-01-05T15:00:00Z")));
    assert_eq!(
        list_annotations(&lake, None, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC).await.unwrap().len(),
        3
    );

    // Remove by id; an unknown id is an error that says where ids come from.
    let removed = t.json(&["annotate", "--remove", &id]);
    assert_eq!(removed["removed"]["id"], json!(id));
    assert_eq!(t.json(&["annotations"]).as_array().unwrap().len(), 2);
    let out = t.run(&["annotate", "--remove", &id]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains(&format!("no annotation with id '{id}'")), "{}", stderr(&out));
    // Each change is a snapshot: the removed annotation is still there in the past.
    let before = t.json(&["query", "--as-of", "annotations@3", "SELECT count(*) AS n FROM annotations"]);
    assert_eq!(before, json!([{ "n": 3 }]));
}
both_backends!(annotate_list_remove_test, annotate_list_remove);

#[test]
fn bad_annotations_are_refused() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    for (args, expect) in [
        (
            vec![
                "annotate",
                "no_such_dataset",
                "--symbols",
                "all",
                "--start",
                "2024-01-03",
                "--end",
                "2024-01-03",
                "--reason",
                "x",
            ],
            "no_such_dataset",
        ),
        (
            vec![
                "annotate",
                "curated_1m_bars",
                "--symbols",
                "AAPL,../x",
                "--start",
                "2024-01-03",
                "--end",
                "2024-01-03",
                "--reason",
                "x",
            ],
            "invalid symbol '../x'",
        ),
        (
            vec![
                "annotate",
                "curated_1m_bars",
                "--symbols",
                "all",
                "--start",
                "2024-01-04",
                "--end",
                "2024-01-03",
                "--reason",
                "x",
            ],
            "is before start",
        ),
        (
            vec![
                "annotate",
                "curated_1m_bars",
                "--symbols",
                "all",
                "--start",
                "Jan 3",
                "--end",
                "2024-01-03",
                "--reason",
                "x",
            ],
            "start 'Jan 3': expected a date (YYYY-MM-DD, New York) or an RFC 3339 time",
        ),
        (
            vec![
                "annotate",
                "curated_1m_bars",
                "--symbols",
                "all",
                "--start",
                "2024-01-03",
                "--end",
                "2024-01-03",
                "--reason",
                "  ",
            ],
            "needs a reason",
        ),
        (
            vec![
                "annotate",
                "curated_1m_bars",
                "--symbols",
                ",",
                "--start",
                "2024-01-03",
                "--end",
                "2024-01-03",
                "--reason",
                "x",
            ],
            "the symbol list is empty",
        ),
        (
            vec!["annotate", "curated_1m_bars", "--start", "2024-01-03", "--end", "2024-01-03", "--reason", "x"],
            "--symbols",
        ),
        (vec!["annotate", "--remove", "abc", "--reason", "x"], "cannot be used with"),
        (vec!["annotations", "--start", "2024-02-01", "--end", "2024-01-01"], "--end is before --start"),
    ] {
        let out = t.run(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(t.json(&["annotations"]), json!([]), "nothing recorded");
}

#[test]
fn health_and_dq_summary_show_annotations_beside_their_sessions() {
    let t = TestLake::new(Backend::Local);
    t.json(&["init"]);
    t.json(&[
        "ingest",
        "--source",
        "synthetic",
        "--symbols",
        "AAPL,MSFT",
        "--start",
        "2024-01-02",
        "--end",
        "2024-01-04",
    ]);
    t.json(&["curate", "--start", "2024-01-02", "--end", "2024-01-04"]);
    let outage = t.json(&[
        "annotate",
        "curated_1m_bars",
        "--symbols",
        "MSFT",
        "--start",
        "2024-01-03T14:30:00Z",
        "--end",
        "2024-01-03T16:00:00Z",
        "--reason",
        "TWS down",
        "--unusable",
    ]);
    // 2024-01-05 was never ingested: the outage left no bars and no metrics.
    let missing = t.json(&[
        "annotate",
        "curated_1m_bars",
        "--symbols",
        "all",
        "--start",
        "2024-01-05",
        "--end",
        "2024-01-05",
        "--reason",
        "upstream missing the whole day",
    ]);
    // Another dataset's annotation is not shown.
    t.json(&[
        "annotate",
        "raw_synthetic_bars",
        "--symbols",
        "all",
        "--start",
        "2024-01-03",
        "--end",
        "2024-01-03",
        "--reason",
        "other",
    ]);
    let (outage_id, missing_id) = (outage["id"].as_str().unwrap(), missing["id"].as_str().unwrap());

    let summary = t.json(&["dq", "summary", "--start", "2024-01-02", "--end", "2024-01-05"]);
    let sessions = summary["sessions"].as_array().unwrap();
    let by_date = |d: &str| {
        sessions.iter().find(|s| s["date"] == d).unwrap_or_else(|| panic!("no session {d}: {summary}")).clone()
    };
    let note_ids = |s: &Value| {
        s["annotations"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(note_ids(&by_date("2024-01-02")), Vec::<String>::new());
    assert_eq!(note_ids(&by_date("2024-01-03")), vec![outage_id.to_string()]);
    assert_eq!(by_date("2024-01-03")["annotations"][0]["reason"], "TWS down");
    assert_eq!(by_date("2024-01-03")["annotations"][0]["unusable"], true);
    assert_eq!(by_date("2024-01-03")["has_metrics"], true);
    assert_eq!(note_ids(&by_date("2024-01-04")), Vec::<String>::new());
    let day5 = by_date("2024-01-05");
    assert_eq!((day5["has_metrics"].clone(), note_ids(&day5)), (json!(false), vec![missing_id.to_string()]));
    assert_eq!(summary["sessions_with_data"], 3, "the annotated session without metrics does not count as data");
    assert_eq!(summary["annotations"].as_array().unwrap().len(), 2);
    let text =
        String::from_utf8_lossy(&t.run(&["dq", "summary", "--start", "2024-01-02", "--end", "2024-01-05"]).stdout)
            .into_owned();
    assert!(
        text.contains(&format!("annotation {outage_id} UNUSABLE (MSFT"))
            && text.contains("no metrics")
            && text.contains("upstream missing the whole day"),
        "{text}"
    );

    let health = t.json(&["health", "--as-of-date", "2024-01-05"]);
    let partition = |p: &str| {
        health["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["partition"] == p)
            .unwrap_or_else(|| panic!("no {p}: {health}"))
            .clone()
    };
    let ids = |p: &Value| {
        p["annotations"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&partition("date=2024-01-03")), vec![outage_id.to_string()]);
    assert_eq!(ids(&partition("date=2024-01-04")), Vec::<String>::new());
    // The missing day stays RED (annotations explain, they do not change verdicts), with its note.
    assert_eq!(partition("date=2024-01-05")["status"], "RED");
    assert_eq!(ids(&partition("date=2024-01-05")), vec![missing_id.to_string()]);
    let text = String::from_utf8_lossy(&t.run(&["health", "--as-of-date", "2024-01-05"]).stdout).into_owned();
    assert!(text.contains(&format!("annotation {missing_id} (all, 2024-01-05T05:00:00Z .. 2024-01-06T04:59:59Z): upstream missing the whole day")), "{text}");
}
