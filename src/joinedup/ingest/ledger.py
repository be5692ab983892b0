"""The row ledger: for every run and input file, where each received row went.

``rows_received = rows_loaded + rows_quarantined + rows_opted_out``, checked in
code. Each stage rewrites only its own run's rows, so re-running a run id
replaces that run's figures (idempotent) and other runs' rows stay. Stages of
one run may run in parallel (one Airflow task per source), so every
read-modify-write of the file holds an exclusive lock.

After the contract's columns (docs/contracts.md), each row records the file itself
and what became of it (see ``ingest/redelivery.py``): ``sha256``,
``size_bytes``, ``file_rows`` (data rows in the file), ``period`` (the month it
delivers, if known), ``status`` (``loaded``, ``duplicate`` or ``replaced``),
``duplicate_of`` / ``replaced_by`` / ``replaces`` (other files, ``; ``-joined),
and ``first_seen_run`` / ``first_seen_at`` (when this file, with this content,
first arrived: the delivery order). A
duplicate or replaced file is not read, so its four counts are 0 and the
balance rule holds unchanged: rows received means rows read into the run.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from joinedup.atomic import read_csv, write_csv
from joinedup.catalogue import (
    LANDED_PSEUDONYMISED,
    LEDGER,
    LEDGER_LOCK,
    cleared_path,
    pseudonymised_path,
    validated_path,
)
from joinedup.contracts import TABLES
from joinedup.ingest.errors import LedgerImbalanceError

log = logging.getLogger(__name__)

# The columns of DATA/ledger.csv that docs/contracts.md fixes, in its order.
CONTRACT_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "source": pl.String(),
    "table": pl.String(),
    "file": pl.String(),
    "rows_received": pl.Int64(),
    "rows_loaded": pl.Int64(),
    "rows_quarantined": pl.Int64(),
    "rows_opted_out": pl.Int64(),
}
# After the contract's columns: what each file was and what became of it (redelivery.py).
DELIVERY_SCHEMA: dict[str, pl.DataType] = {
    "sha256": pl.String(),
    "size_bytes": pl.Int64(),
    "file_rows": pl.Int64(),
    "period": pl.String(),
    "status": pl.String(),
    "duplicate_of": pl.String(),
    "replaced_by": pl.String(),
    "replaces": pl.String(),
    "first_seen_run": pl.String(),
    "first_seen_at": pl.String(),
}
LEDGER_SCHEMA: dict[str, pl.DataType] = CONTRACT_SCHEMA | DELIVERY_SCHEMA
COUNTS = ["rows_received", "rows_loaded", "rows_quarantined", "rows_opted_out"]
LOADED, DUPLICATE, REPLACED = "loaded", "duplicate", "replaced"


def ledger_path(data_dir: Path) -> Path:
    return LEDGER.under(data_dir)


def empty_ledger() -> pl.DataFrame:
    return pl.DataFrame(schema=LEDGER_SCHEMA)


def read_ledger(data_dir: Path) -> pl.DataFrame:
    """The whole ledger; a ledger written before the delivery columns existed gets them empty."""
    path = ledger_path(data_dir)
    if not path.exists():
        return empty_ledger()
    frame = read_csv(path, infer_schema_length=0)  # write_csv escaped formula-like text
    missing = [c for c in LEDGER_SCHEMA if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)
    return frame.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    lock = LEDGER_LOCK.under(data_dir)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _update(data_dir: Path, change: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    with _locked(data_dir):
        new = change(read_ledger(data_dir)).select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)
        new = new.sort(["run_id", "source", "table", "file"])
        write_csv(new, ledger_path(data_dir))
    return new


def _unbalanced(frame: pl.DataFrame) -> pl.DataFrame:
    total = pl.col("rows_loaded") + pl.col("rows_quarantined") + pl.col("rows_opted_out")
    return frame.filter((pl.col("rows_received") != total) | pl.any_horizontal(pl.col(COUNTS) < 0))


def _check_balanced(frame: pl.DataFrame, run_id: str) -> None:
    bad = _unbalanced(frame)
    if not bad.is_empty():
        files = ", ".join(f"{r['file']} ({r['table']})" for r in bad.iter_rows(named=True))
        raise LedgerImbalanceError(
            f"run {run_id}: rows_received != rows_loaded + rows_quarantined + rows_opted_out for "
            f"{files}. Some rows were lost or double-counted; re-run the run from ingest and, "
            "if it persists, report it as a pipeline bug with the ledger attached."
        )
    # A skipped file was not read: any row counted against it would be counted twice.
    skipped = pl.col("status").is_in([DUPLICATE, REPLACED])
    named = (
        pl.when(pl.col("status") == DUPLICATE)
        .then(pl.col("duplicate_of"))
        .otherwise(pl.col("replaced_by"))
    )
    bad = frame.filter(skipped & ((pl.col("rows_received") != 0) | named.is_null() | (named == "")))
    if not bad.is_empty():
        files = ", ".join(f"{r['file']} ({r['status']})" for r in bad.iter_rows(named=True))
        raise LedgerImbalanceError(
            f"run {run_id}: {files}: a duplicate or replaced delivery must have no rows "
            "received and must name the file that supersedes it. Re-run ingest for this run; "
            "if it persists, report it as a pipeline bug with the ledger attached."
        )


def replace_source_rows(data_dir: Path, run_id: str, source: str, rows: pl.DataFrame) -> None:
    """Record an ingest of one source: this run's rows for the source are replaced."""
    rows = rows.with_columns(pl.lit(run_id).alias("run_id"), pl.lit(source).alias("source"))
    rows = rows.select(list(LEDGER_SCHEMA)).cast(LEDGER_SCHEMA)
    _check_balanced(rows, run_id)

    def change(ledger: pl.DataFrame) -> pl.DataFrame:
        keep = ledger.filter(~((pl.col("run_id") == run_id) & (pl.col("source") == source)))
        return pl.concat([keep, rows])

    _update(data_dir, change)


