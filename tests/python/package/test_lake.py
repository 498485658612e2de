"""`import quantlake` against the command line on the same lake (tests/lake/python_package.rs makes the
lake and runs this file): the same rows bit for bit, Arrow buffers handed over without a copy, errors
as exceptions with the CLI's message and exit code, and calls from several threads at once.

Environment: QUANTLAKE_BIN (the quantlake binary), QUANTLAKE_LAKE (the lake's URL), QUANTLAKE_CONFIG
(the config both read) and, for a lake on the S3 test server, its AWS_* variables.
"""

import _thread
import ast
import importlib.metadata
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quantlake as ql

LAKE = os.environ["QUANTLAKE_LAKE"]
CONFIG = os.environ["QUANTLAKE_CONFIG"]


def cli(*args: str, codes=(0, 1), lake: str = LAKE) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [os.environ["QUANTLAKE_BIN"], "--lake", lake, "--config", CONFIG, *args], capture_output=True, text=True
    )
    assert done.returncode in codes, (done.returncode, done.stderr)
    return done


def cli_rows(*args: str, format_flag: bool = True) -> pa.Table:
    """The rows the command line writes for `args` to a Parquet file."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "rows.parquet")
        cli(*args, *(["--format", "parquet"] if format_flag else []), "--output", out)
        return pq.read_table(out)


def cli_json(*args: str):
    return json.loads(cli("--json", *args).stdout)


@pytest.fixture(scope="module")
def lake() -> ql.Lake:
    return ql.Lake(LAKE, config=CONFIG)


def same_rows(ours: pa.Table, theirs: pa.Table) -> None:
    # The CLI's Parquet file is the same Arrow schema written out (its metadata aside).
    assert ours.schema.remove_metadata() == theirs.schema.remove_metadata()
    assert ours.equals(theirs.cast(ours.schema))


@pytest.mark.parametrize(
    "frequency,adjust", [("1m", "none"), ("5m", "none"), ("1d", "splits")]
)
def test_bars_are_the_command_lines(lake: ql.Lake, frequency: str, adjust: str) -> None:
    bars = lake.bars(["AAA", "BBB"], "2024-01-02", "2024-01-05", frequency=frequency, adjust=adjust)
    theirs = cli_rows(
        "bars", "--symbols", "AAA,BBB", "--start", "2024-01-02", "--end", "2024-01-05",
        "--frequency", frequency, "--adjust", adjust,
    )
    ours = pa.table(bars)
    assert ours.num_rows == len(bars) == theirs.num_rows > 0
    same_rows(ours, theirs)
    assert bars.warnings == []


def test_a_symbol_without_bars_is_a_warning_not_silence(lake: ql.Lake) -> None:
    with pytest.warns(ql.QuantlakeWarning, match="no bars between 2024-01-03 and 2024-01-03 for NOPE") as told:
        bars = lake.bars(["AAA", "NOPE"], "2024-01-03")
    theirs = cli("bars", "--symbols", "AAA,NOPE", "--start", "2024-01-03", codes=(1,))
    assert bars.warnings == [str(told[0].message)]
    assert f"warning: {bars.warnings[0]}" in theirs.stderr, "the command line's words"
    assert told[0].filename == __file__, "the warning points at the caller's line"
    assert ql.QuantlakeWarning.exit_code == 1
    assert set(pa.table(bars).column("symbol").to_pylist()) == {"AAA"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ql.QuantlakeWarning)
        with pytest.raises(ql.QuantlakeWarning):
            lake.bars(["NOPE"], "2024-01-03")
    with pytest.warns(ql.QuantlakeWarning, match="no training rows .* for NOPE") as told:
        ts = lake.training_set("fwd_ret_15m", "2024-01-03", "2024-01-04", symbols=["AAA", "NOPE"], universe="all")
    assert ts.warnings == [str(told[0].message)] and len(ts) > 0


def test_query_is_the_command_lines(lake: ql.Lake) -> None:
    sql = "SELECT symbol, date, count(*) AS bars, sum(volume) AS volume FROM curated_1m_bars GROUP BY ALL ORDER BY ALL"
    ours = pa.table(lake.query(sql))
    same_rows(ours, cli_rows("query", sql))
    first = pa.table(lake.query("SELECT count(*) AS n FROM curated_1m_bars", as_of="curated_1m_bars@1"))
    assert first.column("n").to_pylist() == cli_rows(
        "query", "--as-of", "curated_1m_bars@1", "SELECT count(*) AS n FROM curated_1m_bars"
    ).column("n").to_pylist()
    none = pa.table(lake.query("SELECT symbol, date FROM curated_1m_bars WHERE false"))
    assert none.num_rows == 0 and none.column_names == ["symbol", "date"], "no rows still has its columns"


def test_the_consumer_gets_the_librarys_buffers(lake: ql.Lake) -> None:
    bars = lake.bars(["AAA", "BBB"], "2024-01-02", "2024-01-05")
    # pyarrow imports each exported batch: its value buffers (after the validity bitmap) are the ones
    # the library made, not copies.
    chunks = pa.table(bars).column("close").chunks
    ours = [addresses[0] for addresses in bars.buffer_addresses("close")]
    assert [c.buffers()[1].address for c in chunks] == ours
    # polars keeps the batches as chunks over the same buffers: exported back to pyarrow, its
    # chunks' addresses are the library's.
    frame = pl.DataFrame(bars)
    assert frame.height == len(bars) and frame["close"].n_chunks() == len(ours)
    assert [c.buffers()[1].address for c in frame.to_arrow().column("close").chunks] == ours
    assert bars.to_pandas().shape == (len(bars), len(bars.column_names))


def same_error(raised: pytest.ExceptionInfo, *args: str, lake: str = LAKE) -> None:
    """The command line, given the same call, exits with the exception's exit code and message."""
    theirs = cli(*args, codes=(raised.value.exit_code,), lake=lake)
    assert str(raised.value) in theirs.stderr, (str(raised.value), theirs.stderr)


