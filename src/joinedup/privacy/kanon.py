"""Equivalence classes of people in the person-level marts: k-anonymity, measured in DuckDB.

A quasi-identifier is a published value someone could already know about a person
from outside: their month-year of birth, sex, where they live, their GP practice, the
day they were admitted to hospital. An equivalence class is the set of people who share
one combination of them; k is its size. A person in a class of 1 is unique: anyone who
knows those few facts finds their ``person_id`` and, through it, every row about them.

Each :class:`Scenario` is one thing an attacker might know: the demographics alone, or
the demographics and one dated event. For an event scenario a person's k is the
smallest k over their events (knowing any one of them is enough). Classes are counted
over the published marts only, so k here is k *within the published population*: for
a whole-population extract that is close to the population itself, but a person unique
in a sample may have look-alikes outside it.

Every figure is a count. No ``person_id`` is ever read out of the database; example
classes show only quasi-identifier values that are already published, with their size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from joinedup.sql import quote

PERSON_TABLE = "dim_person"

# Published columns that describe a person and that someone may know from outside.
# Derived columns (age from birth month, quintile from decile) are listed too: an
# attacker can use every published column, so grouping by them all is the cautious
# measure, and when coarsening withholds the finer column the coarser one still counts.
QUASI_IDENTIFIERS: tuple[str, ...] = (
    "birth_month",
    "age",
    "age_band",
    "sex_code",
    "sex",
    "lsoa_code",
    "imd_decile",
    "imd_quintile",
    "la_code",
    "practice_code",
)

# Class-size buckets of the k distribution, as (label, smallest k, largest k).
K_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-4", 3, 4),
    ("5-9", 5, 9),
    ("10-19", 10, 19),
    ("20-49", 20, 49),
    ("50+", 50, None),
)

EXAMPLES = 3


class RiskInputError(ValueError):
    """The database does not hold the marts the report measures; the message says what to do."""


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    # The person-level mart whose rows carry the extra facts (None: dim_person alone).
    table: str | None
    # Columns of that mart (or of dim_person) added to the demographics.
    columns: tuple[str, ...]
    knows: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "demographics",
        "demographics",
        None,
        (),
        "month-year of birth (or age), sex, LSOA, IMD, local authority and GP practice: "
        "what a neighbour, colleague or relative knows",
    ),
    Scenario(
        "demographics_death",
        "demographics + month of death",
        None,
        ("death_month",),
        "the demographics and the month someone died (from a death notice; the marts "
        "publish the month, not the date)",
    ),
    Scenario(
        "demographics_admission",
        "demographics + hospital admission date",
        "fct_hospital_spells",
        ("admission_date",),
        "the demographics and the day someone was admitted to hospital",
    ),
    Scenario(
        "demographics_care_event",
        "demographics + any one dated care event",
        "fct_care_events",
        ("event_type", "event_start_date"),
        "the demographics and one dated contact (a GP consultation, an A&E attendance, "
        "an admission, a social care assessment ...)",
    ),
)


def table_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Table -> column names of the database's main schema."""
    rows = con.execute(
        """
        select table_name, column_name
        from duckdb_columns()
        where schema_name = 'main' and database_name = current_database()
        order by table_name, column_index
        """
    ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def quasi_identifiers(columns: Iterable[str], withheld: Iterable[str] = ()) -> list[str]:
    """The quasi-identifying columns a table publishes, less those a coarsening withholds."""
    present = set(columns) - set(withheld)
    return [c for c in QUASI_IDENTIFIERS if c in present]


def _bucket_sql(column: str) -> str:
    cases = " ".join(
        f"when {column} >= {lo}"
        + (f" and {column} <= {hi}" if hi is not None else "")
        + f" then '{label}'"
        for label, lo, hi in K_BUCKETS
    )
    return f"case {cases} end"


def _classes_sql(scenario: Scenario, qis: Sequence[str]) -> tuple[str, list[str]]:
    """SQL of one row per (person, combination) with its class size k and record count."""
    extra = list(scenario.columns)
    if scenario.table is None:
        selected = "".join(f"{quote(c)}, " for c in [*qis, *extra])
        rows = f"select person_id, {selected}1 as records from {PERSON_TABLE}"
    else:
        person_cols = ", ".join(f"p.{quote(c)}" for c in qis)
        event_cols = ", ".join(quote(c) for c in extra)
        rows = f"""
            select p.person_id{", " + person_cols if person_cols else ""},
                   e.* exclude (person_id)
            from (
                select person_id, {event_cols}, count(*) as records
                from {quote(scenario.table)}
                group by all
            ) as e
            inner join {PERSON_TABLE} as p
                on e.person_id = p.person_id
        """
    group = [*qis, *extra]
    partition = ", ".join(map(quote, group)) if group else "1"
    sql = f"""
        select *, count(*) over (partition by {partition}) as k
        from ({rows}) as person_rows
    """
    return sql, group


def measure(
    con: duckdb.DuckDBPyConnection,
    scenario: Scenario,
    *,
    min_k: int,
    withheld: Mapping[str, Sequence[str]] | None = None,
    drivers: bool = False,
    examples: int = EXAMPLES,
) -> dict[str, Any]:
    """The k figures of one scenario on the marts ``con`` holds (its main schema).

    ``withheld`` (mart -> columns) leaves columns out as a coarsening would, to measure
    an option before it is switched on. ``drivers`` adds, per quasi-identifier, the
    share of unique people were that column alone not published.
    """
    withheld = withheld or {}
    tables = table_columns(con)
    if PERSON_TABLE not in tables:
        raise RiskInputError(
            f"no {PERSON_TABLE} table in the database: the report measures the published "
            "person-level marts (analytics.duckdb); run the pipeline (`joinedup run`) first."
        )
    needed = scenario.table or PERSON_TABLE
    if needed not in tables:
        return {
            "key": scenario.key,
            "title": scenario.title,
            "measured": False,
            "reason": f"{needed} is not published",
        }
    missing = [c for c in ("person_id", *scenario.columns) if c not in tables[needed]]
    if missing:
        return {
            "key": scenario.key,
            "title": scenario.title,
            "measured": False,
            "reason": f"{needed} has no column {', '.join(missing)}",
        }
    qis = quasi_identifiers(tables[PERSON_TABLE], withheld.get(PERSON_TABLE, ()))
    sql, group = _classes_sql(scenario, qis)
    con.execute(f"create or replace temp table _k_rows as {sql}")
    try:
        result = _figures(con, min_k, group)
        result.update(
            key=scenario.key,
            title=scenario.title,
            knows=scenario.knows,
            measured=True,
            quasi_identifiers=group,
        )
        result["examples"] = _examples(con, group, min_k, examples)
        if drivers:
            result["drivers"] = {
                column: _unique_share_without(con, scenario, qis, column) for column in qis
            }
    finally:
        con.execute("drop table if exists _k_rows")
    return result


def _figures(con: duckdb.DuckDBPyConnection, min_k: int, group: Sequence[str]) -> dict[str, Any]:
    # Classes are counted by grouping, not ranked: a rank orders millions of rows.
    partition = ", ".join(map(quote, group)) if group else "1"
    (persons, classes, records, min_seen, median_k, unique, below, records_below) = con.execute(
        f"""
        with persons as (
            select person_id, min(k) as k from _k_rows group by person_id
        )
        select
            (select count(*) from persons),
            (select count(*) from (select 1 from _k_rows group by {partition})),
            (select coalesce(sum(records), 0) from _k_rows),
            (select min(k) from persons),
            (select median(k) from persons),
            (select count(*) from persons where k = 1),
            (select count(*) from persons where k < {int(min_k)}),
            (select coalesce(sum(records), 0) from _k_rows where k < {int(min_k)})
        """
    ).fetchone()
    buckets = dict(
        con.execute(
            f"""
            select {_bucket_sql("k")} as bucket, count(*)
            from (select person_id, min(k) as k from _k_rows group by person_id)
            group by bucket
            """
        ).fetchall()
    )
    return {
        "persons": persons,
        "classes": classes,
        "records": int(records),
        "min_k": min_seen,
        "median_k": float(median_k) if median_k is not None else None,
        "unique_persons": unique,
        "unique_share": round(unique / persons, 4) if persons else 0.0,
        "persons_below_min_k": below,
        "persons_below_min_k_share": round(below / persons, 4) if persons else 0.0,
        "records_below_min_k": int(records_below),
        "k_distribution": [
            {"k": label, "persons": buckets.get(label, 0)} for label, _lo, _hi in K_BUCKETS
        ],
    }


def _examples(
    con: duckdb.DuckDBPyConnection, group: Sequence[str], min_k: int, limit: int
) -> list[dict[str, Any]]:
    """A few combinations with k below the threshold: published values and k, never a person."""
    if not group or limit <= 0:
        return []
    cols = ", ".join(quote(c) for c in group)
    rows = con.execute(
        f"""
        select {cols}, min(k) as k
        from _k_rows
        where k < {int(min_k)}
        group by all
        order by k, {cols}
        limit {int(limit)}
        """
    ).fetchall()
    return [
        {
            "values": {
                c: (None if v is None else str(v)) for c, v in zip(group, row, strict=False)
            },
            "k": row[-1],
        }
        for row in rows
    ]


def _unique_share_without(
    con: duckdb.DuckDBPyConnection, scenario: Scenario, qis: Sequence[str], column: str
) -> float:
    sql, _group = _classes_sql(scenario, [c for c in qis if c != column])
    persons, unique = con.execute(
        f"""
        with persons as (select person_id, min(k) as k from ({sql}) group by person_id)
        select count(*), count(*) filter (where k = 1) from persons
        """
    ).fetchone()
    return round(unique / persons, 4) if persons else 0.0


def measure_all(
    con: duckdb.DuckDBPyConnection,
    *,
    min_k: int,
    withheld: Mapping[str, Sequence[str]] | None = None,
    scenarios: Sequence[Scenario] = SCENARIOS,
    drivers: bool = True,
) -> list[dict[str, Any]]:
    return [
        measure(con, s, min_k=min_k, withheld=withheld, drivers=drivers and s.key == "demographics")
        for s in scenarios
    ]
