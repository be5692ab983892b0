"""Source-record grain: one row of demographics per patient per organisation.

Linkage compares *source records* (docs/contracts.md), so its encodings live at
that grain. GP patients and social care clients already are one row per
record. A hospital record (provider_code + hospital_patient_id) is spread over
its episodes and attendances, each repeating the demographics as they were
captured that day; :func:`hospital_records` collapses them.
"""

from __future__ import annotations

import polars as pl

from joinedup.contracts import (
    AE_ATTENDANCES,
    APC_EPISODES,
    GP_PATIENTS,
    SOCIAL_CARE_CLIENTS,
    Table,
)
from joinedup.ingest.read import FILE, LINE
from joinedup.ingest.validate import BLANK, INVALID, VALID, status_column

# Columns of a record-demographics frame (identifiable; never leaves landing/).
FLAGGED = ("nhs_number", "date_of_birth", "sex", "postcode")
DEMOGRAPHICS: dict[str, pl.DataType] = {
    "source": pl.String(),
    "org_code": pl.String(),
    "local_id": pl.String(),
    "nhs_number": pl.String(),
    "nhs_number_status": pl.String(),
    "given_name": pl.String(),
    "family_name": pl.String(),
    "date_of_birth": pl.Date(),
    "date_of_birth_status": pl.String(),
    "sex": pl.String(),
    "sex_status": pl.String(),
    "postcode": pl.String(),
    "postcode_status": pl.String(),
}
FIELDS = ("nhs_number", "given_name", "family_name", "date_of_birth", "sex", "postcode")


def record_columns(table: Table) -> list[pl.Expr]:
    """``source``, ``org_code``, ``local_id`` of the record each row of ``table`` belongs to."""
    assert table.record is not None, f"{table.qualified_name} has no source record"
    org, local = table.record
    return [
        pl.lit(table.source).alias("source"),
        pl.col(org).alias("org_code"),
        pl.col(local).alias("local_id"),
    ]


def _demographic_columns(table: Table) -> list[pl.Expr]:
    cols = record_columns(table)
    for field in FIELDS:
        cols.append(pl.col(field))
        if field in FLAGGED:
            cols.append(pl.col(status_column(field)))
    return cols


def one_row_records(table: Table, rows: pl.DataFrame) -> pl.DataFrame:
    """GP patients / social care clients: already one row per record (the key is the record)."""
    return rows.select(_demographic_columns(table)).select(list(DEMOGRAPHICS)).cast(DEMOGRAPHICS)


def hospital_records(apc: pl.DataFrame, ae: pl.DataFrame) -> pl.DataFrame:
    """One row per hospital record: per field, the most recent valid value across its rows.

    Why the most recent: a person's latest contact carries their current
    address and any correction the provider has since made (a wrong date of
    birth fixed, a new surname), which is what other sources are most likely to
    hold too. Why per field rather than the latest row whole: a valid NHS number
    captured at an earlier attendance should not be lost because the latest row
    left it blank. Recency is the activity date (admission date, arrival time),
    then the later delivery file and line. A field with no valid value is
    ``invalid`` when any row had a defective one, else ``blank``.
    """
    activity = {
        APC_EPISODES.name: (APC_EPISODES, apc, pl.col("admission_date").cast(pl.Datetime("us"))),
        AE_ATTENDANCES.name: (AE_ATTENDANCES, ae, pl.col("arrival_datetime")),
    }
    stacked = pl.concat(
        [
            rows.select(
                *_demographic_columns(table),
                when.alias("__at__"),
                pl.col(FILE).alias("__file__"),
                pl.col(LINE).alias("__line__"),
            )
            for table, rows, when in activity.values()
        ]
    )
    latest_first = stacked.sort(
        ["__at__", "__file__", "__line__"], descending=True, nulls_last=True
    )
    aggs: list[pl.Expr] = []
    for field in FIELDS:
        aggs.append(pl.col(field).drop_nulls().first().alias(field))
        if field in FLAGGED:
            status = status_column(field)
            aggs.append((pl.col(status) == INVALID).any().alias(f"__any_invalid_{field}"))
    grouped = latest_first.group_by(["source", "org_code", "local_id"], maintain_order=True)
    grouped = grouped.agg(aggs)
    statuses = [
        pl.when(pl.col(f).is_not_null())
        .then(pl.lit(VALID))
        .when(pl.col(f"__any_invalid_{f}"))
        .then(pl.lit(INVALID))
        .otherwise(pl.lit(BLANK))
        .alias(status_column(f))
        for f in FLAGGED
    ]
    return grouped.with_columns(statuses).select(list(DEMOGRAPHICS)).cast(DEMOGRAPHICS)


def source_records(source: str, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Record-grain demographics of one person source from its (validated) tables by name."""
    if source == "gp":
        return one_row_records(GP_PATIENTS, tables[GP_PATIENTS.name])
    if source == "social_care":
        return one_row_records(SOCIAL_CARE_CLIENTS, tables[SOCIAL_CARE_CLIENTS.name])
    if source == "hospital":
        return hospital_records(tables[APC_EPISODES.name], tables[AE_ATTENDANCES.name])
    raise ValueError(f"{source!r} is not a person source")
