"""The landing gate: each delivery after its data contract, before anything is derived from it.

What it checks, and why:

* per table, values the rest of the pipeline relies on: codes of the NHS data
  dictionary, dates from a plausible earliest to the run day, a discharge after its
  admission, and a usual share of valid NHS numbers and dates of birth (fewer makes
  linkage weaker);
* per organisation, rows against the same organisation's previous delivery (the
  ``landing.volumes`` suite): far fewer is a truncated extract, twice as many a
  duplicated one. The baseline is kept in ``DATA/quality/volumes.csv`` and moves only
  when this gate passes, so a bad delivery never becomes the yardstick.

Its batches are the validated tables (``landing/_validated/``) without any identifier
column or local id - the contract has already checked their formats - so no result or
Data Docs page can show one. When the gate runs is the DAG's to say
(``dags/joinedup_link_and_build.py``, task ``quality_gate_landing``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from joinedup.atomic import read_csv, write_csv
from joinedup.catalogue import QUALITY, validated_path
from joinedup.contracts import (
    ADMISSION_METHOD_CODES,
    ADMISSION_SOURCE_CODES,
    AE_DISPOSAL_CODES,
    DISCHARGE_DESTINATION_CODES,
    NATIONAL_DATA_OPT_OUT,
    SEX_CODES,
    SOCIAL_CARE_EVENT_TYPES,
    SOCIAL_CARE_ROUTES,
    SOCIAL_CARE_SERVICE_TYPES,
    TABLES,
    Table,
)
from joinedup.deidentify.ndop import read_numbers_file, reply_file
from joinedup.quality.batches import BatchError, Batches, GateBatches, require
from joinedup.quality.project import quality_dir
from joinedup.quality.rules import (
    CRITICAL,
    EARLIEST_ACTIVITY,
    EARLIEST_RECORD,
    SEX_WHY,
    STATUS_WHY,
    STATUSES,
    WARNING,
    Suite,
    after,
    banded,
    between,
    dates,
    expect,
    in_set,
    matches,
    not_empty,
    not_null,
)

# A delivery from one organisation against its previous one: outside these, the extract
# was truncated, duplicated or sent for the wrong period.
VOLUME_RATIO_CRITICAL = (0.6, 2.0)
VOLUME_RATIO_WARNING = (0.8, 1.25)
# Below this many rows last time, a ratio says more about chance than about the extract.
MIN_PREVIOUS_ROWS = 20

VOLUMES = "volumes.csv"  # in the quality zone
VOLUME_SCHEMA = {
    "run_id": pl.String(),
    "recorded_at": pl.String(),
    "source": pl.String(),
    "table": pl.String(),
    "org_code": pl.String(),
    "rows": pl.Int64(),
}
ALL_ORGANISATIONS = "(all)"


# --- suites -------------------------------------------------------------------------------------


def _valid_share(column: str, mostly: float, who: str) -> Any:
    return expect(
        "ExpectColumnValuesToBeInSet",
        WARNING,
        f"{who}: a lower share of valid values than usual makes linkage weaker; ask the "
        "supplier whether the extract changed",
        column=column,
        value_set=["valid"],
        mostly=mostly,
    )


def _period(
    start: str, end: str, earliest: str, severity: str, why: str, end_severity: str = CRITICAL
) -> list[Any]:
    """A period: both dates plausible, and the end (``severity``, ``why``) not before the start."""
    return [
        dates(start, earliest),
        dates(end, earliest, end_severity),
        after(end, start, severity, why),
    ]


def _person_codes(nhs_number_share: float, who: str) -> list[Any]:
    """A table of people: its sex codes, its NHS-number checks, and how many were valid."""
    return [
        in_set("sex", SEX_CODES, CRITICAL, SEX_WHY),
        in_set("nhs_number_status", STATUSES, CRITICAL, STATUS_WHY),
        _valid_share("nhs_number_status", nhs_number_share, who),
    ]


def suites() -> list[Suite]:
    code = "a code outside the data dictionary's set decides nothing we can report"
    return [
        Suite(
            "landing.gp.patients",
            "landing",
            "GP registrations after the data contract (identifier columns are not loaded).",
            [
                not_empty(),
                not_null("practice_code", "every registration belongs to a practice"),
                *_person_codes(0.9, "GP records almost always carry one"),
                _valid_share("date_of_birth_status", 0.9, "GP records almost always carry one"),
                *_period(
                    "registration_date",
                    "deregistration_date",
                    EARLIEST_RECORD,
                    WARNING,
                    "a patient leaves a practice after joining it",
                ),
            ],
        ),
        Suite(
            "landing.gp.events",
            "landing",
            "Coded GP entries after the data contract.",
            [
                not_empty(),
                dates("event_date", EARLIEST_RECORD),
                matches(
                    "snomed_code",
                    r"^[0-9]{6,18}$",
                    "SNOMED CT concept ids are 6 to 18 digits; anything else is a local code",
                    WARNING,
                ),
            ],
        ),
        Suite(
            "landing.hospital.apc_episodes",
            "landing",
            "Admitted patient care episodes after the data contract.",
            [
                not_empty(),
                *_period(
                    "admission_date",
                    "discharge_date",
                    EARLIEST_ACTIVITY,
                    CRITICAL,
                    "a discharge before its admission breaks lengths of stay and readmissions",
                ),
                in_set("admission_method", ADMISSION_METHOD_CODES, CRITICAL, code),
                in_set("admission_source", ADMISSION_SOURCE_CODES, CRITICAL, code),
                in_set("discharge_destination", DISCHARGE_DESTINATION_CODES, CRITICAL, code),
                between(
                    "episode_number",
                    1,
                    50,
                    WARNING,
                    "a spell rarely has more than a handful of consultant episodes",
                ),
                in_set("sex", SEX_CODES, CRITICAL, SEX_WHY),
                _valid_share("nhs_number_status", 0.9, "hospital records almost always carry one"),
            ],
        ),
        Suite(
            "landing.hospital.ae_attendances",
            "landing",
            "A&E attendances after the data contract; datetimes are checked by day.",
            [
                not_empty(),
                *_period(
                    "arrival_datetime",
                    "departure_datetime",
                    EARLIEST_ACTIVITY,
                    WARNING,
                    "a patient leaves A&E after arriving",
                ),
                in_set("disposal", AE_DISPOSAL_CODES, CRITICAL, code),
                in_set("sex", SEX_CODES, CRITICAL, SEX_WHY),
            ],
        ),
        Suite(
            "landing.social_care.clients",
            "landing",
            "Adult social care clients after the data contract.",
            [
                not_empty(),
                not_null("la_code", "every client belongs to a local authority"),
                *_person_codes(0.3, "social care records often lack one"),
            ],
        ),
        Suite(
            "landing.social_care.events",
            "landing",
            "Social care requests, assessments and services after the data contract.",
            [
                not_empty(),
                in_set("event_type", SOCIAL_CARE_EVENT_TYPES, CRITICAL, code),
                in_set("service_type", SOCIAL_CARE_SERVICE_TYPES, WARNING, code),
                in_set("route_of_access", SOCIAL_CARE_ROUTES, WARNING, code),
                *_period(
                    "event_start_date",
                    "event_end_date",
                    EARLIEST_ACTIVITY,
                    WARNING,
                    "a service ends after it starts",
                    end_severity=WARNING,
                ),
            ],
        ),
        Suite(
            "landing.opt_outs.national_data_opt_out",
            "landing",
            "The national data opt-out list (only its size is checked; it holds identifiers).",
            [not_empty(why="an empty opt-out list would let every opted-out person through")],
        ),
        Suite(
            "landing.reference.postcodes",
            "landing",
            "Postcode to LSOA, IMD and local authority lookup (postcodes are not loaded).",
            [
                not_empty(why="without the lookup no record has an area"),
                between(
                    "imd_decile", 1, 10, CRITICAL, "IMD deciles run from 1 (most deprived) to 10"
                ),
                matches(
                    "lsoa_code",
                    r"^[EW]0[0-9]{7}$",
                    "LSOA codes are E01/W01 followed by digits",
                    WARNING,
                ),
                not_null("la_code", "every postcode lies in a local authority"),
            ],
        ),
        Suite(
            "landing.volumes",
            "landing",
            "Rows per organisation against the same organisation's previous delivery "
            f"(the last run whose landing gate passed; kept in DATA/{QUALITY.path}/{VOLUMES}). "
            "ratio is null where there is no earlier delivery or it was too small to compare.",
            [
                *banded(
                    "ratio",
                    VOLUME_RATIO_CRITICAL,
                    "far fewer rows than last time is a truncated or partial extract; twice as "
                    "many is a duplicated one. Check the delivery with the supplier.",
                    VOLUME_RATIO_WARNING,
                    "a change of more than a fifth from last time is worth a look",
                ),
                in_set(
                    "new_organisation",
                    [False],
                    WARNING,
                    "an organisation that did not deliver last time: expected, or a wrong code?",
                ),
            ],
            index_columns=["source", "table", "org_code", "rows", "previous_rows"],
        ),
    ]


# --- batches ------------------------------------------------------------------------------------


def _landing_columns(table: Table) -> list[str]:
    """Columns a landing suite may see: no identifier, no local id, no file name."""
    local_id = table.record[1] if table.record else None
    keep = [c.name for c in table.columns if not c.identifier and c.name != local_id]
    status = [f"{c.name}_status" for c in table.columns if c.nullable_if_defective]
    return keep + status


def _landing_table(data_dir: Path, table: Table) -> pl.LazyFrame:
    path = require(validated_path(data_dir, table), f"ingest for {table.source}")
    names = pl.read_parquet_schema(path)
    # A table of identifiers only (the opt-out list) is checked by its size: its line numbers.
    columns = [c for c in _landing_columns(table) if c in names] or ["source_line"]
    # Checked by day: the suites' date bounds are days.
    return pl.scan_parquet(path).select(columns).with_columns(pl.col(pl.Datetime).dt.date())


def current_volumes(data_dir: Path) -> pl.DataFrame:
    """Rows per (source, table, organisation) in this delivery, after the contract."""
    frames = []
    for table in TABLES.values():
        path = validated_path(data_dir, table)
        if not path.exists():
            continue
        scan = pl.scan_parquet(path)
        org = table.record[0] if table.record else None
        if org is None and "la_code" in table.column_names:
            org = "la_code"
        grouped = (
            scan.group_by(pl.col(org).alias("org_code")).agg(pl.len().alias("rows"))
            if org
            else scan.select(pl.lit(ALL_ORGANISATIONS).alias("org_code"), pl.len().alias("rows"))
        )
        frames.append(
            grouped.with_columns(
                pl.lit(table.source).alias("source"), pl.lit(table.name).alias("table")
            ).collect()
        )
    if not frames:
        raise BatchError(f"no validated landing tables under {data_dir}: run ingest first.")
    return (
        pl.concat(frames, how="diagonal_relaxed")
        .select("source", "table", "org_code", pl.col("rows").cast(pl.Int64))
        .sort("source", "table", "org_code")
    )


def read_volumes(data_dir: Path) -> pl.DataFrame:
    path = quality_dir(data_dir) / VOLUMES
    if not path.exists():
        return pl.DataFrame(schema=VOLUME_SCHEMA)
    return read_csv(path, schema=VOLUME_SCHEMA)  # org codes come from landing: escaped


def previous_volumes(data_dir: Path, run_id: str) -> tuple[str | None, pl.DataFrame]:
    """The last recorded delivery other than this run's: (its run id, its volumes)."""
    history = read_volumes(data_dir).filter(pl.col("run_id") != run_id)
    if history.is_empty():
        return None, history
    last = history.sort("recorded_at").row(-1, named=True)["run_id"]
    return last, history.filter(pl.col("run_id") == last)


