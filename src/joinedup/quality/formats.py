"""Format scans: every token, encoding, person id and birth month column, over whole tables.

Past landing, each such column has one format (:data:`FORMAT_WHY`). The pseudonymised
and linked gates each have a ``formats`` suite whose batch is a :func:`format_scan`:
one row per (table, column) with the number of values *not* in the column's format,
counted over the whole table with Polars regexes. At a million people GX's per-row
regexes in pandas over 512-character Bloom filters took most of the gates' time.

The same scan tells :func:`mask_nonconforming` what to mask in the tables GX sees, so a
value out of format (which may be an identifier) never reaches a result or Data Docs.
:class:`FormatScan` runs the scan once per gate for both uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from joinedup.deidentify.encodings import BLOOM_BITS
from joinedup.quality.frames import DISTINCT_SAMPLE, mostly_distinct
from joinedup.quality.rules import CRITICAL, Suite, expect

TOKEN = r"^[0-9a-f]{64}$"  # keyed HMAC-SHA256, lowercase hex
PERSON_ID = r"^[0-9a-f]{16}$"
BLOOM = rf"^[01]{{{BLOOM_BITS}}}$"
BIRTH_MONTH = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$"

FORMAT_WHY = {
    TOKEN: "tokens are keyed HMAC-SHA256 in lowercase hex",
    PERSON_ID: "person ids are 16 hex digits of a keyed hash",
    BLOOM: f"Bloom filters are {BLOOM_BITS} bits written as 0/1",
    BIRTH_MONTH: "year and month only: a day of birth identifies",
}

NOT_IN_FORMAT = "(not in format #"
# Format-checked columns whose values GX still reads (not null, unique keys).
KEY_COLUMNS = frozenset({"record_token", "spell_token", "attendance_token", "person_id"})


def formats_suite(zone: str, formats: dict[str, dict[str, str]]) -> Suite:
    """The zone's ``formats`` suite: every format-checked column scanned, none out of format."""
    checked = sum(len(columns) for columns in formats.values())
    return Suite(
        f"{zone}.formats",
        zone,
        "Every token, Bloom filter, person id and birth month column of the zone, scanned "
        "over whole tables: how many values are not in the column's format. A value in "
        "another format is not what the pipeline writes and may be an identifier, so only "
        "counts are kept, never values. Formats: "
        + "; ".join(f"{regex} ({why})" for regex, why in FORMAT_WHY.items()),
        [
            expect(
                "ExpectTableRowCountToEqual",
                CRITICAL,
                "one row per format-checked column: a missing row is a column not scanned",
                value=checked,
            ),
            expect(
                "ExpectColumnValuesToBeBetween",
                CRITICAL,
                "values not in the column's format (a missing column counts all its rows)",
                column="nonconforming",
                min_value=0,
                max_value=0,
            ),
        ],
        index_columns=["table", "column", "nonconforming"],
    )


def _out_of_format(column: str, regex: str, *, distinct: bool = False) -> pl.Expr:
    """How many values (``distinct``: distinct values) of ``column`` do not match ``regex``."""
    values = pl.col(column).cast(pl.String)
    if distinct:
        values = values.drop_nulls().unique()
    return (~values.str.contains(regex)).sum().alias(column)


