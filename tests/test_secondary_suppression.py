"""Secondary suppression on planted and random marts (real DuckDB, the real auditor).

A planted mart pins the mechanism: one withheld cell that is the whole minus its
published siblings must stop being recoverable, by withholding a sibling. A seeded
random population, aggregated and suppressed as the dbt marts are, checks it at scale
against the true counts: nothing recoverable afterwards, and every cell withheld by
secondary suppression really was a count of at least the threshold. The real dbt build
is checked in tests/test_dbt.py.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from random_population import true_counts

from joinedup.privacy import differencing
from joinedup.privacy.secondary_suppression import (
    SecondarySuppressionError,
    apply_secondary_suppression,
    suppress_mart,
)

JAN = date(2025, 1, 1)
SEEDS = [1, 3]
PEOPLE = 600
# Unrounded: with rounding to 5 and one count, a random mart rarely pins a cell exactly.
BASE = 1
RELATED = {"mart_planted": {"events": ("events_rate_pct",)}}


def _plant(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    con.execute(
        "create table mart_planted (breakdown varchar, activity_month date, sex varchar, "
        "events bigint, events_suppressed boolean, events_rate_pct double, "
        "secondary_suppression boolean)"
    )
    for breakdown, month, sex, events in rows:
        rate = None if events is None else 50.0
        con.execute(
            "insert into mart_planted values (?, ?, ?, ?, ?, ?, false)",
            [breakdown, month, sex, events, events is None, rate],
        )


# Unrounded (base 1): the withheld women are 33 - 20 - 10 = 3, exactly.
PLANTED = [
    ("total", None, None, 33),
    ("month", JAN, None, 33),
    ("month+sex", JAN, "Male", 20),
    ("month+sex", JAN, "Indeterminate", 10),
    ("month+sex", JAN, "Female", None),
]


def _audit(con: duckdb.DuckDBPyConnection, base: int) -> dict:
    (mart,) = differencing.aggregate_marts(con)
    result = differencing.check_mart(con, mart, threshold=8, rounding_base=base)
    result["rule"] = differencing.check_rule(con, mart, threshold=8, rounding_base=base)
    return result


def test_a_recoverable_cell_gets_a_sibling_withheld(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "planted.duckdb")) as con:
        _plant(con, PLANTED)
        before = _audit(con, 1)
        summary = apply_secondary_suppression(
            con, threshold=8, rounding_base=1, schema="main", related=RELATED
        )
        after = _audit(con, 1)
        rows = con.execute(
            "select sex, events, events_suppressed, events_rate_pct from mart_planted "
            "where breakdown = 'month+sex' order by sex"
        ).fetchall()
        flags = con.execute("select distinct secondary_suppression from mart_planted").fetchall()
    assert before["exactly_recovered_cells"] == 1 and before["suppressed_cells"] == 1
    (mart,) = summary["marts"]
    assert mart["recoverable_before"] == 1 and mart["secondary_cells"] == 1
    assert mart["rounds"] == 1
    # Women + Indeterminate = 13, each at least 1: either may be anything from 1 to 12.
    assert after["recoverable_cells"] == 0 and after["exactly_recovered_cells"] == 0
    assert after["suppressed_cells"] == 2 and after["inconsistent_cells"] == 0
    assert after["secondary_suppression"] is True and flags == [(True,)]
    # The smallest published sibling goes, with its rate, in the primary rule's own form.
    assert rows == [
        ("Female", None, True, None),
        ("Indeterminate", None, True, None),
        ("Male", 20, False, 50.0),
    ]
    assert sum(after["rule"].values()) == 0


def test_a_rate_not_tied_to_a_count_is_refused(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "planted.duckdb")) as con:
        _plant(con, PLANTED)
        with pytest.raises(SecondarySuppressionError, match=r"events_rate_pct.*RELATED"):
            apply_secondary_suppression(con, threshold=8, rounding_base=1, schema="main")


def test_no_convergence_within_the_rounds_is_an_error(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "planted.duckdb")) as con:
        _plant(con, PLANTED)
        (mart,) = differencing.aggregate_marts(con)
        with pytest.raises(SecondarySuppressionError, match=r"still recoverable.*after 0 rounds"):
            suppress_mart(con, mart, threshold=8, rounding_base=1, related=RELATED, max_rounds=0)


def _random_mart(
    con: duckdb.DuckDBPyConnection, seed: int, people: int = PEOPLE, base: int = BASE
) -> None:
    """Events of a random population, aggregated and suppressed as the dbt marts are."""
    true_counts(con, seed, people, las=["E06000001", "E06000002", "E06000003"])
    con.execute(
        f"""
        create table mart_random as
        select breakdown, activity_month, la_code, sex,
            case when events between 1 and 7 then null
                 else cast(round(events / {base}.0) * {base} as bigint) end as events,
            events between 1 and 7 as events_suppressed,
            false as secondary_suppression
        from true_counts
        """
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_mart_ends_with_nothing_recovered_exactly(tmp_path: Path, seed: int) -> None:
    with duckdb.connect(str(tmp_path / f"random-{seed}.duckdb")) as con:
        _random_mart(con, seed)
        summary = apply_secondary_suppression(con, threshold=8, rounding_base=BASE, schema="main")
        after = _audit(con, BASE)
        (mart,) = differencing.aggregate_marts(con)
        intervals = differencing.suppressed_intervals(con, mart, threshold=8, rounding_base=BASE)
        withheld_true = [
            r[0]
            for r in con.execute(
                "select t.events from mart_random m join true_counts t "
                "on m.breakdown = t.breakdown "
                "and m.activity_month is not distinct from t.activity_month "
                "and m.la_code is not distinct from t.la_code "
                "and m.sex is not distinct from t.sex "
                "where m.events_suppressed"
            ).fetchall()
        ]
        truth = {
            r[:4]: r[4]
            for r in con.execute(
                "select breakdown, activity_month, la_code, sex, events from true_counts"
            ).fetchall()
        }
    (result,) = summary["marts"]
    assert result["recoverable_before"] > 0, "the random mart must start out recoverable"
    assert after["exactly_recovered_cells"] == 0
    assert after["inconsistent_cells"] == 0 and sum(after["rule"].values()) == 0
    # Every cell withheld on top of the small ones really was a count of at least 8.
    secondary = [n for n in withheld_true if n >= 8]
    assert len(secondary) == result["secondary_cells"] > 0
    assert len(withheld_true) == result["withheld_before"] + result["secondary_cells"]
    for cell in intervals:  # the audit stays sound once withheld cells may be large
        key = (cell["breakdown"], cell["activity_month"], cell["la_code"], cell["sex"])
        assert cell["low"] <= truth[key] <= cell["high"], cell
