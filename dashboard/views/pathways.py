"""Pathways: where people go before and after a hospital stay (Sankey of care settings)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, ui
from dashboard.disclosure import format_count, format_rate, suppressed_label

DEFINITION = "consecutive care events of each linked person, counted by the month of the first"


def _share(flows: pl.DataFrame, from_type: str, to_types: tuple[str, ...]) -> str:
    """Share of transitions leaving ``from_type`` that go to any of ``to_types``."""
    rows = flows.filter(pl.col("from_event_type") == from_type)
    if rows.is_empty():
        return format_rate(None, False)
    wanted = rows.filter(pl.col("to_event_type").is_in(to_types))
    if (wanted["transitions_suppressed"] > 0).any() or (
        rows["from_event_transitions_suppressed"] > 0
    ).any():
        return format_rate(None, True)
    total = rows["from_event_transitions"].max()
    if not total:
        return format_rate(None, False)
    return format_rate(100 * (wanted["transitions"].sum() or 0) / total, False)


def render(ctx: ui.Context) -> None:
    st.title("Pathways: where people go around a hospital stay")
    st.caption(
        "Follows each linked person from one care event to the next: what came before an "
        "admission, how the stay ended, and what happened next after discharge."
    )
    shown = ui.headline(
        ctx, "flows", "Pathways", "No care events were published for this selection."
    )
    if shown is None:
        return
    plan, flows = shown
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "A&E attendances followed by an emergency admission",
        _share(flows, "ae_attendance", ("emergency_admission",)),
    )
    c2.metric(
        "Discharges followed next by social care",
        _share(
            flows,
            "hospital_discharge",
            ("social_care_request", "social_care_assessment", "social_care_service"),
        ),
    )
    c3.metric(
        "Discharges followed next by an emergency admission",
        _share(flows, "hospital_discharge", ("emergency_admission",)),
    )
    c4.metric(
        "Discharges followed next by A&E", _share(flows, "hospital_discharge", ("ae_attendance",))
    )

    drawn, withheld = charts.pathway_links(flows)
    subtitle = ui.subtitle(plan, ctx.filters, DEFINITION)
    if drawn:
        ui.chart(
            charts.pathway_sankey(
                drawn, "Before admission → admission → end of stay → next event", subtitle
            ),
            key="pathways-sankey",
        )
    else:
        st.info("Every flow of this selection is suppressed; widen the filters.")
    st.caption(
        f"**Period:** {plan.period_label}. **Definition:** each band is the number of "
        "transitions from one care event to the person's next one (GP consultation, A&E "
        "attendance, admission, discharge, social care request, assessment or service "
        "start, death). Steps are counted separately, so a band after discharge includes "
        "every discharge in the period, not only those of people who came through A&E. "
        "Hospital stays are continuous (transfers between hospitals are one stay)."
    )
    if withheld:
        names = "; ".join(
            f"{charts.event_label(w['from_event_type'])} → {charts.event_label(w['to_event_type'])}"
            for w in withheld
        )
        st.caption(f"Not drawn, {suppressed_label()}: {names}.")
    ui.plan_note(plan, flows)

    st.subheader("Where people go next, by event")
    pathway = {*charts.ADMISSIONS, "ae_attendance", "hospital_discharge"}
    rows = [
        {
            "From": charts.event_label(r["from_event_type"]),
            "To": charts.event_label(r["to_event_type"]),
            "Transitions": format_count(r["transitions"], bool(r["transitions_suppressed"])),
            "People": format_count(r["people"], bool(r["people_suppressed"]))
            if plan.exact
            else "—",
            "Share of transitions from this event (%)": format_rate(
                r["pct_of_from_event"], r["pct_of_from_event_withheld"]
            ),
            "Median days to next": "—"
            if r["median_days_between"] is None
            else f"{r['median_days_between']:.1f}",
        }
        for r in flows.filter(pl.col("from_event_type").is_in(pathway))
        .sort("from_event_type", "transitions", descending=[False, True], nulls_last=True)
        .iter_rows(named=True)
    ]
    ui.table(
        rows,
        f"{plan.period_label}, {ui.describe(ctx.filters)}. People and medians are shown only "
        "where one published cell answers (they cannot be added up).",
    )
