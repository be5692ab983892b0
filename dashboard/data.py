"""Reading the published marts: which rows answer a question, and adding them up honestly.

The commissioning marts are published at fixed *breakdowns* (``total``, ``month``,
``month+la_code``, ... see models/_shared__docs.md): each row is one cell of one
breakdown, already suppressed and rounded. A question (the sidebar filters plus what a
chart compares by) is answered from the one breakdown that holds every dimension it
needs; where no breakdown matches exactly, the cells of the smallest one that contains
them are added up. Adding up published cells is always safe (each is 0 or at least 8,
so their sum is too) but drops what was suppressed; such figures carry a mark and the
page says so.

Queries: each (mart, breakdown) slice is read once per published file (the cache key
holds the file's modification time) with ``where breakdown = ?`` and then filtered in
memory, so an interaction never goes back to the database.

Which marts there are, their counts, rates and the statistics that cannot be added up,
and the disclosure rule's numbers, come from the published file itself
(``_joinedup_marts``, written from the marts' dbt meta: joinedup.warehouse.marts), so
the dashboard shows a file as that file describes itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

# Loaded with this module, before any page runs: Plotly looks pandas up in sys.modules
# without importing it, so while one session's thread is still importing pandas another
# session's chart meets a half-initialised module ("partially initialized module 'pandas'
# has no attribute 'Series'"). Found by 4 concurrent first sessions (test_dashboard_load).
import pandas  # noqa: F401
import polars as pl
import streamlit as st

from dashboard.disclosure import Z_95, Rule, wilson_interval
from joinedup.catalogue import COMMISSIONING
from joinedup.warehouse import marts as mart_metadata
from joinedup.warehouse.marts import MartSpec

# The commissioners' file alone: aggregates, no person-level table (joinedup.warehouse.publish).
COMMISSIONING_FILE = COMMISSIONING.path
RUN_TABLE = "_joinedup_run"  # which run published the file (joinedup.provenance)
DIMENSIONS = ("activity_month", "la_code", "practice_code", "age_band", "sex", "imd_quintile")
UNKNOWN = "Not known"


@dataclass(frozen=True)
class Mart:
    """A mart as the dashboard uses it, made from its metadata (:meth:`from_spec`)."""

    table: str
    # Counts published with a <count>_suppressed flag; additive ones may be summed over cells.
    counts: tuple[str, ...]
    # Rates as {name: (numerator count, denominator count)}, recomputed from published counts.
    rates: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Columns that are part of each row's identity besides the dimensions.
    keys: tuple[str, ...] = ()
    # Statistics that cannot be combined across cells (medians, distinct people).
    statistics: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: MartSpec) -> Mart:
        """Additive counts are summed; a count of distinct people (summing cells would count
        a person twice) and its flag are kept, like a median, only where one cell answers."""
        distinct = tuple(
            column for c in spec.distinct_counts for column in (c, f"{c}{mart_metadata.FLAG}")
        )
        return cls(
            table=spec.name,
            counts=spec.additive_counts,
            rates={
                c.dashboard or c.name: (c.numerator, c.denominator)
                for c in spec.columns
                if c.role == "rate"
            },
            keys=spec.keys,
            statistics=distinct + spec.statistics,
        )


def dashboard_marts(specs: Mapping[str, MartSpec]) -> dict[str, Mart]:
    """{dashboard key: Mart} for the marts whose meta names them to the dashboard."""
    return {s.dashboard: Mart.from_spec(s) for s in specs.values() if s.dashboard}


def project_marts() -> dict[str, Mart]:
    """The marts as the repository's dbt project describes them (dbt parse, cached by the
    content of its files): for catalogues and plans made by hand (tests, notebooks). The
    dashboard itself shows the published file as that file describes itself."""
    return dashboard_marts(mart_metadata.project_marts())


def __getattr__(name: str) -> Any:
    if name == "MARTS":  # project_marts(), read when asked for
        return project_marts()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class DashboardDataError(RuntimeError):
    """The commissioning file is missing or is not what the dashboard expects."""


def commissioning_path(data_dir: Path) -> Path:
    """``commissioning/commissioning.duckdb`` under ``data_dir``: all the dashboard reads of
    the marts (a deployment mounts that folder alone, read-only)."""
    return Path(data_dir) / COMMISSIONING_FILE


def connect(path: Path | str) -> duckdb.DuckDBPyConnection:
    """The dashboard's only way into DuckDB: the published file, read-only.

    Read-only, so nothing a page does can change what analysts see, and DuckDB writes
    nothing beside the file (no write-ahead log): the folder may be a read-only mount.
    """
    return duckdb.connect(str(path), read_only=True)


def breakdown_dims(label: str) -> frozenset[str]:
    """``'month+la_code'`` -> ``{'activity_month', 'la_code'}``; ``'total'`` -> no dimension."""
    if label == "total":
        return frozenset()
    return frozenset("activity_month" if p == "month" else p for p in label.split("+"))


@dataclass(frozen=True)
class Catalogue:
    """What the published file holds: its marts, breakdowns, months and dimension values."""

    breakdowns: Mapping[str, tuple[str, ...]]  # mart key -> breakdown labels
    months: Mapping[str, tuple[date, ...]]  # mart key -> months with activity
    values: Mapping[str, tuple[Any, ...]]  # dimension -> known values, in display order
    # mart key -> the mart as the file describes it; empty in a catalogue made by hand,
    # which gets the repository's dbt project's marts (MARTS).
    marts: Mapping[str, Mart] = field(default_factory=dict)
    # The disclosure rule the file was built with (None: the project's, as configured).
    rule: Rule | None = None

    @property
    def all_months(self) -> tuple[date, ...]:
        return tuple(sorted({m for ms in self.months.values() for m in ms}))

    def mart(self, key: str) -> Mart:
        marts = self.marts or project_marts()
        if key not in marts:
            raise DashboardDataError(f"no mart {key!r}; the file describes {sorted(marts)}")
        return marts[key]


@dataclass(frozen=True)
class Filters:
    """The sidebar's choices; None means "all"."""

    period: tuple[date, date] | None = None
    la_code: str | None = None
    practice_code: str | None = None
    age_band: str | None = None
    sex: str | None = None
    imd_quintile: int | None = None

    def fixed(self) -> dict[str, Any]:
        return {
            d: getattr(self, d)
            for d in DIMENSIONS[1:]
            if getattr(self, d) is not None  # activity_month is the period, handled apart
        }


