"""The ``opt_outs`` stage: remove everyone who has opted out, before anything else uses the data.

Who is removed, per source record (one patient at one organisation):

* every record carrying a valid NHS number on the national data opt-out list;
* every record carrying a valid NHS number that was submitted to the national data
  opt-out service and is missing from its reply (``landing/opt_outs/ndop_reply*.dat``,
  the round trip of :mod:`joinedup.deidentify.ndop`);
* every GP record whose latest type 1 code is an objection (827241000000103
  after any withdrawal 827261000000102; on the same date the objection wins,
  the choice that cannot publish someone who objected);
* every record, in any source, carrying the NHS number of such a GP record: an
  objection at one practice removes the person's hospital and social care
  records that carry the same NHS number.

A record is removed with all its rows in every table (episodes, attendances,
events). Quarantined rows are consulted too, conservatively: a quarantined
demographic row still ties its record to an NHS number, and a quarantined
objection whose date is unusable still counts as an objection (dated after
everything), so a defect in one row can never let an opted-out person through.

People with no valid NHS number on a record cannot be matched here; their
records' linkage encodings are kept (by the pseudonymise stage) in the
restricted file ``restricted/opted_out_encodings.parquet`` so that linkage can
remove records of the same person that carry no NHS number. That file never
reaches any output.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from joinedup.atomic import write_parquet
from joinedup.catalogue import (
    NDOP_REPLIES,
    OPTED_OUT,
    OPTED_OUT_REASONS,
    OPTED_OUT_RECORDS,
    PERSON_SOURCES,
    RESTRICTED,
    cleared_path,
    landing_files,
    quarantine_path,
    relative,
    validated_path,
)
from joinedup.contracts import (
    DEMOGRAPHIC_TABLES,
    GP_EVENTS,
    GP_PATIENTS,
    NATIONAL_DATA_OPT_OUT,
    SNOMED_TYPE1_OBJECTION,
    SNOMED_TYPE1_WITHDRAWN,
    TABLES,
    Table,
)
from joinedup.deidentify.ndop import NOT_RETURNED, withheld_numbers
from joinedup.ingest.errors import IngestError, OptOutListMissingError
from joinedup.ingest.ledger import record_opt_outs
from joinedup.ingest.read import FILE
from joinedup.ingest.records import DEMOGRAPHICS, record_columns, source_records
from joinedup.ingest.validate import normalise_nhs_number

log = logging.getLogger(__name__)

NATIONAL = "national_data_opt_out"
TYPE1 = "type1_objection"
TYPE1_NHS_NUMBER = "type1_objection_nhs_number"  # another record of a type 1 objector
RECORD_KEY = ["source", "org_code", "local_id"]


def person_tables() -> list[Table]:
    return [t for t in TABLES.values() if t.source in PERSON_SOURCES]


def _read_validated(data_dir: Path, table: Table) -> pl.DataFrame | None:
    path = validated_path(data_dir, table)
    return pl.read_parquet(path) if path.exists() else None


def _read_quarantine(data_dir: Path, table: Table) -> pl.DataFrame | None:
    path = quarantine_path(data_dir, table)
    return pl.read_parquet(path) if path.exists() else None


def national_numbers(data_dir: Path, *, required: bool = True) -> pl.Series:
    """Valid NHS numbers on the national data opt-out list.

    Refuse to run without the list when ``required``, i.e. when no reply of the national
    data opt-out service stands in for it.
    """
    path = validated_path(data_dir, NATIONAL_DATA_OPT_OUT)
    if not landing_files(data_dir, NATIONAL_DATA_OPT_OUT) or not path.exists():
        if not required:
            return pl.Series("nhs_number", [], dtype=pl.String)
        raise OptOutListMissingError(
            f"no national data opt-out list: expected {NATIONAL_DATA_OPT_OUT.folder}/"
            f"{NATIONAL_DATA_OPT_OUT.file_glob} in the data dir, ingested with "
            "ingest_source(data_dir, 'opt_outs', run_id), or the service's reply to a "
            f"submission ({NDOP_REPLIES}, docs/runbook.md). Without either opted-out people "
            "would be published. If nobody has opted out, deliver a header-only file (nhs_number)."
        )
    return pl.read_parquet(path)["nhs_number"].unique().sort()


def type1_objectors(
    data_dir: Path, events: pl.DataFrame, gp_patients: pl.DataFrame | None
) -> tuple[pl.DataFrame, int]:
    """GP records (source, org_code, local_id) of people whose latest type 1 code is an objection.

    "Latest wins" is judged per person, not per registration: the codes of all
    GP records carrying the same valid NHS number are pooled (a person who
    objected at one practice and later withdrew at another has withdrawn); a
    record with no valid NHS number stands alone. Returns the objecting records
    and how many people (or lone records) had withdrawn.
    """
    codes = [SNOMED_TYPE1_OBJECTION, SNOMED_TYPE1_WITHDRAWN]
    dated = events.filter(pl.col("snomed_code").is_in(codes)).select(
        *record_columns(GP_EVENTS)[1:], pl.col("event_date"), pl.col("snomed_code")
    )
    quarantined = _read_quarantine(data_dir, GP_EVENTS)
    if quarantined is not None and not quarantined.is_empty():
        org, local = GP_EVENTS.record
        undated = quarantined.select(
            pl.col(org).str.strip_chars().alias("org_code"),
            pl.col(local).str.strip_chars().alias("local_id"),
            pl.lit(None, dtype=pl.Date).alias("event_date"),
            pl.col("snomed_code").str.strip_chars(),
        ).filter(
            (pl.col("snomed_code") == SNOMED_TYPE1_OBJECTION)
            & (pl.col("org_code") != "")
            & (pl.col("local_id") != "")
        )
        if not undated.is_empty():
            log.warning(
                "%d quarantined type 1 objection row(s) counted as objections", undated.height
            )
        dated = pl.concat([dated, undated])
    if gp_patients is not None:
        numbers = gp_patients.select(
            *record_columns(GP_PATIENTS)[1:], pl.col("nhs_number")
        ).drop_nulls()
    else:
        numbers = pl.DataFrame(
            schema={"org_code": pl.String, "local_id": pl.String, "nhs_number": pl.String}
        )
    person = pl.coalesce(
        pl.col("nhs_number"), pl.concat_str(pl.lit("record|"), "org_code", pl.lit("|"), "local_id")
    )
    coded = dated.join(numbers, on=["org_code", "local_id"], how="left").with_columns(
        person.alias("person"),
        (pl.col("snomed_code") == SNOMED_TYPE1_OBJECTION).alias("objects"),
    )
    latest = (
        # Oldest first, an undated (quarantined) objection last; on one date objection last.
        coded.sort(["person", "event_date", "objects"], nulls_last=True)
        .group_by("person", maintain_order=True)
        .agg(pl.col("objects").last())
    )
    objecting_people = latest.filter(pl.col("objects"))["person"].implode()
    objecting = (
        coded.filter(pl.col("person").is_in(objecting_people))
        .select(pl.lit("gp").alias("source"), "org_code", "local_id")
        .unique()
        .sort(RECORD_KEY)
    )
    return objecting, latest.height - objecting_people.list.len().item()


def record_nhs_numbers(data_dir: Path, validated: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """(source, org_code, local_id, nhs_number): every valid number any row of a record carries."""
    frames = []
    for source in PERSON_SOURCES:
        for table in DEMOGRAPHIC_TABLES[source]:
            rows = validated.get(table.qualified_name)
            if rows is not None:
                frames.append(rows.select(*record_columns(table), pl.col("nhs_number")))
            quarantined = _read_quarantine(data_dir, table)
            if quarantined is not None and not quarantined.is_empty():
                org, local = table.record
                frames.append(
                    quarantined.select(
                        pl.lit(source).alias("source"),
                        pl.col(org).str.strip_chars().alias("org_code"),
                        pl.col(local).str.strip_chars().alias("local_id"),
                        normalise_nhs_number(pl.col("nhs_number").str.strip_chars()),
                    )
                )
    if not frames:
        return pl.DataFrame(schema={c: pl.String for c in [*RECORD_KEY, "nhs_number"]})
    return pl.concat(frames).drop_nulls().unique()


def purge_expired_opt_outs(data_dir: Path, days: int, now: float | None = None) -> dict:
    """Delete every file of ``landing/_opted_out/`` and ``restricted/`` written over ``days`` ago.

    The retention rule of JOINEDUP_OPTED_OUT_RETENTION_DAYS, applied by the finalise task
    (``joinedup.pipeline.finalise``), which lists what went in the run record. Those
    files name or encode people who opted out; they serve only the run that wrote them
    (pseudonymise, link and remove_linked_opt_outs read them) and re-runs of its stages,
    which remove_opt_outs and pseudonymise recreate when run again. Age is the file's
    last write (each run rewrites them). Returns the limit and, per removed file, its
    path relative to the data directory, when it was written and its age in days.
    """
    data_dir = Path(data_dir)
    now = time.time() if now is None else now
    limit = now - days * 86_400
    removed = []
    files = [p for zone in (OPTED_OUT, RESTRICTED) for p in zone.under(data_dir).rglob("*")]
    for path in sorted(p for p in files if p.is_file()):
        written = path.stat().st_mtime
        if written > limit:
            continue
        path.unlink()
        removed.append(
            {
                "path": relative(data_dir, path),
                "written": datetime.fromtimestamp(written, UTC).isoformat(timespec="seconds"),
                "age_days": round((now - written) / 86_400, 1),
            }
        )
    if removed:
        log.info("opt-out retention (%d days): removed %d file(s)", days, len(removed))
    return {"retention_days": days, "removed": removed}


def remove_opt_outs(data_dir: Path, run_id: str) -> dict:
    """Remove opted-out records from every validated person table; count them in the ledger.

    Reads ``landing/_validated``, writes ``landing/_cleared`` (the only input the
    pseudonymise stage accepts) and the identifiable record-grain demographics of
    removed records to ``landing/_opted_out/records.parquet``, from which the
    pseudonymise stage builds the restricted opted-out encodings, and each removed
    record's reason to ``landing/_opted_out/reasons.parquet`` (read by
    ``remove_linked_opt_outs`` to split the ledger's opted-out rows by reason). Always
    recomputed from the validated tables, so running it twice is harmless.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    validated = {t.qualified_name: _read_validated(data_dir, t) for t in person_tables()}
    missing = [name for name, frame in validated.items() if frame is None]
    if len(missing) == len(validated):
        raise IngestError(
            "no validated person tables: run ingest_source for gp, hospital and social_care "
            "in this run before remove_opt_outs."
        )
    if missing:
        log.warning("no validated data for %s: those tables are skipped", ", ".join(missing))

    gp_events = validated.get(GP_EVENTS.qualified_name)
    if gp_events is not None:
        objecting, withdrawn = type1_objectors(
            data_dir, gp_events, validated.get(GP_PATIENTS.qualified_name)
        )
    else:
        objecting, withdrawn = pl.DataFrame(schema={c: pl.String for c in RECORD_KEY}), 0
    numbers = record_nhs_numbers(data_dir, validated)
    round_trip = withheld_numbers(data_dir, numbers["nhs_number"].unique())
    national = national_numbers(data_dir, required=round_trip is None)
    withheld = round_trip[0] if round_trip else pl.Series("nhs_number", [], dtype=pl.String)
    type1_numbers = numbers.join(objecting, on=RECORD_KEY, how="semi")["nhs_number"].unique()

    removed = pl.concat(
        [
            objecting.with_columns(pl.lit(TYPE1).alias("reason"), pl.lit(0).alias("rank")),
            numbers.filter(pl.col("nhs_number").is_in(national.implode()))
            .select(RECORD_KEY)
            .with_columns(pl.lit(NATIONAL).alias("reason"), pl.lit(1).alias("rank")),
            numbers.filter(pl.col("nhs_number").is_in(withheld.implode()))
            .select(RECORD_KEY)
            .with_columns(pl.lit(NOT_RETURNED).alias("reason"), pl.lit(2).alias("rank")),
            numbers.filter(pl.col("nhs_number").is_in(type1_numbers.implode()))
            .select(RECORD_KEY)
            .with_columns(pl.lit(TYPE1_NHS_NUMBER).alias("reason"), pl.lit(3).alias("rank")),
        ]
    )
    removed = (
        removed.sort([*RECORD_KEY, "rank"])
        .unique(RECORD_KEY, keep="first", maintain_order=True)
        .drop("rank")
    )

    ledger_rows: list[pl.DataFrame] = []
    rows_removed: dict[str, int] = {}
    opted_out_demographics: list[pl.DataFrame] = []
    for table in person_tables():
        rows = validated[table.qualified_name]
        if rows is None:
            continue
        record = rows.select(record_columns(table))
        gone = record.join(removed, on=RECORD_KEY, how="left", maintain_order="left")[
            "reason"
        ].is_not_null()
        kept, dropped = rows.filter(~gone), rows.filter(gone)
        write_parquet(kept.rechunk(), cleared_path(data_dir, table))
        rows_removed[table.qualified_name] = dropped.height
        ledger_rows.append(
            dropped.group_by(FILE)
            .len()
            .select(
                pl.lit(table.source).alias("source"),
                pl.lit(table.name).alias("table"),
                pl.col(FILE).alias("file"),
                pl.col("len").alias("rows"),
            )
        )
        log.info("opt-outs %s: %d kept, %d removed", table.qualified_name, len(kept), len(dropped))

    for source in PERSON_SOURCES:
        tables = DEMOGRAPHIC_TABLES[source]
        frames = {t.name: validated[t.qualified_name] for t in tables}
        if any(f is None for f in frames.values()):
            continue
        records = source_records(source, frames)
        # Only what pseudonymise encodes them from: the reason is in reasons.parquet.
        opted_out_demographics.append(
            records.join(removed, on=RECORD_KEY, how="semi").sort(RECORD_KEY)
        )
    opted_out = pl.concat([pl.DataFrame(schema=DEMOGRAPHICS), *opted_out_demographics])
    write_parquet(opted_out.rechunk(), data_dir / OPTED_OUT_RECORDS)
    # Every removed record with its reason, including records with no validated demographics
    # (absent from the file above), so later stages can explain each file's opted-out rows.
    write_parquet(removed.sort(RECORD_KEY).rechunk(), data_dir / OPTED_OUT_REASONS)

    if ledger_rows:
        record_opt_outs(data_dir, run_id, pl.concat(ledger_rows))
    records_removed = removed.group_by("source").len().sort("source")
    summary = {
        "run_id": run_id,
        "national_opt_out_numbers": national.len(),
        # Counts of the round trip, when a reply was applied (the numbers stay in outbox/).
        "national_opt_out_service": round_trip[1] if round_trip else None,
        "type1_objecting_records": objecting.height,
        "type1_withdrawn": withdrawn,
        "records_removed": {s: int(n) for s, n in records_removed.iter_rows()},
        "records_removed_by_reason": {
            r: int(n) for r, n in removed.group_by("reason").len().sort("reason").iter_rows()
        },
        "rows_removed": rows_removed,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("opt-outs removed: %s", summary["records_removed"])
    return summary