def format_scan(tables: dict[str, Path], formats: dict[str, dict[str, str]]) -> pl.DataFrame:
    """Per (table, column): non-null values, and how many are not in the column's format.

    Whole tables, vectorised in Polars; a missing column counts all the table's rows as
    nonconforming. Where values repeat (Bloom filters and most tokens: one per name, date
    of birth or postcode; a sample of the table's first rows says which) each distinct
    value is tested once, and rows are counted only in a column that has a value out of
    format. Values are never kept.
    """
    rows = []
    for name, columns in formats.items():
        path = tables[name]
        present = [c for c in columns if c in pl.read_parquet_schema(path)]
        sample = pl.read_parquet(path, columns=present, n_rows=DISTINCT_SAMPLE)
        repeats = {c for c in present if not mostly_distinct(sample[c])}
        counts = (
            pl.scan_parquet(path)
            .select(
                pl.len().alias("(rows)"),
                *[pl.col(c).count().alias(f"{c}:values") for c in present],
                *[_out_of_format(c, columns[c], distinct=c in repeats) for c in present],
            )
            .collect()
            .row(0, named=True)
        )
        # Distinct values out of format, in a repeating column: count their rows.
        failing = [c for c in repeats if counts[c]]
        if failing:
            counts |= (
                pl.scan_parquet(path)
                .select(*[_out_of_format(c, columns[c]) for c in failing])
                .collect()
                .row(0, named=True)
            )
        for column in columns:
            missing = column not in present
            rows.append(
                {
                    "table": name,
                    "column": column,
                    "values": 0 if missing else counts[f"{column}:values"],
                    "nonconforming": counts["(rows)"] if missing else counts[column],
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "table": pl.String,
            "column": pl.String,
            "values": pl.Int64,
            "nonconforming": pl.Int64,
        },
    )


def conforming(scan: pl.DataFrame, table: str) -> frozenset[str]:
    """Columns of ``table`` whose every value is in format, by a :func:`format_scan`."""
    return frozenset(
        scan.filter((pl.col("table") == table) & (pl.col("nonconforming") == 0))["column"]
    )


def mask_nonconforming(
    frame: pl.DataFrame | pl.LazyFrame,
    formats: dict[str, str],
    conforming: frozenset[str] = frozenset(),
) -> pl.DataFrame | pl.LazyFrame:
    """The frame GX sees: format-checked columns masked or emptied.

    GX keeps sample failing values in its results and Data Docs. A token column holding
    something other than a token may hold an identifier (that is what the formats suite
    is there to catch), so GX never sees such a value: in key columns each becomes
    ``(not in format #n)`` - equal values get the same number, so uniqueness checks
    still see duplicates, but nothing of the value survives. The other format-checked
    columns (encodings, birth month) are read by no GX expectation beyond the column
    list, so they cross empty, which also spares converting 512-character Bloom
    filters to pandas. Key columns in ``conforming`` (a format scan found every value in
    format) have nothing to mask and are passed as they are.
    """
    masked = []
    schema = frame.collect_schema()
    for column, regex in formats.items():
        if column not in schema:
            continue
        if column not in KEY_COLUMNS:
            masked.append(pl.lit(None, dtype=schema[column]).alias(column))
            continue
        if column in conforming:
            continue
        value = pl.col(column)
        bad = value.is_not_null() & ~value.cast(pl.String).str.contains(regex)
        # Ranked among the out-of-format values only (the others rank as null).
        number = pl.when(bad).then(value.cast(pl.String)).rank("dense").cast(pl.String)
        masked.append(
            pl.when(bad).then(pl.lit(NOT_IN_FORMAT) + number + ")").otherwise(value).alias(column)
        )
    return frame.with_columns(masked) if masked else frame


class FormatScan:
    """One zone's format scan, run at most once per gate and kept for the gate's batches.

    Called, it is the batch of the zone's ``formats`` suite; :meth:`masked` gives a
    table's frame as GX may see it, masking only where the scan found values out of
    format. ``tables`` is called (finding the tables' files, or saying which stage
    must run first) when the scan first runs.
    """

    def __init__(
        self, tables: Callable[[], dict[str, Path]], formats: dict[str, dict[str, str]]
    ) -> None:
        self.formats = formats
        self._tables = tables
        self._scan: pl.DataFrame | None = None

    def __call__(self) -> pl.DataFrame:
        if self._scan is None:
            self._scan = format_scan(self._tables(), self.formats)
        return self._scan

    def masked(self, table: str, frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
        return mask_nonconforming(frame, self.formats[table], conforming(self(), table))
