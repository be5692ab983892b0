"""What a zone's gate hands to GX: one batch per suite, built from the data directory.

Each zone's gate module builds its batches (``batches(data_dir, run_id)``) next to
the suites that validate them. GX 1.x validates pandas or SQL, not Polars: each
batch is built with Polars or DuckDB (lazily where it is read from a file, so only
the columns a suite reads are read) and crosses into pandas only at GX's boundary
(:mod:`joinedup.quality.frames`). Set work - volumes per organisation, cluster
sizes, coverage, reconciliation - is done before GX sees it, so GX checks a small
frame of figures rather than re-deriving them row by row.

No batch carries a raw identifier: landing batches leave out every identifier
column and local id, format-checked columns are masked (:mod:`.formats`), and the
identifier scan keeps shares, never values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

# Suite name -> its batch, built when the gate reaches that suite.
Batches = dict[str, Callable[[], pl.DataFrame | pl.LazyFrame]]


class BatchError(RuntimeError):
    """A batch could not be built (a missing input); the message says which and why."""


def require(path: Path, stage: str) -> Path:
    """``path``, or a :class:`BatchError` saying which stage must run first."""
    if not path.exists():
        raise BatchError(f"{path} not found: run {stage} before this quality gate.")
    return path


@dataclass(frozen=True)
class GateBatches:
    """A zone's batches, and what the gate must do when it is done with them."""

    batches: Batches
    # Called when the gate has finished, pass or fail (closes a connection).
    close: Callable[[], None] | None = None
    # Called only when no critical expectation failed (moves a baseline).
    passed: Callable[[], None] | None = None
