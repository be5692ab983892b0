"""Discharge to social care: how many adults get social care after a stay, and how soon."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts, ui
from dashboard.data import query
from dashboard.disclosure import format_count, format_rate

DEFINITION = "adult discharges followed by social care within 90 days"
LONG_DEFINITION = (
    "Adults (18 and over) discharged alive from a continuous hospital stay, with the full 90 "
    "days of follow-up inside the extract, counted by month of discharge. *Followed by social "
    "care* means a first adult social care request or service starting on the day of "
    "discharge or up to 90 days after; days are counted from discharge to that start. 95% "
    "intervals are Wilson score intervals on the published (rounded) counts."
)
ROUTE_NOTE = (
    "Route of access (for example *Discharge from hospital* or *Community*) is recorded in "
    "the social care extract but is not yet in a published, suppressed mart, so these "
    "figures cover any request or service. The chart of the next event after discharge "
    "below shows which door people come through (request, assessment or service start)."
)
SOCIAL_CARE_NEXT = ("social_care_request", "social_care_assessment", "social_care_service")


def _interval(row: dict[str, Any], rate: str) -> str:
    if row[f"{rate}_withheld"] or row[f"{rate}_low"] is None:
        return "—"
    return f"{row[f'{rate}_low']:.1f}–{row[f'{rate}_high']:.1f}%"


def _figures(row: dict[str, Any]) -> dict[str, str]:
    median = row["median_days_to_social_care"]
    return {
        "Adult discharges": format_count(row["discharges"], row["discharges_suppressed"] > 0),
        "Discharges followed by social care": format_count(
            row["discharges_to_social_care"], row["discharges_to_social_care_suppressed"] > 0
        ),
        "Followed by social care (%)": format_rate(
            row["social_care_rate"], row["social_care_rate_withheld"]
        ),
        "95% interval": _interval(row, "social_care_rate"),
        "Of those, within 7 days (%)": format_rate(
            row["within_7_days_rate"], row["within_7_days_rate_withheld"]
        ),
        "Median days to social care": "—" if median is None else f"{median:.1f}",
    }


def render(ctx: ui.Context) -> None:
    st.title("Discharge to social care")
    st.caption(LONG_DEFINITION)
    data_dir, cat, filters = ctx.data_dir, ctx.catalogue, ctx.filters

    shown = ui.headline(
        ctx,
        "social_care",
        "Discharge to social care",
        "No adult discharges were published for this selection.",
    )
    if shown is None:
        return
    plan, total = shown
    row = total.row(0, named=True)
    f = _figures(row)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Adult discharges, {plan.period_label}", f["Adult discharges"])
    c2.metric(
        "Followed by social care within 90 days",
        f["Followed by social care (%)"],
        f"95% interval {f['95% interval']}",
        delta_color="off",
        delta_arrow="off",
    )
    c3.metric("Of those, starting within 7 days", f["Of those, within 7 days (%)"])
    c4.metric("Median days from discharge to social care", f["Median days to social care"])
    ui.plan_note(plan, total)
    st.info(ROUTE_NOTE, icon=":material/info:")

    compared = ui.compare_by(ctx, "social_care", "Discharge to social care")
    if compared is None:
        return
    dim, by_plan, by_group = compared.dim, compared.plan, compared.frame
    rows, labels = compared.rows, compared.labels
    dim_label = ui.dimension_phrase(dim)
    sub = ui.subtitle(by_plan, filters, DEFINITION)
    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.rate_by_group(
                labels,
                [None if r["social_care_rate_withheld"] else r["social_care_rate"] for r in rows],
                [r["social_care_rate_low"] for r in rows],
                [r["social_care_rate_high"] for r in rows],
                f"Followed by social care within 90 days, by {dim_label}",
                sub,
                "Share of adult discharges",
            ),
            key="social-care-rate",
        )
    with right:
        ui.chart(
            charts.rate_by_group(
                labels,
                [
                    None if r["within_7_days_rate_withheld"] else r["within_7_days_rate"]
                    for r in rows
                ],
                [r["within_7_days_rate_low"] for r in rows],
                [r["within_7_days_rate_high"] for r in rows],
                f"Of those, starting within 7 days, by {dim_label}",
                f"{by_plan.period_label} · {ui.describe(filters)} · days from discharge "
                "to the first request or service",
                "Share of those followed by social care",
            ),
            key="social-care-7-days",
        )
    st.caption(f"**Period:** {by_plan.period_label}. **Definition:** {DEFINITION}.")
    ui.plan_note(by_plan, by_group)
    ui.table(
        [
            {ui.DIMENSION_LABELS[dim]: label, **_figures(r)}
            for label, r in zip(labels, rows, strict=True)
        ]
    )

    trend_plan, trend = query(data_dir, cat, "social_care", filters, ("activity_month", dim))
    if trend_plan is not None and not trend.is_empty():
        series: dict[str, tuple[list, list]] = {}
        for r in trend.iter_rows(named=True):
            months, days = series.setdefault(ui.value_label(dim, r[dim]), ([], []))
            months.append(r["activity_month"])
            days.append(r["median_days_to_social_care"])
        if any(d is not None for _m, days in series.values() for d in days):
            ui.chart(
                charts.median_days_over_time(
                    series,
                    f"Median days from discharge to social care, by month and {dim_label}",
                    ui.subtitle(trend_plan, filters, "days to the first request or service"),
                ),
                key="social-care-days",
            )
            st.caption(
                f"**Period:** {trend_plan.period_label}. **Definition:** median days from "
                "discharge to the first social care request or service, among discharges "
                "followed by one within 90 days; withheld where that count is suppressed."
            )
        else:
            st.caption(
                "Median days by month: not available here (medians are published per cell "
                "and cannot be added up; every cell is suppressed or the filters need more "
                "than one)."
            )

    _next_after_discharge(ctx, dim)


def _next_after_discharge(ctx: ui.Context, dim: str) -> None:
    """Which social care comes next after a discharge, and how soon (pathway flows mart)."""
    plan, flows = query(ctx.data_dir, ctx.catalogue, "flows", ctx.filters, (dim,))
    if plan is None or flows.is_empty():
        return
    flows = flows.filter(
        (pl.col("from_event_type") == "hospital_discharge")
        & pl.col("to_event_type").is_in(SOCIAL_CARE_NEXT)
    )
    if flows.is_empty():
        return
    dim_label = ui.dimension_phrase(dim)
    st.subheader("Which door: the next event after discharge")
    groups = flows[dim].unique(maintain_order=True).to_list()
    labels = [ui.value_label(dim, g) for g in groups]
    series: dict[str, list[float | None]] = {}
    rows = []
    for to_type in SOCIAL_CARE_NEXT:
        name = charts.event_label(to_type)
        values: list[float | None] = []
        for g, label in zip(groups, labels, strict=True):
            match = flows.filter(
                (pl.col(dim).is_null() if g is None else pl.col(dim) == g)
                & (pl.col("to_event_type") == to_type)
            )
            if not match.height:
                values.append(None)
                continue
            r = match.row(0, named=True)
            values.append(None if r["pct_of_from_event_withheld"] else r["pct_of_from_event"])
            median = r["median_days_between"]
            rows.append(
                {
                    ui.DIMENSION_LABELS[dim]: label,
                    "Next event": name,
                    "Transitions": format_count(r["transitions"], r["transitions_suppressed"] > 0),
                    "Share of discharges (%)": format_rate(
                        r["pct_of_from_event"], r["pct_of_from_event_withheld"]
                    ),
                    "Median days after discharge": "—" if median is None else f"{median:.1f}",
                }
            )
        series[name] = values
    sub = ui.subtitle(plan, ctx.filters, "next care event after a discharge (pathway flows)")
    ui.chart(
        charts.grouped_share_bars(
            labels, series, f"Next event after discharge is social care, by {dim_label}", sub
        ),
        key="social-care-next",
    )
    st.caption(
        f"**Period:** {plan.period_label}. **Definition:** of all transitions out of a hospital "
        "discharge (to the person's next care event of any kind, any time later), the share "
        "whose next event is a social care request, assessment or service start. Medians are "
        "shown only where one published cell answers."
    )
    ui.plan_note(plan, flows)
    ui.table(rows)
