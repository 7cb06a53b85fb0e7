"""Reads a `capture --out-dir` tree the way its users do: DuckDB and polars over
`syn/**/*.parquet` with hive partitioning. Prints one JSON object of counts.

usage: check_tree.py DIR [NAME_SUBSTRING]
  counts every SYN file's rows, or only those of files whose name contains NAME_SUBSTRING
  (e.g. `-recovered`), with both engines, plus the flow rows and the host partition values.
"""

import json
import sys

import duckdb
import polars as pl

tree = sys.argv[1]
only = sys.argv[2] if len(sys.argv) > 2 else ""
syn = f"{tree}/syn/**/*.parquet"
con = duckdb.connect()
where = f"WHERE filename LIKE '%{only}%'" if only else ""
src = f"read_parquet('{syn}', hive_partitioning = true, filename = true)"
duck = con.execute(f"SELECT count(*) FROM {src} {where}").fetchone()[0]
hosts = sorted(r[0] for r in con.execute(f"SELECT DISTINCT host FROM {src}").fetchall())
flows = con.execute(
    f"SELECT count(*) FROM read_parquet('{tree}/flows/**/*.parquet', hive_partitioning = true)"
).fetchone()[0]
lazy = pl.scan_parquet(syn, hive_partitioning=True, include_file_paths="file")
if only:
    lazy = lazy.filter(pl.col("file").str.contains(only, literal=True))
polars_rows = lazy.select(pl.len()).collect().item()
print(json.dumps({"duckdb": duck, "polars": polars_rows, "hosts": hosts, "flows": flows}))
