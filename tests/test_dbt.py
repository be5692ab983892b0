"""The dbt care-pathway warehouse, built for real on a small synthetic population.

One module-scoped build: generate a population, run the real ingest stages, link
with perfect (truth) linkage, then ``build_warehouse`` (dbt build: seeds, models,
data tests and, asked for here, the unit tests that a pipeline build leaves out, on a
real DuckDB file), ``publish_analytics`` and
``generate_docs``. The tests then check the build, the documentation, disclosure
control, what reaches analysts, and mart figures against the same activity computed
independently from the landing files and the generator's truth.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from ingest_fixtures import pseudonymised_with_true_linkage

from joinedup import catalogue
from joinedup.atomic import write_parquet
from joinedup.contracts import ADMISSION_METHOD_EMERGENCY
from joinedup.privacy.scan import scan
from joinedup.synth import generate
from joinedup.warehouse import (
    WarehouseError,
    build_warehouse,
    generate_docs,
    publish_analytics,
)
from joinedup.warehouse.marts import TABLE as MARTS_TABLE

pytestmark = pytest.mark.slow

WAREHOUSE = catalogue.WAREHOUSE.path

PEOPLE = 5_000
SEED = 7
EXTRACT_END = date(2026, 3, 31)  # generate()'s default window: 2025-04 for 12 months
READMISSION_DAYS = 30
SOCIAL_CARE_DAYS = 90
RECORD_PERSON = "linked/record_person.parquet"
FROM_DISCHARGE_READY_DATES = {
    ("mart_bcf_metrics", c)
    for c in ("discharges_with_ready_date", "discharged_on_ready_date", "delayed_discharges")
}
# Counts of fields only the national layouts carry (the generic layout has no CLD
# accommodation status, so nobody is known to live at home): 0 everywhere here.
NATIONAL_ONLY = FROM_DISCHARGE_READY_DATES | {("mart_ascof", "living_at_home_or_with_family")}

UNIT_TESTED = {
    "int_hospital_episode_diagnoses_unnested",
    "int_hospital_spells_built",
    "int_hospital_spells_chained",
    "int_hospital_stays_readmissions_flagged",
    "int_indicator_events_selected",
    "int_pathway_transitions_paired",
    "int_discharges_social_care_matched",
    "int_persons_demographics_resolved",
    "int_persons_segmented",
    "int_reablement_discharges_followed_up",
    "mart_readmissions",
    "mart_discharge_to_social_care",
    "mart_bcf_metrics",
    "mart_acsc_admissions",
    "int_acsc_admissions_aggregated",
    "int_indicator_population_cells",
    "int_readmissions_30_day_index_stays",
    "mart_readmissions_30_day",
    "int_ascof_events_selected",
    "mart_ascof",
}
# One unit test per model, and a second on the incremental case of the event facts.
UNIT_TESTS = len(UNIT_TESTED) + 1
IDENTIFIER_LIKE = re.compile(
    r"token|nhs|name|surname|birth_date|date_of_birth|dob|postcode|address|patient_id"
    r"|local_id|la_person_id|spell_id|attendance_id|record_token|^record_"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("warehouse")
    # The generic layout: the recomputations below read its landing files (the national
    # layouts through dbt: test_layouts_warehouse, and every `joinedup run`).
    generate(data, PEOPLE, seed=SEED, layout="generic")
    pseudonymised_with_true_linkage(data)
    # Every dbt unit test runs here, once: a pipeline build leaves them out
    # (test_dbt_docs_reuse.py), as they test the models' SQL, not the data.
    summary = build_warehouse(data, unit_tests=True)
    return {
        "data": data,
        "summary": summary,
        **publish_analytics(data),  # "analytics" (person level), "commissioning" (mart_)
        "docs": generate_docs(data),
    }


def query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def manifest(data: Path) -> dict:
    return json.loads((data / "dbt/target/manifest.json").read_text())


# --- the build ---------------------------------------------------------------


def test_build_passes_every_model_data_test_and_unit_test(built: dict) -> None:
    nodes = built["summary"]["nodes"]
    # 46 models, int_person_input_changes (the incremental event facts' change set) and
    # disclosure_across_marts, the joint disclosure pass after the marts.
    assert nodes["model"] == {"success": 48}
    assert set(nodes["test"]) <= {"pass", "warn"} and nodes["test"]["pass"] > 300
    assert nodes["unit_test"] == {"pass": UNIT_TESTS}
    assert nodes["seed"] == {"success": 17}
    assert Path(built["summary"]["warehouse"]) == built["data"] / WAREHOUSE
    # dbt's own files stay under the data dir; nothing is left from the build folder.
    assert (built["data"] / "dbt/logs/dbt.log").exists()
    assert not (built["data"] / ".warehouse-build").exists()
    assert not (built["data"] / (WAREHOUSE + ".wal")).exists()


def test_extract_window_is_derived_from_hospital_activity(built: dict) -> None:
    rows = query(
        built["data"] / WAREHOUSE,
        "select extract_start_date, extract_end_date from intermediate.int_extract_window_derived",
    )
    assert rows == [(date(2025, 4, 1), EXTRACT_END)]


def test_every_model_is_documented_with_its_grain_and_tested(built: dict) -> None:
    m = manifest(built["data"])
    models = {n["name"]: n for n in m["nodes"].values() if n["resource_type"] == "model"}
    tested = {
        m["nodes"][parent]["name"]
        for node in m["nodes"].values()
        if node["resource_type"] == "test"
        for parent in node["depends_on"]["nodes"]
        if parent.startswith("model.")
    }
    unit_tested = {u["model"] for u in m["unit_tests"].values()}
    with duckdb.connect(str(built["data"] / WAREHOUSE), read_only=True) as con:
        for name, node in models.items():
            assert node["patch_path"], f"{name} has no YAML entry"
            assert "Grain:" in node["description"], f"{name}: description must state its grain"
            assert name in tested, f"{name} has no data tests"
            actual = {
                r[0]
                for r in con.execute(
                    "select column_name from duckdb_columns() "
                    "where schema_name = ? and table_name = ?",
                    [node["schema"], node["alias"]],
                ).fetchall()
            }
            documented = {c for c, v in node["columns"].items() if v["description"].strip()}
            assert actual == documented, f"{name}: undocumented or stale columns"
    assert unit_tested >= UNIT_TESTED
    for name in (n for n in models if n.startswith("mart_")):
        assert "macro.joinedup.suppress_small_numbers" in models[name]["depends_on"]["macros"]
    exposures = list(m["exposures"].values())
    assert exposures and all(
        {d.split(".")[-1] for d in e["depends_on"]["nodes"]}
        == {n for n in models if n.startswith("mart_")}
        for e in exposures
    )


def test_failed_build_names_the_failed_node_and_keeps_the_last_warehouse(built: dict) -> None:
    data = built["data"]
    good = pl.read_parquet(data / RECORD_PERSON)
    before = (data / WAREHOUSE).stat().st_mtime_ns
    broken = pl.concat([good, good.head(1).with_columns(person_id=pl.lit(None, pl.String))])
    write_parquet(broken, data / RECORD_PERSON)
    try:
        with pytest.raises(WarehouseError) as raised:
            build_warehouse(data)
    finally:
        write_parquet(good, data / RECORD_PERSON)
    message = str(raised.value)
    assert "source_unique_linkage_record_person_record_token" in message
    assert "source_not_null_linkage_record_person_person_id" in message
    assert "dbt/logs/dbt.log" in message
    assert (data / WAREHOUSE).stat().st_mtime_ns == before


def test_missing_inputs_are_named_before_dbt_runs(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"linked/record_person\.parquet \(written by linkage"):
        build_warehouse(tmp_path)


# --- figures against the truth --------------------------------------------------


@pytest.fixture(scope="module")
def truth_stays(built: dict) -> pl.DataFrame:
    """Continuous hospital stays from the landing files and the generator's truth.

    Written independently of the dbt models: Polars on the landing CSV, the true
    person behind each record, the contract's emergency codes, 51 for transfers.
    """
    data = built["data"]
    truth = pl.read_csv(data / "truth/records.csv", infer_schema=False).filter(
        (pl.col("source") == "hospital") & (pl.col("opted_out") == "false")
    )
    apc = pl.read_csv(data / "landing/hospital/apc_episodes.csv", infer_schema=False).join(
        truth,
        left_on=["provider_code", "hospital_patient_id"],
        right_on=["org_code", "local_id"],
    )
    apc = apc.with_columns(
        pl.col("episode_number").cast(pl.Int64),
        pl.col("admission_date", "discharge_date").str.to_date(),
    ).sort("provider_code", "spell_id", "episode_number")
    spells = (
        apc.group_by("provider_code", "spell_id")
        .agg(
            pl.col("person_key").first(),
            pl.col("admission_date").first(),
            pl.col("admission_method").first(),
            pl.col("admission_source").first(),
            pl.col("discharge_date").last(),
            pl.col("discharge_destination").last(),
        )
        .sort("person_key", "admission_date", pl.col("discharge_date"), nulls_last=True)
    )
    prev = pl.col("discharge_date").shift(1).over("person_key")
    prev_dest = pl.col("discharge_destination").shift(1).over("person_key")
    spells = spells.with_columns(
        transfer_in=(
            (pl.col("admission_date") == prev)
            & ((prev_dest == "51") | (pl.col("admission_source") == "51"))
        ).fill_null(False)
    ).with_columns(stay=(~pl.col("transfer_in")).cast(pl.Int64).cum_sum().over("person_key"))
    stays = spells.group_by("person_key", "stay").agg(
        pl.col("admission_date").first(),
        pl.col("admission_method").first(),
        pl.col("discharge_date").last(),
        pl.col("discharge_destination").last(),
    )
    return stays.with_columns(
        emergency=pl.col("admission_method").is_in(list(ADMISSION_METHOD_EMERGENCY)),
        index=pl.col("discharge_date").is_not_null() & (pl.col("discharge_destination") != "79"),
    )


def test_30_day_readmissions_match_truth(built: dict, truth_stays: pl.DataFrame) -> None:
    index = truth_stays.filter(
        pl.col("index")
        & (pl.col("discharge_date") + timedelta(days=READMISSION_DAYS) <= EXTRACT_END)
    )
    later = truth_stays.filter("emergency").select(
        "person_key", pl.col("stay").alias("later_stay"), pl.col("admission_date").alias("adm")
    )
    pairs = index.join(later, on="person_key").filter(
        (pl.col("later_stay") > pl.col("stay"))
        & (pl.col("adm") >= pl.col("discharge_date"))
        & ((pl.col("adm") - pl.col("discharge_date")).dt.total_days() <= READMISSION_DAYS)
    )
    expected_index = index.height
    expected_readmitted = pairs.select("person_key", "stay").unique().height
    assert expected_index > 500 and expected_readmitted > 50  # a population worth checking

    [(got_index, got_readmitted)] = query(
        built["data"] / WAREHOUSE,
        """
        select count(*) filter (where is_readmission_index and has_full_follow_up),
               count(*) filter (where readmitted_within_30_days and has_full_follow_up)
        from marts.fct_hospital_spells
        """,
    )
    assert (got_index, got_readmitted) == (expected_index, expected_readmitted)

    # The published total is the same figure after rounding to the nearest 5.
    [(pub_index, pub_readmitted, rate)] = query(
        built["commissioning"],
        "select index_discharges, emergency_readmissions, readmission_rate_pct "
        "from mart_readmissions where breakdown = 'total'",
    )
    assert abs(pub_index - expected_index) <= 2 and abs(pub_readmitted - expected_readmitted) <= 2
    assert rate == pytest.approx(100 * pub_readmitted / pub_index, abs=0.05)
    # The monthly rows add up to the total, give or take rounding.
    [(month_sum, months)] = query(
        built["commissioning"],
        "select sum(index_discharges), count(*) from mart_readmissions where breakdown = 'month'",
    )
    assert abs(month_sum - pub_index) <= 3 * months


def test_discharge_to_social_care_matches_truth(built: dict, truth_stays: pl.DataFrame) -> None:
    data = built["data"]
    truth = pl.read_csv(data / "truth/records.csv", infer_schema=False).filter(
        (pl.col("source") == "social_care") & (pl.col("opted_out") == "false")
    )
    events = pl.read_csv(data / "landing/social_care/events.csv", infer_schema=False).join(
        truth, left_on=["la_code", "la_person_id"], right_on=["org_code", "local_id"]
    )
    con = duckdb.connect()
    con.register("discharges", truth_stays.filter("index"))
    con.register("starts", events.filter(pl.col("event_type").is_in(["request", "service"])))
    [(n, matched, median)] = con.execute(
        f"""
            with firsts as (
                select d.person_key, d.stay,
                       min(cast(s.event_start_date as date) - d.discharge_date) as days
                from discharges d
                left join starts s
                  on s.person_key = d.person_key
                 and cast(s.event_start_date as date)
                     between d.discharge_date and d.discharge_date + {SOCIAL_CARE_DAYS}
                group by all
            )
            select count(*), count(days), median(days) from firsts
            """
    ).fetchall()
    con.close()
    assert matched > 50
    [(got_n, got_matched, got_median)] = query(
        data / WAREHOUSE,
        "select count(*), count(*) filter (where has_social_care_within_window), "
        "median(days_to_social_care) from marts.fct_discharges_to_social_care",
    )
    assert (got_n, got_matched, got_median) == (n, matched, median)


def test_pathways_follow_each_person_through_settings(built: dict) -> None:
    wh = built["data"] / WAREHOUSE
    [(events, people, transitions)] = query(
        wh,
        "select (select count(*) from marts.fct_care_events), "
        "(select count(distinct person_id) from marts.fct_care_events), "
        "(select count(*) from marts.fct_pathway_transitions)",
    )
    assert transitions == events - people  # n events, n - 1 transitions per person
    flows = dict(
        query(
            wh,
            "select to_event_type, count(*) from marts.fct_pathway_transitions "
            "where from_event_type = 'emergency_admission' group by all",
        )
    )
    # After an emergency admission the next event is mostly its discharge (or a death);
    # the rest are GP entries dated during the stay and overlapping stays.
    ended = flows["hospital_discharge"] + flows.get("death", 0)
    assert ended > 0.8 * sum(flows.values())


# --- disclosure control and what analysts get ------------------------------------


def test_no_published_count_is_between_1_and_7(built: dict) -> None:
    with duckdb.connect(str(built["commissioning"]), read_only=True) as con:
        marts = [r[0] for r in con.execute("show tables").fetchall() if r[0].startswith("mart_")]
        nodes = manifest(built["data"])["nodes"].values()
        built_marts = {n["name"] for n in nodes if n["name"].startswith("mart_")}
        assert set(marts) == built_marts and len(marts) >= 4
        for table in marts:
            columns = {
                name: dtype
                for name, dtype in con.execute(
                    "select column_name, data_type from duckdb_columns() where table_name = ?",
                    [table],
                ).fetchall()
            }
            counts = [c for c in columns if f"{c}_suppressed" in columns]
            assert counts, table
            for c in counts:
                assert columns[c] == "BIGINT", (table, c)
                [(small, unrounded, inconsistent, withheld)] = con.execute(
                    f"""
                    select count(*) filter (where {c} between 1 and 7),
                           count(*) filter (where {c} % 5 <> 0),
                           count(*) filter (where ({c} is null) <> {c}_suppressed),
                           count(*) filter (where {c}_suppressed)
                    from {table}
                    """
                ).fetchall()
                assert (small, unrounded, inconsistent) == (0, 0, 0), (table, c)
                if (table, c) in NATIONAL_ONLY:
                    # The generic layout carries no Discharge Ready Date or accommodation
                    # status (test_indicators builds the national layouts): nothing to
                    # count, so nothing withheld.
                    assert con.execute(f"select max({c}) from {table}").fetchone() == (0,)
                    continue
                assert withheld > 0, f"{table}.{c}: expected some suppression at this size"


def test_secondary_suppression_leaves_no_cell_recovered_exactly(built: dict) -> None:
    from joinedup.privacy import differencing

    summary = built["summary"]["secondary_suppression"]
    nodes = manifest(built["data"])["nodes"].values()
    assert {m["mart"] for m in summary["marts"]} == {
        n["name"] for n in nodes if n["name"].startswith("mart_")
    }
    # At this size subtraction pins some withheld cells until more are withheld.
    assert sum(m["secondary_cells"] for m in summary["marts"]) > 0
    with duckdb.connect(str(built["commissioning"]), read_only=True) as con:
        results = differencing.check_all(con, threshold=8, rounding_base=5)
    for result in results:
        assert result["secondary_suppression"], result["mart"]
        assert result["exactly_recovered_cells"] == 0, (result["mart"], result["examples"])
        assert result["inconsistent_cells"] == 0 and sum(result["rule"].values()) == 0


def test_analytics_holds_only_marts_and_no_identifiers(built: dict) -> None:
    """The two publications hold the marts between them, and nothing identifying."""
    tables, columns, tokens, described = [], [], 0, 0
    for path in (built["analytics"], built["commissioning"]):
        with duckdb.connect(str(path), read_only=True) as con:
            if path == built["commissioning"]:
                # Beside the marts, the file's description of them (joinedup.warehouse.marts).
                described_marts = con.execute(
                    f"select distinct mart from main.{MARTS_TABLE} order by 1"
                ).fetchall()
            tables += con.execute(
                "select schema_name, table_name from duckdb_tables() where not internal "
                f"and table_name <> '{MARTS_TABLE}' order by all"
            ).fetchall()
            assert not con.execute("select * from duckdb_views() where not internal").fetchall()
            found = con.execute(
                "select table_name, column_name, data_type from duckdb_columns() "
                f"where not internal and table_name <> '{MARTS_TABLE}'"
            ).fetchall()
            columns += found
            texts = [(t, c) for t, c, d in found if d == "VARCHAR"]
            tokens += sum(
                con.execute(
                    f'select count(*) from "{t}" where regexp_full_match("{c}", \'[0-9a-f]{{64}}\')'
                ).fetchall()[0][0]
                for t, c in texts
            )
            described += con.execute(
                "select count(*) from duckdb_tables() where comment is not null "
                f"and table_name <> '{MARTS_TABLE}'"
            ).fetchall()[0][0]
    with duckdb.connect(str(built["data"] / WAREHOUSE), read_only=True) as con:
        marts = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
        ).fetchall()
    assert described_marts == [(t,) for (t,) in marts if t.startswith("mart_")]
    assert sorted(t for _, t in tables) == [t for (t,) in marts]
    assert {s for s, _ in tables} == {"main"}
    assert all(t.startswith(("dim_", "fct_", "mart_")) for _, t in tables)
    assert described == len(tables)
    flagged = [(t, c) for t, c, _ in columns if IDENTIFIER_LIKE.search(c)]
    assert flagged == [], "identifier-like columns published to analysts"
    assert tokens == 0, "token-shaped values published to analysts"
    # No name, NHS number, date of birth, postcode or local id from the landing zone, in
    # the analysts' file or the docs catalog (the docs' HTML is dbt's own web app).
    targets = [built["analytics"], built["commissioning"], built["docs"] / "catalog.json"]
    assert scan(built["data"] / "landing", targets).height == 0


def test_docs_site_is_written_under_the_data_dir(built: dict) -> None:
    docs = built["docs"]
    assert docs == built["data"] / "docs/dbt"
    assert {p.name for p in docs.iterdir()} == {
        "index.html",
        "static_index.html",
        "manifest.json",
        "catalog.json",
    }
    catalog = json.loads((docs / "catalog.json").read_text())
    assert "model.joinedup.mart_readmissions" in catalog["nodes"]
    # The build wrote them (its own parse reused); the docs stage ran no dbt of its own.
    assert not (built["data"] / "dbt/docs-target").exists()


def test_docs_are_generated_again_when_the_warehouse_is_not_the_one_the_build_documented(
    built: dict,
) -> None:
    warehouse = built["data"] / WAREHOUSE
    before = warehouse.stat()
    # Any write to the file moves its mtime; the content stays, so later tests see the same.
    os.utime(warehouse, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        docs = generate_docs(built["data"])
        assert (built["data"] / "dbt/docs-target/catalog.json").exists()
        catalog = json.loads((docs / "catalog.json").read_text())
        assert "model.joinedup.mart_readmissions" in catalog["nodes"]
    finally:
        os.utime(warehouse, ns=(before.st_atime_ns, before.st_mtime_ns))
