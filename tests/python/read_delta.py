"""Reads every version of datasets' Delta tables with deltalake, polars and DuckDB, by version and by
time, and compares each with quantlake's own read of that snapshot, row for row.

usage: read_delta.py QUANTLAKE_BIN LAKE CONFIG DATASET...
LAKE is a local folder or s3://bucket/prefix (endpoint and keys from the AWS_* variables). The table
of each dataset comes from `quantlake delta-path`; the readers are given nothing else.
Prints one JSON object: per dataset, the versions read and the rows of each; exits 1 with the first
difference on stderr.
"""
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import tempfile

import deltalake
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from read_live import s3_fs  # the S3 test server as pyarrow reaches it

BIN, LAKE, CONFIG = sys.argv[1:4]
DATASETS = sys.argv[4:]
S3 = LAKE.startswith("s3://")


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def quantlake(*args):
    out = subprocess.run([BIN, "--lake", LAKE, "--config", CONFIG, *args], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"quantlake {' '.join(args)}: exit {out.returncode}: {out.stderr}")
    return out.stdout


def storage_options():
    if not S3:
        return None
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"], "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    }


def extension(package, name):
    module = __import__(package)
    return glob.glob(os.path.join(os.path.dirname(module.__file__), "extensions", "*", f"{name}.duckdb_extension"))[0]


def duck():
    # The extensions ship in their PyPI packages, so nothing is downloaded.
    con = duckdb.connect()
    con.execute(f"LOAD '{extension('duckdb_extension_delta', 'delta')}'")
    if S3:
        con.execute(f"LOAD '{extension('duckdb_extension_httpfs', 'httpfs')}'")
        host = os.environ["AWS_ENDPOINT_URL"].split("://", 1)[1]
        con.execute(f"CREATE SECRET (TYPE s3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', ENDPOINT '{host}', "
                    "URL_STYLE 'path', USE_SSL false)")
    return con


def rows(table, columns):
    """A table's rows as sorted tuples of the given columns (timestamps as UTC microseconds)."""
    table = table.select(columns)
    cols = []
    for c in columns:
        col = table.column(c)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("us", "UTC")).cast(pa.int64())
        cols.append(col.to_pylist())
    return sorted(zip(*cols), key=repr)


def same(what, expected, got, columns):
    if set(columns) - set(got.column_names):
        fail(f"{what}: columns {sorted(set(columns) - set(got.column_names))} missing from {got.column_names}")
    # A column the snapshot's schema has but none of its files (a restore to files written before a
    # schema evolution): quantlake's SQL view leaves it out, Delta readers give nulls.
    for c in set(columns) - set(expected.column_names):
        if got.column(c).null_count != got.num_rows:
            fail(f"{what}: column {c} has values, but no file of the snapshot has the column")
    columns = [c for c in columns if c in expected.column_names]
    a, b = rows(expected, columns), rows(got, columns)
    if a != b:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        fail(f"{what}: {len(b)} rows, quantlake has {len(a)}; first difference at row {first}: "
             f"{b[first] if first < len(b) else None} vs {a[first] if first < len(a) else None}")


def quantlake_read(dataset, spec, tmp):
    """quantlake's rows of a snapshot."""
    path = os.path.join(tmp, f"{dataset}-{spec}.parquet".replace(":", "_"))
    quantlake("query", f"SELECT * FROM {dataset}", "--as-of", f"{dataset}@{spec}", "--format", "parquet", "--output", path)
    return pq.read_table(path)


def by_time(dataset, table, con, stamps, v, at_ms, expected, columns, tmp):
    at = dt.datetime.fromtimestamp(at_ms / 1000, dt.timezone.utc)
    spec = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    same(f"{dataset} at {spec} (version {v}), quantlake --as-of a time", expected, quantlake_read(dataset, spec, tmp), expected.column_names)
    # The in-commit timestamps, as any reader of the log sees them: the commit files' first action,
    # here read with pyarrow, and with DuckDB.
    resolved = max(version for version, stamp in stamps.items() if stamp <= at_ms)
    if resolved != v:
        fail(f"{dataset} at {spec}: the log's in-commit timestamps give version {resolved}, not {v}")
    logged = con.execute(
        f"SELECT max(CAST(regexp_extract(filename, '(\\d+)\\.json$', 1) AS BIGINT)) FROM "
        f"read_json('{table}/_delta_log/*.json', filename = true, format = 'newline_delimited', "
        f"columns = {{commitInfo: 'STRUCT(inCommitTimestamp BIGINT)'}}) "
        f"WHERE commitInfo.inCommitTimestamp <= {at_ms}").fetchone()[0]
    if logged != v:
        fail(f"{dataset} at {spec}: DuckDB over the log's in-commit timestamps gives version {logged}, not {v}")
    if not S3:
        # delta-rs travels by the commit files' times, which quantlake sets on local disk.
        d = deltalake.DeltaTable(table)
        d.load_as_version(at)
        if d.version() != v:
            fail(f"{dataset} at {spec}: deltalake's load_as_version gives version {d.version()}, not {v}")
        same(f"{dataset} at {spec}, polars by time", expected, pl.read_delta(table, version=at).to_arrow(), columns)


def log_stamps(table):
    """Each version's in-commit timestamp, from the commit files in the table's `_delta_log/`."""
    if S3:
        fs, root = s3_fs(), table[len("s3://"):] + "/_delta_log"
    else:
        fs, root = pafs.LocalFileSystem(), table + "/_delta_log"
    stamps = {}
    for info in fs.get_file_info(pafs.FileSelector(root)):
        name = info.base_name
        if name.endswith(".json") and name[:-5].isdigit():
            with fs.open_input_stream(info.path) as f:
                first = json.loads(f.read().split(b"\n", 1)[0])
            stamps[int(name[:-5])] = first["commitInfo"]["inCommitTimestamp"]
    return stamps


def check(dataset, con, tmp):
    table = quantlake("delta-path", dataset).strip()
    stamps = log_stamps(table)
    versions = sorted(stamps)
    if versions != list(range(versions[0], versions[-1] + 1)):
        fail(f"{dataset}: the log's versions are not one unbroken run: {versions}")
    report = {}
    for i, v in enumerate(versions):
        expected = quantlake_read(dataset, v, tmp)
        dl = deltalake.DeltaTable(table, version=v, storage_options=storage_options()).to_pyarrow_table()
        columns = dl.column_names  # the partition column too: quantlake's SQL view has it from the folders
        same(f"{dataset} version {v}, deltalake", expected, dl, columns)
        same(f"{dataset} version {v}, polars", expected, pl.read_delta(table, version=v, storage_options=storage_options()).to_arrow(), columns)
        same(f"{dataset} version {v}, DuckDB", expected, con.execute(f"FROM delta_scan('{table}', version => {v})").arrow().read_all(), columns)

        # By time: halfway to the next version, or a second after the last one. Not for version 0, the
        # empty table: no snapshot was committed at its time.
        if v > 0:
            later = stamps[versions[i + 1]] if i + 1 < len(versions) else stamps[v] + 2000
            by_time(dataset, table, con, stamps, v, (stamps[v] + later) // 2, expected, columns, tmp)
        report[v] = expected.num_rows
    return {"table": table, "versions": report, "partition_columns": deltalake.DeltaTable(table, storage_options=storage_options()).metadata().partition_columns}


def main():
    con = duck()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in DATASETS:
            out[dataset] = check(dataset, con, tmp)
    print(json.dumps(out))


main()