def test_errors_are_the_command_lines_by_exit_code_class(lake: ql.Lake, tmp_path) -> None:
    # Bad input: an InvalidInputError, also a ValueError.
    with pytest.raises(ValueError, match="start '2024-13-01' is not a date") as bad:
        lake.bars(["AAA"], "2024-13-01")
    assert type(bad.value) is ql.InvalidInputError and bad.value.exit_code == 3
    with pytest.raises(ql.InvalidInputError, match="frequency") as freq:
        lake.bars(["AAA"], "2024-01-02", frequency="7m")
    same_error(freq, "bars", "--symbols", "AAA", "--start", "2024-01-02", "--frequency", "7m")
    with pytest.raises(ql.InvalidInputError, match="unknown dataset 'curated_1m_barz'; did you mean") as unknown:
        lake.snapshots("curated_1m_barz")
    same_error(unknown, "snapshots", "curated_1m_barz")
    with pytest.raises(ql.InvalidInputError, match="no-such-tag") as as_of:
        lake.bars(["AAA"], "2024-01-02", as_of="no-such-tag")
    same_error(as_of, "bars", "--symbols", "AAA", "--start", "2024-01-02", "--as-of", "no-such-tag")
    # A statement DuckDB refuses: the class of every other error.
    with pytest.raises(ql.QuantlakeError, match="no_such_table") as sql:
        lake.query("SELECT * FROM no_such_table")
    assert type(sql.value) is ql.QuantlakeError and sql.value.exit_code == 3
    # No lake there.
    nowhere = str(tmp_path / "nowhere")
    with pytest.raises(ql.LakeUnavailableError, match="no lake at") as absent:
        ql.Lake(nowhere, config=CONFIG).snapshots("curated_1m_bars")
    same_error(absent, "snapshots", "curated_1m_bars", lake=nowhere)


@pytest.mark.skipif(LAKE.startswith("s3://"), reason="damages a copy of a local lake")
def test_a_damaged_lake_is_critical(tmp_path) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(LAKE, copy)
    # Every stored version of one curated session, gone: the read needs one of them.
    versions = [
        p for p in copy.rglob("*.parquet")
        if {"_versions", "curated_1m_bars", "date=2024-01-03"} <= set(p.relative_to(copy).parts)
    ]
    assert versions, "the layout changed: where are curated_1m_bars' version files?"
    for v in versions:
        v.unlink()
    with pytest.raises(ql.LakeDamagedError, match="missing") as damaged:
        ql.Lake(str(copy), config=CONFIG).bars(["AAA"], "2024-01-03")
    assert damaged.value.exit_code == 2 and isinstance(damaged.value, ql.QuantlakeError)
    same_error(damaged, "bars", "--symbols", "AAA", "--start", "2024-01-03", lake=str(copy))