def record_opt_outs(data_dir: Path, run_id: str, removed: pl.DataFrame) -> None:
    """Move opted-out rows from loaded to opted_out for this run.

    ``removed`` has columns source, table, file, rows (rows removed from that file).

    Computed from loaded + opted_out, so running the opt-out stage twice gives
    the same figures rather than subtracting twice.
    """
    key = ["source", "table", "file"]
    counts = removed.select(*key, pl.col("rows").cast(pl.Int64).alias("__removed__"))

    def change(ledger: pl.DataFrame) -> pl.DataFrame:
        this = ledger.filter(pl.col("run_id") == run_id)
        if this.is_empty():
            raise LedgerImbalanceError(
                f"run {run_id}: no ledger rows to record opt-outs against; run ingest for "
                "every source of this run first."
            )
        joined = this.join(counts, on=key, how="left").with_columns(
            pl.col("__removed__").fill_null(0)
        )
        available = pl.col("rows_loaded") + pl.col("rows_opted_out")
        short = joined.filter(pl.col("__removed__") > available)
        if not short.is_empty():
            raise LedgerImbalanceError(
                f"run {run_id}: more rows opted out than loaded for "
                f"{', '.join(short['file'].to_list())}; re-run ingest for this run, then opt-outs."
            )
        updated = joined.with_columns(
            (available - pl.col("__removed__")).alias("rows_loaded"),
            pl.col("__removed__").alias("rows_opted_out"),
        ).drop("__removed__")
        missing = counts.join(this, on=key, how="anti").filter(pl.col("__removed__") > 0)
        if not missing.is_empty():
            raise LedgerImbalanceError(
                f"run {run_id}: opted-out rows from files with no ledger row "
                f"({', '.join(missing['file'].to_list())}); re-run ingest for this run first."
            )
        return pl.concat([ledger.filter(pl.col("run_id") != run_id), updated])

    _update(data_dir, change)


def _output_rows(data_dir: Path, qualified: str) -> tuple[Path, int] | None:
    """The file whose row count must equal a table's loaded rows, and that count."""
    table = TABLES[qualified]
    if qualified in LANDED_PSEUDONYMISED:
        path = pseudonymised_path(data_dir, *LANDED_PSEUDONYMISED[qualified])
    elif cleared_path(data_dir, table).exists():
        path = cleared_path(data_dir, table)
    else:
        path = validated_path(data_dir, table)
    if not path.exists():
        return None
    return path, pl.scan_parquet(path).select(pl.len()).collect().item()


def finalise_ledger(data_dir: Path, run_id: str) -> dict:
    """Check the run's accounting end to end; raise :class:`LedgerImbalanceError` if it fails.

    Beyond each row adding up, the loaded rows of every table must equal the
    rows that actually arrived in its output (pseudonymised/ for person tables),
    so a row dropped or duplicated by any stage after ingest is caught here.
    """
    data_dir = Path(data_dir)
    ledger = read_ledger(data_dir).filter(pl.col("run_id") == run_id)
    if ledger.is_empty():
        raise LedgerImbalanceError(
            f"run {run_id}: the ledger has no rows for this run; run the ingest stages first."
        )
    _check_balanced(ledger, run_id)
    per_table = (
        ledger.group_by(["source", "table"])
        .agg(pl.len().alias("files"), *[pl.col(c).sum() for c in COUNTS])
        .sort(["source", "table"])
    )
    problems: list[str] = []
    tables: dict[str, dict[str, int]] = {}
    for row in per_table.iter_rows(named=True):
        qualified = f"{row['source']}/{row['table']}"
        out = _output_rows(data_dir, qualified)
        if out is None:
            problems.append(f"{qualified}: no output file found")
        elif out[1] != row["rows_loaded"]:
            problems.append(
                f"{qualified}: ledger says {row['rows_loaded']} rows loaded, "
                f"{out[0].relative_to(data_dir).as_posix()} holds {out[1]}"
            )
        tables[qualified] = {k: int(row[k]) for k in ["files", *COUNTS]}
    if problems:
        raise LedgerImbalanceError(
            f"run {run_id}: loaded rows do not match the outputs: {'; '.join(problems)}. "
            "A stage after ingest dropped or duplicated rows, or a stage was not run for this "
            "run id; re-run the run from ingest."
        )
    totals = {c: int(ledger[c].sum()) for c in COUNTS}
    log.info("ledger for run %s balances: %s", run_id, totals)
    return {
        "run_id": run_id,
        "files": ledger.height,
        **totals,
        "tables": tables,
        "deliveries": delivery_summary(ledger),
    }


def delivery_summary(ledger: pl.DataFrame) -> dict:
    """One run's files by status, and each duplicate or replaced file with what superseded it."""
    status = ledger["status"].fill_null(LOADED)
    skipped = ledger.filter(status != LOADED).sort("file")
    return {
        "files": ledger.height,
        "bytes": int(ledger["size_bytes"].fill_null(0).sum()),
        "loaded": int((status == LOADED).sum()),
        "duplicate": int((status == DUPLICATE).sum()),
        "replaced": int((status == REPLACED).sum()),
        "skipped": [
            {
                "file": r["file"],
                "status": r["status"],
                "by": r["duplicate_of"] if r["status"] == DUPLICATE else r["replaced_by"],
            }
            for r in skipped.iter_rows(named=True)
        ],
    }
