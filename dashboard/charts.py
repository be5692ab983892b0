"""Plotly figures for the dashboard, built from aggregated (published) figures only.

Every trace that carries counts says so in ``meta={"counts": <attribute>}`` (e.g.
``"link.value"`` for a Sankey, ``"x"`` for horizontal bars): the browser test reads the
figures back from the page and checks each such value is 0 or a published count.
Traces are SVG (``go.Scatter``, never ``Scattergl``) so they can be read and printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import plotly.graph_objects as go
import polars as pl

from dashboard.disclosure import Z_95, Z_998, format_count, funnel_limits

EVENT_LABELS = {
    "gp_consultation": "GP consultation",
    "ae_attendance": "A&E attendance",
    "emergency_admission": "Emergency admission",
    "elective_admission": "Elective admission",
    "other_admission": "Other admission",
    "hospital_discharge": "Hospital discharge",
    "social_care_request": "Social care request",
    "social_care_assessment": "Social care assessment",
    "social_care_service": "Social care service starts",
    "death": "Death",
}
SETTING_COLOURS = {
    "primary_care": "#768692",  # NHS mid grey
    "urgent_care": "#DA291C",  # NHS emergency-services red
    "hospital": "#005EB8",  # NHS blue
    "social_care": "#009639",  # NHS green
    "death": "#231F20",
}
EVENT_SETTING = {
    "gp_consultation": "primary_care",
    "ae_attendance": "urgent_care",
    "emergency_admission": "hospital",
    "elective_admission": "hospital",
    "other_admission": "hospital",
    "hospital_discharge": "hospital",
    "social_care_request": "social_care",
    "social_care_assessment": "social_care",
    "social_care_service": "social_care",
    "death": "death",
}
ADMISSIONS = ("emergency_admission", "elective_admission", "other_admission")
ACCENT = "#005EB8"
LIMIT_COLOURS = {"95%": "#768692", "99.8%": "#DA291C"}


def event_label(event_type: str) -> str:
    return EVENT_LABELS.get(event_type, event_type.replace("_", " ").capitalize())


def _title(title: str, subtitle: str) -> dict[str, Any]:
    return {"text": title, "subtitle": {"text": subtitle}, "x": 0, "xanchor": "left"}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _stage_label(stage: str, event_type: str) -> str:
    if stage == "end":
        return {"hospital_discharge": "Discharged alive", "death": "Died in hospital"}.get(
            event_type, f"{event_label(event_type)} (during stay)"
        )
    if stage == "before" and event_type == "hospital_discharge":
        return "Discharge from an earlier stay"
    if stage == "after" and event_type == "emergency_admission":
        return "Emergency admission again"
    return event_label(event_type)


def pathway_links(flows: pl.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The hospital pathway as staged links: before admission -> admission -> end -> next.

    The mart holds pairs of consecutive events, not whole journeys, so each step is every
    transition of that kind in the period; a person is followed through a stay by chaining
    the steps. Returns (drawn, withheld): links with a published count, and links whose
    count is suppressed (listed beside the chart, never drawn).
    """
    drawn: list[dict[str, Any]] = []
    withheld: list[dict[str, Any]] = []
    for row in flows.iter_rows(named=True):
        f, t = row["from_event_type"], row["to_event_type"]
        if t in ADMISSIONS and f not in ADMISSIONS:
            source, target = ("before", f), ("admission", t)
        elif f in ADMISSIONS:
            source, target = ("admission", f), ("end", t)
        elif f == "hospital_discharge":
            source, target = ("end", f), ("after", t)
        else:
            continue
        link = {"source": source, "target": target, **row}
        if row["transitions"]:
            drawn.append(link)
        elif row["transitions_suppressed"]:
            withheld.append(link)
    return drawn, withheld


# Top to bottom within each column, so the main pathway runs straight across.
_NODE_ORDER = (
    "ae_attendance",
    "emergency_admission",
    "hospital_discharge",
    "elective_admission",
    "other_admission",
    "gp_consultation",
    "social_care_request",
    "social_care_assessment",
    "social_care_service",
    "death",
)


