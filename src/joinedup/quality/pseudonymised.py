"""The pseudonymised gate: the de-identified tables, before anything is built on them.

What it checks, and why:

* each table has exactly the columns pseudonymise writes (any other column may carry an
  identifier across the line), one row per record or event key (a duplicate is double
  counting), and values the warehouse relies on (status codes, sex codes, IMD deciles);
* ``pseudonymised.formats``: every token, Bloom filter and birth month column, scanned over
  whole tables, holds only values in its format (:mod:`joinedup.quality.formats`);
* ``pseudonymised.identifier_scan``: no text column is full of values shaped like an NHS
  number, a postcode, a full date or a name - an identifier under another column name
  (:mod:`joinedup.privacy.identifiers` finds them, keeping shares, never values).

GX never sees a value out of format (it is masked first), so no result or Data Docs page
can repeat one. When the gate runs is the DAG's to say (``dags/joinedup_link_and_build.py``,
task ``quality_gates_inputs``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from joinedup.catalogue import PSEUDONYMISED_TABLES, pseudonymised_path
from joinedup.contracts import SEX_CODES
from joinedup.deidentify.encodings import ENCODING_SCHEMA
from joinedup.deidentify.pseudonymise import GP_EXTRA, RECORD_SCHEMA
from joinedup.privacy.identifiers import identifier_scan
from joinedup.quality.batches import Batches, GateBatches, require
from joinedup.quality.formats import BIRTH_MONTH, BLOOM, TOKEN, FormatScan, formats_suite
from joinedup.quality.rules import (
    CRITICAL,
    SEX_WHY,
    STATUS_WHY,
    STATUSES,
    Suite,
    between,
    exact_columns,
    in_set,
    not_empty,
    not_null,
    unique,
)

# The columns pseudonymise writes to each table ("source.table"): record tables ...
RECORD_COLUMNS: dict[str, list[str]] = {
    "gp.patients": [*RECORD_SCHEMA, *GP_EXTRA],
    "hospital.patients": list(RECORD_SCHEMA),
    "social_care.clients": list(RECORD_SCHEMA),
}
# ... and event tables, joined to their records through record_token.
EVENT_COLUMNS: dict[str, list[str]] = {
    "gp.events": ["record_token", "practice_code", "event_date", "snomed_code"],
    "hospital.apc_episodes": [
        "record_token",
        "provider_code",
        "spell_token",
        "episode_number",
        "admission_date",
        "discharge_date",
        "admission_method",
        "admission_source",
        "discharge_destination",
        "primary_diagnosis",
        "primary_procedure",
        # Reviewed: the HES APC layout's episode dates and codes (no local ids, no free text).
        "episode_start_date",
        "episode_end_date",
        "discharge_method",
        "patient_classification",
        "main_specialty",
        "secondary_diagnoses",
        "secondary_procedures",
        "discharge_ready_date",
    ],
    "hospital.ae_attendances": [
        "record_token",
        "provider_code",
        "attendance_token",
        "arrival_datetime",
        "departure_datetime",
        "disposal",
        # Reviewed: ECDS's coded fields (SNOMED CT concept ids and a department type).
        "department_type",
        "arrival_mode_snomed",
        "chief_complaint_snomed",
        "acuity_snomed",
        "discharge_status_snomed",
        "discharge_destination_snomed",
        "diagnosis_snomed",
    ],
    "social_care.events": [
        "record_token",
        "la_code",
        "event_type",
        "service_type",
        "route_of_access",
        "event_start_date",
        "event_end_date",
        # Reviewed: CLD's code-list fields; not its event reference (a local id).
        "client_type",
        "cld_service_type",
        "service_component",
        "delivery_mechanism",
        "assessment_type",
        "event_outcome",
        "primary_support_reason",
        "accommodation_status",
    ],
}
# The zone's tables in the order their suites are written and run: record tables first.
TABLES: list[str] = [*RECORD_COLUMNS, *EVENT_COLUMNS]
_CATALOGUED = {f"{s}.{n}" for s, names in PSEUDONYMISED_TABLES.items() for n in names}
if set(TABLES) != _CATALOGUED:
    raise RuntimeError(
        "the pseudonymised gate's tables differ from joinedup.catalogue.PSEUDONYMISED_TABLES "
        f"(gate only: {sorted(set(TABLES) - _CATALOGUED)}; catalogue only: "
        f"{sorted(_CATALOGUED - set(TABLES))}): give each table its columns here"
    )

# Every token, encoding and coarsened date column, and the one format its values may have.
PSEUDONYMISED_FORMATS: dict[str, dict[str, str]] = {
    **{
        qualified: {
            "record_token": TOKEN,
            **{c: TOKEN for c in ENCODING_SCHEMA if c.endswith("_token")},
            "given_name_bloom": BLOOM,
            "family_name_bloom": BLOOM,
            "birth_month": BIRTH_MONTH,
        }
        for qualified in RECORD_COLUMNS
    },
    "gp.events": {"record_token": TOKEN},
    "hospital.apc_episodes": {"record_token": TOKEN, "spell_token": TOKEN},
    "hospital.ae_attendances": {"record_token": TOKEN, "attendance_token": TOKEN},
    "social_care.events": {"record_token": TOKEN},
}
# Event keys: (the columns that identify an event, its tokens that must be present).
EVENT_KEYS: dict[str, tuple[list[str], list[str]]] = {
    "hospital.apc_episodes": (["spell_token", "episode_number"], ["spell_token"]),
    "hospital.ae_attendances": (["attendance_token"], ["attendance_token"]),
}
# Identifier-looking values tolerated in one pseudonymised column (a share of its values).
IDENTIFIER_SHARE_MAX = 0.2


# --- suites -------------------------------------------------------------------------------------


def _record_suite(qualified: str, columns: list[str]) -> Suite:
    source = qualified.split(".")[0]
    checks = [
        exact_columns(columns),
        not_empty(),
        not_null("record_token", "every row belongs to a source record"),
        unique(["record_token"], "one row per source record: a duplicate is double counting"),
        in_set("source", [source], CRITICAL, "the table holds one source's records"),
        not_null("org_code", "every record belongs to an organisation"),
        *[
            in_set(c, STATUSES, CRITICAL, STATUS_WHY)
            for c in ENCODING_SCHEMA
            if c.endswith("_status")
        ],
        in_set("sex", SEX_CODES, CRITICAL, SEX_WHY),
        between("imd_decile", 1, 10, CRITICAL, "IMD deciles run from 1 to 10"),
    ]
    return Suite(
        f"pseudonymised.{qualified}",
        "pseudonymised",
        f"De-identified {qualified.replace('.', ' ')} records: one row per source "
        "record, tokens and linkage encodings only.",
        checks,
    )


def _event_suite(qualified: str, columns: list[str]) -> Suite:
    checks = [
        exact_columns(columns),
        not_empty(),
        not_null("record_token", "every row belongs to a source record"),
    ]
    if qualified in EVENT_KEYS:
        key, tokens = EVENT_KEYS[qualified]
        checks += [not_null(t, "every event has its key") for t in tokens]
        checks.append(unique(key, "the event's key: a duplicate is double counting"))
    return Suite(
        f"pseudonymised.{qualified}",
        "pseudonymised",
        f"De-identified {qualified.replace('.', ' ')}: events joined to people "
        "through record_token.",
        checks,
    )


def _identifier_scan_suite() -> Suite:
    share = (
        "share of the column's values that look like {}: a column of them means an "
        "identifier crossed into the de-identified zone under another name"
    )
    return Suite(
        "pseudonymised.identifier_scan",
        "pseudonymised",
        "Every text column of every pseudonymised table other than tokens and Bloom "
        "filters (those have format checks): the share of its values shaped like an NHS "
        "number (10 digits, valid check digit), a full postcode, a full date, or a "
        "personal name (capitalised words in a column of many distinct values). Counts "
        "only; the values are never kept.",
        [
            between(col, 0, IDENTIFIER_SHARE_MAX, CRITICAL, share.format(kind))
            for kind, col in (
                ("NHS numbers", "nhs_number_share"),
                ("postcodes", "postcode_share"),
                ("full dates (a date of birth)", "full_date_share"),
                ("personal names", "name_share"),
            )
        ],
        index_columns=["table", "column"],
    )


def suites() -> list[Suite]:
    return [
        *[_record_suite(q, columns) for q, columns in RECORD_COLUMNS.items()],
        *[_event_suite(q, columns) for q, columns in EVENT_COLUMNS.items()],
        formats_suite("pseudonymised", PSEUDONYMISED_FORMATS),
        _identifier_scan_suite(),
    ]


# --- batches ------------------------------------------------------------------------------------


def _table(data_dir: Path, qualified: str) -> Path:
    """A pseudonymised table's file, or a :class:`BatchError` (pseudonymise has not run)."""
    source, name = qualified.split(".")
    return require(pseudonymised_path(data_dir, source, name), "pseudonymise")


def batches(data_dir: Path, run_id: str) -> GateBatches:
    """Each table as GX may see it (out-of-format values masked), the format scan, and the
    identifier scan. ``run_id`` is not needed: the zone holds one run's tables."""
    # One format scan serves the formats suite and tells the tables' masks what to mask.
    formats = FormatScan(
        lambda: {q: _table(data_dir, q) for q in PSEUDONYMISED_FORMATS}, PSEUDONYMISED_FORMATS
    )
    found: Batches = {
        f"pseudonymised.{q}": lambda q=q: formats.masked(
            q, pl.scan_parquet(_table(data_dir, q)).with_columns(pl.col(pl.Datetime).dt.date())
        )
        for q in TABLES
    }
    found["pseudonymised.formats"] = formats
    found["pseudonymised.identifier_scan"] = lambda: identifier_scan(
        {q.replace(".", "/"): _table(data_dir, q) for q in TABLES}
    )
    return GateBatches(found)
