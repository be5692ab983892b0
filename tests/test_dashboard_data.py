"""The dashboard's data layer and disclosure helpers, on hand-made marts (no browser).

Which published breakdown answers a question, how cells are added up, when a rate is
withheld, and that a count reaches the screen only as a published figure or
"suppressed (<8)".
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dashboard package

from dashboard import data
from dashboard.data import Catalogue, DashboardDataError, Filters, aggregate, make_plan
from dashboard.disclosure import (
    format_count,
    format_rate,
    funnel_limits,
    publish_count,
    wilson_interval,
)
from joinedup.warehouse import marts

APR, MAY, JUN = date(2025, 4, 1), date(2025, 5, 1), date(2025, 6, 1)
BREAKDOWNS = (
    "total", "month", "month+la_code", "month+practice_code", "month+age_band", "month+sex",
    "month+imd_quintile", "la_code+age_band", "la_code+sex", "la_code+imd_quintile",
    "month+la_code+age_band+sex+imd_quintile",
)  # fmt: skip
CAT = Catalogue(
    breakdowns={"readmissions": BREAKDOWNS},
    months={"readmissions": (APR, MAY, JUN)},
    values={
        "la_code": ("E1", "E2"),
        "practice_code": ("P1", "P2", "P3"),
        "age_band": ("18-44", "45-64", "65-74", "75-84", "85+"),
        "sex": ("Female", "Male"),
        "imd_quintile": (1, 2, 3, 4, 5),
    },
)


def readmission_rows(rows: list[dict]) -> pl.DataFrame:
    """Rows of mart_readmissions: each count given as a true count, published here."""
    out = []
    for r in rows:
        row = {d: r.get(d) for d in data.DIMENSIONS}
        row["breakdown"] = r["breakdown"]
        for c in ("index_discharges", "emergency_readmissions"):
            row[c], row[f"{c}_suppressed"] = publish_count(r[c])
        out.append(row)
    return pl.DataFrame(out, schema_overrides={"activity_month": pl.Date, "imd_quintile": pl.Int32})


# --- disclosure -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("true", "published"),
    [(0, (0, False)), (1, (None, True)), (7, (None, True)), (8, (10, False)),
     (12, (10, False)), (13, (15, False)), (1234, (1235, False))],
)  # fmt: skip
def test_publish_count_matches_the_dbt_macro(true: int, published: tuple) -> None:
    assert publish_count(true) == published


def test_a_withheld_count_never_reads_as_a_number() -> None:
    assert format_count(None, True) == "suppressed (<8)"
    assert format_count(0, True) == "suppressed (<8)"  # only zeros beside withheld cells
    assert format_count(0, False) == "0"
    assert format_count(1235, False) == "1,235"
    assert format_count(120, True) == "120 †"  # a lower bound: some cells withheld
    assert format_count(None, False) == "—"
    assert format_rate(12.34, False) == "12.3%"
    assert format_rate(None, True) == "suppressed (<8)"


def test_wilson_interval_and_funnel_limits() -> None:
    low, high = wilson_interval(10, 100)
    assert (round(low, 2), round(high, 2)) == (5.52, 17.44)
    assert wilson_interval(0, 20)[0] == 0.0
    low, high = funnel_limits(10.0, 100, 1.959964)
    assert (round(low, 2), round(high, 2)) == (4.12, 15.88)


# --- which breakdown answers ------------------------------------------------------------


def test_plan_uses_an_exact_breakdown_when_there_is_one() -> None:
    assert make_plan(CAT, "readmissions", Filters()).breakdown == "total"
    plan = make_plan(CAT, "readmissions", Filters(), ("activity_month",))
    assert (plan.breakdown, plan.exact) == ("month", True)
    plan = make_plan(CAT, "readmissions", Filters(la_code="E1", age_band="85+"))
    assert (plan.breakdown, plan.exact) == ("la_code+age_band", True)
    plan = make_plan(CAT, "readmissions", Filters(period=(MAY, MAY), practice_code="P1"))
    assert (plan.breakdown, plan.exact, plan.month_filter) == (
        "month+practice_code",
        True,
        (MAY, MAY),
    )


def test_plan_adds_up_the_fewest_cells_when_no_breakdown_is_exact() -> None:
    # Local authority alone over the whole period: la_code+sex (2 sexes + not known).
    plan = make_plan(CAT, "readmissions", Filters(la_code="E1"))
    assert (plan.breakdown, plan.exact) == ("la_code+sex", False)
    # A sub-period sums months.
    plan = make_plan(CAT, "readmissions", Filters(period=(APR, MAY)))
    assert (plan.breakdown, plan.exact, plan.months) == ("month", False, (APR, MAY))
    # The whole period is the same as no period filter.
    assert make_plan(CAT, "readmissions", Filters(period=(APR, JUN))).breakdown == "total"


def test_plan_is_none_where_no_breakdown_combines_the_filters() -> None:
    assert make_plan(CAT, "readmissions", Filters(practice_code="P1", sex="Male")) is None


# --- adding up published cells ------------------------------------------------------------


def test_aggregate_adds_published_cells_and_withholds_rates_with_a_suppressed_cell() -> None:
    frame = readmission_rows(
        [
            {"breakdown": "la_code+sex", "la_code": "E1", "sex": "Female",
             "index_discharges": 40, "emergency_readmissions": 9},
            {"breakdown": "la_code+sex", "la_code": "E1", "sex": "Male",
             "index_discharges": 52, "emergency_readmissions": 3},
            {"breakdown": "la_code+sex", "la_code": "E2", "sex": "Female",
             "index_discharges": 61, "emergency_readmissions": 12},
            {"breakdown": "la_code+sex", "la_code": "E2", "sex": "Male",
             "index_discharges": 49, "emergency_readmissions": 10},
        ]
    )  # fmt: skip
    filters = Filters()
    plan = make_plan(CAT, "readmissions", filters, ("la_code",))
    assert plan.breakdown == "la_code+sex"
    out = {r["la_code"]: r for r in aggregate(frame, plan, filters, ("la_code",)).to_dicts()}
    e1, e2 = out["E1"], out["E2"]
    assert (e1["index_discharges"], e1["index_discharges_suppressed"]) == (40 + 50, 0)
    # 9 -> 10 published, 3 withheld: the sum is a lower bound and the rate is withheld.
    assert (e1["emergency_readmissions"], e1["emergency_readmissions_suppressed"]) == (10, 1)
    assert e1["readmission_rate_withheld"] and e1["readmission_rate"] is None
    assert format_count(e1["emergency_readmissions"], True) == "10 †"
    # E2: 60 + 50 discharges, 10 + 10 readmissions, all published: a rate from rounded counts.
    assert (e2["readmission_rate_num"], e2["readmission_rate_den"]) == (20, 110)
    assert e2["readmission_rate"] == pytest.approx(18.2)
    assert e2["readmission_rate_low"] < 18.2 < e2["readmission_rate_high"]


def test_aggregate_filters_a_period_and_keeps_statistics_only_for_one_cell(
    tmp_path: Path,
) -> None:
    rows = [
        {"breakdown": "month", "activity_month": m, "index_discharges": n,
         "emergency_readmissions": 0}
        for m, n in ((APR, 20), (MAY, 30), (JUN, 4))
    ]  # fmt: skip
    frame = readmission_rows(rows)
    filters = Filters(period=(APR, MAY))
    plan = make_plan(CAT, "readmissions", filters)
    total = aggregate(frame, plan, filters).row(0, named=True)
    assert (total["index_discharges"], total["cells"], total["index_discharges_suppressed"]) == (
        50,
        2,
        0,
    )
    assert total["readmission_rate"] == 0.0


# --- the published file ---------------------------------------------------------------------


def _publish(tmp_path: Path, frame: pl.DataFrame, *, tables: tuple[str, ...]) -> Path:
    """A published file: ``tables`` (each holding ``frame``) and, as stage_analytics writes
    it, the description of the repository's marts."""
    path = data.commissioning_path(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame.to_arrow())
        for table in tables:
            con.execute(f"create table {table} as select * from frame")
        marts.write_table(con, marts.project_marts().values())
    return tmp_path


