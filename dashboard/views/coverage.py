"""Data coverage: what went in, what was linked, what was removed for opt-outs.

These figures come from ``DATA/ledger.csv`` and ``DATA/linked/summary.json``, which hold
exact counts; only aggregates are shown, through the same disclosure rule as the marts
(:func:`dashboard.disclosure.publish_count`), and shares are computed from the rounded
counts.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from dashboard import charts, ui
from dashboard.data import commissioning_path, period_label, published_run
from dashboard.disclosure import format_count, format_rate, publish_count
from joinedup import catalogue
from joinedup.catalogue import LINKAGE_SUMMARY

LEDGER = catalogue.LEDGER.path
SOURCE_LABELS = {
    "gp": "GP",
    "hospital": "Hospital",
    "social_care": "Social care",
    "opt_outs": "Opt-out list",
    "reference": "Reference",
}
TABLE_LABELS = {
    "ae_attendances": "A&E attendances",
    "apc_episodes": "admitted patient care episodes",
    "national_data_opt_out": "national data opt-out",
}
COUNTS = {
    "rows_received": "Rows received",
    "rows_loaded": "Rows loaded",
    "rows_quarantined": "Rows quarantined",
    "rows_opted_out": "Rows removed for opt-out",
}


def _version(path: Path) -> int:
    """The file's modification time; 0 when it is absent or this account may not see it
    (linked/ is owner-only, so a dashboard run by an analyst's account has no summary)."""
    try:
        return path.stat().st_mtime_ns
    except (FileNotFoundError, PermissionError):
        return 0


@st.cache_data(show_spinner=False, max_entries=4)
def _ledger(
    path: str, version: int, run_id: str | None
) -> tuple[str, pl.DataFrame, pl.DataFrame] | None:
    """Per source and table, one run's exact counts (never shown as they are), and its files.

    The run is the one that published the marts on show; without one (a file published
    before runs were stamped), the ledger's last run (rows are sorted by run id).
    """
    if not version:
        return None
    ledger = pl.read_csv(path, infer_schema_length=0)
    if ledger.is_empty():
        return None
    if run_id is None or run_id not in set(ledger["run_id"]):
        run_id = ledger["run_id"][-1]
    rows = ledger.filter(pl.col("run_id") == run_id)
    totals = (
        rows.with_columns(pl.col(list(COUNTS)).cast(pl.Int64))
        .group_by("source", "table", maintain_order=True)
        .agg(pl.col(list(COUNTS)).sum())
        .sort("source", "table")
    )
    status = pl.col("status").fill_null("loaded") if "status" in rows.columns else pl.lit("loaded")
    size = pl.col("size_bytes").cast(pl.Int64) if "size_bytes" in rows.columns else pl.lit(None)
    files = (
        rows.with_columns(status.alias("status"), size.alias("size_bytes"))
        .group_by("source", maintain_order=True)
        .agg(
            pl.len().alias("files"),
            (pl.col("status") == "duplicate").sum().alias("duplicate"),
            (pl.col("status") == "replaced").sum().alias("replaced"),
            pl.col("size_bytes").sum().alias("size_bytes"),
        )
        .sort("source")
    )
    return run_id, totals, files


@st.cache_data(show_spinner=False, max_entries=4)
def _linkage(path: str, version: int) -> dict[str, Any] | None:
    if not version:
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _published(n: int | None) -> tuple[int | None, bool, str]:
    value, suppressed = publish_count(n)
    return value, suppressed, format_count(value, suppressed)


def _share(num: int | None, den: int | None) -> str:
    if num is None or den is None:
        return format_rate(None, True)
    return format_rate(100 * num / den if den else None, False)


def render(ctx: ui.Context) -> None:
    st.title("Data coverage")
    st.caption(
        "What the published figures rest on: the extracts received, the rows kept, "
        "quarantined or removed because the patient opted out, and how records were "
        "linked into people. Counts are rounded and suppressed like every other figure. "
        "The sidebar filters do not apply to this page."
    )
    run = published_run(ctx.data_dir)
    _published_marts(ctx, run)
    _ledger_section(ctx.data_dir, run["run_id"] if run else None)
    _linkage_section(ctx.data_dir)


def _published_marts(ctx: ui.Context, run: dict[str, Any] | None) -> None:
    published = datetime.fromtimestamp(commissioning_path(ctx.data_dir).stat().st_mtime)
    months = ctx.catalogue.months
    st.markdown(
        f"**Published marts** (`{commissioning_path(ctx.data_dir).name}`, "
        f"{published:%d %b %Y %H:%M}): pathway "
        f"flows {period_label(months['flows'])}; readmissions "
        f"{period_label(months['readmissions'])} (index discharges with 30 days of "
        f"follow-up); discharge to social care {period_label(months['social_care'])} "
        "(90 days of follow-up)."
    )
    if run is None:
        st.caption("This file does not say which run published it (published before provenance).")
        return
    model = run.get("linkage_model_sha256")
    st.markdown(
        f"**Provenance:** run `{run['run_id']}`, published {run['written_at']} (UTC), code "
        f"`{run['code_version']}`, linkage model `{model[:16] if model else 'none'}` "
        "(SHA-256). The run's record in `runs/` lists the checksum of every input and output."
    )


def _files(n: int) -> str:
    # File counts say nothing about people, so they are shown exactly, never as a bare number.
    return f"{n:,} file" if n == 1 else f"{n:,} files"


def _deliveries_table(run_id: str, files: pl.DataFrame) -> None:
    rows = [
        {
            "Source": SOURCE_LABELS.get(r["source"], r["source"]),
            "Files received": _files(r["files"]),
            "Duplicates not loaded again": _files(r["duplicate"]),
            "Replaced by a later delivery": _files(r["replaced"]),
            "Size": f"{r['size_bytes'] / 1e6:,.1f} MB" if r["size_bytes"] is not None else "–",
        }
        for r in files.iter_rows(named=True)
    ]
    ui.table(
        rows,
        f"Files of run `{run_id}`. A file with the same content as one already delivered, or "
        "a month delivered again with corrections, is recorded in the ledger but its rows are "
        "counted once: only the latest delivery of a month is loaded.",
    )


def _ledger_section(data_dir: Path, run_id: str | None) -> None:
    st.subheader("Extracts received, by source")
    path = data_dir / LEDGER
    found = _ledger(str(path), _version(path), run_id)
    if found is None:
        st.info(f"No ledger at `{path}`: the ingest stages have not run for this data directory.")
        return
    run_id, totals, files = found
    _deliveries_table(run_id, files)
    rows, categories = [], []
    parts: dict[str, list[int | None]] = {
        "Loaded": [],
        "Quarantined": [],
        "Removed for opt-out": [],
    }
    for r in totals.iter_rows(named=True):
        table = TABLE_LABELS.get(r["table"], r["table"].replace("_", " "))
        name = f"{SOURCE_LABELS.get(r['source'], r['source'])}: {table}"
        published = {c: _published(r[c]) for c in COUNTS}
        rows.append(
            {
                "Source: table": name,
                **{label: published[c][2] for c, label in COUNTS.items()},
                "Share removed for opt-out (%)": _share(
                    published["rows_opted_out"][0], published["rows_received"][0]
                )
                if not published["rows_opted_out"][1]
                else format_rate(None, True),
            }
        )
        if r["source"] in ("gp", "hospital", "social_care"):
            categories.append(name)
            parts["Loaded"].append(published["rows_loaded"][0])
            parts["Quarantined"].append(published["rows_quarantined"][0])
            parts["Removed for opt-out"].append(published["rows_opted_out"][0])
    if categories:
        ui.chart(
            charts.stacked_counts(
                categories,
                parts,
                "Rows received per extract table: loaded, quarantined, removed for opt-out",
                f"Run {run_id} · rows as received, rounded to 5; suppressed parts not drawn",
                "Rows",
            ),
            key="coverage-ledger",
        )
    st.caption(
        f"**Period:** the extracts of run `{run_id}`. **Definition:** every row received is "
        "loaded, quarantined (unusable, with a reason) or removed because the patient opted "
        "out (national data opt-out or GP type 1 objection)."
    )
    ui.table(rows)


def _linkage_section(data_dir: Path) -> None:
    st.subheader("Linkage")
    path = data_dir / LINKAGE_SUMMARY
    summary = _linkage(str(path), _version(path))
    if summary is None:
        st.info(
            f"No linkage summary at `{path}`: linkage has not run for this data directory, "
            "or this account may not read linked/ (it is for data engineers only)."
        )
        return
    records = summary.get("records")
    persons = summary.get("persons")
    share = summary.get("records_linked_across_sources_share")
    linked = round(share * records) if share is not None and records is not None else None
    records_p, persons_p, linked_p = _published(records), _published(persons), _published(linked)
    c1, c2, c3 = st.columns(3)
    c1.metric("Source records linked", records_p[2])
    c2.metric("People they form", persons_p[2])
    c3.metric(
        "Records linked to another source's record",
        _share(linked_p[0], records_p[0]) if not linked_p[1] else format_rate(None, True),
    )
    removed = summary.get("records_removed_for_opt_out", {})
    rows = []
    for source, n in summary.get("records_in", {}).items():
        rows.append(
            {
                "Source": SOURCE_LABELS.get(source, source),
                "Records in": _published(n)[2],
                "Records removed for opt-out at linkage": _published(removed.get(source, 0))[2],
            }
        )
    ui.table(
        rows,
        f"Run `{summary.get('run_id', '?')}`. Records without an NHS number that match an "
        "opted-out person's (pseudonymised) details are removed at linkage, in addition to "
        "those removed by NHS number at ingest.",
    )