@dataclass(frozen=True)
class Plan:
    """Which published rows answer a question."""

    mart: str
    breakdown: str
    months: tuple[date, ...]  # the months the figures cover
    month_filter: tuple[date, date] | None  # None: the breakdown already covers the period
    exact: bool  # one published cell per answer: nothing added up
    spec: Mart | None = field(default=None, compare=False)  # the mart, as the file has it

    @property
    def period_label(self) -> str:
        return period_label(self.months)


def period_label(months: Sequence[date]) -> str:
    if not months:
        return "no months"
    first, last = min(months), max(months)
    if first == last:
        return f"{first:%b %Y}"
    return f"{first:%b %Y} – {last:%b %Y}"


def _age_key(band: str) -> tuple[int, str]:
    digits = "".join(ch if ch.isdigit() else " " for ch in band).split()
    return (int(digits[0]) if digits else 999, band)


def _version(path: Path) -> int:
    return path.stat().st_mtime_ns


def catalogue(data_dir: Path) -> Catalogue:
    """The catalogue of the commissioning file under ``data_dir`` (cached per file version)."""
    path = commissioning_path(data_dir)
    if not path.exists():
        raise DashboardDataError(f"{path} not found")
    return _catalogue(str(path), _version(path))


@st.cache_data(show_spinner=False, max_entries=8)
def _catalogue(path: str, version: int) -> Catalogue:
    del version  # part of the cache key only: a re-published file is read afresh
    try:
        return _read_catalogue(path)
    except duckdb.Error as exc:
        raise DashboardDataError(f"{path} could not be read: {exc}") from exc


def _rule(specs: Mapping[str, MartSpec], path: str) -> Rule | None:
    rules = {(s.suppression_threshold, s.rounding_base) for s in specs.values()}
    if len(rules) > 1:
        raise DashboardDataError(f"{path}: its marts were built with different rules {rules}")
    ((threshold, base),) = rules
    return None if threshold is None or base is None else Rule(threshold, base)


def _read_catalogue(path: str) -> Catalogue:
    breakdowns: dict[str, tuple[str, ...]] = {}
    months: dict[str, tuple[date, ...]] = {}
    values: dict[str, set] = {d: set() for d in DIMENSIONS[1:]}
    with connect(path) as con:
        specs = mart_metadata.read_table(con)
        if not specs:
            raise DashboardDataError(
                f"{path} does not describe its marts (no table {mart_metadata.TABLE}): it "
                "was published by an older joinedup; publish it again"
            )
        marts = dashboard_marts(specs)
        if not marts:
            raise DashboardDataError(f"{path} describes no mart for the dashboard")
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
        missing = [m.table for m in marts.values() if m.table not in tables]
        if missing:
            raise DashboardDataError(
                f"{path} has {', '.join(f'no table {t}' for t in missing)}: it was published "
                "by an older or incomplete build"
            )
        for key, mart in marts.items():
            breakdowns[key] = tuple(
                r[0]
                for r in con.execute(
                    f"select distinct breakdown from {mart.table} order by 1"
                ).fetchall()
            )
            months[key] = tuple(
                r[0]
                for r in con.execute(
                    f"select distinct activity_month from {mart.table} "
                    "where breakdown = 'month' order by 1"
                ).fetchall()
            )
            for dim in values:
                values[dim].update(
                    r[0]
                    for r in con.execute(
                        f"select distinct {dim} from {mart.table} where {dim} is not null"
                    ).fetchall()
                )
    ordered: dict[str, tuple[Any, ...]] = {
        d: tuple(sorted(v, key=_age_key if d == "age_band" else None)) for d, v in values.items()
    }
    return Catalogue(
        breakdowns=breakdowns,
        months=months,
        values=ordered,
        marts=marts,
        rule=_rule(specs, path),
    )


