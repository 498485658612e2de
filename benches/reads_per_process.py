"""Research reads one process each: `quantlake bars` against DuckDB over the live tree's glob.

    .venv/bin/python benches/reads_per_process.py [--quantlake PATH] [--lake DIR] [--runs N]

The lake is the one `cargo bench --bench reads` builds (default ~/.cache/quantlake/bench-reads/lake:
500 symbols x the 252 sessions of 2024). Each command runs N times (default 11) after one warm-up;
the table shows the median wall time of the whole process. Both sides hand back the same rows as
Arrow: quantlake writes an Arrow IPC file (`--format arrow --output F`), DuckDB fetches an Arrow table
in Python (`duckdb.sql(...).arrow().read_all()`). The start-up of `python -c "import duckdb"` is shown on its own
so the SQL's own share can be read off.
"""

import os
import subprocess
import sys
import tempfile

from bench_lake import SYMBOLS, arguments, median_ms

COLUMNS = "symbol, ts, open, high, low, close, volume, vwap, trade_count, source, is_rth, is_filled, is_outlier, minute_idx, date"


def wall(cmd, runs):
    return median_ms(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL), runs)


def main():
    a = arguments()
    glob, everyone = a.glob, SYMBOLS
    cases = [
        ("1 symbol x 60 sessions", ["MSFT"], "2024-10-04", "2024-12-31"),
        ("1 symbol x 252 sessions", ["MSFT"], "2024-01-02", "2024-12-31"),
        ("1 session x 500 symbols", everyone, "2024-12-31", "2024-12-31"),
    ]
    out = tempfile.mkdtemp(prefix="quantlake-reads-")
    # duckdb 1.5's .arrow() is a RecordBatchReader: read it all, as a researcher would.
    duck = [sys.executable, "-c", "import duckdb, sys; t = duckdb.sql(sys.argv[1]).arrow().read_all(); assert t.num_rows > 0"]
    print(f"lake: {a.lake}; median of {a.runs} runs, one process each")
    print(f"python -c 'import duckdb' alone: {wall([sys.executable, '-c', 'import duckdb'], a.runs):.0f} ms")
    print("| read | quantlake bars | DuckDB glob (python) | glob / quantlake |")
    print("|---|---:|---:|---:|")
    for name, syms, start, end in cases:
        ql = [a.quantlake, "--lake", a.lake, "bars", "--symbols", ",".join(syms), "--start", start, "--end", end,
              "--format", "arrow", "--output", os.path.join(out, "bars.arrow")]
        quoted = ", ".join(f"'{s}'" for s in syms)
        sql = (f"SELECT {COLUMNS} FROM read_parquet('{glob}', hive_partitioning = true) WHERE symbol IN ({quoted}) "
               f"AND date BETWEEN DATE '{start}' AND DATE '{end}' AND is_rth ORDER BY symbol, ts")
        q, d = wall(ql, a.runs), wall(duck + [sql], a.runs)
        print(f"| {name} | {q:.0f} ms | {d:.0f} ms | {d / q:.1f}x |")


if __name__ == "__main__":
    main()