def pathway_sankey(links: Sequence[dict[str, Any]], title: str, subtitle: str) -> go.Figure:
    nodes: list[tuple[str, str]] = []
    for link in links:
        for node in (link["source"], link["target"]):
            if node not in nodes:
                nodes.append(node)
    stage_order = ("before", "admission", "end", "after")
    # Fixed columns: without them Plotly pushes every sink (e.g. "GP consultation (during
    # stay)") to the far right, into the after-discharge column.
    nodes.sort(
        key=lambda n: (
            stage_order.index(n[0]),
            _NODE_ORDER.index(n[1]) if n[1] in _NODE_ORDER else len(_NODE_ORDER),
            n[1],
        )
    )
    index = {node: i for i, node in enumerate(nodes)}
    size = dict.fromkeys(nodes, 0)
    inflow = dict.fromkeys(nodes, 0)
    for link in links:
        size[link["source"]] += int(link["transitions"])
        inflow[link["target"]] += int(link["transitions"])
    size = {n: max(size[n], inflow[n]) for n in nodes}
    xs, ys = [], []
    for stage in stage_order:
        column = [n for n in nodes if n[0] == stage]
        total = sum(size[n] for n in column) or 1
        used = 0.0
        for n in column:
            share = size[n] / total
            xs.append(0.001 + 0.998 * stage_order.index(stage) / (len(stage_order) - 1))
            ys.append(0.02 + 0.96 * (used + share / 2))
            used += share
    node_colours = [SETTING_COLOURS[EVENT_SETTING.get(t, "hospital")] for _s, t in nodes]
    link_colours = [
        _rgba(SETTING_COLOURS[EVENT_SETTING.get(link["target"][1], "hospital")], 0.35)
        for link in links
    ]
    fig = go.Figure(
        go.Sankey(
            meta={"counts": "link.value"},
            arrangement="snap",
            valueformat=",d",
            node={
                "label": [_stage_label(s, t) for s, t in nodes],
                "color": node_colours,
                "pad": 18,
                "thickness": 16,
                "x": xs,
                "y": ys,
                "hovertemplate": "%{label}<br>Transitions: %{value:,}<extra></extra>",
            },
            link={
                "source": [index[link["source"]] for link in links],
                "target": [index[link["target"]] for link in links],
                "value": [int(link["transitions"]) for link in links],
                "color": link_colours,
                "customdata": [
                    format_count(link["transitions"], bool(link["transitions_suppressed"]))
                    for link in links
                ],
                "hovertemplate": (
                    "%{source.label} → %{target.label}<br>Transitions: %{customdata}<extra></extra>"
                ),
            },
        )
    )
    fig.update_layout(title=_title(title, subtitle), height=520, margin={"t": 90, "l": 10})
    return fig


