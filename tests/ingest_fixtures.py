"""Hand-made landing extracts for the ingest, opt-out and pseudonymisation tests.

A handful of named people, each there to pin one rule (see ``PEOPLE``). Tests
copy :func:`baseline_rows`, change what they need and write real CSV files.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import polars as pl

from joinedup.atomic import write_parquet
from joinedup.catalogue import RECORD_PERSON, quarantine_path, validated_path
from joinedup.contracts import SNOMED_TYPE1_OBJECTION as OBJECT
from joinedup.contracts import SNOMED_TYPE1_WITHDRAWN as WITHDRAW
from joinedup.contracts import TABLES
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.ingest import finalise_ledger, ingest_source
from joinedup.ingest.load import SOURCES
from joinedup.settings import DEMO_KEY
from joinedup.truth import record_person_from_truth

# Not the demo key: the pipeline refuses that for data outside the generator's ranges,
# and these hand-written people have ordinary NHS numbers and postcodes.
KEY = b"joinedup-tests-hand-written-fixtures-key"
TODAY = date(2025, 1, 1)  # pins "a date of birth in the future"

# name: (nhs_number, given, family, dob, sex, postcode); every NHS number is modulus-11 valid.
PEOPLE = {
    "alice": ("4000000004", "Alice", "Smith", "1980-05-01", "2", "LS1 4AB"),  # everywhere
    "bob": ("4000000012", "Bob", "Jones", "1975-11-23", "1", "LS2 7XY"),  # national opt-out
    "carol": ("4000000020", "Carol", "Whitaker", "1990-02-14", "2", "LS6 1AA"),  # type 1
    "dan": ("4000000039", "Daniel", "Okafor", "1962-07-30", "1", "LS1 4AB"),  # withdrawn
    "eve": ("4000000047", "Evelyn", "Marsden", "1948-03-09", "2", "LS2 7XY"),  # obj, wd, obj
    "frank": ("4000000055", "Francis", "Oduya", "2001-09-04", "1", "LS9 9ZZ"),  # hospital merge
    "gina": ("4000000063", "Georgina", "Pemberton", "1933-12-25", "2", "LS6 1AA"),  # same-day
}
PRACTICE, PROVIDER, LA = "A81001", "RR8", "E08000035"


def gp_id(person: str) -> str:
    return f"G{list(PEOPLE).index(person) + 1:05d}"


def hosp_id(person: str) -> str:
    return f"H{list(PEOPLE).index(person) + 1:05d}"


def la_id(person: str) -> str:
    return f"S{list(PEOPLE).index(person) + 1:05d}"


def _demo(person: str, **change: str) -> dict[str, str]:
    nhs, given, family, dob, sex, postcode = PEOPLE[person]
    row = {
        "nhs_number": nhs,
        "given_name": given,
        "family_name": family,
        "date_of_birth": dob,
        "sex": sex,
        "postcode": postcode,
    }
    return row | change


def baseline_rows() -> dict[str, list[dict[str, str]]]:
    """Rows per qualified table name; every value a string as in a CSV."""
    gp_patients = [
        {"practice_code": PRACTICE, "gp_patient_id": gp_id(p), **_demo(p),
         "registration_date": "2010-01-01", "deregistration_date": ""}
        for p in PEOPLE
    ]  # fmt: skip
    gp_events = [
        {"practice_code": PRACTICE, "gp_patient_id": gp_id(p), "event_date": d, "snomed_code": c}
        for p, d, c in [
            ("alice", "2023-01-05", "38341003"),
            ("bob", "2023-02-01", "38341003"),
            ("carol", "2021-03-01", OBJECT),
            ("carol", "2022-04-01", "44054006"),
            ("dan", "2020-01-01", OBJECT),
            ("dan", "2021-01-01", WITHDRAW),
            ("eve", "2019-01-01", OBJECT),
            ("eve", "2020-01-01", WITHDRAW),
            ("eve", "2022-01-01", OBJECT),
            ("frank", "2023-06-01", "195967001"),
            ("gina", "2022-05-05", OBJECT),
            ("gina", "2022-05-05", WITHDRAW),
        ]
    ]

    def apc(p: str, spell: str, ep: str, adm: str, dis: str, **demo: str) -> dict[str, str]:
        return {
            "provider_code": PROVIDER, "hospital_patient_id": hosp_id(p), **_demo(p, **demo),
            "spell_id": spell, "episode_number": ep, "admission_date": adm,
            "discharge_date": dis, "admission_method": "21", "admission_source": "19",
            "discharge_destination": "19", "primary_diagnosis": "I21.9", "primary_procedure": "",
        }  # fmt: skip

    def ae(p: str, att: str, arr: str, dep: str, **demo: str) -> dict[str, str]:
        return {
            "provider_code": PROVIDER, "hospital_patient_id": hosp_id(p), **_demo(p, **demo),
            "attendance_id": att, "arrival_datetime": arr, "departure_datetime": dep,
            "disposal": "admitted",
        }  # fmt: skip

    apc_rows = [
        apc("alice", "SP0001", "1", "2023-03-01", "2023-03-04"),
        apc("alice", "SP0001", "2", "2023-03-04", "2023-03-10"),
        apc("bob", "SP0002", "1", "2023-05-01", "2023-05-02"),
        apc("carol", "SP0003", "1", "2023-07-01", "2023-07-03"),
        # Frank's latest row: NHS number blank, new postcode -> summary keeps both.
        apc("frank", "SP0006", "1", "2024-02-01", "2024-02-05", nhs_number="", postcode="LS9 9ZZ"),
    ]
    ae_rows = [
        ae("alice", "AE0001", "2023-03-01T09:15:00", "2023-03-01T13:00:00"),
        ae("bob", "AE0002", "2023-05-01T22:10:00", "2023-05-02T01:00:00"),
        ae("frank", "AE0006", "2022-11-11T11:11:00", "2022-11-11T15:00:00",
           postcode="LS1 4AB", family_name="Oduyah"),
    ]  # fmt: skip
    clients = [
        {"la_code": LA, "la_person_id": la_id(p), **_demo(p)} for p in ("alice", "bob", "dan")
    ]
    # Bob again under a second id with no NHS number: not removable by number.
    clients.append({"la_code": LA, "la_person_id": "S00099", **_demo("bob", nhs_number="")})
    sc_events = [
        {"la_code": LA, "la_person_id": i, "event_type": t, "service_type": s,
         "route_of_access": r, "event_start_date": d, "event_end_date": ""}
        for i, t, s, r, d in [
            (la_id("alice"), "request", "", "Discharge from hospital", "2023-03-12"),
            (la_id("alice"), "service", "Home care", "Discharge from hospital", "2023-03-20"),
            (la_id("bob"), "assessment", "", "Community", "2023-06-01"),
            ("S00099", "request", "", "Community", "2023-06-02"),
        ]
    ]  # fmt: skip
    return {
        "gp/patients": gp_patients,
        "gp/events": gp_events,
        "hospital/apc_episodes": apc_rows,
        "hospital/ae_attendances": ae_rows,
        "social_care/clients": clients,
        "social_care/events": sc_events,
        "opt_outs/national_data_opt_out": [
            {"nhs_number": PEOPLE["bob"][0]},
            {"nhs_number": "400 000 0071"},  # someone with no records here, spaced
        ],
        "reference/postcodes": [
            {"postcode": pc, "lsoa_code": lsoa, "imd_decile": imd, "la_code": LA}
            for pc, lsoa, imd in [
                ("LS1 4AB", "E01011111", "3"),
                ("LS2 7XY", "E01022222", "1"),
                ("LS6 1AA", "E01033333", "8"),
                ("LS9 9ZZ", "E01044444", "2"),
            ]
        ],
    }


def csv_bytes(header: list[str], rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return buf.getvalue().encode("utf-8")


def write_table(
    data_dir: Path,
    qualified: str,
    rows: list[dict[str, str]],
    filename: str | None = None,
    header: list[str] | None = None,
) -> Path:
    table = TABLES[qualified]
    path = Path(data_dir) / table.folder / (filename or f"{table.name}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_bytes(header or list(table.column_names), rows))
    return path


def write_landing(data_dir: Path, rows: dict[str, list[dict[str, str]]] | None = None) -> Path:
    for qualified, table_rows in (rows or baseline_rows()).items():
        write_table(data_dir, qualified, table_rows)
    return Path(data_dir)


def run_all(data_dir: Path, run_id: str = "run-1", key: bytes = KEY) -> dict:
    """The stages in DAG order (the DAG itself lives in dags/)."""
    summary = {"ingest": [ingest_source(data_dir, s, run_id, today=TODAY) for s in SOURCES]}
    summary["opt_outs"] = remove_opt_outs(data_dir, run_id)
    summary["pseudonymise"] = pseudonymise(data_dir, key, run_id)
    summary["ledger"] = finalise_ledger(data_dir, run_id)
    return summary


def pseudonymised_with_true_linkage(data_dir: Path, run_id: str = "t1") -> None:
    """A generated population through every stage before linkage, under the demo key and
    today's date, with the record_person a perfect linkage would write: for tests of the
    warehouse that should not depend on linkage quality."""
    key = DEMO_KEY.encode()
    for source in SOURCES:
        ingest_source(data_dir, source, run_id)
    remove_opt_outs(data_dir, run_id)
    pseudonymise(data_dir, key, run_id)
    finalise_ledger(data_dir, run_id)
    write_parquet(record_person_from_truth(data_dir, key), data_dir / RECORD_PERSON)


def landed_and_run(data_dir: Path, run_id: str = "run-1") -> Path:
    """The baseline extracts landed in ``data_dir`` and taken through every stage to the ledger."""
    write_landing(data_dir)
    run_all(data_dir, run_id)
    return data_dir


def ingest(data_dir: Path, source: str = "gp", run_id: str = "run-1") -> dict:
    """Ingest one source of hand-written extracts, on the fixtures' pinned today."""
    return ingest_source(data_dir, source, run_id, today=TODAY)


def quarantine(data_dir: Path, qualified: str) -> pl.DataFrame:
    """The rows of a landing table ("source.table") ingest quarantined."""
    return pl.read_parquet(quarantine_path(data_dir, TABLES[qualified]))


def loaded(data_dir: Path, qualified: str) -> pl.DataFrame:
    """The rows of a landing table ("source.table") ingest loaded."""
    return pl.read_parquet(validated_path(data_dir, TABLES[qualified]))
