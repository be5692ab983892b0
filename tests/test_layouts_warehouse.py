"""Hand-written national-layout files, taken through ingest, pseudonymisation and dbt.

The HES APC, ECDS and CLD fixtures of test_layouts (written from the published
specifications, not by the generator), with the hand-written GP, opt-out and postcode
extracts of ingest_fixtures, become spells, attendances and social care events in the
warehouse: the national columns reach the models analysts and marts read.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from ingest_fixtures import KEY, baseline_rows, gp_id, write_table

from joinedup.atomic import write_parquet
from joinedup.catalogue import WAREHOUSE
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.ingest import finalise_ledger, ingest_source
from joinedup.ingest.load import SOURCES
from joinedup.truth import record_person_from_truth
from joinedup.warehouse.build import build_warehouse

NATIONAL = Path(__file__).parent / "fixtures" / "layouts" / "national"
TODAY = date(2026, 1, 1)
# Who each hand-written record is: P0001 (HES, ECDS) and LA-0001 (CLD) share an NHS number.
TRUTH = [
    *[("gp", "A81001", gp_id(p), p) for p in ("alice", "dan", "frank", "gina")],
    ("hospital", "RXA", "P0001", "p1"),
    ("hospital", "RXA", "P0002", "p2"),
    ("hospital", "RXA", "P0003", "p3"),
    ("hospital", "RXA", "P0004", "p4"),
    ("hospital", "RXA", "P0005", "p5"),
    ("social_care", "E06000001", "LA-0001", "p1"),
    ("social_care", "E06000001", "LA-0002", "p6"),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("national-warehouse")
    rows = baseline_rows()
    keep = {gp_id(p) for p in ("alice", "dan", "frank", "gina")}
    for qualified in ("gp/patients", "gp/events", "opt_outs/national_data_opt_out"):
        table_rows = rows[qualified]
        if qualified.startswith("gp/"):
            table_rows = [r for r in table_rows if r["gp_patient_id"] in keep]
        write_table(data, qualified, table_rows)
    write_table(data, "reference/postcodes", rows["reference/postcodes"])
    for name in ("hes_apc_2025-05.csv", "hes_apc_2025-06.csv", "ecds_2025-06.csv",
                 "cld_2025q1.csv", "cld_2025q2.csv"):  # fmt: skip
        folder = data / "landing" / ("social_care" if name.startswith("cld") else "hospital")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(NATIONAL / name, folder / name)
    (data / "truth").mkdir()
    with (data / "truth" / "records.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["source", "org_code", "local_id", "person_key", "opted_out"])
        out.writerows([*t, "false"] for t in TRUTH)
    for source in SOURCES:
        ingest_source(data, source, "run-1", today=TODAY)
    remove_opt_outs(data, "run-1")
    pseudonymise(data, KEY, "run-1")
    finalise_ledger(data, "run-1")
    write_parquet(record_person_from_truth(data, KEY), data / "linked" / "record_person.parquet")
    build_warehouse(data, dbt_vars={"extract_end_date": "2025-09-30"})
    return WAREHOUSE.under(data)


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_hes_episodes_become_spells_with_their_discharge_ready_date(warehouse: Path) -> None:
    spells = query(
        warehouse,
        "select admission_date, discharge_date, episode_count, discharge_destination, "
        "discharge_method, discharge_ready_date, secondary_diagnoses "
        "from intermediate.int_hospital_spells_chained order by admission_date",
    )
    assert spells == [
        # Two episodes; the May delivery had it open, the June refresh closed it.
        (date(2025, 4, 3), date(2025, 4, 10), 2, "19", "1", date(2025, 4, 9), "I10X"),
        (date(2025, 5, 12), date(2025, 5, 20), 1, "19", "1", date(2025, 5, 18), None),
        (date(2025, 6, 2), date(2025, 6, 9), 1, "65", "1", date(2025, 6, 6), None),
    ]


def test_every_diagnosis_position_is_a_row(warehouse: Path) -> None:
    rows = query(
        warehouse,
        "select episode_number, diagnosis_position, diagnosis_code "
        "from intermediate.int_hospital_episode_diagnoses_unnested "
        "where admission_date = date '2025-04-03' order by 1, 2",
    )
    assert rows == [(1, 1, "J441"), (1, 2, "I10X"), (2, 1, "J441"), (2, 2, "I10X"), (2, 3, "E119")]


def test_ecds_attendances_reach_staging_with_their_discharge_destination(warehouse: Path) -> None:
    rows = query(
        warehouse,
        "select arrival_date, disposal, discharge_destination_snomed, department_type "
        "from staging.stg_hospital__ae_attendances order by arrived_at",
    )
    assert rows == [
        (date(2025, 6, 2), "admitted", "306706006", "01"),
        (date(2025, 6, 5), "discharged", "306689006", "01"),
        (date(2025, 6, 7), "left", None, "03"),
        (date(2025, 6, 8), "died", "305398007", "01"),
    ]


def test_cld_events_reach_staging_closed_by_the_later_submission(warehouse: Path) -> None:
    rows = query(
        warehouse,
        "select event_type, service_type, cld_service_type, delivery_mechanism, event_outcome, "
        "event_start_date, event_end_date from staging.stg_social_care__events "
        "where event_type = 'service' order by event_start_date",
    )
    assert rows == [
        ("service", "Reablement", "Short Term Support: ST-Max", "CASSR Managed Personal Budget",
         "Service ended as planned", date(2025, 5, 2), date(2025, 6, 13)),
        ("service", "Residential care", "Long Term Support: Residential Care",
         "CASSR Managed Personal Budget", "Provision of service", date(2025, 6, 21), None),
    ]  # fmt: skip
