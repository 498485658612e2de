//! Research-read benchmarks (not timed tests): `get_curated_bars` against a DuckDB glob over the same
//! live files, in one process.
//!
//!     CARGO_TARGET_DIR=$HOME/.cache/quantlake/target cargo bench --release --locked --bench reads
//!
//! The lake (500 synthetic symbols x the 252 sessions of 2024 of curated one-minute bars, through the
//! library's ingest and curate) is built once into `$QUANTLAKE_BENCH_READS_DIR` (default
//! `$HOME/.cache/quantlake/bench-reads`) and reused. Reads, each timed as the median of
//! QUANTLAKE_BENCH_RUNS (default 21) after 3 warm-up runs:
//! - one symbol x the last 60 sessions, one symbol x the 252 sessions, a symbol the lake does not
//!   have x 60 sessions (the fixed cost of a read), one session x all 500 symbols;
//! - quantlake's native read (`get_curated_bars`) on a lake opened afresh (no footer cached yet) and
//!   on the lake of the earlier runs (footers cached), the same request through DuckDB SQL over the
//!   snapshot (`BarsRequest::read_with_sql`, the path before), and DuckDB's `read_parquet` over the live
//!   tree's glob with the same WHERE on one connection opened beforehand (its start-up is not timed).
//!
//! `benches/reads_per_process.py` compares the same reads one process each (the CLI against DuckDB).

use std::time::Instant;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use quantlake::calendar::NyseCalendar;
use quantlake::curate::{Adjustment, BarsRequest, CurateRequest, CurateSettings, Frequency, curate, get_curated_bars};
use quantlake::ingest::{IngestRequest, ingest};
use quantlake::sources::BarSize;
use quantlake::sources::synthetic::{SyntheticSettings, SyntheticSource, symbol_names};
use quantlake::symbol::Symbol;
use quantlake::table::AsOf;
use quantlake::table::{Lake, LakeOptions};

const SYMBOLS: usize = 500;
/// Sessions per ingest commit and per curate run while building (bounds the build's memory).
const CHUNK: usize = 21;
const COLUMNS: &str = "symbol, ts, open, high, low, close, volume, vwap, trade_count, source, is_rth, is_filled, is_outlier, minute_idx, date";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn sessions() -> Vec<NaiveDate> {
    NyseCalendar.sessions(day("2024-01-01"), day("2024-12-31")).iter().map(|s| s.date).collect()
}

