"""The quality suites, written once into the committed GX project under ``expectations/``.

The JSON files GX writes there (suites, validation definitions, checkpoints and
the dataframe assets in ``great_expectations.yml``) are what runs: a pipeline
run only reads them. This module is how they were made, and how to remake them
after changing a rule here::

    uv run python -m joinedup.quality.suites     # rewrites expectations/ in place

``tests/test_quality.py`` fails when the committed files and this module
disagree, so neither can drift from the other.

Severity is GX's own ``severity`` field: ``critical`` failures stop the run
before anything is published, ``warning`` failures are reported. ``notes`` say
why each rule exists; Data Docs show them beside the result.

Values that depend on the run - the run day, the disclosure threshold - are GX
suite parameters (``{"$PARAMETER": ...}``) filled in by :mod:`joinedup.quality.gates`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from joinedup.catalogue import REPO_ROOT
from joinedup.contracts import (
    ADMISSION_METHOD_CODES,
    ADMISSION_SOURCE_CODES,
    AE_DISPOSAL_CODES,
    DISCHARGE_DESTINATION_CODES,
    SEX_CODES,
    SOCIAL_CARE_EVENT_TYPES,
    SOCIAL_CARE_ROUTES,
    SOCIAL_CARE_SERVICE_TYPES,
)
from joinedup.deidentify.encodings import BLOOM_BITS, ENCODING_SCHEMA
from joinedup.deidentify.pseudonymise import GP_EXTRA, RECORD_SCHEMA
from joinedup.quality.project import (
    BATCH_DEFINITION,
    DATASOURCE,
    expectations_dir,
    open_context,
)

log = logging.getLogger(__name__)

CRITICAL = "critical"
WARNING = "warning"

TOKEN = r"^[0-9a-f]{64}$"  # keyed HMAC-SHA256, lowercase hex
PERSON_ID = r"^[0-9a-f]{16}$"
BLOOM = rf"^[01]{{{BLOOM_BITS}}}$"
BIRTH_MONTH = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$"
STATUSES = ["blank", "invalid", "valid"]

EARLIEST_ACTIVITY = "1990-01-01"  # admissions, attendances, social care events
EARLIEST_RECORD = "1900-01-01"  # GP registrations and coded entries go back decades
RUN_DATE = {"$PARAMETER": "run_date"}
SMALL_COUNTS = {"$PARAMETER": "small_counts"}

# A delivery from one organisation against its previous one: outside these, the extract
# was truncated, duplicated or sent for the wrong period.
VOLUME_RATIO_CRITICAL = (0.6, 2.0)
VOLUME_RATIO_WARNING = (0.8, 1.25)
# Cluster sizes: a person has a few records (moves of practice, several hospitals); a
# cluster of dozens is records of different people joined by over-linking.
CLUSTER_SIZE_CRITICAL = 15
CLUSTER_SIZE_WARNING = 6
# Share of a source's records linked to a record of another source. Near 0, the sources
# did not link at all (e.g. tokens made with different keys).
CROSS_SOURCE_SHARE_CRITICAL = (0.05, 1.0)
CROSS_SOURCE_SHARE_WARNING = (0.2, 1.0)
# Identifier-looking values tolerated in one pseudonymised column (a share of its values).
IDENTIFIER_SHARE_MAX = 0.2

MART_DIMENSIONS = [
    "breakdown",
    "activity_month",
    "la_code",
    "practice_code",
    "age_band",
    "sex",
    "imd_quintile",
]
MART_BREAKDOWNS = [
    "total",
    "month",
    "month+la_code",
    "month+practice_code",
    "month+age_band",
    "month+sex",
    "month+imd_quintile",
    "la_code+age_band",
    "la_code+sex",
    "la_code+imd_quintile",
    "month+la_code+age_band+sex+imd_quintile",
]
COMMISSIONER_MARTS_DIR = REPO_ROOT / "models" / "marts" / "commissioning"


@dataclass
class Suite:
    """One suite, its dataframe asset, validation definition and checkpoint (same name)."""

    name: str
    zone: str
    description: str
    expectations: list[Any]
    # Columns that identify a failing row in results (GX unexpected_index_column_names);
    # never identifiers, so results and Data Docs can show them.
    index_columns: list[str] = field(default_factory=list)


def _e(kind: str, severity: str, notes: str, **kwargs: Any) -> Any:
    """A GX expectation by class name, with its severity and why it exists."""
    import great_expectations.expectations as gxe

    return getattr(gxe, kind)(severity=severity, notes=notes, **kwargs)


def _rows(severity: str = CRITICAL, why: str = "an empty delivery is not fit to use") -> Any:
    return _e("ExpectTableRowCountToBeBetween", severity, why, min_value=1)


def _in_set(column: str, values: frozenset[str] | list, severity: str, why: str) -> Any:
    return _e("ExpectColumnValuesToBeInSet", severity, why, column=column, value_set=sorted(values))


def _not_null(column: str, why: str, severity: str = CRITICAL) -> Any:
    return _e("ExpectColumnValuesToNotBeNull", severity, why, column=column)


def _dates(column: str, earliest: str, severity: str = CRITICAL, why: str = "") -> Any:
    why = why or (
        f"{column} from {earliest} to the run day: a date in the future or a century ago "
        "is a default or a broken extract, not care"
    )
    # A midnight, not a date: dates reach GX as datetime64, which it compares vectorised
    # with datetimes (and cannot compare with dates); the run day is a midnight too.
    return _e(
        "ExpectColumnValuesToBeBetween",
        severity,
        why,
        column=column,
        min_value=datetime.fromisoformat(earliest),
        max_value=RUN_DATE,
    )


def _regex(column: str, regex: str, why: str, severity: str = CRITICAL, **kw: Any) -> Any:
    return _e("ExpectColumnValuesToMatchRegex", severity, why, column=column, regex=regex, **kw)


def _after(later: str, earlier: str, severity: str, why: str) -> Any:
    return _e(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        severity,
        why,
        column_A=later,
        column_B=earlier,
        or_equal=True,
        ignore_row_if="either_value_is_missing",
    )


# --- landing, after the data contract ----------------------------------------------------------

_SEX = "sex codes of the NHS data dictionary; the contract nulls others, so any other is a bug"
_STATUS = "identifier checks at ingest record one of these per row"


def _valid_share(column: str, mostly: float, who: str) -> Any:
    return _e(
        "ExpectColumnValuesToBeInSet",
        WARNING,
        f"{who}: a lower share of valid values than usual makes linkage weaker; ask the "
        "supplier whether the extract changed",
        column=column,
        value_set=["valid"],
        mostly=mostly,
    )


def landing_suites() -> list[Suite]:
    code = "a code outside the data dictionary's set decides nothing we can report"
    return [
        Suite(
            "landing.gp.patients",
            "landing",
            "GP registrations after the data contract (identifier columns are not loaded).",
            [
                _rows(),
                _not_null("practice_code", "every registration belongs to a practice"),
                _in_set("sex", SEX_CODES, CRITICAL, _SEX),
                _in_set("nhs_number_status", STATUSES, CRITICAL, _STATUS),
                _valid_share("nhs_number_status", 0.9, "GP records almost always carry one"),
                _valid_share("date_of_birth_status", 0.9, "GP records almost always carry one"),
                _dates("registration_date", EARLIEST_RECORD),
                _dates("deregistration_date", EARLIEST_RECORD),
                _after(
                    "deregistration_date",
                    "registration_date",
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
                _rows(),
                _dates("event_date", EARLIEST_RECORD),
                _regex(
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
                _rows(),
                _dates("admission_date", EARLIEST_ACTIVITY),
                _dates("discharge_date", EARLIEST_ACTIVITY),
                _after(
                    "discharge_date",
                    "admission_date",
                    CRITICAL,
                    "a discharge before its admission breaks lengths of stay and readmissions",
                ),
                _in_set("admission_method", ADMISSION_METHOD_CODES, CRITICAL, code),
                _in_set("admission_source", ADMISSION_SOURCE_CODES, CRITICAL, code),
                _in_set("discharge_destination", DISCHARGE_DESTINATION_CODES, CRITICAL, code),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    WARNING,
                    "a spell rarely has more than a handful of consultant episodes",
                    column="episode_number",
                    min_value=1,
                    max_value=50,
                ),
                _in_set("sex", SEX_CODES, CRITICAL, _SEX),
                _valid_share("nhs_number_status", 0.9, "hospital records almost always carry one"),
            ],
        ),
        Suite(
            "landing.hospital.ae_attendances",
            "landing",
            "A&E attendances after the data contract; datetimes are checked by day.",
            [
                _rows(),
                _dates("arrival_datetime", EARLIEST_ACTIVITY),
                _dates("departure_datetime", EARLIEST_ACTIVITY),
                _after(
                    "departure_datetime",
                    "arrival_datetime",
                    WARNING,
                    "a patient leaves A&E after arriving",
                ),
                _in_set("disposal", AE_DISPOSAL_CODES, CRITICAL, code),
                _in_set("sex", SEX_CODES, CRITICAL, _SEX),
            ],
        ),
        Suite(
            "landing.social_care.clients",
            "landing",
            "Adult social care clients after the data contract.",
            [
                _rows(),
                _not_null("la_code", "every client belongs to a local authority"),
                _in_set("sex", SEX_CODES, CRITICAL, _SEX),
                _in_set("nhs_number_status", STATUSES, CRITICAL, _STATUS),
                _valid_share("nhs_number_status", 0.3, "social care records often lack one"),
            ],
        ),
        Suite(
            "landing.social_care.events",
            "landing",
            "Social care requests, assessments and services after the data contract.",
            [
                _rows(),
                _in_set("event_type", SOCIAL_CARE_EVENT_TYPES, CRITICAL, code),
                _in_set("service_type", SOCIAL_CARE_SERVICE_TYPES, WARNING, code),
                _in_set("route_of_access", SOCIAL_CARE_ROUTES, WARNING, code),
                _dates("event_start_date", EARLIEST_ACTIVITY),
                _dates("event_end_date", EARLIEST_ACTIVITY, WARNING),
                _after(
                    "event_end_date",
                    "event_start_date",
                    WARNING,
                    "a service ends after it starts",
                ),
            ],
        ),
        Suite(
            "landing.opt_outs.national_data_opt_out",
            "landing",
            "The national data opt-out list (only its size is checked; it holds identifiers).",
            [_rows(why="an empty opt-out list would let every opted-out person through")],
        ),
        Suite(
            "landing.reference.postcodes",
            "landing",
            "Postcode to LSOA, IMD and local authority lookup (postcodes are not loaded).",
            [
                _rows(why="without the lookup no record has an area"),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "IMD deciles run from 1 (most deprived) to 10",
                    column="imd_decile",
                    min_value=1,
                    max_value=10,
                ),
                _regex(
                    "lsoa_code",
                    r"^[EW]0[0-9]{7}$",
                    "LSOA codes are E01/W01 followed by digits",
                    WARNING,
                ),
                _not_null("la_code", "every postcode lies in a local authority"),
            ],
        ),
        Suite(
            "landing.volumes",
            "landing",
            "Rows per organisation against the same organisation's previous delivery "
            "(the last run whose landing gate passed; kept in DATA/quality/volumes.csv). "
            "ratio is null where there is no earlier delivery or it was too small to compare.",
            [
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "far fewer rows than last time is a truncated or partial extract; twice as "
                    "many is a duplicated one. Check the delivery with the supplier.",
                    column="ratio",
                    min_value=VOLUME_RATIO_CRITICAL[0],
                    max_value=VOLUME_RATIO_CRITICAL[1],
                ),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    WARNING,
                    "a change of more than a fifth from last time is worth a look",
                    column="ratio",
                    min_value=VOLUME_RATIO_WARNING[0],
                    max_value=VOLUME_RATIO_WARNING[1],
                ),
                _in_set(
                    "new_organisation",
                    [False],
                    WARNING,
                    "an organisation that did not deliver last time: expected, or a wrong code?",
                ),
            ],
            index_columns=["source", "table", "org_code", "rows", "previous_rows"],
        ),
    ]


# --- pseudonymised ---------------------------------------------------------------------------

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
    ],
    "hospital.ae_attendances": [
        "record_token",
        "provider_code",
        "attendance_token",
        "arrival_datetime",
        "departure_datetime",
        "disposal",
    ],
    "social_care.events": [
        "record_token",
        "la_code",
        "event_type",
        "service_type",
        "route_of_access",
        "event_start_date",
        "event_end_date",
    ],
}
RECORD_COLUMNS: dict[str, list[str]] = {
    "gp.patients": [*RECORD_SCHEMA, *GP_EXTRA],
    "hospital.patients": list(RECORD_SCHEMA),
    "social_care.clients": list(RECORD_SCHEMA),
}
_COLUMNS_WHY = (
    "exactly the de-identified columns pseudonymise writes: any other column may carry an "
    "identifier across the line and must be reviewed before it is allowed"
)


def _columns(columns: list[str]) -> Any:
    return _e(
        "ExpectTableColumnsToMatchSet", CRITICAL, _COLUMNS_WHY, column_set=columns, exact_match=True
    )


# Every token, encoding and coarsened date column past landing, and the one format its
# values may have. They are checked over whole tables by the zone's ``formats`` suite
# (Polars regexes, see ``batches.format_scan``), not row by row in pandas: at a million
# people GX's per-row regexes over 512-character Bloom filters took most of the gates' time.
_TOKEN_WHY = "tokens are keyed HMAC-SHA256 in lowercase hex"
PSEUDONYMISED_FORMATS: dict[str, dict[str, str]] = {
    **{
        qualified: {
            "record_token": TOKEN,
            **{c: TOKEN for c in ENCODING_SCHEMA if c.endswith("_token")},
            "given_name_bloom": BLOOM,
            "family_name_bloom": BLOOM,
            "birth_month": BIRTH_MONTH,
        }
        for qualified in ("gp.patients", "hospital.patients", "social_care.clients")
    },
    "gp.events": {"record_token": TOKEN},
    "hospital.apc_episodes": {"record_token": TOKEN, "spell_token": TOKEN},
    "hospital.ae_attendances": {"record_token": TOKEN, "attendance_token": TOKEN},
    "social_care.events": {"record_token": TOKEN},
}
LINKED_FORMATS: dict[str, dict[str, str]] = {
    "record_person": {"record_token": TOKEN, "person_id": PERSON_ID},
}
FORMAT_WHY = {
    TOKEN: _TOKEN_WHY,
    PERSON_ID: "person ids are 16 hex digits of a keyed hash",
    BLOOM: f"Bloom filters are {BLOOM_BITS} bits written as 0/1",
    BIRTH_MONTH: "year and month only: a day of birth identifies",
}


def _formats_suite(zone: str, formats: dict[str, dict[str, str]]) -> Suite:
    checked = sum(len(columns) for columns in formats.values())
    return Suite(
        f"{zone}.formats",
        zone,
        "Every token, Bloom filter, person id and birth month column of the zone, scanned "
        "over whole tables: how many values are not in the column's format. A value in "
        "another format is not what the pipeline writes and may be an identifier, so only "
        "counts are kept, never values. Formats: "
        + "; ".join(f"{regex} ({why})" for regex, why in FORMAT_WHY.items()),
        [
            _e(
                "ExpectTableRowCountToEqual",
                CRITICAL,
                "one row per format-checked column: a missing row is a column not scanned",
                value=checked,
            ),
            _e(
                "ExpectColumnValuesToBeBetween",
                CRITICAL,
                "values not in the column's format (a missing column counts all its rows)",
                column="nonconforming",
                min_value=0,
                max_value=0,
            ),
        ],
        index_columns=["table", "column", "nonconforming"],
    )


def _unique(columns: list[str], why: str) -> Any:
    if len(columns) == 1:
        return _e("ExpectColumnValuesToBeUnique", CRITICAL, why, column=columns[0])
    return _e("ExpectCompoundColumnsToBeUnique", CRITICAL, why, column_list=columns)


def pseudonymised_suites() -> list[Suite]:
    suites = []
    for qualified, columns in RECORD_COLUMNS.items():
        source = qualified.split(".")[0]
        checks = [
            _columns(columns),
            _rows(),
            _not_null("record_token", "every row belongs to a source record"),
            _unique(["record_token"], "one row per source record: a duplicate is double counting"),
            _in_set("source", [source], CRITICAL, "the table holds one source's records"),
            _not_null("org_code", "every record belongs to an organisation"),
            *[
                _in_set(c, STATUSES, CRITICAL, _STATUS)
                for c in ENCODING_SCHEMA
                if c.endswith("_status")
            ],
            _in_set("sex", SEX_CODES, CRITICAL, _SEX),
            _e(
                "ExpectColumnValuesToBeBetween",
                CRITICAL,
                "IMD deciles run from 1 to 10",
                column="imd_decile",
                min_value=1,
                max_value=10,
            ),
        ]
        suites.append(
            Suite(
                f"pseudonymised.{qualified}",
                "pseudonymised",
                f"De-identified {qualified.replace('.', ' ')} records: one row per source "
                "record, tokens and linkage encodings only.",
                checks,
            )
        )
    keys = {
        "hospital.apc_episodes": (["spell_token", "episode_number"], ["spell_token"]),
        "hospital.ae_attendances": (["attendance_token"], ["attendance_token"]),
    }
    for qualified, columns in EVENT_COLUMNS.items():
        checks = [
            _columns(columns),
            _rows(),
            _not_null("record_token", "every row belongs to a source record"),
        ]
        if qualified in keys:
            key, tokens = keys[qualified]
            checks += [_not_null(t, "every event has its key") for t in tokens]
            checks.append(_unique(key, "the event's key: a duplicate is double counting"))
        suites.append(
            Suite(
                f"pseudonymised.{qualified}",
                "pseudonymised",
                f"De-identified {qualified.replace('.', ' ')}: events joined to people "
                "through record_token.",
                checks,
            )
        )
    suites.append(_formats_suite("pseudonymised", PSEUDONYMISED_FORMATS))
    share = (
        "share of the column's values that look like {}: a column of them means an "
        "identifier crossed into the de-identified zone under another name"
    )
    suites.append(
        Suite(
            "pseudonymised.identifier_scan",
            "pseudonymised",
            "Every text column of every pseudonymised table other than tokens and Bloom "
            "filters (those have format checks): the share of its values shaped like an NHS "
            "number (10 digits, valid check digit), a full postcode, a full date, or a "
            "personal name (capitalised words in a column of many distinct values). Counts "
            "only; the values are never kept.",
            [
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    share.format(kind),
                    column=col,
                    min_value=0,
                    max_value=IDENTIFIER_SHARE_MAX,
                )
                for kind, col in (
                    ("NHS numbers", "nhs_number_share"),
                    ("postcodes", "postcode_share"),
                    ("full dates (a date of birth)", "full_date_share"),
                    ("personal names", "name_share"),
                )
            ],
            index_columns=["table", "column"],
        )
    )
    return suites


# --- linked ----------------------------------------------------------------------------------


def linked_suites() -> list[Suite]:
    return [
        Suite(
            "linked.record_person",
            "linked",
            "linked/record_person.parquet: every surviving source record and its person.",
            [
                _columns(["source", "record_token", "person_id"]),
                _rows(),
                _in_set(
                    "source", ["gp", "hospital", "social_care"], CRITICAL, "person sources only"
                ),
                _not_null("record_token", "every row is a source record"),
                _unique(["source", "record_token"], "each record has exactly one person_id"),
                _not_null("person_id", "each record has exactly one person_id"),
            ],
        ),
        _formats_suite("linked", LINKED_FORMATS),
        Suite(
            "linked.coverage",
            "linked",
            "Per source: records pseudonymised, linked, removed for opt-out (matched to an "
            "opted-out person's encodings), missing and unknown, and the share of linked "
            "records whose person also has a record in another source.",
            [
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "every pseudonymised record is linked or removed for opt-out; a missing "
                    "one drops the person's care from every figure",
                    column="records_missing",
                    min_value=0,
                    max_value=0,
                ),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "record_person names only records that were pseudonymised in this run",
                    column="records_unknown",
                    min_value=0,
                    max_value=0,
                ),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "almost no cross-source links means the sources did not link (tokens "
                    "from different keys, a broken blocking rule)",
                    column="linked_across_sources_share",
                    min_value=CROSS_SOURCE_SHARE_CRITICAL[0],
                    max_value=CROSS_SOURCE_SHARE_CRITICAL[1],
                ),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    WARNING,
                    "fewer cross-source links than usual: review the linkage charts",
                    column="linked_across_sources_share",
                    min_value=CROSS_SOURCE_SHARE_WARNING[0],
                    max_value=CROSS_SOURCE_SHARE_WARNING[1],
                ),
            ],
            index_columns=["source", "records_pseudonymised", "records_linked"],
        ),
        Suite(
            "linked.persons",
            "linked",
            "One row per person: how many records (cluster size) from how many sources.",
            [
                _rows(),
                _e(
                    "ExpectColumnMaxToBeBetween",
                    CRITICAL,
                    "a cluster this large is different people joined by over-linking",
                    column="records",
                    min_value=1,
                    max_value=CLUSTER_SIZE_CRITICAL,
                ),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    WARNING,
                    "more than a handful of records for one person is rare; review the "
                    "largest clusters in the linkage charts",
                    column="records",
                    min_value=1,
                    max_value=CLUSTER_SIZE_WARNING,
                    mostly=0.999,
                ),
                _e(
                    "ExpectColumnMeanToBeBetween",
                    WARNING,
                    "records per person: near 1, linkage found little; far above, it over-linked",
                    column="records",
                    min_value=1.0,
                    max_value=3.0,
                ),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "a person has records from one to three sources",
                    column="sources",
                    min_value=1,
                    max_value=3,
                ),
            ],
        ),
    ]


# --- marts -----------------------------------------------------------------------------------


def commissioner_marts(folder: Path = COMMISSIONER_MARTS_DIR) -> dict[str, dict[str, list[str]]]:
    """Count, rate and dependent-statistic columns of each commissioner mart, from dbt's YAML.

    Counts are the columns dbt tests with ``disclosure_safe``; rates end in ``_pct``;
    dependent statistics are the medians.
    """
    marts: dict[str, dict[str, list[str]]] = {}
    for path in sorted(folder.glob("mart_*.yml")):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            columns = model.get("columns", [])

            def tested(column: dict, test: str) -> bool:
                return any(
                    (t == test) or (isinstance(t, dict) and test in t)
                    for t in column.get("data_tests", [])
                )

            marts[model["name"]] = {
                "counts": [c["name"] for c in columns if tested(c, "disclosure_safe")],
                "rates": [c["name"] for c in columns if c["name"].endswith("_pct")],
                "statistics": [c["name"] for c in columns if c["name"].startswith("median_")],
                "dimensions": [
                    c["name"]
                    for c in columns
                    if c["name"] in MART_DIMENSIONS or c["name"].endswith("_event_type")
                ],
            }
    return marts


def _mart_suite(name: str, spec: dict[str, list[str]]) -> Suite:
    from great_expectations.expectations.row_conditions import Column as GxColumn

    checks = [
        _rows(why="an empty mart is a broken build, not a quiet month"),
        _not_null("breakdown", "every row says which breakdown it belongs to"),
        _in_set("breakdown", MART_BREAKDOWNS, CRITICAL, "the commissioner breakdowns"),
        _unique(spec["dimensions"], "one row per cell: a duplicate doubles a figure"),
    ]
    for count in spec["counts"]:
        flag = f"{count}_suppressed"
        checks += [
            _e(
                "ExpectColumnValuesToNotBeInSet",
                CRITICAL,
                "disclosure control: no published count from 1 to the suppression threshold "
                "minus one (7 by default)",
                column=count,
                value_set=SMALL_COUNTS,
            ),
            _e(
                "ExpectColumnValuesToBeBetween",
                CRITICAL,
                "counts are never negative",
                column=count,
                min_value=0,
            ),
            _not_null(flag, "every count says whether it was withheld"),
            _e(
                "ExpectColumnValuesToBeNull",
                CRITICAL,
                "a withheld count must not be published",
                column=count,
                row_condition=GxColumn(flag) == True,  # noqa: E712 (a GX condition, not a test)
            ),
            _e(
                "ExpectColumnValuesToNotBeNull",
                WARNING,
                "a count that was not withheld is shown (0 is shown as 0)",
                column=count,
                row_condition=GxColumn(flag) == False,  # noqa: E712
            ),
        ]
    for rate in spec["rates"]:
        checks.append(
            _e(
                "ExpectColumnValuesToBeBetween",
                CRITICAL,
                "rates are percentages: from 0 to 100",
                column=rate,
                min_value=0,
                max_value=100,
            )
        )
    for statistic in spec["statistics"]:
        checks.append(
            _e(
                "ExpectColumnValuesToBeBetween",
                WARNING,
                "days between events are never negative",
                column=statistic,
                min_value=0,
            )
        )
    return Suite(
        f"marts.{name}",
        "marts",
        f"{name} in DATA/warehouse.duckdb (schema marts), checked before it is published to "
        "analytics.duckdb.",
        checks,
        index_columns=spec["dimensions"],
    )


def marts_suites() -> list[Suite]:
    suites = [_mart_suite(name, spec) for name, spec in commissioner_marts().items()]
    suites += [
        Suite(
            "marts.readmission_intervals",
            "marts",
            "Each 30-day emergency readmission in fct_hospital_spells: the index stay's "
            "discharge and the readmission's admission.",
            [
                _after(
                    "readmission_date",
                    "discharge_date",
                    CRITICAL,
                    "a readmission follows the discharge it is counted against",
                ),
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "the NHS readmission window: day 0 to day 30 after discharge",
                    column="days_to_emergency_readmission",
                    min_value=0,
                    max_value=30,
                ),
            ],
        ),
        Suite(
            "marts.reconciliation",
            "marts",
            "Totals that must agree: the ledger's loaded rows (less records removed by "
            "linkage for opt-out) against the warehouse's facts, and the published readmission "
            "total against its facts (within rounding, or within suppression when withheld).",
            [
                _e(
                    "ExpectColumnValuesToBeBetween",
                    CRITICAL,
                    "rows were lost or double counted between the ledger and the marts",
                    column="excess",
                    min_value=0,
                    max_value=0,
                ),
            ],
            index_columns=["check", "expected", "observed", "tolerance"],
        ),
    ]
    return suites


def all_suites() -> list[Suite]:
    return [*landing_suites(), *pseudonymised_suites(), *linked_suites(), *marts_suites()]


# --- writing the GX project ------------------------------------------------------------------


def result_format(suite: Suite) -> dict[str, Any]:
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 10}
    if suite.index_columns:
        fmt["unexpected_index_column_names"] = suite.index_columns
    return fmt


def write_project(root: Path | None = None) -> Path:
    """(Re)write every suite, asset, validation definition and checkpoint under ``root``.

    Only ``great_expectations.yml``'s settings survive; everything this module defines is
    written anew, so the files always say exactly what :func:`all_suites` says.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import Checkpoint

    root = Path(root or expectations_dir()).resolve()
    backend_id = root / "expectations" / ".ge_store_backend_id"
    kept_backend_id = backend_id.read_bytes() if backend_id.exists() else None
    for sub in ("expectations", "validation_definitions", "checkpoints"):
        shutil.rmtree(root / sub, ignore_errors=True)
    config_path = root / "great_expectations.yml"
    config = yaml.safe_load(config_path.read_text())
    config["fluent_datasources"] = {DATASOURCE: {"type": "pandas"}}
    config_path.write_text(_HEADER + yaml.safe_dump(config, sort_keys=False))

    scratch = root / ".write-project-data"
    try:
        with open_context(scratch, root) as context:
            source = context.data_sources.get(DATASOURCE)
            for spec in all_suites():
                batch = source.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe(
                    BATCH_DEFINITION
                )
                suite = context.suites.add(
                    gx.ExpectationSuite(
                        spec.name,
                        expectations=spec.expectations,
                        meta={"zone": spec.zone, "description": spec.description},
                    )
                )
                definition = context.validation_definitions.add(
                    gx.ValidationDefinition(name=spec.name, data=batch, suite=suite)
                )
                context.checkpoints.add(
                    Checkpoint(
                        name=spec.name,
                        validation_definitions=[definition],
                        actions=[],
                        result_format=result_format(spec),
                    )
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # GX re-serialises the config when assets are added; keep the explanatory header.
    text = config_path.read_text()
    if not text.startswith(_HEADER):
        config_path.write_text(_HEADER + text)
    if kept_backend_id is not None:
        backend_id.write_bytes(kept_backend_id)
    _stable_ids(root)
    log.info("wrote %d suites to %s", len(all_suites()), root)
    return root


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ID_NAMESPACE = uuid.UUID("6f1c2a9e-4a44-4c1e-9d3b-6a0f4f0c7e21")


def _stable_ids(root: Path) -> None:
    """Replace GX's random ids with ones derived from where each id is used.

    GX gives every suite, expectation, asset and definition a new uuid4 when it is
    written, so rewriting the project would change every file. An id's places of use
    (file and position) identify it, so its new id is a uuid5 of them: rewriting an
    unchanged project changes nothing, and a changed suite changes only its own files.
    """
    files = sorted(p for p in root.rglob("*") if p.suffix in (".json", ".yml") and p.is_file())
    places: dict[str, list[str]] = {}

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
        elif isinstance(value, str) and _UUID.fullmatch(value):
            places.setdefault(value, []).append(where)

    texts = {p: p.read_text() for p in files}
    for path, text in texts.items():
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        walk(data, path.relative_to(root).as_posix())
    new = {old: str(uuid.uuid5(_ID_NAMESPACE, "|".join(sorted(w)))) for old, w in places.items()}
    for path, text in texts.items():
        path.write_text(_UUID.sub(lambda m: new.get(m.group(0), m.group(0)), text))


_HEADER = """\
# joinedup's Great Expectations project (GX 1.x). Suites, validation definitions and
# checkpoints live beside this file; `uv run python -m joinedup.quality.suites` rewrites them
# from src/joinedup/quality/suites.py. Runs never write here: validation results and Data
# Docs go to ${JOINEDUP_QUALITY_DIR} (DATA/quality/), set by joinedup.quality for each call.
"""


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(write_project())
