"""The end-of-run summary printed by ``joinedup run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joinedup import catalogue as c
from joinedup.privacy.report import summary_lines as privacy_report_lines
from joinedup.provenance import run_record_path as run_summary_path
from joinedup.warehouse.publish import analytics_path, commissioning_path


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, width, strict=True))
        )
        for r in rows
    ]


def _deliveries(deliveries: dict[str, Any] | None) -> list[str]:
    """Input files by what became of them; every skipped one named with what superseded it."""
    if not deliveries:
        return []
    lines = [
        f"input files: {deliveries['files']:,} ({deliveries['bytes'] / 1e6:,.1f} MB, sha256 "
        f"in the ledger): {deliveries['loaded']:,} loaded, {deliveries['duplicate']:,} "
        f"duplicate(s) not loaded again, {deliveries['replaced']:,} replaced by a re-delivery"
    ]
    for skipped in deliveries["skipped"]:
        how = "same content as" if skipped["status"] == "duplicate" else "replaced by"
        lines.append(f"  {skipped['file']}: {how} {skipped['by']}")
    return lines


def _provenance(provenance: dict[str, Any] | None) -> list[str]:
    if not provenance:
        return []
    model = (provenance.get("linkage") or {}).get("model")
    return [
        f"provenance: code {provenance['code']['version']}; linkage model sha256 "
        f"{model['sha256'][:16] if model else '(none)'}; "
        f"{len(provenance['outputs']):,} output files with their sha256 in the run record"
    ]


def format_run_summary(data_dir: Path, summary: dict[str, Any]) -> str:
    data_dir = Path(data_dir)
    ledger = summary["ledger"]
    lines = [
        f"run {summary['run_id']}: ledger balances (received = loaded + quarantined + opted out)"
    ]
    rows = [("table", "received", "loaded", "quarantined", "opted out")]
    for table, t in sorted(ledger["tables"].items()):
        rows.append(
            (
                table,
                f"{t['rows_received']:,}",
                f"{t['rows_loaded']:,}",
                f"{t['rows_quarantined']:,}",
                f"{t['rows_opted_out']:,}",
            )
        )
    lines += _table(rows)
    lines += _deliveries(ledger.get("deliveries"))
    link = summary.get("linkage")
    if link:
        removed = sum(link["records_removed_for_opt_out"].values())
        lines += [
            "",
            f"linkage: {link['records']:,} records -> {link['persons']:,} persons; "
            f"{link['records_linked_across_sources_share']:.1%} of records linked across sources; "
            f"{removed:,} records without NHS number removed as opted out; "
            f"{link['ids_kept']:,} person ids kept, {link['ids_new']:,} new",
        ]
        mode = link.get("mode")
        if mode:
            scored = link.get("records_scored")
            line = f"linkage mode: {mode['mode']} ({mode['why']})"
            if scored is not None:
                line += f"; {scored:,} records scored"
            drift = link.get("drift")
            if drift:
                line += (
                    f"; drift of incremental linkage from this full link: pairwise F1 "
                    f"{drift['f1']:.4f}, {drift['records_with_other_person_share']:.2%} "
                    "of records with another person"
                )
                kept = drift.get("opt_out_records_kept_by_incremental")
                if kept:
                    line += f", {kept:,} opted-out people's records it would have kept"
            lines.append(line)
    quality = summary.get("quality")
    if quality:
        zones = [quality["landing"], *quality["inputs"].values(), quality["marts"]]
        suites = sum(len(z["suites"]) for z in zones)
        expectations = sum(s["evaluated"] for z in zones for s in z["suites"].values())
        warnings = sum(len(z["warnings"]) for z in zones)
        lines.append(
            f"quality gates: {suites} suites, {expectations} expectations passed in "
            f"{len(zones)} zones; {warnings} warning(s)"
        )
    if summary.get("privacy"):
        privacy = summary["privacy"]
        lines.append(f"privacy gate: no identifier found in {', '.join(privacy['scanned'])}")
        lines += [
            f"  {name} not rescanned: {why}, when that run's gate scanned it"
            for name, why in (privacy.get("not_rescanned") or {}).items()
        ]
    lines += privacy_report_lines(summary.get("privacy_report"))
    lines += _provenance(summary.get("provenance"))
    published = analytics_path(data_dir)
    commissioning = commissioning_path(data_dir)
    outputs = [
        ("ledger", f"{c.LEDGER.under(data_dir)}"),
        ("quarantine", f"{c.QUARANTINE.under(data_dir)}/"),
        ("pseudonymised", f"{c.PSEUDONYMISED.under(data_dir)}/"),
        ("linked persons", f"{data_dir / c.RECORD_PERSON}"),
        ("linkage charts", f"{c.LINKED.under(data_dir) / 'charts'}/"),
        ("run record", f"{run_summary_path(data_dir, summary['run_id'])}"),
    ]
    optional = [
        ("warehouse", c.WAREHOUSE.under(data_dir)),
        # Wherever JOINEDUP_PUBLISHED_DIR puts them, not always in the data directory.
        ("analytics marts", published),
        ("commissioning", commissioning),
        ("dbt docs", c.DBT_DOCS.under(data_dir) / "static_index.html"),
        ("data docs", c.QUALITY.under(data_dir) / "docs" / "index.html"),
        ("privacy report", c.PRIVACY.under(data_dir) / "report.html"),
        ("protection pack", c.PRIVACY.under(data_dir) / "data_protection_pack.html"),
    ]
    lines += ["", "outputs:"]
    lines += [f"  {label:<17} {path}" for label, path in outputs]
    lines += [f"  {label:<17} {path}" for label, path in optional if path.exists()]
    if commissioning.exists():
        lines += [
            "",
            f"dashboard: make dashboard DATA={data_dir}  (then open http://localhost:8501)",
        ]
    return "\n".join(lines)
