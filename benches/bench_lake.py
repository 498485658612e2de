"""What the Python benchmarks over the bench lake share: its flags, its symbols, and a median timer.

The lake is the one `cargo bench --bench reads` builds (default ~/.cache/quantlake/bench-reads/lake:
500 symbols x the 252 sessions of 2024, with features and labels).
"""

import argparse
import os
import statistics
import time

# The synthetic source's first 50 names (crates/quantlake/src/sources/synthetic.rs), then SYN0051..SYN0500.
SYMBOLS = (
    "AAPL MSFT AMZN NVDA GOOGL META BRK.B TSLA JPM V UNH XOM JNJ WMT MA PG HD CVX MRK ABBV KO PEP AVGO COST LLY "
    "ORCL BAC MCD CSCO TMO ACN ABT CRM DHR ADBE NFLX WFC DIS TXN NKE PM VZ INTC AMD QCOM IBM CAT GS SPY QQQ"
).split() + [f"SYN{i + 1:04}" for i in range(50, 500)]


def arguments():
    """--quantlake (the binary), --lake, --runs; `glob` added: the live curated minute files."""
    home = os.path.expanduser("~")
    target = os.environ.get("CARGO_TARGET_DIR", f"{home}/.cache/quantlake/target")
    p = argparse.ArgumentParser()
    p.add_argument("--quantlake", default=os.path.join(target, "release/quantlake"))
    p.add_argument("--lake", default=f"{home}/.cache/quantlake/bench-reads/lake")
    p.add_argument("--runs", type=int, default=11)
    a = p.parse_args()
    a.glob = os.path.join(a.lake, "curated/curated_1m_bars/*/*.parquet")
    return a


def median_ms(work, runs):
    """The median wall time of `runs` calls of `work`, in milliseconds, after one warm-up call."""
    work()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3
