//! Integration tests of the lake engine, run against a local lake and a real S3 server (moto).
//! Each invariant of the README has its own module here.

// A scenario test reads top to bottom as one story (set up, act, check each consequence), and a
// table of cases is clearer as one literal type.
#![allow(clippy::too_many_lines, clippy::type_complexity)]

mod support;

mod fake_tws;

mod alerts;
mod annotations;
mod cli;
mod compaction;
mod concurrency;
mod corporate_actions;
mod crash;
mod curate;
mod dashboard;
mod delta;
mod docs;
mod engine;
mod features;
mod file_import;
mod fundamentals;
mod integrity;
mod interop;
mod models;
mod modules;
mod operations;
mod python_package;
mod resume;
mod securities;
mod stages;
mod tws;
mod tws_client;
mod universe;
mod vendors;

use chrono::NaiveDate;
use quantlake::ingest::{IngestReport, IngestRequest, ingest};
use quantlake::sources::BarSize;
use quantlake::sources::synthetic::{SyntheticSettings, SyntheticSource};
use quantlake::table::Lake;

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Ingests synthetic bars through the library.
pub async fn ingest_synthetic(lake: &Lake, symbols: &[&str], start: &str, end: &str, seed: u64) -> IngestReport {
    let source = SyntheticSource::new(SyntheticSettings { seed, ..Default::default() }).unwrap();
    let request = IngestRequest {
        symbols: symbols.iter().map(|s| s.parse().unwrap()).collect(),
        start: day(start),
        end: day(end),
        bar_size: BarSize::Minute,
        chunk_sessions: 10,
        job_id: None,
        resume: false,
    };
    ingest(lake, &source, &request, &quantlake::progress::NoProgress).await.unwrap()
}
