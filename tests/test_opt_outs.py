"""Opt-outs: national data opt-out and GP type 1 objections remove whole records everywhere."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import (
    KEY,
    LA,
    PEOPLE,
    PRACTICE,
    TODAY,
    baseline_rows,
    gp_id,
    hosp_id,
    la_id,
    run_all,
    write_landing,
    write_table,
)

from joinedup import catalogue
from joinedup.catalogue import RESTRICTED_OPTED_OUT_ENCODINGS, cleared_path
from joinedup.contracts import SNOMED_TYPE1_OBJECTION as OBJECT
from joinedup.contracts import SNOMED_TYPE1_WITHDRAWN as WITHDRAW
from joinedup.contracts import TABLES
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.deidentify.encodings import Encoder
from joinedup.ingest import IngestError, OptOutListMissingError, ingest_source
from joinedup.ingest.ledger import read_ledger
from joinedup.ingest.load import SOURCES

RUN = "run-1"
# "source/table", from the catalogue: record grain first, then every event table.
RECORD_TABLES = tuple(f"{s}/{t}" for s, t in catalogue.RECORD_TABLES.items())
EVENT_TABLES = tuple(
    f"{s}/{t}" for s, names in catalogue.PSEUDONYMISED_TABLES.items() for t in names[1:]
)


def token(source: str, org: str, local_id: str) -> str:
    return Encoder(KEY).record_tokens(pl.Series([f"{source}|{org}|{local_id}"]))[0]


def records_of(person: str) -> dict[str, str]:
    """Every source record token the fixtures give a person."""
    return {
        "gp": token("gp", PRACTICE, gp_id(person)),
        "hospital": token("hospital", "RR8", hosp_id(person)),
        "social_care": token("social_care", LA, la_id(person)),
    }


def surviving_tokens(data_dir: Path) -> set[str]:
    out: set[str] = set()
    for name in (*RECORD_TABLES, *EVENT_TABLES):
        out |= set(pl.read_parquet(data_dir / f"pseudonymised/{name}.parquet")["record_token"])
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    data_dir = tmp_path_factory.mktemp("optouts")
    write_landing(data_dir)
    return data_dir, run_all(data_dir, RUN)


def test_national_opt_out_removes_the_person_from_every_source_and_table(baseline) -> None:
    data_dir, summary = baseline
    left = surviving_tokens(data_dir)
    assert not set(records_of("bob").values()) & left
    assert summary["opt_outs"]["rows_removed"] == {
        "gp/patients": 4,  # bob, carol, eve, gina
        "gp/events": 8,
        "hospital/apc_episodes": 2,  # bob, carol (same NHS number as her GP record)
        "hospital/ae_attendances": 1,
        "social_care/clients": 1,
        "social_care/events": 1,
    }
    # Bob's second social care record carries no NHS number: it stays for linkage to resolve.
    assert token("social_care", LA, "S00099") in left


def test_ledger_counts_opted_out_rows_per_file_and_balances(baseline) -> None:
    data_dir, _ = baseline
    ledger = read_ledger(data_dir).filter(pl.col("run_id") == RUN)
    by_file = dict(zip(ledger["file"], ledger["rows_opted_out"], strict=True))
    assert by_file["landing/gp/patients.csv"] == 4
    assert by_file["landing/hospital/apc_episodes.csv"] == 2
    assert by_file["landing/opt_outs/national_data_opt_out.csv"] == 0
    total = ledger["rows_loaded"] + ledger["rows_quarantined"] + ledger["rows_opted_out"]
    assert (ledger["rows_received"] == total).all()


@pytest.mark.parametrize(
    ("person", "removed"),
    [
        ("carol", True),  # objection
        ("dan", False),  # objection, then withdrawal
        ("eve", True),  # objection, withdrawal, objection again
        ("gina", True),  # objection and withdrawal on one date: the objection wins
        ("alice", False),
        ("frank", False),
    ],
)
def test_type1_objection_latest_dated_code_wins(baseline, person: str, removed: bool) -> None:
    data_dir, _ = baseline
    gp_token = records_of(person)["gp"]
    assert (gp_token not in surviving_tokens(data_dir)) is removed


def test_type1_objection_removes_hospital_records_with_the_same_nhs_number(baseline) -> None:
    data_dir, summary = baseline
    assert records_of("carol")["hospital"] not in surviving_tokens(data_dir)
    assert summary["opt_outs"]["records_removed_by_reason"] == {
        "national_data_opt_out": 3,  # bob at GP, hospital and social care
        "type1_objection": 3,  # carol, eve, gina at GP
        "type1_objection_nhs_number": 1,  # carol's hospital record
    }


def test_restricted_file_keeps_encodings_of_removed_records_only(baseline) -> None:
    data_dir, _ = baseline
    restricted = pl.read_parquet(data_dir / RESTRICTED_OPTED_OUT_ENCODINGS)
    assert restricted.height == 7
    assert set(restricted["record_token"]) == {
        *(records_of(p)["gp"] for p in ("bob", "carol", "eve", "gina")),
        records_of("bob")["hospital"],
        records_of("carol")["hospital"],
        records_of("bob")["social_care"],
    }
    assert "restricted" not in {p.name for p in (data_dir / "pseudonymised").rglob("*")}
    # Bob's NHS-number-less record can be found by linkage through the restricted encodings.
    clients = pl.read_parquet(data_dir / "pseudonymised/social_care/clients.parquet")
    orphan = clients.filter(pl.col("record_token") == token("social_care", LA, "S00099"))
    cols = ["given_name_token", "family_name_token", "date_of_birth_token", "postcode_token"]
    # Date and postcode tokens are sealed per record: compare them as link() reads them.
    encoder = Encoder(KEY)
    orphan, restricted = encoder.unseal(orphan), encoder.unseal(restricted)
    assert orphan.select(cols).row(0) in set(restricted.select(cols).rows())


def _events(*rows: tuple[str, str, str]) -> list[dict[str, str]]:
    return [
        {"practice_code": org, "gp_patient_id": pid, "event_date": d, "snomed_code": c}
        for org, pid, d, c in [(PRACTICE, *r) if len(r) == 3 else r for r in rows]
    ]


def run_with(data_dir: Path, rows: dict) -> set[str]:
    write_landing(data_dir, rows)
    run_all(data_dir, RUN)
    return surviving_tokens(data_dir)


def test_codes_pooled_across_practices_by_nhs_number(tmp_path: Path) -> None:
    """Objecting at one practice and withdrawing later at another means withdrawn."""
    rows = baseline_rows()
    alice = next(r for r in rows["gp/patients"] if r["gp_patient_id"] == gp_id("alice"))
    rows["gp/patients"].append(alice | {"practice_code": "B82002", "gp_patient_id": "X1"})
    dan = next(r for r in rows["gp/patients"] if r["gp_patient_id"] == gp_id("dan"))
    rows["gp/patients"].append(dan | {"practice_code": "B82002", "gp_patient_id": "X4"})
    rows["gp/events"] += _events(
        (gp_id("alice"), "2021-01-01", OBJECT),
        ("B82002", "X1", "2022-01-01", WITHDRAW),
        ("B82002", "X4", "2023-01-01", OBJECT),  # dan objects again elsewhere, later
    )
    left = run_with(tmp_path, rows)
    assert records_of("alice")["gp"] in left
    assert token("gp", "B82002", "X1") in left
    assert records_of("dan")["gp"] not in left
    assert token("gp", "B82002", "X4") not in left
    assert token("social_care", LA, la_id("dan")) not in left


def test_quarantined_rows_still_count_for_opt_outs(tmp_path: Path) -> None:
    rows = baseline_rows()
    # An objection with an unusable date is still an objection (and outranks a withdrawal).
    rows["gp/events"] += _events(
        (gp_id("frank"), "2023-13-01", OBJECT), (gp_id("frank"), "2024-01-01", WITHDRAW)
    )
    # A GP record whose only demographic row is quarantined still ties it to Bob's number.
    bob = next(r for r in rows["gp/patients"] if r["gp_patient_id"] == gp_id("bob"))
    rows["gp/patients"].append(bob | {"gp_patient_id": "G00077", "registration_date": "never"})
    rows["gp/events"] += _events(("G00077", "2023-04-04", "38341003"))
    left = run_with(tmp_path, rows)
    assert records_of("frank")["gp"] not in left
    assert records_of("frank")["hospital"] not in left  # via Frank's NHS number
    assert token("gp", PRACTICE, "G00077") not in left


def test_missing_opt_out_list_stops_the_run(tmp_path: Path) -> None:
    rows = baseline_rows()
    del rows["opt_outs/national_data_opt_out"]
    write_landing(tmp_path, rows)
    for source in SOURCES:
        ingest_source(tmp_path, source, RUN, today=TODAY)
    with pytest.raises(OptOutListMissingError, match="header-only file"):
        remove_opt_outs(tmp_path, RUN)
    # A header-only list is an explicit "nobody opted out".
    write_table(tmp_path, "opt_outs/national_data_opt_out", [])
    ingest_source(tmp_path, "opt_outs", RUN, today=TODAY)
    summary = remove_opt_outs(tmp_path, RUN)
    assert summary["national_opt_out_numbers"] == 0
    assert "national_data_opt_out" not in summary["records_removed_by_reason"]


def test_rerunning_opt_outs_is_idempotent_and_pseudonymise_refuses_stale_input(
    tmp_path: Path,
) -> None:
    write_landing(tmp_path)
    run_all(tmp_path, RUN)
    ledger = (tmp_path / "ledger.csv").read_bytes()
    remove_opt_outs(tmp_path, RUN)
    assert (tmp_path / "ledger.csv").read_bytes() == ledger
    time.sleep(0.01)
    ingest_source(tmp_path, "gp", RUN, today=TODAY)  # new validated data, opt-outs not re-run
    with pytest.raises(IngestError, match="run remove_opt_outs again"):
        pseudonymise(tmp_path, KEY, RUN)


def test_cleared_tables_hold_no_opted_out_nhs_number(baseline) -> None:
    data_dir, _ = baseline
    opted_out = {PEOPLE[p][0] for p in ("bob", "carol", "eve", "gina")}
    for name in ("gp/patients", "hospital/apc_episodes", "social_care/clients"):
        cleared = pl.read_parquet(cleared_path(data_dir, TABLES[name]))
        assert not set(cleared["nhs_number"].drop_nulls()) & opted_out
