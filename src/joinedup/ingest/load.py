"""The ``ingest_<source>`` stage: ingest one source's landing files against their data contracts."""

from __future__ import annotations

import logging
import time
from datetime import date
from pathlib import Path

import polars as pl

from joinedup.atomic import write_parquet
from joinedup.catalogue import validated_path
from joinedup.contracts import TABLES, Table
from joinedup.ingest.cache import IngestCache
from joinedup.ingest.ledger import (
    DELIVERY_SCHEMA,
    DUPLICATE,
    REPLACED,
    read_ledger,
    replace_source_rows,
)
from joinedup.ingest.quarantine import reason_counts, write_quarantine
from joinedup.ingest.read import FILE, check_headers, empty_raw, read_table
from joinedup.ingest.redelivery import Delivery, Profile, resolve
from joinedup.ingest.validate import check_rows, resolve_rows
from joinedup.provenance import mark_started, now
from joinedup.settings import Settings

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


def _delivery_columns(deliveries: list[Delivery]) -> pl.DataFrame:
    """The ledger's delivery columns, one row per file (see ledger.DELIVERY_SCHEMA)."""
    return pl.DataFrame(
        [
            {
                "file": d.name,
                "sha256": d.sha256,
                "size_bytes": d.size_bytes,
                "file_rows": d.file_rows,
                "period": d.period,
                "status": d.status,
                "duplicate_of": d.duplicate_of,
                "replaced_by": d.replaced_by,
                "replaces": "; ".join(d.replaces) or None,
                "first_seen_run": d.first_seen_run,
                "first_seen_at": d.first_seen_at,
            }
            for d in deliveries
        ],
        schema={"file": pl.String(), **DELIVERY_SCHEMA},
    )


def born_by(first_seen_at: str) -> date:
    """The latest plausible date of birth in a delivery: the day it was first seen.

    Not the day of the run: a file's check must not change as days pass, or a
    cached check (ingest/cache.py) and a full rebuild would disagree; and nobody
    in a file can have been born after it was delivered. ``first_seen_at`` is the
    ledger's (ISO 8601, UTC), carried from run to run with the file.
    """
    return date.fromisoformat(first_seen_at[:10])


def ingest_source(
    data_dir: Path,
    source: str,
    run_id: str,
    *,
    today: date | None = None,
    full_rebuild: bool | None = None,
) -> dict:
    """Validate every landing file of ``source``; write loaded rows, quarantine and ledger rows.

    Loaded rows go to ``landing/_validated/<source>/<table>.parquet``: they are
    still identifiable, so they stay inside the landing zone. Every file's
    header is checked before any row is read, so a rejected file stops the run
    with this source's previous outputs untouched. Plausible dates of birth end
    on the day each file was first seen (:func:`born_by`; ``today``, if given,
    bounds every file instead: tests pin it). A file already delivered (same
    SHA-256) or replaced by a later delivery of its month is recorded but not
    read (redelivery.py). A file checked by an earlier run, unchanged, is not
    read again: its checked rows come from the cache (ingest/cache.py) unless
    ``full_rebuild`` (default: ``JOINEDUP_FULL_REBUILD``); the summary lists the
    files read (``files_read``) and those whose rows came from the cache
    (``files_reused``).
    """
    data_dir = Path(data_dir)
    if full_rebuild is None:
        full_rebuild = Settings().full_rebuild
    mark_started(data_dir, run_id)
    tables = source_tables(source)
    files = {t.name: check_headers(data_dir, t) for t in tables}
    history = read_ledger(data_dir)
    # To the microsecond: it orders deliveries, and two runs can fall in one second.
    seen_now = now("microseconds")
    ledger_rows: list[pl.DataFrame] = []
    summary: dict[str, dict] = {}
    skipped: list[dict[str, str | None]] = []
    read_now: list[str] = []  # files read and checked by this run
    reused: list[str] = []  # files whose checked rows came from the cache
    for table in tables:
        started = time.perf_counter()
        table_files = files[table.name]
        if not table_files:
            log.warning(
                "%s: no files matching %s/%s", table.qualified_name, table.folder, table.file_glob
            )

        cache = IngestCache(data_dir, table, enabled=not full_rebuild)
        keys: dict[str, str] = {}

        def key_of(d: Delivery, cache: IngestCache = cache, keys: dict = keys) -> str:
            if d.name not in keys:
                keys[d.name] = cache.key(d.file, d.sha256, today or born_by(d.first_seen_at))
            return keys[d.name]

        def read_one(d: Delivery, table: Table = table, cache: IngestCache = cache) -> pl.DataFrame:
            checked = cache.get(key_of(d))
            if checked is not None:
                reused.append(d.name)
                return checked
            raw = read_table(data_dir, table, [d.file])
            checked = check_rows(raw, table, today or born_by(d.first_seen_at))
            cache.put(key_of(d), checked, Profile.of(d.file, raw, table))
            read_now.append(d.name)
            return checked

        def known(d: Delivery, cache: IngestCache = cache) -> Profile | None:
            return cache.profile(key_of(d))

        deliveries = resolve(table, table_files, history, run_id, seen_now, read_one, known)
        loaded_files = [d.rows for d in deliveries if d.rows is not None]
        empty = check_rows(empty_raw(table), table, today)
        raw = pl.concat([empty, *loaded_files], how="vertical").rechunk()
        split = resolve_rows(raw, table)
        # Only the current deliveries keep an entry: not files gone from landing or replaced.
        cache.prune(
            {keys[d.name] for d in deliveries if d.rows is not None},
            {keys[d.name] for d in deliveries if d.name in keys and d.status != DUPLICATE},
        )
        write_parquet(split.loaded.rechunk(), validated_path(data_dir, table))
        write_quarantine(data_dir, table, split.quarantined)

        names = [f.name for f in table_files]
        counts = (
            _per_file(names, raw, FILE, "rows_received")
            .join(_per_file(names, split.loaded, FILE, "rows_loaded"), on="file")
            .join(_per_file(names, split.quarantined, "file", "rows_quarantined"), on="file")
            .join(_delivery_columns(deliveries), on="file", how="left")
            .with_columns(pl.lit(table.name).alias("table"), pl.lit(0).alias("rows_opted_out"))
        )
        ledger_rows.append(counts)
        skipped += [
            {
                "file": d.name,
                "status": d.status,
                "by": d.duplicate_of if d.status == DUPLICATE else d.replaced_by,
            }
            for d in deliveries
            if d.status in (DUPLICATE, REPLACED)
        ]
        summary[table.name] = {
            "files": len(names),
            "received": raw.height,
            "loaded": split.loaded.height,
            "quarantined": split.quarantined.height,
            "quarantine_reasons": reason_counts(split.quarantined),
        }
        log.info(
            "ingested %s: %d files (%d read, %d from the cache), %d rows received, %d loaded, "
            "%d quarantined in %.2fs",
            table.qualified_name,
            len(names),
            len([d for d in deliveries if d.name in read_now]),
            len([d for d in deliveries if d.name in reused]),
            raw.height,
            split.loaded.height,
            split.quarantined.height,
            time.perf_counter() - started,
        )
    replace_source_rows(data_dir, run_id, source, pl.concat(ledger_rows))
    return {
        "run_id": run_id,
        "source": source,
        "tables": summary,
        "skipped_files": skipped,
        "files_read": sorted(read_now),
        "files_reused": sorted(reused),
    }
