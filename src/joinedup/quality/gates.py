"""Run a zone's quality gate: its checkpoints, the verdict, the Data Docs.

Each zone's gate is one module (:data:`GATES`): its suites and the batches they
validate. A gate runs every checkpoint of its zone on batches built from the data
directory, stores the validation results and rebuilds the Data Docs pages under
``DATA/quality/``, then decides: any failed ``critical`` expectation raises
:class:`QualityGateError` (after the docs are written, so people can see what
failed); failed ``warning`` expectations are logged and returned. When each gate
runs is the DAG's to say (``dags/joinedup_link_and_build.py``).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from joinedup.quality import frames, landing, linked, marts, pseudonymised
from joinedup.quality.batches import GateBatches
from joinedup.quality.offline_docs import make_offline
from joinedup.quality.project import docs_dir, reused_context
from joinedup.settings import Settings

log = logging.getLogger(__name__)

# Each zone's gate: a module with ``suites()`` and ``batches(data_dir, run_id)``. Listed
# in the order the suites are written into expectations/ (the DAG decides the order the
# gates run in).
GATES: dict[str, ModuleType] = {
    "landing": landing,
    "pseudonymised": pseudonymised,
    "linked": linked,
    "marts": marts,
}
ZONES: tuple[str, ...] = tuple(GATES)

SAMPLES = 5
WITHHELD = "(withheld: not a token)"
NULL = "null"
_HEX_TOKEN = re.compile(r"^[0-9a-f]{32,}$")


class QualityGateError(RuntimeError):
    """A critical expectation failed; the message names the suite, expectation and samples."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


def _parameters(run_date: date | None) -> dict[str, Any]:
    threshold = Settings().suppression_threshold
    # Dates reach GX as datetime64 (see frames), so the bound is the run day's midnight.
    day = run_date or date.today()
    return {
        "run_date": datetime(day.year, day.month, day.day),
        "small_counts": list(range(1, threshold)),
    }


def _opaque(column: str | None) -> bool:
    """Columns that hold only tokens, encodings or person ids."""
    return bool(column) and (column.endswith(("_token", "_bloom")) or column == "person_id")


