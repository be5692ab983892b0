"""Shared page furniture: the sidebar filters, the "about this data" note, tables, messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.data import UNKNOWN, Catalogue, Filters, Plan, commissioning_path, query
from dashboard.disclosure import PARTIAL_MARK, rounding_base, suppressed_label, threshold

ALL = "All"
DIMENSION_LABELS = {
    "activity_month": "Month",
    "la_code": "Local authority",
    "practice_code": "GP practice",
    "age_band": "Age band",
    "sex": "Sex",
    "imd_quintile": "IMD quintile",
}


def dimension_phrase(dimension: str) -> str:
    """A dimension's name inside a sentence ("by local authority", "by IMD quintile")."""
    label = DIMENSION_LABELS[dimension]
    return label if label.startswith(("IMD", "GP")) else label.lower()


COMPARE_DIMENSIONS = ("la_code", "imd_quintile", "age_band", "sex", "practice_code")


@dataclass(frozen=True)
class Context:
    data_dir: Path
    catalogue: Catalogue
    filters: Filters


def imd_label(quintile: Any) -> str:
    if quintile is None:
        return UNKNOWN
    q = int(quintile)
    # Never a bare number: on screen a bare whole number is always a count.
    return {1: "IMD 1 – most deprived", 5: "IMD 5 – least deprived"}.get(q, f"IMD {q}")


def value_label(dimension: str, value: Any) -> str:
    """How a dimension value reads on screen (null is "not known" within a breakdown)."""
    if value is None:
        return UNKNOWN
    if dimension == "imd_quintile":
        return imd_label(value)
    if dimension == "activity_month":
        return f"{value:%b %Y}"
    return str(value)


def _month_key(m: date) -> str:
    return f"{m:%Y-%m}"


def sidebar_filters(cat: Catalogue) -> Filters:
    """The filters every page shares, bound to the URL so a view can be shared as a link."""
    sb = st.sidebar
    sb.header("Filters")
    months = cat.all_months
    keys = [_month_key(m) for m in months]
    period: tuple[date, date] | None = None
    if len(keys) > 1:
        start, end = sb.select_slider(
            "Period (month of activity)",
            options=keys,
            value=(keys[0], keys[-1]),
            format_func=lambda k: f"{date.fromisoformat(k + '-01'):%b %Y}",
            key="period",
            bind="query-params",
        )
        period = (date.fromisoformat(start + "-01"), date.fromisoformat(end + "-01"))

    def choose(dimension: str, key: str) -> Any:
        options = [ALL, *(str(v) for v in cat.values[dimension])]
        picked = sb.selectbox(
            DIMENSION_LABELS[dimension],
            options,
            format_func=lambda v: v if v == ALL else value_label(dimension, _typed(dimension, v)),
            key=key,
            bind="query-params",
        )
        return None if picked in (None, ALL) else _typed(dimension, picked)

    filters = Filters(
        period=period,
        la_code=choose("la_code", "la"),
        practice_code=choose("practice_code", "practice"),
        age_band=choose("age_band", "age"),
        sex=choose("sex", "sex"),
        imd_quintile=choose("imd_quintile", "imd"),
    )
    if filters.practice_code and any(
        (filters.la_code, filters.age_band, filters.sex, filters.imd_quintile)
    ):
        sb.warning(
            "Practice figures are published by month only: they cannot be combined with "
            "local authority, age band, sex or IMD quintile."
        )
    return filters


def _typed(dimension: str, text: str) -> Any:
    return int(text) if dimension == "imd_quintile" else text


def about_note() -> None:
    t = threshold()
    st.sidebar.divider()
    st.sidebar.markdown(
        "**About this data.** Synthetic data only. Records from GP practices, hospitals "
        "and adult social care are pseudonymised and linked into one timeline per person; "
        "patients who opted out (national data opt-out or GP type 1 objection) are "
        f"excluded. Counts are rounded to the nearest {rounding_base()}, and counts from 1 "
        f"to {t - 1} are suppressed, shown as *{suppressed_label()}*. Rates and intervals "
        f"are computed from the rounded counts. {PARTIAL_MARK} marks a figure added up from "
        "published cells some of which were suppressed (a lower bound)."
    )


