"""Check that two published analytics files hold the same marts, row for row.

A performance change to the dbt models must not change a published number. Run a
pipeline on the same data before and after the change and compare the two files:

    uv run --locked python benchmarks/compare_marts.py BEFORE/analytics.duckdb AFTER/analytics.duckdb

Every table of every schema is compared: the same tables, the same columns in the same
order with the same types, and the same rows as multisets (EXCEPT ALL both ways, so row
order does not matter and duplicates count). Exit status 1, with each difference
listed, if anything differs. Tables whose rows record the run itself (provenance) are
compared by columns only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

# Rows that name the run (its id, times, the file's identity), not the data.
_RUN_TABLES = {"_joinedup_run"}


def _tables(con: duckdb.DuckDBPyConnection, alias: str) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns"
        " where table_catalog = ? order by table_schema, table_name, ordinal_position",
        [alias],
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, kind in rows:
        tables.setdefault(f"{schema}.{table}", []).append((column, kind))
    return tables


def compare(before: Path, after: Path) -> list[str]:
    """The differences between the two files' tables, one line each (empty if none)."""
    con = duckdb.connect()
    con.execute(f"attach '{before}' as before_db (read_only)")
    con.execute(f"attach '{after}' as after_db (read_only)")
    old, new = _tables(con, "before_db"), _tables(con, "after_db")
    problems = [f"{t}: only in {before}" for t in sorted(old.keys() - new.keys())]
    problems += [f"{t}: only in {after}" for t in sorted(new.keys() - old.keys())]
    for table in sorted(old.keys() & new.keys()):
        if old[table] != new[table]:
            problems.append(f"{table}: columns differ: {old[table]} vs {new[table]}")
            continue
        if table.split(".")[1] in _RUN_TABLES:
            continue
        counts = []
        for first, second in (("before_db", "after_db"), ("after_db", "before_db")):
            counts.append(
                con.sql(
                    f"select count(*) from (select * from {first}.{table}"
                    f" except all select * from {second}.{table})"
                ).fetchall()[0][0]
            )
        if counts != [0, 0]:
            problems.append(
                f"{table}: {counts[0]} rows only in {before}, {counts[1]} rows only in {after}"
            )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    problems = compare(args.before, args.after)
    for line in problems:
        print(line)
    if not problems:
        print(f"identical: every table of {args.before} and {args.after}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
