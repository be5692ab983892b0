"""Quarantined rows: what the supplier sent, where, and why it was not loaded.

The file holds the original values as text, so it is as identifiable as the
landing zone itself and must be handled with the same access controls; it is
rewritten whole on every ingest of its table (all of landing is taken in each
run, so the file always describes the current deliveries).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from joinedup.atomic import write_parquet
from joinedup.catalogue import quarantine_path
from joinedup.contracts import Table


def write_quarantine(data_dir: Path, table: Table, rows: pl.DataFrame) -> Path:
    """Write a table's quarantine; an empty file when nothing was rejected, so no one guesses."""
    ordered = rows.sort(["file", "line"]).rechunk()
    return write_parquet(ordered, quarantine_path(data_dir, table))


def reason_counts(rows: pl.DataFrame) -> dict[str, int]:
    """Rows per reason kind (``missing``, ``duplicate_key``, ...) for the run summary."""
    if rows.is_empty():
        return {}
    kinds = (
        rows.select(
            pl.col("reason").str.split("; ").list.eval(pl.element().str.split(":").list.first())
        )
        .explode("reason")
        .group_by("reason")
        .len()
        .sort("reason")
    )
    return {r: int(n) for r, n in kinds.iter_rows()}