def rate_over_time(
    frame: pl.DataFrame,
    rate: str,
    title: str,
    subtitle: str,
    y_title: str,
    overall: float | None = None,
) -> go.Figure:
    """Monthly rate with Wilson 95% error bars; a month with a withheld rate is a gap."""
    months: list[date] = frame["activity_month"].to_list()
    pct = frame[rate].to_list()
    low = frame[f"{rate}_low"].to_list()
    high = frame[f"{rate}_high"].to_list()
    fig = go.Figure(
        go.Scatter(
            x=months,
            y=pct,
            mode="lines+markers",
            line={"color": ACCENT},
            marker={"size": 8},
            connectgaps=False,
            name=f"{y_title} with 95% interval (Wilson)",
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [h - p if p is not None else None for p, h in zip(pct, high, strict=True)],
                "arrayminus": [
                    p - lo if p is not None else None for p, lo in zip(pct, low, strict=True)
                ],
                "color": _rgba(ACCENT, 0.6),
            },
            customdata=[
                [f"{lo:.1f}" if lo is not None else "", f"{hi:.1f}" if hi is not None else ""]
                for lo, hi in zip(low, high, strict=True)
            ],
            hovertemplate=(
                "%{x|%b %Y}: %{y:.1f}% (95% interval %{customdata[0]}–%{customdata[1]}%)"
                "<extra></extra>"
            ),
        )
    )
    if overall is not None:
        fig.add_hline(
            y=overall,
            line_dash="dot",
            line_color="#425563",
            annotation_text=f"whole selection {overall:.1f}%",
            annotation_position="top left",
        )
    fig.update_layout(
        title=_title(title, subtitle),
        height=400,
        margin={"t": 90},
        yaxis={"title": y_title, "ticksuffix": "%", "rangemode": "tozero"},
        xaxis={"title": "Month", "tickformat": "%b %Y", "dtick": "M1"},
        showlegend=True,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def rate_by_group(
    labels: Sequence[str],
    pct: Sequence[float | None],
    low: Sequence[float | None],
    high: Sequence[float | None],
    title: str,
    subtitle: str,
    x_title: str,
    overall: float | None = None,
) -> go.Figure:
    """Horizontal bars of a rate per group with 95% (Wilson) error bars."""
    plus = [
        (h - p) if p is not None and h is not None else None for p, h in zip(pct, high, strict=True)
    ]
    minus = [
        (p - lo) if p is not None and lo is not None else None
        for p, lo in zip(pct, low, strict=True)
    ]
    fig = go.Figure(
        go.Bar(
            y=list(labels),
            x=list(pct),
            orientation="h",
            marker_color=ACCENT,
            error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
            name=x_title,
        )
    )
    if overall is not None:
        fig.add_vline(x=overall, line_dash="dot", line_color="#425563")
    fig.update_layout(
        title=_title(title, subtitle),
        height=max(260, 90 + 38 * len(labels)),
        margin={"t": 90},
        xaxis={"title": x_title, "ticksuffix": "%", "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "type": "category"},
        showlegend=False,
    )
    return fig


def funnel_plot(
    labels: Sequence[str],
    numerators: Sequence[int],
    denominators: Sequence[int],
    overall: float,
    title: str,
    subtitle: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """Each unit's rate against its size, with 95% and 99.8% limits around the overall rate."""
    # Limits drawn over the range the units span: near zero they fan out to 0-100% and
    # would flatten the part of the plot where the units are.
    top = max([*denominators, 10]) * 1.1
    bottom = max(5.0, min(denominators, default=10) * 0.5)
    steps = [bottom + (top - bottom) * i / 100 for i in range(101)]
    fig = go.Figure()
    for name, z in (("95%", Z_95), ("99.8%", Z_998)):
        lower, upper = zip(*(funnel_limits(overall, n, z) for n in steps), strict=True)
        for bound in (upper, lower):
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=list(bound),
                    mode="lines",
                    line={"color": LIMIT_COLOURS[name], "dash": "dash", "width": 1},
                    name=f"{name} limits",
                    legendgroup=name,
                    showlegend=bound is upper,
                    hoverinfo="skip",
                )
            )
    rates = [100 * x / n for x, n in zip(numerators, denominators, strict=True)]
    fig.add_trace(
        go.Scatter(
            meta={"counts": "x"},
            x=list(denominators),
            y=rates,
            mode="markers+text",
            text=list(labels),
            textposition="top center",
            marker={"color": ACCENT, "size": 10},
            name="published units",
            customdata=[format_count(n, False) for n in denominators],
            hovertemplate=f"%{{text}}: %{{y:.1f}}%<br>{x_title}: %{{customdata}}<extra></extra>",
        )
    )
    fig.add_hline(y=overall, line_color="#425563", line_dash="dot")
    fig.update_layout(
        title=_title(title, subtitle),
        height=440,
        margin={"t": 90},
        xaxis={"title": x_title, "tickformat": ",d"},
        yaxis={"title": y_title, "ticksuffix": "%", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def median_days_over_time(
    series: dict[str, tuple[list[date], list[float | None]]],
    title: str,
    subtitle: str,
) -> go.Figure:
    fig = go.Figure()
    for name, (months, days) in series.items():
        fig.add_trace(
            go.Scatter(
                x=months,
                y=days,
                mode="lines+markers",
                name=name,
                hovertemplate=f"{name}, %{{x|%b %Y}}: median %{{y:.1f}} days<extra></extra>",
            )
        )
    fig.update_layout(
        title=_title(title, subtitle),
        height=400,
        margin={"t": 90},
        yaxis={"title": "Median days from discharge", "rangemode": "tozero"},
        xaxis={"title": "Month of discharge", "tickformat": "%b %Y", "dtick": "M1"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def grouped_share_bars(
    groups: Sequence[str],
    series: dict[str, list[float | None]],
    title: str,
    subtitle: str,
) -> go.Figure:
    """A percentage per group, one bar per series (e.g. the kind of social care next)."""
    fig = go.Figure()
    greens = ("#009639", "#78BE20", "#00A499")  # NHS greens: all three are social care
    for i, (name, pct) in enumerate(series.items()):
        fig.add_trace(
            go.Bar(
                x=list(groups),
                y=pct,
                name=name,
                marker_color=greens[i % len(greens)],
                hovertemplate=f"%{{x}}, {name}: %{{y:.1f}}%<extra></extra>",
            )
        )
    fig.update_layout(
        title=_title(title, subtitle),
        barmode="group",
        height=400,
        margin={"t": 90},
        yaxis={"title": "Share of discharges", "ticksuffix": "%", "rangemode": "tozero"},
        xaxis={"type": "category"},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def stacked_counts(
    categories: Sequence[str],
    parts: dict[str, list[int | None]],
    title: str,
    subtitle: str,
    x_title: str,
) -> go.Figure:
    """Horizontal stacked bars of published counts (withheld parts are left out, not drawn)."""
    colours = ["#005EB8", "#ED8B00", "#DA291C", "#009639"]
    fig = go.Figure()
    for i, (name, values) in enumerate(parts.items()):
        fig.add_trace(
            go.Bar(
                meta={"counts": "x"},
                y=list(categories),
                x=[v or 0 for v in values],
                orientation="h",
                name=name,
                marker_color=colours[i % len(colours)],
                customdata=[format_count(v, v is None) for v in values],
                hovertemplate=f"%{{y}}<br>{name}: %{{customdata}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=_title(title, subtitle),
        barmode="stack",
        height=max(300, 120 + 34 * len(categories)),
        margin={"t": 90},
        xaxis={"title": x_title, "tickformat": ",d"},
        yaxis={"autorange": "reversed", "type": "category"},
        legend={"orientation": "h", "y": -0.35},
    )
    return fig
