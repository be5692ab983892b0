"""National indicators: every indicator mart of the published file, by place and by
Core20PLUS5, each with its definition and source one click away.

The marts are found from the file's metadata (dashboard.data.indicator_marts: those
broken down by the segments), so one published later appears here without a change to
this page. Figures are published cells as they are (the ``la_code`` and ``core20plus5``
breakdowns, over the whole extract), nothing added up, so the sidebar's filters do not
apply.
"""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboard import charts, ui
from dashboard.data import IndicatorMart, indicator_marts, load_indicator_slice
from dashboard.disclosure import NOT_APPLICABLE, format_count, suppressed_label

# (breakdown, the dimension it is by, its heading in tables)
GROUPINGS = (
    ("la_code", "la_code", "Local authority"),
    ("core20plus5", "core20plus5", "Core20PLUS5"),
)


def title(mart: IndicatorMart) -> str:
    """The first clause of the mart's description (its name when it has none)."""
    first = re.split(r"\s\(|,\s|:\s|\.\s|;\s", mart.description.strip(), maxsplit=1)[0]
    return first.strip() or mart.table


def phrase(column: str) -> str:
    """``emergency_admissions_per_100000`` -> ``Emergency admissions per 100,000``."""
    text = column.replace("_per_100000", " per 100,000").replace("_pct", " (%)")
    text = text.replace("_", " ")
    return text[:1].upper() + text[1:]


def format_indicator(value: float | None, per: int, withheld: bool) -> str:
    if withheld:
        return suppressed_label()
    if value is None:
        return NOT_APPLICABLE
    return f"{value:.1f}%" if per == 100 else f"{value:,.1f} per {per:,}"


def _rows(ctx: ui.Context, mart: IndicatorMart) -> list[tuple[str, str, dict[str, Any]]]:
    """(grouping heading, group label, published row) for every place and Core20 cell."""
    out = []
    for breakdown, dim, heading in GROUPINGS:
        frame = load_indicator_slice(ctx.data_dir, mart, breakdown)
        if frame.is_empty():
            continue
        for row in frame.sort(dim, nulls_last=True).iter_rows(named=True):
            out.append((heading, ui.value_label(dim, row[dim]), row))
    return out


def _withheld(row: dict[str, Any], numerator: str, denominator: str) -> bool:
    return bool(row[f"{numerator}_suppressed"] or row[f"{denominator}_suppressed"])


def _chart(rate: tuple[str, str, str, int], rows: list[tuple[str, str, dict]]) -> go.Figure:
    name, numerator, denominator, per = rate
    fig = go.Figure()
    for _breakdown, _dim, heading in GROUPINGS:
        mine = [(label, r) for h, label, r in rows if h == heading]
        fig.add_bar(
            name=heading,
            x=[label for label, _r in mine],
            y=[None if _withheld(r, numerator, denominator) else r[name] for _l, r in mine],
            marker_color=charts.ACCENT if heading == "Local authority" else "#41B6E6",
            hovertemplate="%{x}: %{y:,.1f}<extra></extra>",
        )
    fig.update_layout(
        title={"text": f"{phrase(name)}, by local authority and by Core20PLUS5"},
        yaxis_title="%" if per == 100 else f"per {per:,}",
        height=340,
        margin={"t": 60, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _table(mart: IndicatorMart, rows: list[tuple[str, str, dict]]) -> list[dict[str, str]]:
    table = []
    for heading, label, row in rows:
        cells = {"Breakdown": heading, "Group": label}
        for name, numerator, denominator, per in mart.rates:
            for count in (numerator, denominator):
                if phrase(count) not in cells:
                    cells[phrase(count)] = format_count(row[count], row[f"{count}_suppressed"])
            cells[phrase(name)] = format_indicator(
                row[name], per, _withheld(row, numerator, denominator)
            )
        if mart.has_denominator_source:
            cells["Denominator"] = row["denominator_source"] or NOT_APPLICABLE
        table.append(cells)
    return table


def render(ctx: ui.Context) -> None:
    st.title("National indicators")
    st.caption(
        "Every national indicator mart in the published file, by local authority and by "
        "Core20PLUS5 (the most deprived 20% of areas by IMD), over the whole extract. "
        "The figures are the published cells as they are, so the sidebar's filters do not "
        "apply here. Each indicator's definition and its source are under *Definition and "
        "source*."
    )
    marts = indicator_marts(ctx.data_dir)
    if not marts:
        st.info("The published file holds no national indicator mart yet.")
        return
    for mart in marts:
        st.header(title(mart), anchor=mart.table)
        st.caption(f"Table `{mart.table}`.")
        with st.expander("Definition and source"):
            st.markdown(mart.description)
        rows = _rows(ctx, mart)
        if not rows:
            st.info("Nothing published by place or Core20PLUS5 for this indicator.")
            continue
        for rate in mart.rates:
            ui.chart(_chart(rate, rows), key=f"indicator-{mart.table}-{rate[0]}")
        ui.table(
            _table(mart, rows),
            caption="**Period:** the whole extract. **Definition:** as under *Definition "
            "and source*; populations on rows without a month are those of the extract's "
            "middle month.",
        )
