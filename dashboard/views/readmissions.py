"""Readmissions: 30-day emergency readmission rate over time and by place and deprivation."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import charts, ui
from dashboard.data import query
from dashboard.disclosure import format_count, format_rate

DEFINITION = "emergency readmissions within 30 days of discharge (NHS definition)"
LONG_DEFINITION = (
    "Of discharges eligible as index stays (patient alive, not transferred on, the full "
    "30 days of follow-up inside the extract), the share followed by an emergency admission "
    "0–30 days later. Transfers are one stay; elective readmissions are not counted. "
    "Counted by the month of the index discharge. 95% intervals are Wilson score intervals "
    "on the published (rounded) counts."
)


def _interval(row: dict[str, Any]) -> str:
    if row["readmission_rate_withheld"] or row["readmission_rate_low"] is None:
        return "—"
    return f"{row['readmission_rate_low']:.1f}–{row['readmission_rate_high']:.1f}%"


def _figures(row: dict[str, Any]) -> dict[str, str]:
    return {
        "Index discharges": format_count(
            row["index_discharges"], row["index_discharges_suppressed"] > 0
        ),
        "Emergency readmissions": format_count(
            row["emergency_readmissions"], row["emergency_readmissions_suppressed"] > 0
        ),
        "Readmission rate (%)": format_rate(
            row["readmission_rate"], row["readmission_rate_withheld"]
        ),
        "95% interval": _interval(row),
    }


def render(ctx: ui.Context) -> None:
    st.title("30-day emergency readmissions")
    st.caption(LONG_DEFINITION)
    data_dir, cat, filters = ctx.data_dir, ctx.catalogue, ctx.filters

    shown = ui.headline(
        ctx,
        "readmissions",
        "Readmissions",
        "No index discharges were published for this selection.",
    )
    if shown is None:
        return
    plan, total = shown
    overall_row = total.row(0, named=True)
    overall = None if overall_row["readmission_rate_withheld"] else overall_row["readmission_rate"]
    figures = _figures(overall_row)
    c1, c2, c3 = st.columns(3)
    c1.metric(f"Index discharges, {plan.period_label}", figures["Index discharges"])
    c2.metric("Emergency readmissions within 30 days", figures["Emergency readmissions"])
    c3.metric(
        "Readmission rate",
        figures["Readmission rate (%)"],
        f"95% interval {figures['95% interval']}",
        delta_color="off",
        delta_arrow="off",
    )
    ui.plan_note(plan, total)

    trend_plan, trend = query(data_dir, cat, "readmissions", filters, ("activity_month",))
    if trend_plan is not None and not trend.is_empty():
        ui.chart(
            charts.rate_over_time(
                trend,
                "readmission_rate",
                "Readmission rate by month of discharge",
                ui.subtitle(trend_plan, filters, DEFINITION),
                "Readmission rate",
                overall,
            ),
            key="readmissions-trend",
        )
        st.caption(
            f"**Period:** {trend_plan.period_label}. **Definition:** {DEFINITION}; the bars "
            "are 95% Wilson intervals. A month with a suppressed count has no point."
        )
        with st.expander("Monthly figures"):
            ui.table(
                [
                    {
                        "Month": ui.value_label("activity_month", r["activity_month"]),
                        **_figures(r),
                    }
                    for r in trend.iter_rows(named=True)
                ]
            )

    st.subheader("By place and deprivation")
    compared = ui.compare_by(ctx, "readmissions", "Readmissions")
    if compared is None:
        return
    dim, by_plan, by_group = compared.dim, compared.plan, compared.frame
    rows, labels = compared.rows, compared.labels
    sub = ui.subtitle(by_plan, filters, DEFINITION)
    ui.chart(
        charts.rate_by_group(
            labels,
            [None if r["readmission_rate_withheld"] else r["readmission_rate"] for r in rows],
            [r["readmission_rate_low"] for r in rows],
            [r["readmission_rate_high"] for r in rows],
            f"Readmission rate by {ui.dimension_phrase(dim)}",
            sub,
            "Readmission rate",
            overall,
        ),
        key="readmissions-by-group",
    )
    published = [
        (label, r)
        for label, r in zip(labels, rows, strict=True)
        if not r["readmission_rate_withheld"] and r["readmission_rate_den"]
    ]
    if overall is not None and len(published) >= 2:
        ui.chart(
            charts.funnel_plot(
                [label for label, _ in published],
                [r["readmission_rate_num"] for _, r in published],
                [r["readmission_rate_den"] for _, r in published],
                overall,
                f"Funnel plot: readmission rate against index discharges, by "
                f"{ui.dimension_phrase(dim)}",
                sub,
                "Index discharges",
                "Readmission rate",
            ),
            key="readmissions-funnel",
        )
        st.caption(
            "Points outside the dashed limits (95% and 99.8% around the overall rate, "
            "normal approximation) differ from the overall rate by more than chance "
            "would explain for a unit of that size."
        )
    else:
        st.caption("Funnel plot: fewer than two groups have a published rate here.")
    st.caption(f"**Period:** {by_plan.period_label}. **Definition:** {DEFINITION}.")
    ui.plan_note(by_plan, by_group)
    ui.table(
        [
            {ui.DIMENSION_LABELS[dim]: label, **_figures(r)}
            for label, r in zip(labels, rows, strict=True)
        ]
    )
