"""The Python package in one process, side by side with what a researcher would write instead.

    .venv/bin/python benches/python_package.py [--quantlake PATH] [--lake DIR] [--runs N]

The lake is the one `cargo bench --bench reads` builds (default ~/.cache/quantlake/bench-reads/lake:
500 symbols x the 252 sessions of 2024, with features and labels). Reads: `lake.bars` against
`pl.scan_parquet(glob).filter(...).collect()` and `duckdb.sql(...).arrow().read_all()` on the live
tree's glob, the same rows (regular session, sorted by symbol and ts); median of N (default 11) after
one warm-up, each into a polars frame or an Arrow table. Training set: `lake.training_set` against the
command line writing the same set to Parquet and polars reading it back; median of 3.
"""

import os
import subprocess
import tempfile

import duckdb
import polars as pl

import quantlake as ql
from bench_lake import SYMBOLS, arguments, median_ms

COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trade_count", "source", "is_rth",
           "is_filled", "is_outlier", "minute_idx", "date"]

def main():
    a = arguments()
    lake = ql.Lake(a.lake)
    glob, everyone = a.glob, SYMBOLS
    cases = [
        ("1 symbol x 60 sessions", ["MSFT"], "2024-10-04", "2024-12-31"),
        ("1 session x 500 symbols", everyone, "2024-12-31", "2024-12-31"),
    ]
    print(f"lake: {a.lake}; one Python process, median of {a.runs}")
    print("| read | rows | `lake.bars` -> polars | `pl.scan_parquet` | `duckdb.sql` -> Arrow | polars / quantlake | DuckDB / quantlake |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, symbols, start, end in cases:
        rows = len(lake.bars(symbols, start, end))

        def ours():
            return pl.DataFrame(lake.bars(symbols, start, end))

        def polars():
            return (
                pl.scan_parquet(glob, hive_partitioning=True)
                .filter(pl.col("symbol").is_in(symbols), pl.col("date").is_between(pl.date(*map(int, start.split("-"))), pl.date(*map(int, end.split("-")))), pl.col("is_rth"))
                .select(COLUMNS)
                .sort("symbol", "ts")
                .collect()
            )

        quoted = ", ".join(f"'{s}'" for s in symbols)
        sql = (f"SELECT {', '.join(COLUMNS)} FROM read_parquet('{glob}', hive_partitioning = true) WHERE symbol IN ({quoted}) "
               f"AND date BETWEEN DATE '{start}' AND DATE '{end}' AND is_rth ORDER BY symbol, ts")

        def duck():
            return duckdb.sql(sql).arrow().read_all()

        assert ours().height == polars().height == duck().num_rows == rows
        q, pol, d = median_ms(ours, a.runs), median_ms(polars, a.runs), median_ms(duck, a.runs)
        print(f"| {name} | {rows:,} | {q:.1f} ms | {pol:.1f} ms | {d:.1f} ms | {pol / q:.1f}x | {d / q:.1f}x |")

    start, end = "2024-10-04", "2024-12-31"
    out = os.path.join(tempfile.mkdtemp(prefix="quantlake-py-"), "set.parquet")

    def ours_set():
        return pl.DataFrame(lake.training_set("fwd_ret_15m", start, end, universe="all"))

    def cli_set():
        subprocess.run([a.quantlake, "--lake", a.lake, "--quiet", "training-set", "--label", "fwd_ret_15m", "--start", start,
                        "--end", end, "--universe", "all", "--output", out], check=True, stdout=subprocess.DEVNULL)
        return pl.read_parquet(out)

    rows = ours_set().height
    assert cli_set().height == rows
    q, c = median_ms(ours_set, 3), median_ms(cli_set, 3)
    print(f"| training set, 500 symbols x 60 sessions | {rows:,} | {q / 1e3:.2f} s | CLI to Parquet, then polars: {c / 1e3:.2f} s | | {c / q:.1f}x | |")


if __name__ == "__main__":
    main()
