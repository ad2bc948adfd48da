#!/usr/bin/env python3
"""The floor of `patron bench segments`: DuckDB counting the same segment over the same members.

Reads the members' fields from a CSV (header first), loads them into an in-memory DuckDB table,
and runs the count query `--runs` times. Prints one JSON object: load time, and the median and
fastest query times in milliseconds. Installs duckdb from PyPI when it is missing.
"""
import argparse
import importlib
import json
import statistics
import subprocess
import sys
import time


def duckdb_module():
    try:
        return importlib.import_module("duckdb")
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "duckdb"],
            check=True,
        )
        return importlib.import_module("duckdb")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--where", required=True, help="the WHERE clause over the table `members`")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    duckdb = duckdb_module()
    connection = duckdb.connect(":memory:")
    started = time.perf_counter()
    connection.execute(f"CREATE TABLE members AS SELECT * FROM read_csv_auto('{args.csv}', header = true)")
    load = time.perf_counter() - started
    query = f"SELECT count(*) FROM members WHERE {args.where}"
    count = connection.execute(query).fetchone()[0]
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        connection.execute(query).fetchone()
        times.append((time.perf_counter() - started) * 1000.0)
    print(json.dumps({
        "version": duckdb.__version__,
        "threads": connection.execute("SELECT current_setting('threads')").fetchone()[0],
        "load_s": load,
        "count": count,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
    }))


if __name__ == "__main__":
    main()