/// The lake, built on first use; a marker file says the build finished.
async fn lake(root: &std::path::Path) -> Lake {
    let url = root.join("lake").display().to_string();
    let done = root.join("built");
    if done.exists() {
        return Lake::open(&url, LakeOptions::default()).await.expect("open lake");
    }
    if root.join("lake").exists() {
        std::fs::remove_dir_all(root.join("lake")).expect("remove partial lake");
    }
    let lake = Lake::init(&url, LakeOptions::default()).await.expect("lake");
    let days = sessions();
    let symbols = symbol_names(SYMBOLS).expect("synthetic symbols");
    let source = SyntheticSource::new(SyntheticSettings::default()).expect("source");
    let started = Instant::now();
    for chunk in days.chunks(CHUNK) {
        let (start, end) = (chunk[0], chunk[chunk.len() - 1]);
        let req = IngestRequest {
            symbols: symbols.clone(),
            start,
            end,
            bar_size: BarSize::Minute,
            chunk_sessions: CHUNK,
            job_id: None,
            resume: false,
        };
        ingest(&lake, &source, &req, &quantlake::progress::NoProgress).await.expect("ingest");
        let req = CurateRequest { start, end, job_id: None, bar_size: BarSize::Minute };
        curate(&lake, &CurateSettings::default(), &req).await.expect("curate");
        eprintln!("built {start}..{end} ({:.0} s)", started.elapsed().as_secs_f64());
    }
    std::fs::write(&done, "").expect("marker");
    lake
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rows(b: &[RecordBatch]) -> usize {
    b.iter().map(RecordBatch::num_rows).sum()
}

struct Case {
    name: &'static str,
    symbols: Vec<Symbol>,
    start: NaiveDate,
    end: NaiveDate,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let root = std::env::var_os("QUANTLAKE_BENCH_READS_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/quantlake/bench-reads")
    });
    std::fs::create_dir_all(&root).expect("bench dir");
    let lake = lake(&root).await;
    let runs: usize = std::env::var("QUANTLAKE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(21);
    let days = sessions();
    let last = days[days.len() - 1];
    let cases = [
        Case {
            name: "1 symbol x 60 sessions",
            symbols: vec![Symbol::from_static("MSFT")],
            start: days[days.len() - 60],
            end: last,
        },
        Case { name: "1 symbol x 252 sessions", symbols: vec![Symbol::from_static("MSFT")], start: days[0], end: last },
        // The fixed cost of a read: the snapshot resolved, every file's footer ruling the symbol out.
        Case {
            name: "absent symbol x 60 sessions",
            symbols: vec![Symbol::from_static("ZZZZ")],
            start: days[days.len() - 60],
            end: last,
        },
        Case {
            name: "1 session x 500 symbols",
            symbols: symbol_names(SYMBOLS).expect("synthetic symbols"),
            start: last,
            end: last,
        },
    ];
    let glob = root.join("lake/curated/curated_1m_bars/*/*.parquet").display().to_string();
    let duck = duckdb::Connection::open_in_memory().expect("duckdb");
    let as_of = AsOf::latest();

    println!(
        "lake: {} ({} symbols x {} sessions of curated_1m_bars); median of {runs} runs, in-process",
        root.join("lake").display(),
        SYMBOLS,
        days.len()
    );
    println!(
        "| read | rows | native, first read | native | quantlake via DuckDB SQL | DuckDB glob | glob / first read | glob / native |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for case in &cases {
        let request = BarsRequest {
            symbols: case.symbols.clone(),
            start: case.start,
            end: case.end,
            frequency: Frequency::M1,
            extended_hours: false,
            adjust: Adjustment::None,
            resolve_at: None,
        };
        let list: Vec<String> = case.symbols.iter().map(|s| format!("'{s}'")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM read_parquet('{glob}', hive_partitioning = true) \
             WHERE symbol IN ({}) AND date BETWEEN DATE '{}' AND DATE '{}' AND is_rth ORDER BY symbol, ts",
            list.join(", "),
            case.start,
            case.end
        );
        let mut native = Vec::new();
        let mut via_sql = Vec::new();
        let mut globbed = Vec::new();
        let mut cold = Vec::new();
        let mut counts = (0, 0, 0);
        for i in 0..runs + 3 {
            // A lake opened afresh: no footer parsed yet (its opening is not timed).
            let fresh = Lake::open(lake.url(), LakeOptions::default()).await.expect("open lake");
            let t = Instant::now();
            let first = get_curated_bars(&fresh, &request, &as_of).await.expect("native, first read");
            let t0 = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let a = get_curated_bars(&lake, &request, &as_of).await.expect("native");
            let ta = t.elapsed().as_secs_f64();
            assert_eq!(rows(&first), rows(&a));
            let t = Instant::now();
            let b = request.read_with_sql(&lake, &as_of).await.expect("sql");
            let tb = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let c: Vec<RecordBatch> = tokio::task::block_in_place(|| {
                duck.prepare(&sql).and_then(|mut s| s.query_arrow([]).map(|r| r.collect()))
            })
            .expect("glob");
            let tc = t.elapsed().as_secs_f64();
            counts = (rows(&a), rows(&b), rows(&c));
            if i >= 3 {
                cold.push(t0);
                native.push(ta);
                via_sql.push(tb);
                globbed.push(tc);
            }
        }
        assert!(counts.0 == counts.1 && counts.1 == counts.2, "{}: rows differ: {counts:?}", case.name);
        let (n, s, g) = (median(native) * 1e3, median(via_sql) * 1e3, median(globbed) * 1e3);
        let c = median(cold) * 1e3;
        println!(
            "| {} | {} | {c:.1} ms | {n:.1} ms | {s:.1} ms | {g:.1} ms | {:.1}x | {:.1}x |",
            case.name,
            counts.0,
            g / c,
            g / n
        );
    }
    let (files, bytes) = lake.footer_cache().usage();
    println!("footer cache: {files} files, {:.1} MiB", bytes as f64 / f64::from(1 << 20));
}