@pytest.fixture
def ctrl_c():
    """Python's own SIGINT handler, whatever this process inherited (a background job ignores SIGINT,
    and Python then installs none): `_thread.interrupt_main` is Ctrl-C."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield _thread.interrupt_main
    signal.signal(signal.SIGINT, inherited)


def test_ctrl_c_stops_a_query_and_the_lake_goes_on(lake: ql.Lake, ctrl_c) -> None:
    # Minutes of work unless DuckDB is interrupted (1.6e11 products summed).
    endless = "SELECT sum((a.range * b.range) % 7) AS s FROM range(400000) a, range(400000) b"
    timer = threading.Timer(0.5, ctrl_c)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        lake.query(endless)
    stopped_after = time.monotonic() - started
    timer.join()
    assert stopped_after < 20, f"the query ran {stopped_after:.1f} s after Ctrl-C: it was not interrupted"
    assert pa.table(lake.query("SELECT count(*) AS n FROM curated_1m_bars")).column("n")[0].as_py() > 0


def test_ctrl_c_in_a_progress_callback_stops_the_call(lake: ql.Lake) -> None:
    def interrupted(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lake.training_set("fwd_ret_15m", "2024-01-03", "2024-01-05", progress=interrupted)
    assert len(lake.training_set("fwd_ret_15m", "2024-01-03", "2024-01-05")) > 0


def test_threads_share_a_lake(lake: ql.Lake) -> None:
    def read(i: int) -> int:
        symbol = ["AAA", "BBB"][i % 2]
        return len(lake.bars([symbol], "2024-01-02", "2024-01-05"))

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(read, range(16)))
    assert counts == [read(i) for i in range(16)]


def test_training_sets_are_the_command_lines(lake: ql.Lake) -> None:
    args = ("--label", "fwd_ret_15m", "--start", "2024-01-03", "--end", "2024-01-05", "--embargo", "1h")
    ts = lake.training_set("fwd_ret_15m", "2024-01-03", "2024-01-05", embargo="1h")
    same_rows(pa.table(ts), cli_rows("training-set", *args, format_flag=False))
    with tempfile.TemporaryDirectory() as d:
        theirs = cli_json("training-set", *args, "--output", os.path.join(d, "set.parquet"))
    for key in ("target", "feature_columns", "rows", "candidate_rows", "rows_purged", "inputs", "leakage_check"):
        assert ts.lineage[key] == theirs[key], key
    assert ts.target == "fwd_ret_15m"
    assert ts.feature_columns[0] == "ret_1" and set(ts.feature_columns) <= set(ts.column_names)
    lineage = ts.lineage
    assert lineage["rows"] == len(ts) > 0
    assert lineage["embargo_seconds"] == 3600
    left_out = ts.rows_left_out
    assert lineage["candidate_rows"] == lineage["rows"] + sum(left_out.values()), left_out
    assert left_out["purged"] > 0, "the embargo purges the last hour's labels"
    with pytest.raises(ql.QuantlakeError, match="label"):
        lake.training_set("no_such_label", "2024-01-03", "2024-01-05")


def test_inference_sets_are_the_command_lines(lake: ql.Lake) -> None:
    at = "2024-01-04T15:00:00Z"
    ours = pa.table(lake.inference_set(at)).to_pylist()
    theirs = cli_json("inference-set", "--at", at)
    assert [r["symbol"] for r in ours] == [r["symbol"] for r in theirs] == ["AAA", "BBB"]
    assert [r["ret_1"] for r in ours] == [r["ret_1"] for r in theirs]


def test_health_and_snapshots_are_the_command_lines(lake: ql.Lake) -> None:
    ours = lake.health("curated_1m_bars", as_of_date="2024-01-05")
    theirs = cli_json("health", "--dataset", "curated_1m_bars", "--as-of-date", "2024-01-05")
    assert ours["status"] == theirs["status"]
    assert [c["name"] for c in ours["checks"]] == [c["name"] for c in theirs["checks"]]
    assert lake.snapshots("curated_1m_bars") == cli_json("snapshots", "curated_1m_bars")


def test_quality_and_jobs_are_the_command_lines(lake: ql.Lake) -> None:
    ours = lake.dq_summary("curated_1m_bars", "2024-01-02", "2024-01-05")
    assert ours == cli_json("dq", "summary", "--dataset", "curated_1m_bars", "--start", "2024-01-02", "--end", "2024-01-05")
    assert ours["total"]["present_bars"] > 0
    jobs = lake.jobs()
    assert jobs == cli_json("jobs")
    assert {"ingest", "curate", "features"} <= {j["kind"] for j in jobs}
    assert all(j["kind"] == "curate" for j in lake.jobs(kind="curate"))
    with pytest.raises(ql.QuantlakeError, match="since"):
        lake.jobs(since="yesterday")


def test_tags_read_back_as_the_command_lines(lake: ql.Lake) -> None:
    lake.tag("py-cut", all=True, message="from python")
    sql = "SELECT count(*) AS n FROM curated_1m_bars"
    assert pa.table(lake.query(sql, as_of="py-cut")).to_pylist() == cli_rows("query", "--as-of", "py-cut", sql).to_pylist()
    lake.tag("py-curated", dataset="curated_1m_bars")
    assert lake.snapshots("curated_1m_bars")[0]["tags"] == ["py-curated"]
    with pytest.raises(ql.QuantlakeError, match="one of them"):
        lake.tag("both", dataset="curated_1m_bars", all=True)


def test_the_universe_of_a_date_is_the_command_lines(lake: ql.Lake, tmp_path) -> None:
    # Last: the membership it imports makes the default universe's members the sets' rows.
    with pytest.raises(ql.QuantlakeError, match="no membership of universe 'default'"):
        lake.universe("2024-01-03")
    members = tmp_path / "members.csv"
    members.write_text("ticker,valid_from,valid_to,delisted\nAAA,2020-01-02,,\nBBB,2020-01-02,,2024-01-03\n")
    cli("securities", "import", "--source", "csv", "--path", str(members), "--universe", "default")
    ours = lake.universe("2024-01-04")
    assert ours == cli_json("universe", "show", "--at", "2024-01-04")["members"]
    assert [m["ticker"] for m in ours] == ["AAA"], "BBB was delisted on 2024-01-03"
    assert sorted(m["ticker"] for m in lake.universe("2024-01-03")) == ["AAA", "BBB"], "a member on its last day"


def test_a_training_set_reports_its_progress(lake: ql.Lake) -> None:
    seen = []
    ts = lake.training_set("fwd_ret_15m", "2024-01-03", "2024-01-05", progress=lambda done, total: seen.append((done, total)))
    assert seen, "the callback is told as sessions are joined"
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == seen[-1][1] > 0, seen

    def broken(done, total):
        raise RuntimeError("a callback that fails does not stop the call")

    reported = []
    hook, sys.unraisablehook = sys.unraisablehook, lambda u: reported.append(u.exc_value)
    try:
        assert len(lake.training_set("fwd_ret_15m", "2024-01-03", "2024-01-05", progress=broken)) == len(ts)
    finally:
        sys.unraisablehook = hook
    assert reported and all(isinstance(e, RuntimeError) for e in reported), "reported, as Python reports them"


def stub() -> ast.Module:
    """The installed type stubs (the wheel ships python/quantlake.pyi as the package's stubs)."""
    files = [f for f in importlib.metadata.files("quantlake") if f.name.endswith(".pyi")]
    assert len(files) == 1, files
    installed = files[0].read_text()
    assert installed == (Path(__file__).parents[3] / "python" / "quantlake.pyi").read_text(), "the wheel is stale"
    return ast.parse(installed)


def test_stubs_and_docstrings_match_the_module() -> None:
    wheel = importlib.metadata.distribution("quantlake").read_text("WHEEL")
    assert "Tag: cp39-abi3-" in wheel, wheel
    assert any(f.name == "py.typed" for f in importlib.metadata.files("quantlake"))
    stubbed = set()
    for node in stub().body:
        if isinstance(node, ast.ClassDef):
            cls = getattr(ql, node.name)
            stubbed.add(node.name)
            assert inspect.getdoc(cls), node.name
            for member in node.body:
                if not isinstance(member, ast.FunctionDef) or member.name.startswith("__"):
                    continue
                runtime = getattr(cls, member.name)
                assert inspect.getdoc(runtime), f"{node.name}.{member.name} has no docstring"
                if not isinstance(runtime, property) and not inspect.isgetsetdescriptor(runtime):
                    ours = [a.arg for a in member.args.args + member.args.kwonlyargs]
                    theirs = list(inspect.signature(runtime).parameters)
                    assert ours == theirs, (node.name, member.name, ours, theirs)
            public = {n for n in vars(cls) if not n.startswith("_")}
            stubbed_members = {m.name for m in node.body if isinstance(m, ast.FunctionDef)}
            assert public <= stubbed_members | {"exit_code"}, (node.name, public - stubbed_members)
    exported = {n for n in dir(ql) if not n.startswith("_") and not inspect.ismodule(getattr(ql, n))}
    assert exported == stubbed, exported ^ stubbed
    assert ql.__doc__ and ql.__version__
    assert "sessions done" in ql.Lake.training_set.__doc__ and "embargo:" in ql.Lake.training_set.__doc__