def load_slice(data_dir: Path, mart_key: str, breakdown: str) -> pl.DataFrame:
    """All published rows of one breakdown of one mart (cached per file version)."""
    path = commissioning_path(data_dir)
    table = catalogue(data_dir).mart(mart_key).table  # named by the file, never user input
    return _load_slice(str(path), _version(path), table, breakdown)


@st.cache_data(show_spinner=False, max_entries=64)
def _load_slice(path: str, version: int, table: str, breakdown: str) -> pl.DataFrame:
    del version
    with connect(path) as con:
        return con.sql(f"select * from {table} where breakdown = $1", params=[breakdown]).pl()


def published_run(data_dir: Path) -> dict[str, Any] | None:
    """The run that published the commissioning file: its ``_joinedup_run`` row, None if
    unstamped."""
    path = commissioning_path(data_dir)
    if not path.exists():
        return None
    return _published_run(str(path), _version(path))


@st.cache_data(show_spinner=False, max_entries=8)
def _published_run(path: str, version: int) -> dict[str, Any] | None:
    del version
    with connect(path) as con:
        stamped = con.execute(
            "select 1 from duckdb_tables() where schema_name = 'main' and table_name = ?",
            [RUN_TABLE],
        ).fetchall()
        if not stamped:
            return None
        cursor = con.execute(f"select * from main.{RUN_TABLE}")
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    return dict(zip(names, row, strict=True)) if row else None


def make_plan(
    cat: Catalogue,
    mart_key: str,
    filters: Filters,
    by: Sequence[str] = (),
) -> Plan | None:
    """The breakdown that answers ``filters`` grouped ``by``; None when none can.

    Prefers an exact breakdown; otherwise the one whose extra dimensions have the
    fewest combinations (fewest cells added up, so the least is lost to suppression).
    """
    mart_months = cat.months.get(mart_key, ())
    needed = set(filters.fixed()) | set(by)
    months = mart_months
    month_filter = None
    if filters.period is not None:
        start, end = filters.period
        months = tuple(m for m in mart_months if start <= m <= end)
        if months != mart_months:
            month_filter = (start, end)
            needed.add("activity_month")
    best: tuple[tuple[int, int, str], str] | None = None
    for label in cat.breakdowns.get(mart_key, ()):
        dims = breakdown_dims(label)
        if not needed <= dims:
            continue
        cells = 1
        for extra in dims - needed:
            n = len(mart_months) if extra == "activity_month" else len(cat.values[extra])
            cells *= n + 1  # +1: "not known" is a cell too
        rank = (cells, len(dims), label)
        if best is None or rank < best[0]:
            best = (rank, label)
    if best is None:
        return None
    label = best[1]
    summed_months = month_filter is not None and "activity_month" not in by and len(months) > 1
    exact = breakdown_dims(label) == needed and not summed_months
    return Plan(mart_key, label, months, month_filter, exact, spec=cat.mart(mart_key))


