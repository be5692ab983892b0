"""Measure what is about to be published, write the report and the pack, and decide.

There are two publications (joinedup.warehouse.publish), measured each as published:
``analytics.duckdb`` (the person-level marts, for the analysts' group: k-anonymity of
the people in it) and ``commissioning.duckdb`` (aggregates for everyone: the
suppression rule, differencing, and that it holds no person-level table). The pipeline
measures the candidates that ``stage_analytics`` wrote and publishes them only if this
report does not fail (the verdict is ok, warn or fail); ``joinedup privacy-report``
measures the published files themselves.

``DATA/privacy/`` receives ``report.json`` and ``report.html`` (re-identification risk)
and ``data_protection_pack.json`` and ``.html``. They are written before any failure
is raised, so the evidence of a failed run is there to read.

What fails a run (each has a setting; see docs/privacy.md):

* people in ``dim_person`` whose demographics put them in a class smaller than
  ``JOINEDUP_PRIVACY_MIN_K`` (``JOINEDUP_PRIVACY_ON_LOW_K=fail``);
* a suppressed commissioner cell recovered exactly by differencing
  (``JOINEDUP_PRIVACY_ON_RECOVERABLE``, ``fail`` by default: secondary suppression
  leaves none); cells only narrowed are a warning;
* a published count that breaks the suppression rule itself (always).

The scenarios with dated events are reported and never fail a run: a date of admission
with a month of birth singles out nearly everyone in any population, which is why the
person-level marts are for analysts under access control, not for publication.
"""

from __future__ import annotations

import grp
import json
import logging
import stat
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from joinedup.atomic import write_text
from joinedup.catalogue import PRIVACY, RUNS
from joinedup.privacy import differencing, html, kanon
from joinedup.privacy.coarsening import Coarsening, alternatives
from joinedup.privacy.html import share_text
from joinedup.privacy.pack import build_pack
from joinedup.privacy.rules import rounding_base
from joinedup.provenance import run_record_path

log = logging.getLogger(__name__)

PRIVACY_DIR = PRIVACY.path
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
PACK_JSON = "data_protection_pack.json"
PACK_HTML = "data_protection_pack.html"
GATED_SCENARIO = "demographics"
PUBLICATION_HOLDS = {
    "analytics": "person-level marts (dim_, fct_), coarsened; for the analysts' group",
    "commissioning": "suppressed aggregate marts (mart_) and their description; for everyone "
    "(the dashboard's only input)",
}


class PrivacyRiskError(RuntimeError):
    """The measured marts break a privacy rule that is set to fail the run."""


def _settings_dict(settings: Any, base: int) -> dict[str, Any]:
    return {
        "privacy_min_k": settings.privacy_min_k,
        "privacy_on_low_k": settings.privacy_on_low_k,
        "privacy_on_recoverable": settings.privacy_on_recoverable,
        "suppression_threshold": settings.suppression_threshold,
        "rounding_base": base,
        "coarsen_birth": settings.coarsen_birth,
        "coarsen_area": settings.coarsen_area,
    }


def _compact(scenario: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "persons",
        "classes",
        "min_k",
        "median_k",
        "unique_share",
        "persons_below_min_k",
        "persons_below_min_k_share",
        "records_below_min_k",
    )
    return {
        "key": scenario["key"],
        "title": scenario["title"],
        **{k: scenario.get(k) for k in keys},
    }


def measure(
    analytics: Path, commissioning: Path, settings: Any, *, base: int, coarsening: Coarsening
) -> dict[str, Any]:
    """The person-level figures of the analysts' file, the aggregate ones of the
    commissioners' file."""
    min_k = settings.privacy_min_k
    with duckdb.connect(str(analytics), read_only=True) as con:
        started = time.perf_counter()
        scenarios = kanon.measure_all(con, min_k=min_k, withheld=coarsening.withheld())
        what_if = []
        options = alternatives(coarsening)
        for n, (name, option) in enumerate(options.items(), start=1):
            # Dated events single out people whatever the coarsening: re-measuring them is
            # costly at scale, so only the strictest option set does.
            chosen = (
                kanon.SCENARIOS
                if n == len(options)
                else [s for s in kanon.SCENARIOS if s.table is None]
            )
            measured = kanon.measure_all(
                con, min_k=min_k, withheld=option.withheld(), scenarios=chosen, drivers=False
            )
            what_if.append(
                {"coarsening": name, "scenarios": [_compact(s) for s in measured if s["measured"]]}
            )
        k_seconds = time.perf_counter() - started
    with duckdb.connect(str(commissioning), read_only=True) as con:
        started = time.perf_counter()
        marts = differencing.check_all(
            con, threshold=settings.suppression_threshold, rounding_base=base
        )
        d_seconds = time.perf_counter() - started
        person_level_tables = _person_level_tables(con)
    return {
        "person_level": {
            "min_k": min_k,
            "coarsening": coarsening.describe(),
            "withheld_columns": coarsening.withheld(),
            "scenarios": scenarios,
            "what_if": what_if,
        },
        "aggregates": {
            "threshold": settings.suppression_threshold,
            "rounding_base": base,
            "marts": marts,
            "person_level_tables": person_level_tables,
        },
        "seconds": {"k_anonymity": round(k_seconds, 2), "differencing": round(d_seconds, 2)},
    }