def test_catalogue_and_slices_come_from_the_read_only_file(tmp_path: Path) -> None:
    frame = readmission_rows(
        [{"breakdown": "month", "activity_month": APR, "la_code": None,
          "index_discharges": 20, "emergency_readmissions": 0},
         {"breakdown": "month+la_code", "activity_month": APR, "la_code": "E9",
          "index_discharges": 20, "emergency_readmissions": 0}]
    )  # fmt: skip
    d = _publish(tmp_path, frame, tables=tuple(m.table for m in data.MARTS.values()))
    data.commissioning_path(d).chmod(0o444)  # as publish_analytics leaves it
    cat = data.catalogue(d)
    assert cat.breakdowns["readmissions"] == ("month", "month+la_code")
    assert cat.months["readmissions"] == (APR,)
    assert cat.values["la_code"] == ("E9",)
    assert data.load_slice(d, "readmissions", "month+la_code")["la_code"].to_list() == ["E9"]


def test_a_file_without_the_marts_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DashboardDataError, match="not found"):
        data.catalogue(tmp_path)
    frame = readmission_rows([{"breakdown": "total", "index_discharges": 0,
                               "emergency_readmissions": 0}])  # fmt: skip
    d = _publish(tmp_path, frame, tables=("mart_readmissions",))
    with pytest.raises(DashboardDataError, match="no table mart_pathway_flows"):
        data.catalogue(d)
