"""The marts gate: the warehouse's commissioner marts, checked before they are published.

What it checks, and why:

* every commissioner mart (``marts.<mart>``, one suite each, columns from
  :func:`commissioner_marts`): disclosure control - no count from 1 to the suppression
  threshold minus one, a withheld count is not shown - one row per cell, rates from 0
  to 100, the commissioner breakdowns only;
* ``marts.readmission_intervals``: each 30-day readmission follows its discharge, within
  the window;
* ``marts.reconciliation``: the ledger's loaded rows (less records linkage removed for
  opt-out) against the warehouse's facts, and the published readmission total against
  its facts, so no rows were lost or double counted on the way.

Its batches are read from ``DATA/warehouse.duckdb`` (read-only) before it is published, so
a failure leaves the previous ``analytics.duckdb`` as it was. When the gate runs is the
DAG's to say (``dags/joinedup_link_and_build.py``, task ``quality_gates_marts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from joinedup.catalogue import (
    LANDED_PSEUDONYMISED,
    PUBLISHED,
    WAREHOUSE,
    pseudonymised_path,
)
from joinedup.ingest.ledger import read_ledger
from joinedup.quality.batches import BatchError, Batches, GateBatches, require
from joinedup.quality.linked import record_person
from joinedup.quality.rules import (
    CRITICAL,
    SMALL_COUNTS,
    WARNING,
    Suite,
    after,
    between,
    expect,
    in_set,
    not_empty,
    not_null,
    unique,
)
from joinedup.warehouse.marts import FLAG, MartSpec, project_marts

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
    # The indicators' place over the whole extract and segments, alone and by place
    # (macros/commissioner_breakdowns.sql).
    "la_code",
    "core20plus5",
    "la_code+core20plus5",
    "frailty_risk",
    "la_code+frailty_risk",
    "long_term_conditions",
    "la_code+long_term_conditions",
]


# --- suites -------------------------------------------------------------------------------------


def commissioner_marts() -> dict[str, MartSpec]:
    """The commissioner marts as the dbt project describes them (its columns' ``meta``).

    The one place the marts gate reads mart metadata, the same description the dashboard
    and disclosure control read (joinedup.warehouse.marts): its suites and batches follow
    what this returns.
    """
    return project_marts()


def _mart_suite(name: str, spec: MartSpec) -> Suite:
    from great_expectations.expectations.row_conditions import Column as GxColumn

    checks = [
        not_empty(why="an empty mart is a broken build, not a quiet month"),
        not_null("breakdown", "every row says which breakdown it belongs to"),
        in_set("breakdown", MART_BREAKDOWNS, CRITICAL, "the commissioner breakdowns"),
        unique(list(spec.identity), "one row per cell: a duplicate doubles a figure"),
    ]
    for count in spec.counts:
        flag = f"{count}{FLAG}"
        checks += [
            expect(
                "ExpectColumnValuesToNotBeInSet",
                CRITICAL,
                "disclosure control: no published count from 1 to the suppression threshold "
                "minus one (7 by default)",
                column=count,
                value_set=SMALL_COUNTS,
            ),
            between(count, 0, None, CRITICAL, "counts are never negative"),
            not_null(flag, "every count says whether it was withheld"),
            expect(
                "ExpectColumnValuesToBeNull",
                CRITICAL,
                "a withheld count must not be published",
                column=count,
                row_condition=GxColumn(flag) == True,  # noqa: E712 (a GX condition, not a test)
            ),
            expect(
                "ExpectColumnValuesToNotBeNull",
                WARNING,
                "a count that was not withheld is shown (0 is shown as 0)",
                column=count,
                row_condition=GxColumn(flag) == False,  # noqa: E712
            ),
        ]
    for rate in spec.rates:
        if spec.rate_per(rate) == 100:
            checks.append(between(rate, 0, 100, CRITICAL, "rates are percentages: from 0 to 100"))
        else:
            # Per 100,000 people: a person can be admitted more than once, so no upper bound.
            checks.append(between(rate, 0, None, CRITICAL, "rates are never negative"))
    for statistic in spec.statistics:
        checks.append(
            between(statistic, 0, None, WARNING, "days between events are never negative")
        )
    return Suite(
        f"marts.{name}",
        "marts",
        f"{name} in DATA/{WAREHOUSE.path} (schema marts), checked before it is published to "
        f"{PUBLISHED.path}.",
        checks,
        index_columns=list(spec.identity),
    )


def suites() -> list[Suite]:
    return [
        *[_mart_suite(name, spec) for name, spec in commissioner_marts().items()],
        Suite(
            "marts.readmission_intervals",
            "marts",
            "Each 30-day emergency readmission in fct_hospital_spells: the index stay's "
            "discharge and the readmission's admission.",
            [
                after(
                    "readmission_date",
                    "discharge_date",
                    CRITICAL,
                    "a readmission follows the discharge it is counted against",
                ),
                between(
                    "days_to_emergency_readmission",
                    0,
                    30,
                    CRITICAL,
                    "the NHS readmission window: day 0 to day 30 after discharge",
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
                between(
                    "excess",
                    0,
                    0,
                    CRITICAL,
                    "rows were lost or double counted between the ledger and the marts",
                ),
            ],
            index_columns=["check", "expected", "observed", "tolerance"],
        ),
    ]


# --- batches ------------------------------------------------------------------------------------


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql).to_arrow_table())


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    return con.execute(sql, params or []).fetchone()[0]


def reconciliation(data_dir: Path, run_id: str, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Totals that must agree between the ledger, the warehouse's facts and a published mart."""
    ledger = read_ledger(data_dir).filter(pl.col("run_id") == run_id)
    if ledger.is_empty():
        raise BatchError(
            f"the ledger has no rows for run {run_id!r}: run the marts gate with the run id "
            "the warehouse was built from."
        )
    loaded = dict(
        ledger.group_by(pl.concat_str("source", pl.lit("/"), "table"))
        .agg(pl.col("rows_loaded").sum())
        .iter_rows()
    )
    linked = record_person(data_dir)

    def unlinked_rows(qualified: str) -> int:
        """Rows of a pseudonymised table whose record linkage removed for opt-out."""
        source, name = LANDED_PSEUDONYMISED[qualified]
        path = require(pseudonymised_path(data_dir, source, name), "pseudonymise")
        rows = pl.read_parquet(path, columns=["record_token"])
        mine = linked.filter(pl.col("source") == source).select("record_token")
        return rows.join(mine, on="record_token", how="anti").height

    checks: list[tuple[str, int | None, int | None, int]] = []

    def from_ledger(qualified: str, what: str, sql: str) -> None:
        expected = loaded.get(qualified, 0) - unlinked_rows(qualified)
        checks.append((f"ledger {qualified} -> {what}", expected, _scalar(con, sql), 0))

    facts = "marts.fct_care_events where event_type"
    from_ledger(
        "hospital/apc_episodes",
        "episodes in fct_hospital_spells",
        "select coalesce(sum(episode_count), 0) from marts.fct_hospital_spells",
    )
    from_ledger(
        "hospital/ae_attendances",
        "ae_attendance events in fct_care_events",
        f"select count(*) from {facts} = 'ae_attendance'",
    )
    from_ledger(
        "social_care/events",
        "social care events in fct_care_events",
        f"select count(*) from {facts} like 'social_care_%'",
    )
    from_ledger(
        "gp/patients",
        "GP records in dim_person",
        "select coalesce(sum(gp_record_count), 0) from marts.dim_person",
    )
    from_ledger(
        "social_care/clients",
        "social care records in dim_person",
        "select coalesce(sum(social_care_record_count), 0) from marts.dim_person",
    )

    true_total = _scalar(
        con,
        "select count(*) from marts.fct_hospital_spells s,"
        " intermediate.int_extract_window_derived w where s.is_readmission_index"
        " and s.has_full_follow_up and s.discharge_date >= w.extract_start_date",
    )
    aggregated = _scalar(
        con,
        "select coalesce(sum(index_discharges), 0) from intermediate.int_readmissions_aggregated"
        " where breakdown = 'total'",
    )
    checks.append(
        (
            "fct_hospital_spells index stays -> int_readmissions_aggregated total index_discharges",
            true_total,
            aggregated,
            0,
        )
    )
    published, suppressed, secondary = con.execute(
        "select index_discharges, index_discharges_suppressed, secondary_suppression "
        "from marts.mart_readmissions where breakdown = 'total'"
    ).fetchone() or (None, None, None)
    # Rounded to the nearest 5: off by at most 2. Withheld by the primary rule: the true
    # count is 1 to 7. Withheld by secondary suppression (its flag is set on every row of a
    # mart it touched), it may be any count, so only the unsuppressed aggregate above can be
    # reconciled: the published total is not compared.
    if not (suppressed and secondary):
        checks.append(
            (
                "fct_hospital_spells index stays -> mart_readmissions total index_discharges",
                true_total,
                0 if suppressed else published,
                7 if suppressed else 2,
            )
        )
    frame = pl.DataFrame(
        checks,
        schema={
            "check": pl.String,
            "expected": pl.Int64,
            "observed": pl.Int64,
            "tolerance": pl.Int64,
        },
        orient="row",
    )
    difference = (pl.col("observed") - pl.col("expected")).abs()
    return frame.with_columns(
        excess=pl.when(pl.col("observed").is_null() | pl.col("expected").is_null())
        .then(pl.lit(10**9))
        .otherwise(pl.max_horizontal(difference - pl.col("tolerance"), pl.lit(0)))
    )


def readmission_intervals(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return _query(
        con,
        "select i.discharge_date, r.admission_date as readmission_date, "
        "i.days_to_emergency_readmission "
        "from marts.fct_hospital_spells i "
        "join marts.fct_hospital_spells r on r.spell_key = i.readmission_stay_key "
        "where i.readmitted_within_30_days",
    )


def batches(data_dir: Path, run_id: str) -> GateBatches:
    """Batches read from the warehouse (read-only); the gate closes it when done."""
    path = require(WAREHOUSE.under(data_dir), "build_warehouse")
    con = duckdb.connect(str(path), read_only=True)
    found: Batches = {
        f"marts.{name}": (lambda name=name: _query(con, f'select * from marts."{name}"'))
        for name in commissioner_marts()
    }
    found["marts.readmission_intervals"] = lambda: readmission_intervals(con)
    found["marts.reconciliation"] = lambda: reconciliation(data_dir, run_id, con)
    return GateBatches(found, close=con.close)