def record_volumes(data_dir: Path, run_id: str, volumes: pl.DataFrame) -> Path:
    """Keep this delivery's volumes as the baseline for the next (replacing this run's)."""
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = volumes.with_columns(pl.lit(run_id).alias("run_id"), pl.lit(stamp).alias("recorded_at"))
    kept = read_volumes(data_dir).filter(pl.col("run_id") != run_id)
    merged = pl.concat([kept, rows.select(list(VOLUME_SCHEMA)).cast(VOLUME_SCHEMA)])
    return write_csv(
        merged.sort("recorded_at", "source", "table", "org_code"), quality_dir(data_dir) / VOLUMES
    )


def volume_comparison(data_dir: Path, run_id: str, current: pl.DataFrame) -> pl.DataFrame:
    """This delivery against the previous one, per organisation (see suite landing.volumes)."""
    previous_run, previous = previous_volumes(data_dir, run_id)
    keys = ["source", "table", "org_code"]
    joined = current.join(
        previous.select(*keys, pl.col("rows").alias("previous_rows")),
        on=keys,
        how="full",
        coalesce=True,
    )
    comparable = pl.col("previous_rows") >= MIN_PREVIOUS_ROWS
    return (
        joined.with_columns(pl.col("rows").fill_null(0))
        .with_columns(
            ratio=pl.when(comparable).then(pl.col("rows") / pl.col("previous_rows")),
            new_organisation=pl.lit(previous_run is not None) & pl.col("previous_rows").is_null(),
            previous_run_id=pl.lit(previous_run, dtype=pl.String),
        )
        .sort(keys)
    )


