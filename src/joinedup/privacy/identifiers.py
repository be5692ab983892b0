"""Identifier-shaped values in de-identified tables: an identifier under another column name.

:mod:`.scan` finds the landing zone's own identifiers in outputs; this finds values
*shaped* like identifiers - NHS numbers (with a valid check digit), full postcodes,
full dates, personal names - in any text column, whatever they are. A pseudonymised
column full of them means an identifier crossed into the de-identified zone renamed
(``case_ref`` holding NHS numbers, say). The pseudonymised zone's quality gate
(:mod:`joinedup.quality.pseudonymised`, suite ``pseudonymised.identifier_scan``) sets
the share it tolerates.

Only shares are kept, never values, so the result can be shown anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from joinedup.nhs_number import is_valid

NHS_NUMBER = r"^\d{3} ?\d{3} ?\d{4}$"
POSTCODE = r"^[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}$"
FULL_DATE = r"(^|\D)(19|20)\d{2}[-/]?(0[1-9]|1[0-2])[-/]?(0[1-9]|[12]\d|3[01])($|\D)"
NAME = r"^[A-Z][a-z'’-]+( [A-Z][a-z'’-]+)*$"
# A code list (service types, routes of access) has a few distinct capitalised values; a
# column of names has many.
NAME_MIN_DISTINCT = 50
KINDS = ("nhs_number", "postcode", "full_date", "name")


def shares(counts: pl.DataFrame) -> dict[str, float]:
    """Shares of identifier-like values, from a column's distinct values and their rows.

    ``counts`` has one row per distinct ``value`` with its ``rows``. Each distinct value
    is tested once and weighs as many rows as hold it: code lists (a few thousand SNOMED
    codes over millions of events) cost their distinct values.
    """
    n = int(counts["rows"].sum())
    if n == 0:
        return dict.fromkeys(KINDS, 0.0)
    values = pl.col("value")

    def rows(regex: str) -> int:
        return int(counts.filter(values.str.contains(regex))["rows"].sum())

    ten_digits = counts.filter(values.str.contains(NHS_NUMBER))
    nhs = sum(r for v, r in ten_digits.iter_rows() if is_valid(v.replace(" ", "")))
    names = rows(NAME) if counts.height >= NAME_MIN_DISTINCT else 0
    return {
        "nhs_number": nhs / n,
        "postcode": rows(POSTCODE) / n,
        "full_date": rows(FULL_DATE) / n,
        "name": names / n,
    }


def identifier_scan(tables: Mapping[str, Path]) -> pl.DataFrame:
    """One row per text column of each table (name -> parquet file): shares of identifier-like
    values (``<kind>_share``), and how many values the column has.

    Token and Bloom filter columns are skipped: their format checks would fail first if
    they held anything else. Every column's distinct values are counted at once, in
    parallel.
    """
    where: list[tuple[str, str]] = []
    queries: list[pl.LazyFrame] = []
    for table, path in tables.items():
        schema = pl.read_parquet_schema(path)
        for column, dtype in schema.items():
            if dtype != pl.String or column.endswith(("_token", "_bloom")):
                continue
            where.append((table, column))
            queries.append(
                pl.scan_parquet(path)
                .select(pl.col(column).alias("value"))
                .drop_nulls()
                .group_by("value")
                .agg(pl.len().alias("rows"))
            )
    rows = []
    for (table, column), counts in zip(where, pl.collect_all(queries), strict=True):
        rows.append(
            {
                "table": table,
                "column": column,
                "values": int(counts["rows"].sum()),
                **{f"{k}_share": round(v, 6) for k, v in shares(counts).items()},
            }
        )
    return pl.DataFrame(rows)