def _sample(value: Any, column: str | None = None) -> str:
    """A failing value as shown in messages: tokens shortened, everything else as is.

    In a token column a value that is not a token is withheld: whatever it is (a raw
    NHS number that crossed the line, say), a message must not repeat it.
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_sample(v, k)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_sample(v, column) for v in value) + ")"
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return NULL  # however the column's type spells it: None, NaN, NA or NaT
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, datetime) and value == datetime(value.year, value.month, value.day):
        value = value.date()  # dates cross to GX as midnights
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # integer columns with nulls cross to GX as floats
    text = str(value)
    if _HEX_TOKEN.match(text):
        return f"{text[:8]}…"
    return WITHHELD if _opaque(column) else text


def _describe(result: Any) -> dict[str, Any]:
    """One failed expectation: which, how badly, and a few failing values (never identifiers)."""
    config = result.expectation_config
    kwargs = {
        k: v
        for k, v in config.kwargs.items()
        if k in ("column", "column_list", "column_A", "column_B") and v is not None
    }
    where = ", ".join(
        ",".join(map(str, v)) if isinstance(v, list) else str(v) for v in kwargs.values()
    )
    outcome = result.result or {}
    # With index columns (figures, not identifiers) a failing row is named by them;
    # otherwise by the failing values themselves, as GX samples them.
    if outcome.get("unexpected_index_column_names"):
        samples = outcome.get("partial_unexpected_index_list")
    else:
        samples = outcome.get("partial_unexpected_list")
    if samples is None and "observed_value" in outcome:
        samples = [outcome["observed_value"]]
    if result.exception_info and result.exception_info.get("raised_exception"):
        samples = [f"error: {result.exception_info.get('exception_message')}"]
    detail = ""
    if outcome.get("unexpected_count") is not None:
        detail = (
            f"{outcome['unexpected_count']:,} of {outcome.get('element_count', 0):,} rows "
            "unexpected"
        )
    return {
        "expectation": f"{config.type}({where})",
        "severity": str(getattr(config.severity, "value", config.severity)),
        "notes": config.notes,
        "detail": detail,
        "samples": [_sample(s, kwargs.get("column")) for s in (samples or [])[:SAMPLES]],
    }


def _line(suite: str, failure: dict[str, Any]) -> str:
    parts = [f"{suite}: {failure['expectation']}"]
    if failure["detail"]:
        parts.append(failure["detail"])
    if failure["samples"]:
        parts.append("e.g. " + "; ".join(failure["samples"]))
    if failure["notes"]:
        parts.append(f"({failure['notes']})")
    return " - ".join(parts)


def _batches(data_dir: Path, zone: str, run_id: str) -> GateBatches:
    if zone not in GATES:
        raise ValueError(f"unknown zone {zone!r}; expected one of {', '.join(ZONES)}")
    return GATES[zone].batches(data_dir, run_id)


def run_gates(
    data_dir: Path, zone: str, run_id: str, *, run_date: date | None = None
) -> dict[str, Any]:
    """Validate one zone; raise :class:`QualityGateError` if a critical expectation failed.

    ``zone`` is one of :data:`ZONES`; its module's docstring says what the gate checks.
    Returns a JSON-able summary: per suite its verdict and failures, the warnings, and
    the Data Docs index. ``run_date`` bounds plausible dates (today).
    """
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    started = time.perf_counter()
    data_dir = Path(data_dir).resolve()
    gate = _batches(data_dir, zone, run_id)
    parameters = _parameters(run_date)
    suites: dict[str, dict[str, Any]] = {}
    critical: list[str] = []
    warnings: list[str] = []
    identifiers = []
    try:
        with reused_context(data_dir) as context:
            for name, build in gate.batches.items():
                checkpoint = context.checkpoints.get(name)
                frame = frames.to_pandas(build(), frames.checkpoint_reads(checkpoint))
                result = checkpoint.run(
                    batch_parameters={"dataframe": frame},
                    expectation_parameters=parameters,
                    run_id=_run_identifier(run_id, zone),
                )
                identifiers.extend(result.run_results)
                identifiers.append(ExpectationSuiteIdentifier(name=name))
                failures = [
                    _describe(r)
                    for validation in result.run_results.values()
                    for r in validation.results
                    if not r.success
                ]
                suites[name] = {
                    "rows": len(frame),
                    "evaluated": sum(len(v.results) for v in result.run_results.values()),
                    "success": not failures,
                    "failures": failures,
                }
                for failure in failures:
                    (critical if failure["severity"] == "critical" else warnings).append(
                        _line(name, failure)
                    )
            docs = _build_docs(context, identifiers)
    finally:
        if gate.close:
            gate.close()
    for line in warnings:
        log.warning("quality warning: %s", line)
    summary = {
        "zone": zone,
        "run_id": run_id,
        "passed": not critical,
        "suites": suites,
        "critical": critical,
        "warnings": warnings,
        "docs": str(docs),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if critical:
        raise QualityGateError(
            f"quality gate '{zone}' failed for run {run_id}: {len(critical)} critical "
            "expectation(s) failed, so nothing from this run may be used or published:\n  "
            + "\n  ".join(critical)
            + f"\nData Docs: {docs}. Fix the data (or the stage that wrote it) and run again.",
            summary,
        )
    if gate.passed:
        # E.g. the landing volumes: a baseline moves only on a passing delivery, so a bad
        # one is never the yardstick.
        gate.passed()
    log.info(
        "quality gate %s passed for run %s: %d suites, %d warnings, %.1fs (docs %s)",
        zone,
        run_id,
        len(suites),
        len(warnings),
        summary["seconds"],
        docs,
    )
    return summary


def _run_identifier(run_id: str, zone: str) -> Any:
    # GX's results store keys results by run name and time: one folder per run and zone.
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=f"{run_id}-{zone}")


def _build_docs(context: Any, identifiers: list[Any] | None) -> Path:
    """Render these results and suites (every page when None), then the index.

    A full rebuild re-renders every stored result, so its cost grows with each run;
    a gate renders only what it produced.
    """
    started = time.time_ns()
    sites = context.build_data_docs(resource_identifiers=identifiers or None)
    url = next(iter(sites.values()))
    index = Path(url.removeprefix("file://"))
    # GX's pages load their scripts and styles from CDNs; a secure data environment has
    # no internet, so they are pointed at local copies.
    make_offline(index.parent, since_ns=None if identifiers is None else started)
    return index


def build_data_docs(data_dir: Path) -> Path:
    """Rebuild every Data Docs page in ``DATA/quality/docs/``; return the index.html path."""
    data_dir = Path(data_dir).resolve()
    with reused_context(data_dir) as context:
        index = _build_docs(context, None)
    log.info("Data Docs written to %s", docs_dir(data_dir))
    return index


def data_docs_index(data_dir: Path) -> Path:
    """The Data Docs index, every page rebuilt only when there is none yet.

    Each gate renders its own results and suites and then the index (``run_gates``), so
    after a run's gates the site is complete; rendering it all again cost the docs stage
    ~10 s at 100k people, and more with each stored run (issue 23).
    """
    index = docs_dir(data_dir) / "index.html"
    return index if index.exists() else build_data_docs(data_dir)