def _person_level_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables of the commissioners' file with a person's rows (a person_id, or dim_/fct_)."""
    from joinedup.warehouse.publish import PERSON_COLUMN, PUBLICATION_PREFIXES

    tables = kanon.table_columns(con)
    return sorted(
        t
        for t, columns in tables.items()
        if PERSON_COLUMN in columns or t.startswith(PUBLICATION_PREFIXES["analytics"])
    )


def _file_access(path: Path, publication: str) -> dict[str, Any]:
    """Who may read a publication as published: its mode and group (the candidate's to be)."""
    from joinedup.warehouse.publish import _published_mode, analysts_gid

    gid = analysts_gid() if publication == "analytics" else None
    mode = _published_mode(publication, gid)
    group = None
    if gid is not None:
        try:
            group = grp.getgrgid(gid).gr_name
        except KeyError:
            group = str(gid)
    readers = {
        "commissioning": "everyone (the dashboard, commissioners)",
        "analytics": f"the pipeline's account and group {group}"
        if group
        else "the pipeline's account alone (JOINEDUP_ANALYSTS_GROUP is not set)",
    }[publication]
    return {
        "mode": f"{mode:04o}",
        "group": group,
        "readers": readers,
        "world_readable": bool(mode & stat.S_IROTH),
    }


def findings(measured: Mapping[str, Any], settings: Any) -> list[dict[str, str]]:
    """What the figures mean for this run, each with its severity and what to do."""
    out = []
    min_k = settings.privacy_min_k
    by_key = {s["key"]: s for s in measured["person_level"]["scenarios"] if s["measured"]}
    gated = by_key.get(GATED_SCENARIO)
    if gated and gated["persons_below_min_k"]:
        best = min(
            (
                (s["persons_below_min_k"], w["coarsening"])
                for w in measured["person_level"]["what_if"]
                for s in w["scenarios"]
                if s["key"] == GATED_SCENARIO
            ),
            default=None,
        )
        hint = f" With {best[1]} it would be {best[0]:,} people." if best is not None else ""
        out.append(
            {
                "severity": settings.privacy_on_low_k,
                "what": (
                    f"{gated['persons_below_min_k']:,} of {gated['persons']:,} people in "
                    f"dim_person ({share_text(gated['persons_below_min_k_share'])}) share their "
                    f"demographics with fewer than {min_k - 1} others (k < {min_k}); "
                    f"{gated['unique_persons']:,} are unique (k = 1).{hint}"
                ),
                "do": (
                    "Keep analysts' access to analytics.duckdb under agreement and access "
                    "control (JOINEDUP_ANALYSTS_GROUP); set JOINEDUP_COARSEN_BIRTH=age_band and/or "
                    "JOINEDUP_COARSEN_AREA=la to coarsen the person-level marts."
                ),
            }
        )
    for key, s in by_key.items():
        if key == GATED_SCENARIO or not s["persons_below_min_k"]:
            continue
        out.append(
            {
                "severity": "info",
                "what": (
                    f"{s['title']}: {share_text(s['unique_share'])} of the {s['persons']:,} "
                    f"people it covers are unique; {s['records_below_min_k']:,} rows sit in "
                    f"classes with k < {min_k}."
                ),
                "do": (
                    "Dated events are what person-level analysis needs; protect them by "
                    "access control, never publish person-level rows."
                ),
            }
        )
    leaked = measured["aggregates"].get("person_level_tables") or []
    if leaked:
        out.append(
            {
                "severity": "fail",
                "what": "commissioning.duckdb, which everyone may read, holds person-level "
                f"table(s): {', '.join(leaked)}",
                "do": "Do not share commissioning.duckdb; person-level marts go to "
                "analytics.duckdb alone (joinedup.warehouse.publish) and find what wrote it.",
            }
        )
    marts = measured["aggregates"]["marts"]
    breaches = {m["mart"]: sum(m["rule"].values()) for m in marts if sum(m["rule"].values())}
    if breaches:
        out.append(
            {
                "severity": "fail",
                "what": "published counts break the suppression rule: "
                + ", ".join(f"{m} ({n:,} rows)" for m, n in breaches.items()),
                "do": "Do not share commissioning.duckdb; rebuild it (the marts gate should "
                "have stopped this) and find what wrote it.",
            }
        )
    recoverable = [(m["mart"], m["recoverable_cells"], m["exactly_recovered_cells"]) for m in marts]
    total = sum(r for _m, r, _e in recoverable)
    exact = sum(e for _m, _r, e in recoverable)
    if total:
        # Exact recovery is the gate: secondary suppression leaves none. Narrowing is not
        # (a withheld whole with k non-empty parts is at least k whatever is withheld).
        out.append(
            {
                "severity": settings.privacy_on_recoverable if exact else "warn",
                "what": (
                    f"{total:,} suppressed cells can be narrowed by subtracting published "
                    "cells from their margins ("
                    + ", ".join(f"{m}: {r:,}, {e:,} exactly" for m, r, e in recoverable if r)
                    + ")."
                ),
                "do": (
                    (
                        "Rebuild the warehouse (dbt build is followed by secondary "
                        "suppression, joinedup.privacy.secondary_suppression); if cells are still "
                        "recovered exactly, publish fewer overlapping breakdowns "
                        "(macros/commissioner_breakdowns.sql)."
                    )
                    if exact
                    else (
                        "No cell is recovered exactly; to narrow fewer, publish fewer "
                        "overlapping breakdowns (macros/commissioner_breakdowns.sql)."
                    )
                ),
            }
        )
    return out


def _status(found: list[dict[str, str]]) -> str:
    severities = {f["severity"] for f in found}
    return "fail" if "fail" in severities else "warn" if "warn" in severities else "ok"


def _latest_run(data_dir: Path) -> str | None:
    runs = sorted(RUNS.under(data_dir).glob("*.json"), key=lambda p: p.stat().st_mtime)
    return runs[-1].stem if runs else None


def _stages(data_dir: Path, run_id: str | None) -> dict[str, Any]:
    path = run_record_path(data_dir, run_id) if run_id else RUNS.under(data_dir)
    if run_id and path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


def write_privacy_report(
    data_dir: Path,
    *,
    run_id: str | None = None,
    analytics: Path | None = None,
    commissioning: Path | None = None,
    stages: Mapping[str, Any] | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """Write ``DATA/privacy/`` and return the summary that goes into the run summary.

    ``analytics`` and ``commissioning`` default to the published files; the pipeline
    passes the candidates it staged, which are published only if this returns. ``stages``
    (the run's stage summaries, for the opt-out split) default to the run summary of
    ``run_id``. Raises :class:`PrivacyRiskError` after writing, when a finding is set to
    fail. The summary's ``sha256`` is {publication: SHA-256 of the file measured}:
    publish checks each is the file it renames into place.
    """
    from joinedup.provenance import sha256_file
    from joinedup.settings import Settings
    from joinedup.warehouse import publication_paths

    settings = settings or Settings()
    data_dir = Path(data_dir).resolve()
    published = publication_paths(data_dir)
    given = {"analytics": analytics, "commissioning": commissioning}
    files = {p: Path(given[p]).resolve() if given[p] else published[p] for p in published}
    for publication, path in files.items():
        if not path.exists():
            raise kanon.RiskInputError(
                f"{path} not found: the privacy report measures the published files; run "
                f"the pipeline first (`joinedup run --data-dir {data_dir}`)."
                if path == published[publication]
                else f"{path} not found: stage_analytics writes the candidates the report "
                "measures; re-run the run (same --run-id) from stage_analytics."
            )
    # Hashed before they are measured: what publish renames must be these bytes.
    digests = {p: sha256_file(path) for p, path in files.items()}
    staged = any(files[p] != published[p] for p in files)
    run_id = run_id or _latest_run(data_dir)
    stages = stages if stages is not None else _stages(data_dir, run_id)
    base = rounding_base()
    coarsening = Coarsening.from_settings(settings)
    measured = measure(
        files["analytics"], files["commissioning"], settings, base=base, coarsening=coarsening
    )
    found = findings(measured, settings)
    status = _status(found)
    publications = {
        p: {
            "database": str(files[p]),
            "sha256": digests[p],
            # A candidate is published as this file only if the report does not fail.
            "published_as": str(published[p]) if files[p] != published[p] else None,
            "holds": PUBLICATION_HOLDS[p],
            **_file_access(files[p], p),
        }
        for p in files
    }
    report = {
        "title": "joinedup re-identification risk report",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "run_id": run_id,
        "publications": publications,
        "settings": _settings_dict(settings, base),
        "status": status,
        "findings": found,
        **measured,
    }
    pack = build_pack(
        data_dir,
        files["analytics"],
        publications=publications,
        run_id=run_id,
        stages=stages,
        settings=_settings_dict(settings, base),
        coarsening=coarsening,
        threshold=settings.suppression_threshold,
        base=base,
    )
    pack["report_status"] = status
    out = data_dir / PRIVACY_DIR
    write_text(json.dumps(report, indent=2, default=str), out / REPORT_JSON)
    write_text(html.render_report(report), out / REPORT_HTML)
    write_text(json.dumps(pack, indent=2, default=str), out / PACK_JSON)
    write_text(html.render_pack(pack), out / PACK_HTML)
    summary = run_summary(report, out)
    summary["databases"] = {p: str(path) for p, path in files.items()}
    summary["sha256"] = digests
    for f in found:
        if f["severity"] in ("warn", "fail"):
            log.warning("privacy report (%s): %s", f["severity"], f["what"])
    if status == "fail":
        failing = [f for f in found if f["severity"] == "fail"]
        names = " and ".join(p.name for p in published.values())
        raise PrivacyRiskError(
            f"the {'marts staged to publish' if staged else 'published marts'} "
            "break a privacy rule set to fail the run:\n"
            + "\n".join(f"  {f['what']} What to do: {f['do']}" for f in failing)
            + f"\nEvidence: {out / REPORT_HTML}. "
            + (
                f"Nothing was published: {names} are as the last good run left them"
                if staged
                else f"{names} have been published already: withdraw them until this is resolved"
            )
            + " (the settings are JOINEDUP_PRIVACY_ON_LOW_K and JOINEDUP_PRIVACY_ON_RECOVERABLE)."
        )
    return summary


def run_summary(report: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """The figures the run summary carries: counts and shares, never a value of a person."""
    person = {
        s["key"]: {
            k: s[k]
            for k in (
                "persons",
                "min_k",
                "unique_share",
                "persons_below_min_k",
                "records_below_min_k",
            )
        }
        for s in report["person_level"]["scenarios"]
        if s["measured"]
    }
    marts = report["aggregates"]["marts"]
    return {
        "status": report["status"],
        "min_k": report["settings"]["privacy_min_k"],
        "coarsening": report["person_level"]["coarsening"],
        "person_level": person,
        "aggregates": {
            "suppressed_cells": sum(m["suppressed_cells"] for m in marts),
            "recoverable_cells": sum(m["recoverable_cells"] for m in marts),
            "exactly_recovered_cells": sum(m["exactly_recovered_cells"] for m in marts),
            "rule_breaches": sum(sum(m["rule"].values()) for m in marts),
        },
        "findings": [f"{f['severity']}: {f['what']}" for f in report["findings"]],
        "report": str(out / REPORT_JSON),
        "html": str(out / REPORT_HTML),
        "pack": str(out / PACK_HTML),
    }


def summary_lines(summary: Mapping[str, Any] | None) -> list[str]:
    """The run summary's lines about re-identification risk (``joinedup run``, the CLI)."""
    if not summary:
        return []
    person = summary["person_level"]
    min_k = summary["min_k"]
    lines = [f"privacy report ({summary['status']}; coarsening: {summary['coarsening']}):"]
    demographics = person.get(GATED_SCENARIO)
    if demographics:
        at_risk = demographics["persons_below_min_k"]
        people = demographics["persons"]
        lines.append(
            f"  person-level: {people - at_risk:,} of {people:,} people have k >= {min_k} on "
            f"their demographics; {share_text(demographics['unique_share'])} are unique "
            f"(min k {demographics['min_k']})"
        )
    dated = [s for k, s in person.items() if k != GATED_SCENARIO and k != "demographics_death"]
    if dated:
        worst = max(dated, key=lambda s: s["unique_share"])
        lines.append(
            f"  with one dated event: up to {share_text(worst['unique_share'])} of people unique "
            "(reported, never gating: person-level marts need access control)"
        )
    agg = summary["aggregates"]
    lines.append(
        "  aggregates: suppression rule "
        + ("holds" if not agg["rule_breaches"] else f"broken in {agg['rule_breaches']:,} rows")
        + f"; {agg['recoverable_cells']:,} of {agg['suppressed_cells']:,} suppressed cells "
        f"recoverable by differencing ({agg['exactly_recovered_cells']:,} exactly)"
    )
    lines.append(f"  report: {summary['html']}  pack: {summary['pack']}")
    return lines