def _opt_out_deliveries(data_dir: Path) -> pl.LazyFrame:
    """The opt-out list's rows and, where the service's reply has come back, its numbers.

    Either is an opt-out delivery (deidentify/ndop.py): the reply may stand in for the
    list. An empty one would let every opted-out person through, so the suite's
    not-empty check is on both together.
    """
    frames = []
    if validated_path(data_dir, NATIONAL_DATA_OPT_OUT).exists():
        frames.append(_landing_table(data_dir, NATIONAL_DATA_OPT_OUT).select("source_line"))
    reply = reply_file(data_dir)
    if reply is not None:
        lines = read_numbers_file(reply, reply.name).select(
            pl.col("line").cast(pl.Int64).alias("source_line")
        )
        frames.append(lines.lazy())
    if not frames:  # neither: the same error as any table ingest did not write
        return _landing_table(data_dir, NATIONAL_DATA_OPT_OUT)
    return pl.concat(frames)


def batches(data_dir: Path, run_id: str) -> GateBatches:
    """Batches of the landing suites; this delivery's volumes are recorded if the gate passes."""
    volumes = current_volumes(data_dir)
    found: Batches = {
        f"landing.{t.source}.{t.name}": (lambda t=t: _landing_table(data_dir, t))
        for t in TABLES.values()
    }
    found["landing.opt_outs.national_data_opt_out"] = lambda: _opt_out_deliveries(data_dir)
    found["landing.volumes"] = lambda: volume_comparison(data_dir, run_id, volumes)
    return GateBatches(found, passed=lambda: record_volumes(data_dir, run_id, volumes))