def aggregate(
    frame: pl.DataFrame,
    plan: Plan,
    filters: Filters,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """Filter one breakdown's rows and add up its cells per ``by`` (and the mart's keys).

    For each count ``c``: ``c`` (sum of the published cells, null if none was
    published), ``c_suppressed`` (how many cells were withheld). For each rate: the rate
    as a percentage, its Wilson 95% interval, ``<rate>_num``/``<rate>_den`` and
    ``<rate>_withheld``. A rate is withheld when any cell behind it has its numerator or
    denominator withheld: leaving those cells out would keep only cells with at least 8
    events and bias the rate upwards. Statistics that cannot be combined are kept only
    where one cell answers.
    """
    mart = plan.spec or project_marts()[plan.mart]
    conditions = [pl.col(d) == v for d, v in filters.fixed().items()]
    if plan.month_filter is not None:
        start, end = plan.month_filter
        conditions.append(pl.col("activity_month").is_between(start, end))
    rows = frame.filter(*conditions) if conditions else frame
    group = [*by, *mart.keys]
    aggs: list[pl.Expr] = [pl.len().alias("cells")]
    for c in mart.counts:
        aggs += [
            pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).alias(c),
            pl.col(f"{c}_suppressed").sum().alias(f"{c}_suppressed"),
        ]
    for rate, (num, den) in mart.rates.items():
        withheld = pl.col(f"{num}_suppressed").any() | pl.col(f"{den}_suppressed").any()
        aggs += [
            pl.col(num).sum().alias(f"{rate}_num"),
            pl.col(den).sum().alias(f"{rate}_den"),
            withheld.alias(f"{rate}_withheld"),
        ]
    for s in mart.statistics:
        aggs.append(pl.when(pl.len() == 1).then(pl.col(s).first()).alias(s))
    if group:
        out = rows.group_by(group, maintain_order=True).agg(aggs).sort(group, nulls_last=True)
    else:
        out = rows.select(aggs) if rows.height else pl.DataFrame()
    if out.is_empty():
        return out
    for rate in mart.rates:
        num, den = out[f"{rate}_num"].to_list(), out[f"{rate}_den"].to_list()
        pct, low, high = [], [], []
        held = out[f"{rate}_withheld"].to_list()
        for x, n, h in zip(num, den, held, strict=True):
            if h or not n:
                pct.append(None)
                low.append(None)
                high.append(None)
                continue
            lo, hi = wilson_interval(x, n, Z_95)
            pct.append(round(100 * x / n, 1))
            low.append(None if math.isnan(lo) else lo)
            high.append(None if math.isnan(hi) else hi)
        out = out.with_columns(
            pl.Series(rate, pct, dtype=pl.Float64),
            pl.Series(f"{rate}_low", low, dtype=pl.Float64),
            pl.Series(f"{rate}_high", high, dtype=pl.Float64),
        )
    return out


def query(
    data_dir: Path,
    cat: Catalogue,
    mart_key: str,
    filters: Filters,
    by: Sequence[str] = (),
) -> tuple[Plan | None, pl.DataFrame]:
    """Plan, load (cached) and aggregate: the one call pages make."""
    plan = make_plan(cat, mart_key, filters, by)
    if plan is None:
        return None, pl.DataFrame()
    return plan, aggregate(load_slice(data_dir, mart_key, plan.breakdown), plan, filters, by)


# The segment dimensions every national indicator mart is broken down by
# (macros/commissioner_breakdowns.sql): a mart with them is an indicator mart.
SEGMENT_DIMENSIONS = ("core20plus5", "frailty_risk", "long_term_conditions")


@dataclass(frozen=True)
class IndicatorMart:
    """A national indicator mart as the published file describes it."""

    table: str
    description: str  # its definition and source: the mart's dbt description
    # Rates as (name, numerator count, denominator count, per: 100 or 100000).
    rates: tuple[tuple[str, str, str, int], ...]
    has_denominator_source: bool = False


def indicator_marts(data_dir: Path) -> tuple[IndicatorMart, ...]:
    """Every indicator mart in the commissioning file (one with the segment dimensions),
    found from its ``_joinedup_marts`` metadata, not a list of names, so a new indicator
    mart appears once it is published. Cached per file version."""
    path = commissioning_path(data_dir)
    if not path.exists():
        raise DashboardDataError(f"{path} not found")
    return _indicator_marts(str(path), _version(path))


@st.cache_data(show_spinner=False, max_entries=8)
def _indicator_marts(path: str, version: int) -> tuple[IndicatorMart, ...]:
    del version
    with connect(path) as con:
        specs = mart_metadata.read_table(con)
        comments = dict(
            con.execute(
                "select table_name, coalesce(comment, '') from duckdb_tables() "
                "where schema_name = 'main'"
            ).fetchall()
        )
    found = []
    for spec in sorted(specs.values(), key=lambda s: s.name):
        if not set(SEGMENT_DIMENSIONS) <= set(spec.dimensions) or spec.name not in comments:
            continue
        found.append(
            IndicatorMart(
                table=spec.name,
                description=comments[spec.name],
                rates=tuple(
                    (c.name, c.numerator, c.denominator, c.per)
                    for c in spec.columns
                    if c.role == "rate" and c.numerator and c.denominator
                ),
                has_denominator_source="denominator_source" in spec.column_names,
            )
        )
    return tuple(found)


def load_indicator_slice(data_dir: Path, mart: IndicatorMart, breakdown: str) -> pl.DataFrame:
    """All published rows of one breakdown of an indicator mart (cached per file version)."""
    path = commissioning_path(data_dir)
    # The table is named by the file's own metadata, never by user input.
    return _load_slice(str(path), _version(path), mart.table, breakdown)
