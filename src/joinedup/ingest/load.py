"""Stage 1: ingest one source's landing files against their data contracts."""

from __future__ import annotations

import logging
import time
from datetime import date
from pathlib import Path

import polars as pl

from joinedup.atomic import write_parquet
from joinedup.contracts import TABLES, Table
from joinedup.ingest.ledger import replace_source_rows
from joinedup.ingest.paths import validated_path
from joinedup.ingest.quarantine import reason_counts, write_quarantine
from joinedup.ingest.read import FILE, check_headers, read_table
from joinedup.ingest.validate import split_rows

log = logging.getLogger(__name__)

# Every source with landing files, in the order a run ingests them.
SOURCES: tuple[str, ...] = ("gp", "hospital", "social_care", "opt_outs", "reference")


def source_tables(source: str) -> list[Table]:
    tables = [t for t in TABLES.values() if t.source == source]
    if not tables:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return tables


def _per_file(names: list[str], frame: pl.DataFrame, column: str, alias: str) -> pl.DataFrame:
    counts = frame.group_by(column).len().rename({column: "file", "len": alias})
    files = pl.DataFrame({"file": names}, schema={"file": pl.String})
    return files.join(counts, on="file", how="left").with_columns(pl.col(alias).fill_null(0))


def ingest_source(data_dir: Path, source: str, run_id: str, *, today: date | None = None) -> dict:
    """Validate every landing file of ``source``; write loaded rows, quarantine and ledger rows.

    Loaded rows go to ``landing/_validated/<source>/<table>.parquet``: they are
    still identifiable, so they stay inside the landing zone. Every file's
    header is checked before any row is read, so a rejected file stops the run
    with this source's previous outputs untouched. ``today`` bounds plausible
    dates of birth (tests pin it).
    """
    data_dir = Path(data_dir)
    tables = source_tables(source)
    files = {t.name: check_headers(data_dir, t) for t in tables}
    ledger_rows: list[pl.DataFrame] = []
    summary: dict[str, dict] = {}
    for table in tables:
        started = time.perf_counter()
        table_files = files[table.name]
        if not table_files:
            log.warning(
                "%s: no files matching %s/%s", table.qualified_name, table.folder, table.file_glob
            )
        raw = read_table(data_dir, table, table_files)
        split = split_rows(raw, table, today=today)
        write_parquet(split.loaded.rechunk(), validated_path(data_dir, table))
        write_quarantine(data_dir, table, split.quarantined)

        names = [f.name for f in table_files]
        counts = (
            _per_file(names, raw, FILE, "rows_received")
            .join(_per_file(names, split.loaded, FILE, "rows_loaded"), on="file")
            .join(_per_file(names, split.quarantined, "file", "rows_quarantined"), on="file")
            .with_columns(pl.lit(table.name).alias("table"), pl.lit(0).alias("rows_opted_out"))
        )
        ledger_rows.append(counts)
        summary[table.name] = {
            "files": len(names),
            "received": raw.height,
            "loaded": split.loaded.height,
            "quarantined": split.quarantined.height,
            "quarantine_reasons": reason_counts(split.quarantined),
        }
        log.info(
            "ingested %s: %d files, %d rows received, %d loaded, %d quarantined in %.2fs",
            table.qualified_name,
            len(names),
            raw.height,
            split.loaded.height,
            split.quarantined.height,
            time.perf_counter() - started,
        )
    replace_source_rows(data_dir, run_id, source, pl.concat(ledger_rows))
    return {"run_id": run_id, "source": source, "tables": summary}
