"""The pipeline's stages as plain functions, one per Airflow task.

The DAGs in ``dags/`` decide order and scheduling; these functions do the work
and return small JSON-able summaries (they become the tasks' XComs). Nothing
here knows about Airflow, so every stage is testable on its own.

The pseudonymisation key is read from the environment by each stage that
needs it (never passed through Airflow, whose params and XComs are stored).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from joinedup.atomic import write_text
from joinedup.catalogue import EXPECTATIONS_DIR, LANDING, SEEDS_DIR
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.deidentify.opt_outs import purge_expired_opt_outs
from joinedup.ingest import finalise_ledger, ingest_source
from joinedup.ingest.ledger import read_ledger
from joinedup.ingest.load import SOURCES
from joinedup.linkage import link, remove_linked_opt_outs
from joinedup.privacy.permissions import secure_data_dir
from joinedup.privacy.scan import assert_clean
from joinedup.provenance import run_provenance, run_record_path, trace
from joinedup.settings import Settings

log = logging.getLogger(__name__)

# The project's own text (gate bounds, code lists) that outputs repeat by design.
PROJECT_VOCABULARY = (EXPECTATIONS_DIR, SEEDS_DIR)


def _key() -> bytes:
    return Settings().key()


def check_ready(data_dir: Path) -> dict[str, Any]:
    """Fail before any work when the key is missing or there is nothing to ingest."""
    _key()
    landing = LANDING.under(data_dir)
    if not landing.is_dir():
        raise FileNotFoundError(
            f"{landing} does not exist: put extracts under it (see docs/contracts.md) or run "
            "`joinedup synth --out DATA` for a synthetic population"
        )
    secure_data_dir(Path(data_dir))
    return {"data_dir": str(data_dir)}


def ingest(data_dir: Path, source: str, run_id: str) -> dict[str, Any]:
    # Ingest DAGs start here, not at check_ready: landing/ is made owner-only first.
    secure_data_dir(Path(data_dir))
    return ingest_source(Path(data_dir), source, run_id)


def ensure_ingested(data_dir: Path, run_id: str) -> dict[str, Any]:
    """Ingest any source that has no ledger rows for this run.

    Sources may be ingested by their own DAG runs; when the link-and-build run
    starts under a run id that some source was not ingested with, that source
    is ingested again here (ingest is idempotent), so one run's ledger always
    covers every file.
    """
    data_dir = Path(data_dir)
    ledger = read_ledger(data_dir)
    present = set(ledger.filter(pl.col("run_id") == run_id)["source"].unique())
    done = {}
    for source in SOURCES:
        if source not in present:
            done[source] = ingest_source(data_dir, source, run_id)
    return {"run_id": run_id, "ingested_now": sorted(done)}


def opt_outs(data_dir: Path, run_id: str) -> dict[str, Any]:
    return remove_opt_outs(Path(data_dir), run_id)


def pseudonymise_stage(data_dir: Path, run_id: str) -> dict[str, Any]:
    return pseudonymise(Path(data_dir), _key(), run_id)


def link_stage(
    data_dir: Path, run_id: str, trained_model: str | None = None, relink: bool = False
) -> dict[str, Any]:
    """Link incrementally when the previous run's linkage is in linked/, else (or with
    ``relink``, or when the schedule in linkage/training.json says so) fully."""
    model = Path(trained_model) if trained_model else None
    return link(Path(data_dir), run_id, _key(), trained_model=model, relink=relink)


def remove_linked_opt_outs_stage(data_dir: Path, run_id: str) -> dict[str, Any]:
    """Take the records linkage matched to opted-out people out of pseudonymised/.

    Must run after ``link_stage`` and before anything reads pseudonymised/ or
    the ledger is finalised: until then those records are still on disk and
    counted as loaded. The key maps record tokens back to landing files.
    """
    return remove_linked_opt_outs(Path(data_dir), _key(), run_id)


def privacy_gate(data_dir: Path) -> dict[str, Any]:
    """Stop the run if any landing identifier reached a de-identified output."""
    from joinedup.warehouse import publication_paths

    data_dir = Path(data_dir)
    targets = [
        data_dir / name
        for name in ("pseudonymised", "linked", "warehouse.duckdb", "quality")
        if (data_dir / name).exists()
    ]
    # The warehouse holds the marts about to be published. The published files (wherever
    # JOINEDUP_PUBLISHED_DIR puts them) are the last good ones: scanned too, so a leak in
    # one is found, unless it is byte for byte what a finished run published (its record
    # lists it), which means it passed this gate then, as that run's warehouse.
    not_rescanned: dict[str, str] = {}
    for published in publication_paths(data_dir).values():
        vouched = _published_by_finished_run(data_dir, published)
        if published.exists() and vouched is None:
            targets.append(published)
        elif vouched:
            not_rescanned[published.name] = f"unchanged since run {vouched}"
    assert_clean(LANDING.under(data_dir), targets, vocabulary=PROJECT_VOCABULARY)
    summary: dict[str, Any] = {"scanned": [t.name for t in targets], "findings": 0}
    if not_rescanned:
        summary["not_rescanned"] = not_rescanned
    return summary


def _published_by_finished_run(data_dir: Path, published: Path) -> str | None:
    """The run whose record lists ``published`` (same SHA-256) as an output, if any."""
    if not published.exists():
        return None
    runs = [t["run_id"] for t in trace(data_dir, published) if t["role"] == "output"]
    return runs[-1] if runs else None


def quality_gate(data_dir: Path, zone: str, run_id: str) -> dict[str, Any]:
    """Great Expectations suites of one zone; a critical failure stops the run."""
    from joinedup.quality import run_gates

    return run_gates(Path(data_dir), zone, run_id)


def build_warehouse_stage(data_dir: Path, run_id: str | None = None) -> dict[str, Any]:
    from joinedup.warehouse import build_warehouse

    return build_warehouse(Path(data_dir), run_id=run_id)


def stage_analytics_stage(data_dir: Path, run_id: str | None = None) -> dict[str, Any]:
    """Write the next two publications as candidates; the published files are untouched.

    ``candidate`` is the analysts' file (the privacy report's input); ``candidates`` both.
    """
    from joinedup.warehouse import stage_analytics

    staged = stage_analytics(Path(data_dir), run_id)
    return {
        "candidate": str(staged["analytics"]),
        "candidates": {k: str(v) for k, v in staged.items()},
    }


def publish_stage(data_dir: Path, run_id: str | None, sha256: Mapping[str, str]) -> dict[str, Any]:
    """Rename both candidates into place; only reached when every gate passed.

    ``sha256`` is the privacy report's {publication: checksum} of the candidates it
    measured: any other file is refused, so what each audience gets is exactly what the
    report passed.
    """
    from joinedup.warehouse import publish_candidate

    published = publish_candidate(Path(data_dir), sha256=sha256, run_id=run_id)
    return {k: str(v) for k, v in published.items()}


def docs_stage(data_dir: Path) -> dict[str, Any]:
    """dbt docs and Great Expectations Data Docs, for people to read.

    Both were mostly made earlier in the run: the dbt docs by ``build_warehouse``, the
    Data Docs pages by each gate; this stage puts the first in place and makes sure of
    the second.
    """
    from joinedup.quality import data_docs_index
    from joinedup.warehouse import generate_docs

    return {
        "dbt_docs": str(generate_docs(Path(data_dir))),
        "data_docs": str(data_docs_index(Path(data_dir))),
    }


def privacy_report_stage(
    data_dir: Path,
    run_id: str,
    stages: dict[str, Any] | None = None,
    candidate: str | None = None,
) -> dict[str, Any]:
    """Re-identification risk of the candidate and the data protection pack (privacy/).

    ``candidate`` is the analysts' file ``stage_analytics_stage`` wrote (default: the
    published files); the commissioners' candidate beside it is measured with it.
    ``stages`` are this run's opt-out summaries, for the pack's opt-out figures. Raises
    ``PrivacyRiskError`` (after writing the report) when a finding is set to fail the run;
    both candidates are then removed, so neither can be published later by mistake.
    """
    from joinedup.privacy.report import PrivacyRiskError, write_privacy_report
    from joinedup.warehouse import candidate_path, candidate_paths, discard_candidate

    measured = Path(candidate) if candidate else None
    staged = measured is not None and measured.resolve() == candidate_path(Path(data_dir))
    try:
        return write_privacy_report(
            Path(data_dir),
            run_id=run_id,
            stages=stages,
            analytics=measured,
            commissioning=candidate_paths(Path(data_dir))["commissioning"] if staged else None,
        )
    except PrivacyRiskError:
        if staged:
            discard_candidate(Path(data_dir))
        raise


def finalise(data_dir: Path, run_id: str, stages: dict[str, Any] | None = None) -> dict[str, Any]:
    """Balance the ledger and write the run summary (``DATA/runs/<run_id>.json``).

    The summary's ``provenance`` block (joinedup.provenance) says what the run read,
    with which code and linkage model, and the checksum of every output it wrote.
    """
    data_dir = Path(data_dir)
    summary = {"run_id": run_id, "ledger": finalise_ledger(data_dir, run_id), **(stages or {})}
    summary["opt_out_retention"] = purge_expired_opt_outs(
        data_dir, Settings().opted_out_retention_days
    )
    inputs = read_ledger(data_dir).filter(pl.col("run_id") == run_id)
    published = (stages or {}).get("published", {})
    outputs = [Path(published[p]) for p in ("analytics", "commissioning") if published.get(p)]
    summary["provenance"] = run_provenance(data_dir, run_id, inputs, outputs)
    write_text(json.dumps(summary, indent=2, default=str), run_summary_path(data_dir, run_id))
    return summary


def run_summary_path(data_dir: Path, run_id: str) -> Path:
    return run_record_path(data_dir, run_id)
