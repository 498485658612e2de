"""The training set a researcher writes by hand: a lake's live feature and label files joined on
(symbol, ts) in polars, rows with a target whose label ends by the window's last close, to Parquet.
Usage: training_set_polars.py LAKE START END OUT.parquet"""
import sys
import polars as pl

lake, start, end, out = sys.argv[1:5]
window = pl.col("date").is_between(pl.lit(start).str.to_date(), pl.lit(end).str.to_date())
labels = pl.scan_parquet(f"{lake}/features/labels_fwd_ret_v1/*/part.parquet", hive_partitioning=True).filter(window)
features = pl.scan_parquet(f"{lake}/features/features_price_1m_v1/*/part.parquet", hive_partitioning=True).filter(window)
last_close = labels.select(pl.col("fwd_ret_15m_end").max())
labels = labels.filter(pl.col("fwd_ret_15m").is_not_null() & (pl.col("fwd_ret_15m_end") <= last_close.collect().item()))
joined = labels.select("symbol", "ts", "decision_time", pl.col("fwd_ret_15m_end").alias("label_end"), pl.col("fwd_ret_15m").alias("target"))
joined = joined.join(features.drop("date", "minute_idx"), on=["symbol", "ts"], how="inner")
joined.sink_parquet(out)
