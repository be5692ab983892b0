"""Linkage finds an opted-out person's record that carries a wrong but valid NHS number.

Ingest removes every record carrying an opted-out person's NHS number; a record of
theirs keyed with another valid number (one that belongs to nobody) passes ingest,
and only linkage can find it. Planted in a synthetic population, linked by the real
model: that record goes, and people who merely resemble an opted-out person stay (a
namesake at the same address with another date of birth, and a twin: same family
name, date of birth and address, another given name), each with a number of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import KEY, run_all

from joinedup.catalogue import LINKAGE_OPTED_OUT_RECORDS, LINKAGE_SUMMARY, RECORD_PERSON
from joinedup.deidentify.encodings import Encoder
from joinedup.linkage import link, remove_linked_opt_outs
from joinedup.linkage.link import NO_NHS_NUMBER, UNCONFIRMED_NHS_NUMBER
from joinedup.nhs_number import check_digit
from joinedup.synth import generate

RUN = "run-1"
HOSPITAL = ("landing/hospital/apc_episodes.csv", "landing/hospital/ae_attendances.csv")
CLIENTS = "landing/social_care/clients.csv"


def _csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _unissued_numbers(taken: set[str], n: int) -> list[str]:
    """Valid (modulus 11) NHS numbers in the synthetic range that nobody holds."""
    out = []
    base = 999_000_000
    while len(out) < n:
        base += 1
        check = check_digit(str(base))
        number = f"{base}{check}"
        if check is not None and number not in taken:
            out.append(number)
    return out


def _token(source: str, org: str, local: str) -> str:
    return Encoder(KEY).record_tokens(pl.Series([f"{source}|{org}|{local}"]))[0]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data_dir = tmp_path_factory.mktemp("wrong_number") / "population"
    generate(data_dir, people=3000, seed=9, layout="generic")  # edits its generic files
    truth = _csv(data_dir / "truth/records.csv")
    gp = _csv(data_dir / "landing/gp/patients.csv")
    hospital = {name: _csv(data_dir / name) for name in HOSPITAL}
    clients = _csv(data_dir / CLIENTS)
    taken = set(gp["nhs_number"]) | set(clients["nhs_number"])
    for frame in hospital.values():
        taken |= set(frame["nhs_number"])
    wrong, namesake_number, twin_number = _unissued_numbers(taken, 3)

    # An opted-out person whose hospital record says what their GP record says.
    demographics = ["nhs_number", "given_name", "family_name", "date_of_birth", "postcode"]
    opted = truth.filter(pl.col("opted_out") == "true")
    gp_opted = gp.join(
        opted.filter(pl.col("source") == "gp").select(
            pl.col("org_code").alias("practice_code"),
            pl.col("local_id").alias("gp_patient_id"),
            "person_key",
        ),
        on=["practice_code", "gp_patient_id"],
    )
    episodes = hospital[HOSPITAL[0]]
    match = (
        episodes.join(
            opted.filter(pl.col("source") == "hospital").select(
                pl.col("org_code").alias("provider_code"),
                pl.col("local_id").alias("hospital_patient_id"),
                "person_key",
            ),
            on=["provider_code", "hospital_patient_id"],
        )
        .join(gp_opted.select("person_key", *demographics), on=["person_key", *demographics])
        .sort("person_key", "hospital_patient_id")
    )
    assert match.height > 0, "the population should hold an opted-out person in hospital"
    person = match.row(0, named=True)
    record = pl.col("provider_code").eq(person["provider_code"]) & pl.col("hospital_patient_id").eq(
        person["hospital_patient_id"]
    )
    for name, frame in hospital.items():
        # The keying error: every row of the hospital record carries the wrong number.
        changed = frame.with_columns(
            pl.when(record).then(pl.lit(wrong)).otherwise("nhs_number").alias("nhs_number")
        )
        changed.write_csv(data_dir / name)

    # People who resemble the opted-out person and did not opt out, each with their number.
    year, month, day = (int(x) for x in person["date_of_birth"].split("-"))
    other_dob = f"{year - 7:04d}-{month % 12 + 1:02d}-{(day % 27) + 1:02d}"
    la = clients["la_code"][0]
    like = {
        "la_code": la,
        "given_name": person["given_name"],
        "family_name": person["family_name"],
        "sex": person["sex"],
        "postcode": person["postcode"],
    }
    given = "ZEBEDEE" if person["given_name"] != "ZEBEDEE" else "QUENTIN"
    planted_rows = pl.DataFrame(
        [
            like | {"la_person_id": "C999990001", "nhs_number": namesake_number,
                    "date_of_birth": other_dob},
            like | {"la_person_id": "C999990002", "nhs_number": twin_number,
                    "date_of_birth": person["date_of_birth"], "given_name": given},
        ]
    ).select(clients.columns)  # fmt: skip
    pl.concat([clients, planted_rows]).write_csv(data_dir / CLIENTS)

    run_all(data_dir, RUN)
    link(data_dir, RUN, KEY, charts=False)
    summary = remove_linked_opt_outs(data_dir, KEY, RUN)
    return {
        "data_dir": data_dir,
        "summary": summary,
        "wrong": _token("hospital", person["provider_code"], person["hospital_patient_id"]),
        "namesake": _token("social_care", la, "C999990001"),
        "twin": _token("social_care", la, "C999990002"),
    }


def _linked_out(data_dir: Path) -> set[str]:
    return set(pl.read_parquet(data_dir / LINKAGE_OPTED_OUT_RECORDS)["record_token"])


def _published(data_dir: Path) -> set[str]:
    return set(pl.read_parquet(data_dir / RECORD_PERSON)["record_token"])


def test_a_record_with_a_wrong_but_valid_number_is_removed(planted: dict) -> None:
    data_dir = planted["data_dir"]
    assert planted["wrong"] in _linked_out(data_dir)
    assert planted["wrong"] not in _published(data_dir)
    patients = pl.read_parquet(data_dir / "pseudonymised/hospital/patients.parquet")
    assert planted["wrong"] not in set(patients["record_token"])
    assert planted["summary"]["records_removed"].get("hospital", 0) >= 1


def test_a_namesake_and_a_twin_with_numbers_of_their_own_are_not_removed(planted: dict) -> None:
    data_dir = planted["data_dir"]
    for who in ("namesake", "twin"):
        assert planted[who] not in _linked_out(data_dir), who
        assert planted[who] in _published(data_dir), who


def test_the_linkage_summary_counts_both_kinds_of_record_it_scored(planted: dict) -> None:
    summary = json.loads((planted["data_dir"] / LINKAGE_SUMMARY).read_text())
    scored = summary["records_scored_for_opt_out"]
    assert scored[NO_NHS_NUMBER] > 0
    # The planted records with numbers of their own are among those scored.
    assert scored[UNCONFIRMED_NHS_NUMBER] >= 3
