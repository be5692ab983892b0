"""The ``remove_linked_opt_outs`` stage: opted-out people's records that only linkage finds.

``remove_opt_outs`` applies the national data opt-out and GP type 1 objections
by NHS number, before pseudonymisation. A record of an opted-out person that
carries no valid NHS number, or a wrong one (a keying error that is still a valid
number), can only be found by linkage: ``link`` scores such records (those whose
number no other record of their linked person confirms) against the restricted
encodings of the people who opted out and writes
the matches to ``restricted/linkage_opted_out_records.parquet`` (source,
record_token), leaving them out of ``linked/record_person.parquet``. This stage
then takes those records, with every row of every table (record grain and all
their events), out of ``pseudonymised/`` and moves their rows from
``rows_loaded`` to ``rows_opted_out`` of the landing files they came from, so
no opted-out person is processed further and every file still balances.

Design: a pure function of the run's own files, no sticky state across runs.
Each figure is recomputed from ``landing/_validated`` (what was loaded),
``landing/_cleared`` (what survived the opt-outs by NHS number),
``landing/_opted_out/reasons.parquet`` (why each of those went) and the
linkage output; the records are mapped from ``record_token`` back to their
landing rows (and files) by recomputing the tokens with the key. So:

* running the stage twice changes nothing: the second call finds nothing left
  to remove in ``pseudonymised/`` and writes the same ledger figures (they are
  set, never added);
* re-running the whole run rebuilds ``pseudonymised/`` from ``landing/_cleared``
  (the records are back), linkage finds them again (same input, same model)
  and this stage removes them again: same ledger, same outputs. A record is
  removed only while the current opt-out list and the current linkage say so,
  so a person who withdraws their opt-out is not excluded for ever by a
  linkage decision made against an old list (which recording the linked
  records in ``landing/`` for ``remove_opt_outs`` to apply on every later run
  would do; it would also change linkage's training input between the first
  run and a re-run).
* re-running ``link`` alone after this stage (clearing that Airflow task)
  would score a ``pseudonymised/`` that no longer holds the removed records,
  so the new linkage output no longer names them. The set this stage applied
  is therefore kept in ``restricted/linkage_opted_out_applied.parquet`` and a
  record from it that is still absent from ``pseudonymised/`` stays counted as
  removed. Such a record can only be absent because this stage removed it
  (pseudonymise writes every cleared record), and once ``pseudonymise`` runs
  again it is present, so nothing is carried into a fresh run.

Inputs must be fresh: ``landing/_cleared`` no newer than the pseudonymise
stage's last output, and the linkage output no older than it; otherwise the
stage refuses to run rather than remove too little. A linkage record whose
token matches no cleared record (a different key, or data of another run)
stops the stage too: removing nothing would silently publish an opted-out
person.

Everything identifiable stays in ``landing/``; the key is used only to
recompute record tokens, never logged or written; ``restricted/`` holds
tokens only and is never copied to any output.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import polars as pl

from joinedup.atomic import write_parquet
from joinedup.catalogue import (
    LINKAGE_OPTED_OUT_APPLIED,
    LINKAGE_OPTED_OUT_RECORDS,
    OPTED_OUT_REASONS,
    PSEUDONYMISED_TABLES,
    RECORD_PERSON,
    RESTRICTED_OPTED_OUT_ENCODINGS,
    cleared_path,
    pseudonymised_path,
    validated_path,
)
from joinedup.contracts import TABLES, Table
from joinedup.deidentify.encodings import KEY_FINGERPRINT_METADATA, Encoder
from joinedup.deidentify.opt_outs import person_tables
from joinedup.deidentify.pseudonymise import _read_cleared, record_token_map, resolve_key
from joinedup.ingest.errors import IngestError
from joinedup.ingest.ledger import record_opt_outs
from joinedup.ingest.read import FILE

log = logging.getLogger(__name__)

LINKAGE = "linkage"
RECORD_KEY = ["source", "org_code", "local_id"]
TOKEN_KEY = ["source", "record_token"]
TOKENS_SCHEMA: dict[str, pl.DataType] = {"source": pl.String(), "record_token": pl.String()}


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise IngestError(f"{what} not found ({path}); run the stages of this run in DAG order.")
    return path


def _check_fresh(data_dir: Path) -> None:
    """Refuse inputs from different stage runs: cleared -> pseudonymise -> link, in that order."""
    encodings = _require(
        data_dir / RESTRICTED_OPTED_OUT_ENCODINGS,
        "the pseudonymise stage's output (restricted opted-out encodings)",
    )
    linked = _require(data_dir / LINKAGE_OPTED_OUT_RECORDS, "the linkage opt-out output")
    newest_cleared = max(
        (cleared_path(data_dir, t).stat().st_mtime_ns for t in person_tables()
         if cleared_path(data_dir, t).exists()),
        default=0,
    )  # fmt: skip
    if newest_cleared > encodings.stat().st_mtime_ns:
        raise IngestError(
            "opt-out-cleared data is newer than the pseudonymised tables: run pseudonymise "
            "and link again before remove_linked_opt_outs."
        )
    if encodings.stat().st_mtime_ns > linked.stat().st_mtime_ns:
        raise IngestError(
            f"{LINKAGE_OPTED_OUT_RECORDS} is older than the pseudonymised tables: run link "
            "again before remove_linked_opt_outs, or opted-out records could stay published."
        )


def _record_keys(table: Table, rows: pl.DataFrame) -> pl.DataFrame:
    org, local = table.record
    return rows.select(
        pl.col(FILE),
        pl.lit(table.source).alias("source"),
        pl.col(org).alias("org_code"),
        pl.col(local).alias("local_id"),
    )


def _pseudonymised_tokens(data_dir: Path, source: str) -> pl.DataFrame:
    """Every record_token present in any pseudonymised table of a source."""
    frames = []
    for name in PSEUDONYMISED_TABLES[source]:
        path = _require(pseudonymised_path(data_dir, source, name), "a pseudonymised table")
        frames.append(pl.scan_parquet(path).select("record_token"))
    tokens = pl.concat(frames).unique().collect()
    return tokens.with_columns(pl.lit(source).alias("source")).select(list(TOKENS_SCHEMA))


def _read_tokens(path: Path) -> pl.DataFrame:
    if not path.exists():
        return pl.DataFrame(schema=TOKENS_SCHEMA)
    return pl.read_parquet(path, columns=list(TOKENS_SCHEMA)).cast(TOKENS_SCHEMA)


def _remove_from_pseudonymised(data_dir: Path, applied: pl.DataFrame) -> dict[str, int]:
    """Rewrite (atomically) each pseudonymised table that still holds a removed record."""
    removed: dict[str, int] = {}
    for source, names in PSEUDONYMISED_TABLES.items():
        tokens = applied.filter(pl.col("source") == source)["record_token"].implode()
        for name in names:
            path = pseudonymised_path(data_dir, source, name)
            gone = pl.col("record_token").is_in(tokens)
            n = pl.scan_parquet(path).filter(gone).select(pl.len()).collect().item()
            removed[f"{source}/{name}"] = n
            if n:
                # Filtering keeps the content order pseudonymise wrote, so the file is the
                # one pseudonymise would have written without these records.
                kept = pl.read_parquet(path).filter(~gone)
                # The key fingerprint pseudonymise wrote goes with it: link checks it.
                fingerprint = pl.read_parquet_metadata(path).get(KEY_FINGERPRINT_METADATA)
                write_parquet(
                    kept.rechunk(),
                    path,
                    metadata={KEY_FINGERPRINT_METADATA: fingerprint} if fingerprint else None,
                )
                log.info("linked opt-outs: %d rows removed from %s/%s", n, source, name)
    return removed


def remove_linked_opt_outs(data_dir: Path, key: bytes | None, run_id: str) -> dict:
    """Remove the records linkage matched to opted-out people; count their rows in the ledger.

    Runs after ``link`` and before ``finalise_ledger``. ``key`` is the
    pseudonymisation secret (``Settings().key()`` when None), needed to map
    record tokens back to landing rows and files; it is never logged or written.
    Idempotent (see the module docstring). Returns a JSON-able summary whose
    ``rows_opted_out_by_file`` splits each file's ledger ``rows_opted_out`` by
    reason (national data opt-out, type 1 objection, type 1 objector's NHS
    number on another record, linkage).
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    encoder = Encoder(resolve_key(key))
    _check_fresh(data_dir)
    reasons = pl.read_parquet(
        _require(data_dir / OPTED_OUT_REASONS, "the opt-out reasons file (remove_opt_outs)")
    )

    linked = _read_tokens(data_dir / LINKAGE_OPTED_OUT_RECORDS)
    previously = _read_tokens(data_dir / LINKAGE_OPTED_OUT_APPLIED)

    keys: dict[str, pl.DataFrame] = {}  # qualified table -> file, source, org_code, local_id
    token_maps = []
    present = []
    for source in PSEUDONYMISED_TABLES:
        tables = [t for t in person_tables() if t.source == source]
        cleared = {t.qualified_name: _read_cleared(data_dir, t, [FILE, *t.record]) for t in tables}
        tokens = record_token_map(encoder, source, [(t, cleared[t.qualified_name]) for t in tables])
        token_maps.append(tokens.with_columns(pl.lit(source).alias("source")))
        for t in tables:
            keys[t.qualified_name] = _record_keys(t, cleared[t.qualified_name])
        present.append(_pseudonymised_tokens(data_dir, source))
    token_map = pl.concat(token_maps).select(*RECORD_KEY, "record_token")

    unknown = linked.join(token_map, on=TOKEN_KEY, how="anti")
    if not unknown.is_empty():
        raise IngestError(
            f"{LINKAGE_OPTED_OUT_RECORDS} names {unknown.height} record(s) that match no record "
            "of this run's opt-out-cleared data with this key. Was the run pseudonymised with a "
            "different key, or linked on other data? Re-run pseudonymise and link for this run."
        )
    # Removed earlier by this stage and still absent: keep them removed (and counted).
    carried = (
        previously.join(token_map, on=TOKEN_KEY, how="semi")
        .join(pl.concat(present), on=TOKEN_KEY, how="anti")
        .join(linked, on=TOKEN_KEY, how="anti")
    )
    applied = pl.concat([linked, carried]).unique().sort(TOKEN_KEY)
    # Recorded before anything is removed, so a stage killed half-way still knows its set.
    write_parquet(applied.rechunk(), data_dir / LINKAGE_OPTED_OUT_APPLIED)

    record_person = data_dir / RECORD_PERSON
    if record_person.exists():
        leaked = pl.scan_parquet(record_person).join(applied.lazy(), on=TOKEN_KEY, how="semi")
        n_leaked = leaked.select(pl.len()).collect().item()
        if n_leaked:
            raise IngestError(
                f"linked/record_person.parquet holds {n_leaked} record(s) linkage matched to "
                "opted-out people: it is stale. Run link again, then this stage."
            )

    applied_keys = applied.join(token_map, on=TOKEN_KEY, how="inner").select(RECORD_KEY)
    removed_now = _remove_from_pseudonymised(data_dir, applied)

    ledger_rows: list[pl.DataFrame] = []
    rows_removed: dict[str, int] = {}
    for qualified, rows in keys.items():
        table = TABLES[qualified]
        validated = pl.read_parquet(
            _require(validated_path(data_dir, table), "validated data"),
            columns=[FILE, *table.record],
        )
        # Rows removed by NHS number at opt-outs, with the reason of their record.
        by_ingest = (
            _record_keys(table, validated)
            .join(reasons, on=RECORD_KEY, how="inner")
            .select(FILE, "reason")
        )
        if by_ingest.height != validated.height - rows.height:
            raise IngestError(
                f"{qualified}: the opt-out reasons do not account for the rows removed at "
                f"opt-outs ({by_ingest.height} vs {validated.height - rows.height}); "
                "run remove_opt_outs, pseudonymise and link again for this run."
            )
        by_linkage = rows.join(applied_keys, on=RECORD_KEY, how="semi").select(
            FILE, pl.lit(LINKAGE).alias("reason")
        )
        rows_removed[qualified] = by_linkage.height
        ledger_rows.append(
            pl.concat([by_ingest, by_linkage])
            .group_by(FILE, "reason")
            .len()
            .select(
                pl.lit(table.source).alias("source"),
                pl.lit(table.name).alias("table"),
                pl.col(FILE).alias("file"),
                "reason",
                pl.col("len").alias("rows"),
            )
        )
    by_reason = pl.concat(ledger_rows).sort("source", "table", "file", "reason")
    per_file = by_reason.group_by("source", "table", "file").agg(pl.col("rows").sum())
    # Sets each file's rows_opted_out to the full figure (never adds), so a re-run is harmless.
    record_opt_outs(data_dir, run_id, per_file)

    explained: dict[str, dict[str, int]] = {}
    for row in by_reason.iter_rows(named=True):
        # One file may feed two tables (a CLD submission: clients and events).
        split = explained.setdefault(row["file"], {})
        split[row["reason"]] = split.get(row["reason"], 0) + int(row["rows"])
    for split in explained.values():
        split["total"] = sum(split.values())
    summary = {
        "run_id": run_id,
        "linkage_matches": linked.height,
        "records_carried_over": carried.height,
        "records_removed": {
            s: int(n) for s, n in applied.group_by("source").len().sort("source").iter_rows()
        },
        "rows_removed": rows_removed,
        "pseudonymised_rows_removed_this_call": removed_now,
        "rows_opted_out_by_reason": {
            r: int(n)
            for r, n in by_reason.group_by("reason")
            .agg(pl.col("rows").sum())
            .sort("reason")
            .iter_rows()
        },
        "rows_opted_out_by_file": explained,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info(
        "linked opt-outs: %d records, %d rows removed (%d this call)",
        applied.height,
        sum(rows_removed.values()),
        sum(removed_now.values()),
    )
    return summary