def describe(filters: Filters) -> str:
    """The population a figure covers, in words, for chart subtitles and captions."""
    parts = [
        f"{DIMENSION_LABELS[d]} {value_label(d, v)}"
        if d in ("la_code", "practice_code")
        else f"{value_label(d, v)}"
        for d, v in filters.fixed().items()
    ]
    return ", ".join(parts) if parts else "all areas and groups"


def subtitle(plan: Plan, filters: Filters, definition: str) -> str:
    return f"{plan.period_label} · {describe(filters)} · {definition}"


def no_breakdown(what: str) -> None:
    st.warning(
        f"{what}: no published breakdown combines these filters. Figures by GP practice "
        "are published by month only; clear the local authority, age band, sex and IMD "
        "filters (or the practice) to see them."
    )


def headline(
    ctx: Context, mart_key: str, what: str, empty: str
) -> tuple[Plan, pl.DataFrame] | None:
    """A page's figures for the filters, or None once the page has said why there are none."""
    plan, total = query(ctx.data_dir, ctx.catalogue, mart_key, ctx.filters)
    if plan is None:
        no_breakdown(what)
        return None
    if total.is_empty():
        st.info(empty)
        return None
    return plan, total


@dataclass(frozen=True)
class Comparison:
    """The figures for each value of the chosen "Compare by" dimension."""

    dim: str
    plan: Plan
    frame: pl.DataFrame
    rows: list[dict[str, Any]]
    labels: list[str]


def compare_by(ctx: Context, mart_key: str, what: str) -> Comparison | None:
    """The "Compare by" choice and its figures, or None once the page has said that no
    published breakdown has them."""
    dim = st.radio(
        "Compare by",
        COMPARE_DIMENSIONS,
        format_func=DIMENSION_LABELS.get,
        horizontal=True,
        key=f"{mart_key}_compare",
        bind="query-params",
    )
    plan, by_group = query(ctx.data_dir, ctx.catalogue, mart_key, ctx.filters, (dim,))
    if plan is None:
        no_breakdown(f"{what} by {dimension_phrase(dim)}")
        return None
    rows = list(by_group.iter_rows(named=True))
    return Comparison(dim, plan, by_group, rows, [value_label(dim, r[dim]) for r in rows])


def plan_note(plan: Plan, result: pl.DataFrame) -> None:
    """Say so when a figure was added up from several published cells."""
    if not plan.exact and "cells" in result.columns and (result["cells"] > 1).any():
        st.caption(
            f"Added up from the published `{plan.breakdown}` breakdown: cells suppressed "
            f"there are not included, so totals marked {PARTIAL_MARK} are lower bounds, and "
            "rates are shown only where no cell behind them was suppressed."
        )


def chart(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


def table(rows: Sequence[dict[str, str]], caption: str | None = None) -> None:
    """An HTML table (not a canvas grid), so every figure is real text on the page."""
    if not rows:
        st.info("Nothing published for this selection.")
        return
    st.table(pl.DataFrame(list(rows)), hide_index=True)
    if caption:
        st.caption(caption)


def missing_page(data_dir: Path, reason: str) -> None:
    st.title("Commissioners' pathway dashboard")
    st.info(
        f"""
**No commissioning database to show yet.**

The dashboard reads `{commissioning_path(data_dir).resolve()}`, the read-only file of
suppressed aggregate marts that the pipeline publishes ({reason}).

To create it, run the pipeline first, from the repository root:

```bash
make run          # builds a synthetic population and the marts under ./data
make dashboard    # then serve this dashboard against ./data
```

For another data directory, set `JOINEDUP_DATA_DIR=/path/to/data`, or run
`streamlit run dashboard/app.py -- --data-dir /path/to/data`. Reload this page when the
run has finished.
""",
        icon=":material/info:",
    )
