"""Reads a dataset's live tree the way users do (DuckDB, pandas, polars), with a plain glob, and reports what each reader saw.

usage: read_live.py ROOT DATASET_DIR [--loop SECONDS --expect ROWS]
ROOT is a local folder or s3://bucket/prefix (endpoint from AWS_ENDPOINT_URL).
Prints one JSON object: per reader, rows, distinct (symbol, ts), and per-partition row counts.
With --loop, reads repeatedly for SECONDS with DuckDB and pandas and fails (exit 1) the first time a
reader sees a row count other than ROWS or a duplicated (symbol, ts): the glob-safety check during
concurrent commits.
"""
import argparse
import json
import os
import sys
import time

import duckdb
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.fs as pafs


def s3_fs():
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    scheme, host = endpoint.split("://", 1)
    return pafs.S3FileSystem(
        endpoint_override=host, scheme=scheme, access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], region=os.environ.get("AWS_REGION", "us-east-1"),
    )


def read_duckdb(root, folder):
    con = duckdb.connect()
    if root.startswith("s3://"):
        import glob
        import duckdb_extension_httpfs  # ships the extension binary, so nothing is downloaded
        ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), "extensions", "*", "httpfs.duckdb_extension"))[0]
        con.execute(f"LOAD '{ext}'")
        host = os.environ["AWS_ENDPOINT_URL"].split("://", 1)[1]
        con.execute(f"SET s3_endpoint='{host}'; SET s3_use_ssl=false; SET s3_url_style='path'; "
                    f"SET s3_access_key_id='test'; SET s3_secret_access_key='test'; SET s3_region='us-east-1'")
    glob = f"{root.rstrip('/')}/{folder}/*/*.parquet"
    rows, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT (symbol, ts)) FROM read_parquet('{glob}', hive_partitioning = true)").fetchone()
    parts = dict(con.execute(
        f"SELECT CAST(date AS VARCHAR), count(*) FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY 1").fetchall())
    return {"rows": rows, "distinct": distinct, "partitions": parts}


def read_pandas(root, folder):
    if root.startswith("s3://"):
        path = f"{root[len('s3://'):].rstrip('/')}/{folder}"
        df = pads.dataset(path, filesystem=s3_fs(), format="parquet", partitioning="hive").to_table().to_pandas()
    else:
        df = pd.read_parquet(os.path.join(root, folder))
    parts = {str(k): int(v) for k, v in df.groupby("date", observed=True).size().items()}
    return {"rows": len(df), "distinct": len(df[["symbol", "ts"]].drop_duplicates()), "partitions": parts}


def read_polars(root, folder):
    import polars as pl
    options = None
    if root.startswith("s3://"):
        options = {
            "aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"], "aws_allow_http": "true", "aws_region": "us-east-1",
            "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        }
    df = pl.scan_parquet(f"{root.rstrip('/')}/{folder}/*/*.parquet", hive_partitioning=True, storage_options=options).collect()
    parts = {str(k): int(v) for k, v in df.group_by("date").len().iter_rows()}
    return {"rows": df.height, "distinct": df.select(["symbol", "ts"]).unique().height, "partitions": parts}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("folder")
    ap.add_argument("--loop", type=float, default=0)
    ap.add_argument("--expect", type=int, default=-1)
    args = ap.parse_args()
    readers = {"duckdb": read_duckdb, "pandas": read_pandas, "polars": read_polars}
    if args.loop <= 0:
        print(json.dumps({name: f(args.root, args.folder) for name, f in readers.items()}))
        return
    # polars is left out of the loop: its scan reads each file's footer when planning and its pages when
    # executing, opening the path twice, so a commit that replaces the file in between makes the read
    # fail (README, "Reading the lake"). DuckDB and pyarrow read each file through one open handle.
    del readers["polars"]
    deadline = time.monotonic() + args.loop
    reads = 0
    while time.monotonic() < deadline and reads < 10_000:
        for name, f in readers.items():
            seen = f(args.root, args.folder)
            reads += 1
            if seen["rows"] != args.expect or seen["distinct"] != seen["rows"]:
                print(json.dumps({"failed_reader": name, "after_reads": reads, "seen": seen, "expected": args.expect}))
                sys.exit(1)
    print(json.dumps({"reads": reads, "ok": True}))


if __name__ == "__main__":
    main()
