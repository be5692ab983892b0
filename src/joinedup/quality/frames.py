"""How a batch crosses from Polars into the pandas DataFrame GX validates.

At a million people GX's time went on the frame rather than the checks: every
column map expectation first copies the whole frame without the column's nulls,
GX fingerprints the whole frame, and a column of ``datetime.date`` objects or of
nullable integers is compared one Python call per row. So a column crosses in the
cheapest form that keeps everything the suite's expectations can observe of it:

* a column no expectation reads (only its name is checked) crosses empty;
* a column only checked for nulls crosses as a one-category marker, null where
  the value is null (a failing sample of a not-null check is a null anyway);
* text crosses as pandas ``category`` (what GX compares and samples are the
  values; set, null and uniqueness checks work on the codes), except text only
  matched against a pattern, which GX reads as text;
* dates cross as ``datetime64[ns]``, which GX compares vectorised (the suites'
  date bounds are datetimes for that reason);
* integers cross as ``int64``, or ``float64`` where there are nulls (GX drops
  nulls before comparing; pandas' nullable integers are compared row by row).

Which columns an expectation reads is taken from the committed suite and
checkpoint that will run; an expectation type not listed here keeps every
column as it is, so a new kind of check is never handed an emptied column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

# Expectation types whose column arguments are all the columns they read.
UNDERSTOOD = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_columns_to_match_set",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
    }
)
# Expectations that see only whether a value is null (their failing samples are nulls).
NULLNESS_ONLY = frozenset({"expect_column_values_to_not_be_null"})
# GX tests a pattern on text (``astype(str)``): a category column would be rebuilt as text.
AS_TEXT = NULLNESS_ONLY | {"expect_column_values_to_match_regex"}
COLUMN_ARGUMENTS = ("column", "column_A", "column_B")
PRESENT = "(a value)"
# Values sampled to tell a key column (mostly distinct) from a code list.
DISTINCT_SAMPLE = 10_000
# Uses that are not an expectation: result index columns and row conditions read values.
INDEX = "(index column)"
CONDITION = "(row condition)"


@dataclass(frozen=True)
class Reads:
    """Which expectations read each column of a suite's batch (``everything``: keep all)."""

    uses: Mapping[str, frozenset[str]]
    everything: bool = False

    def keeps(self, column: str) -> bool:
        return self.everything or column in self.uses

    def only(self, column: str, kinds: frozenset[str]) -> bool:
        """Whether every use of ``column`` is one of ``kinds``."""
        return not self.everything and column in self.uses and self.uses[column] <= kinds


EVERYTHING = Reads({}, everything=True)


def _condition_columns(condition: Any) -> set[str] | None:
    """Columns a GX row condition names, or None when it is not a structured condition."""
    if isinstance(condition, dict):
        found: set[str] = set()
        column = condition.get("column")
        if isinstance(column, dict) and isinstance(column.get("name"), str):
            found.add(column["name"])
        for value in condition.values():
            if isinstance(value, dict | list):
                inner = _condition_columns(value)
                if inner is None:
                    return None
                found |= inner
        return found
    if isinstance(condition, list):
        found = set()
        for item in condition:
            inner = _condition_columns(item)
            if inner is None:
                return None
            found |= inner
        return found
    return None


def reads(expectations: Iterable[Any], index_columns: Iterable[str] = ()) -> Reads:
    """The columns these GX expectations (and the result's index columns) read, and how."""
    uses: dict[str, set[str]] = {c: {INDEX} for c in index_columns}
    for expectation in expectations:
        kind = expectation.expectation_type
        if kind not in UNDERSTOOD:
            return EVERYTHING
        kwargs = expectation.configuration.kwargs
        named = [kwargs[k] for k in COLUMN_ARGUMENTS if kwargs.get(k)]
        named += list(kwargs.get("column_list") or [])
        condition = kwargs.get("row_condition")
        if condition:
            in_condition = _condition_columns(condition)
            if in_condition is None:
                return EVERYTHING
            for column in in_condition:
                uses.setdefault(column, set()).add(CONDITION)
        for column in named:
            uses.setdefault(column, set()).add(kind)
    return Reads({c: frozenset(k) for c, k in uses.items()})


def checkpoint_reads(checkpoint: Any) -> Reads:
    """What a checkpoint's suites and result format read of the batch it is given."""
    index = (checkpoint.result_format or {}).get("unexpected_index_column_names") or []
    expectations = [e for d in checkpoint.validation_definitions for e in d.suite.expectations]
    return reads(expectations, index)


def _empty(rows: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.full(rows, -1, dtype=np.int8), categories=[])


def _marker(series: pl.Series) -> pd.Categorical:
    codes = series.is_null().to_numpy().astype(np.int8) * -1
    return pd.Categorical.from_codes(codes, categories=[PRESENT])


def mostly_distinct(sample: pl.Series) -> bool:
    """Whether a sample of a column looks like a key (mostly distinct) rather than a code list."""
    return sample.n_unique() * 2 > sample.len()


def _text(series: pl.Series) -> pd.Categorical:
    if mostly_distinct(series.gather_every(max(1, series.len() // DISTINCT_SAMPLE))):
        # Mostly distinct (a key): Polars' dense rank codes a million tokens in a fraction
        # of the time pandas' factorize takes; the categories come out sorted.
        ranked = series.to_frame("value").with_columns(
            code=pl.col("value").rank("dense").cast(pl.Int64) - 1
        )
        categories = (
            ranked.filter(pl.col("value").is_not_null()).unique("code").sort("code")["value"]
        )
        return pd.Categorical.from_codes(
            ranked["code"].fill_null(-1).to_numpy(),
            categories=pd.Index(categories.to_pandas()),
            validate=False,
        )
    codes, categories = pd.factorize(series.to_pandas())
    return pd.Categorical.from_codes(codes, categories=categories, validate=False)


def _column(series: pl.Series, as_text: bool = False) -> Any:
    dtype = series.dtype
    if dtype in (pl.String, pl.Categorical, pl.Enum):
        text = series.cast(pl.String)
        return text.to_pandas() if as_text else _text(text)
    if dtype == pl.Date or (dtype == pl.Datetime and getattr(dtype, "time_zone", None) is None):
        return series.cast(pl.Datetime("ns")).to_numpy()
    if dtype.is_integer():
        if series.null_count():
            return series.cast(pl.Float64).to_numpy()
        return series.cast(pl.Int64).to_numpy()
    if dtype == pl.Boolean and series.null_count():
        return pd.array(series.to_list(), dtype="boolean")
    return series.to_pandas()


def to_pandas(frame: pl.DataFrame | pl.LazyFrame, columns: Reads = EVERYTHING) -> pd.DataFrame:
    """The frame GX validates: each column in the cheapest form ``columns`` allows.

    A lazy frame reads only the columns the suite reads; the others keep their
    place, empty.
    """
    schema = frame.collect_schema()
    kept = [c for c in schema.names() if columns.keeps(c)]
    if isinstance(frame, pl.LazyFrame):
        data = frame.select(kept).collect() if kept else None
        rows = data.height if data is not None else frame.select(pl.len()).collect().item()
    else:
        data, rows = frame, frame.height
    out: dict[str, Any] = {}
    for name in schema.names():
        if not columns.keeps(name):
            out[name] = _empty(rows)
        elif columns.only(name, NULLNESS_ONLY):
            out[name] = _marker(data[name])
        else:
            out[name] = _column(data[name], as_text=columns.only(name, AS_TEXT))
    return pd.DataFrame(out, index=pd.RangeIndex(rows))
