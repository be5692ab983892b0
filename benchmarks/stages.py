"""Every pipeline stage the benchmarks time, by name; each runs in a fresh process.

A stage returns the number of rows it processed (or None). Stages whose
package code is not there yet are skipped by :func:`available`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from joinedup.settings import DEMO_KEY

KEY = DEMO_KEY.encode()


def _ingest(source: str) -> Callable[[Path, str], int]:
    def run(data_dir: Path, run_id: str) -> int:
        from joinedup.ingest import ingest_source

        summary = ingest_source(data_dir, source, run_id)
        return sum(t["received"] for t in summary["tables"].values())

    return run


def remove_opt_outs(data_dir: Path, run_id: str) -> int:
    from joinedup.deidentify import remove_opt_outs as stage

    return sum(stage(data_dir, run_id)["rows_removed"].values())


def pseudonymise(data_dir: Path, run_id: str) -> int:
    from joinedup.deidentify import pseudonymise as stage

    return sum(stage(data_dir, KEY, run_id)["rows"].values())


def link(data_dir: Path, run_id: str) -> int:
    from joinedup.linkage import link as stage

    return stage(data_dir, run_id, KEY)["records"]


def remove_linked_opt_outs(data_dir: Path, run_id: str) -> int:
    from joinedup.linkage import remove_linked_opt_outs as stage

    removed = stage(data_dir, KEY, run_id)["rows_removed"]
    return sum(removed.values()) if isinstance(removed, dict) else removed


def build_warehouse(data_dir: Path, run_id: str) -> None:
    from joinedup.warehouse import build_warehouse as stage

    stage(data_dir)


def stage_analytics(data_dir: Path, run_id: str) -> None:
    from joinedup.warehouse import stage_analytics as stage

    stage(data_dir)


def publish_analytics(data_dir: Path, run_id: str) -> None:
    """The candidate stage_analytics wrote, renamed into place as the DAG's publish does.

    The benchmark times the report as a stage of its own, so the checksum is the one the
    report would have measured: the candidate's own.
    """
    from joinedup.provenance import sha256_file
    from joinedup.warehouse import candidate_paths, publish_candidate

    staged = candidate_paths(data_dir)
    publish_candidate(data_dir, sha256={p: sha256_file(c) for p, c in staged.items()})


def quality_gates(data_dir: Path, run_id: str) -> None:
    from joinedup.quality import run_gates

    for zone in ("landing", "pseudonymised", "linked", "marts"):
        run_gates(data_dir, zone, run_id)


def docs(data_dir: Path, run_id: str) -> None:
    from joinedup.quality import build_data_docs
    from joinedup.warehouse import generate_docs

    generate_docs(data_dir)
    build_data_docs(data_dir)


def finalise_ledger(data_dir: Path, run_id: str) -> int:
    from joinedup.ingest import finalise_ledger as stage

    return stage(data_dir, run_id)["rows_received"]


def privacy_gate(data_dir: Path, run_id: str) -> int:
    """The run's privacy gate as the DAG runs it (raises on any finding)."""
    from joinedup.pipeline import privacy_gate as stage

    return len(stage(data_dir)["scanned"])


def privacy_report(data_dir: Path, run_id: str) -> None:
    """On the staged candidate, before publish, as the DAG runs it."""
    from joinedup.pipeline import privacy_report_stage
    from joinedup.warehouse import candidate_path

    privacy_report_stage(data_dir, run_id, candidate=str(candidate_path(data_dir)))


SOURCES = ("gp", "hospital", "social_care", "opt_outs", "reference")
STAGES: dict[str, Callable[[Path, str], int | None]] = {
    **{f"ingest:{s}": _ingest(s) for s in SOURCES},
    "remove_opt_outs": remove_opt_outs,
    "pseudonymise": pseudonymise,
    "link": link,
    "remove_linked_opt_outs": remove_linked_opt_outs,
    "build_warehouse": build_warehouse,
    "quality_gates": quality_gates,
    "privacy_gate": privacy_gate,
    "stage_analytics": stage_analytics,
    "privacy_report": privacy_report,
    "publish_analytics": publish_analytics,
    "docs": docs,
    "finalise_ledger": finalise_ledger,
}
# Stages that only check (the "gates"): their share of the run is a target.
GATES = ("quality_gates", "privacy_gate")
_NEEDS = {
    "build_warehouse": "joinedup.warehouse",
    "stage_analytics": "joinedup.warehouse",
    "publish_analytics": "joinedup.warehouse",
    "quality_gates": "joinedup.quality",
    "docs": "joinedup.quality",
}


def available() -> list[str]:
    """Stage names whose code exists in this checkout, in pipeline order."""
    return [n for n in STAGES if n not in _NEEDS or importlib.util.find_spec(_NEEDS[n])]
