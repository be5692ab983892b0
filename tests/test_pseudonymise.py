"""Pseudonymisation: exact tokens, linkage encodings, no identifiers out, deterministic bytes."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from ingest_fixtures import KEY, PRACTICE, gp_id, hosp_id, landed_and_run, run_all, write_landing

from joinedup.catalogue import RESTRICTED_OPTED_OUT_ENCODINGS
from joinedup.deidentify import pseudonymise
from joinedup.deidentify.encodings import (
    BLOOM_BITS,
    LINKAGE_ENCODINGS,
    SEALED_COLUMNS,
    TOKEN_KINDS,
    Encoder,
    bloom_filters,
    derive_key,
    dice,
    encode_demographics,
    soundex,
)
from joinedup.deidentify.pseudonymise import GP_EXTRA, RECORD_SCHEMA
from joinedup.ingest.ledger import read_ledger
from joinedup.ingest.records import DEMOGRAPHICS
from joinedup.privacy.scan import scan
from joinedup.settings import MissingKeyError

RUN = "run-1"
EVENT_SCHEMAS = {
    "gp/events": {
        "record_token": pl.String, "practice_code": pl.String, "event_date": pl.Date,
        "snomed_code": pl.String,
    },
    "hospital/apc_episodes": {
        "record_token": pl.String, "provider_code": pl.String, "spell_token": pl.String,
        "episode_number": pl.Int64, "admission_date": pl.Date, "discharge_date": pl.Date,
        "admission_method": pl.String, "admission_source": pl.String,
        "discharge_destination": pl.String, "primary_diagnosis": pl.String,
        "primary_procedure": pl.String, "episode_start_date": pl.Date,
        "episode_end_date": pl.Date, "discharge_method": pl.String,
        "patient_classification": pl.String, "main_specialty": pl.String,
        "secondary_diagnoses": pl.String, "secondary_procedures": pl.String,
        "discharge_ready_date": pl.Date,
    },
    "hospital/ae_attendances": {
        "record_token": pl.String, "provider_code": pl.String, "attendance_token": pl.String,
        "arrival_datetime": pl.Datetime("us"), "departure_datetime": pl.Datetime("us"),
        "disposal": pl.String, "department_type": pl.String,
        "arrival_mode_snomed": pl.String, "chief_complaint_snomed": pl.String,
        "acuity_snomed": pl.String, "discharge_status_snomed": pl.String,
        "discharge_destination_snomed": pl.String, "diagnosis_snomed": pl.String,
    },
    "social_care/events": {
        "record_token": pl.String, "la_code": pl.String, "event_type": pl.String,
        "service_type": pl.String, "route_of_access": pl.String, "event_start_date": pl.Date,
        "event_end_date": pl.Date, "client_type": pl.String, "cld_service_type": pl.String,
        "service_component": pl.String, "delivery_mechanism": pl.String,
        "assessment_type": pl.String, "event_outcome": pl.String,
        "primary_support_reason": pl.String, "accommodation_status": pl.String,
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return landed_and_run(tmp_path_factory.mktemp("pseudo"), RUN)


def read(data_dir: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(data_dir / f"pseudonymised/{name}.parquet")


def test_record_token_is_the_contract_hmac(data_dir: Path) -> None:
    # Keyed with the record sub-key HMAC(key, "joinedup/record/v1"), as docs/contracts.md says.
    record_key = hmac.new(KEY, b"joinedup/record/v1", hashlib.sha256).digest()
    expected = hmac.new(record_key, f"gp|{PRACTICE}|{gp_id('alice')}".encode(), hashlib.sha256)
    assert expected.hexdigest() in read(data_dir, "gp/patients")["record_token"].to_list()
    assert read(data_dir, "gp/patients")["record_token"].str.contains("^[0-9a-f]{64}$").all()


def test_output_schemas_are_exact(data_dir: Path) -> None:
    assert read(data_dir, "gp/patients").schema == pl.Schema(RECORD_SCHEMA | GP_EXTRA)
    assert read(data_dir, "hospital/patients").schema == pl.Schema(RECORD_SCHEMA)
    assert read(data_dir, "social_care/clients").schema == pl.Schema(RECORD_SCHEMA)
    for name, schema in EVENT_SCHEMAS.items():
        assert read(data_dir, name).schema == pl.Schema(schema), name
    restricted = pl.read_parquet(data_dir / RESTRICTED_OPTED_OUT_ENCODINGS)
    # What linkage reads of it, and no more.
    assert restricted.columns == ["source", "record_token", *LINKAGE_ENCODINGS]


def test_no_identifier_reaches_pseudonymised(data_dir: Path) -> None:
    assert scan(data_dir / "landing", [data_dir / "pseudonymised"]).is_empty()
    raw = {"nhs_number", "given_name", "family_name", "date_of_birth", "postcode"}
    local = {"gp_patient_id", "hospital_patient_id", "la_person_id", "spell_id", "attendance_id"}
    for path in (data_dir / "pseudonymised").rglob("*.parquet"):
        assert not (raw | local) & set(pl.read_parquet_schema(path)), path
    assert read(data_dir, "gp/patients")["birth_month"].str.contains(r"^\d{4}-\d{2}$").all()


def test_sealed_encodings_are_unique_per_record_and_unseal_with_the_key(data_dir: Path) -> None:
    stored = read(data_dir, "hospital/patients")
    enc = Encoder(KEY)
    for column in SEALED_COLUMNS:
        present = stored[column].drop_nulls()
        # Sealed: every stored value differs, equal dates or not (alice's and frank's
        # postcode districts are both LS...), and is still a 64-hex token.
        assert present.n_unique() == present.len(), column
        assert present.str.contains("^[0-9a-f]{64}$").all(), column
    unsealed = enc.unseal(stored)
    alice_dob = enc.dob_tokens(pl.Series(["d|1980-05-01"]))[0]
    assert alice_dob in unsealed["date_of_birth_token"].to_list()
    assert alice_dob not in stored["date_of_birth_token"].to_list()
    assert enc.seal(unsealed).equals(stored)
    # Another key unseals to values that match nothing the right key makes.
    wrong = Encoder(b"another-key-of-16-bytes").unseal(stored)
    assert alice_dob not in wrong["date_of_birth_token"].to_list()


def test_hospital_record_takes_the_most_recent_valid_value_per_field(data_dir: Path) -> None:
    """Frank: latest APC row has no NHS number and a new postcode and surname spelling."""
    hospital = read(data_dir, "hospital/patients")
    frank_token = Encoder(KEY).record_tokens(pl.Series([f"hospital|RR8|{hosp_id('frank')}"]))[0]
    frank = hospital.filter(pl.col("record_token") == frank_token).row(0, named=True)
    enc = Encoder(KEY)
    assert frank["nhs_number_status"] == "valid"  # from the older A&E row
    assert frank["nhs_number_token"] == enc.nhs_tokens(pl.Series(["4000000055"]))[0]
    assert frank["lsoa_code"] == "E01044444"  # LS9 9ZZ, the newer address
    assert frank["family_name_token"] == enc.name_tokens(pl.Series(["ODUYA"]))[0]
    assert hospital.height == 2  # alice and frank survive opt-outs


def test_missing_key_is_a_clear_error(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOINEDUP_PSEUDONYMISATION_KEY", raising=False)
    monkeypatch.delenv("JOINEDUP_PSEUDONYMISATION_KEY_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(MissingKeyError, match="JOINEDUP_PSEUDONYMISATION_KEY"):
        pseudonymise(data_dir, None, RUN)
    with pytest.raises(MissingKeyError, match="shorter than 16 bytes"):
        pseudonymise(data_dir, b"short", RUN)
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY.decode() + "\n")
    key_file.chmod(0o600)  # a key file others can read is refused (tests/test_access.py)
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY_FILE", str(key_file))
    before = (data_dir / "pseudonymised/gp/patients.parquet").read_bytes()
    pseudonymise(data_dir, None, RUN)
    assert (data_dir / "pseudonymised/gp/patients.parquet").read_bytes() == before


def test_key_never_appears_in_any_output_or_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_landing(tmp_path)
    with caplog.at_level(logging.DEBUG):
        run_all(tmp_path, RUN)
    secrets = [KEY, KEY.hex().encode(), KEY.decode().encode("utf-16-le")]
    secrets += [derive_key(KEY, p) for p in TOKEN_KINDS]
    secrets += [s.hex().encode() for s in secrets]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        content = path.read_bytes()
        assert not any(s in content for s in secrets), path
    assert KEY.decode() not in caplog.text
    assert KEY.decode() not in repr(Encoder(KEY))


def test_same_input_gives_byte_identical_outputs(tmp_path: Path) -> None:
    def digest(root: Path) -> dict[str, str]:
        # Provenance records when each file first arrived (ledger first_seen_at, the
        # runs/ markers): the only bytes that differ between two directories.
        files = {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.parent.name != "runs"
        }
        ledger = read_ledger(root).drop("first_seen_at")
        files["ledger.csv"] = hashlib.sha256(ledger.write_csv().encode()).hexdigest()
        return files

    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        write_landing(d)
        run_all(d, RUN)
    once = digest(first)
    assert once == digest(second)
    run_all(first, RUN)
    assert digest(first) == once
    assert any(name.startswith("pseudonymised/") for name in once)


# --- encodings ---------------------------------------------------------------


def demographics(rows: list[dict]) -> pl.DataFrame:
    base = {
        "source": "gp", "org_code": "A1", "local_id": "1", "nhs_number": None,
        "nhs_number_status": "blank", "given_name": "Jon", "family_name": "Smith",
        "date_of_birth": date(1980, 5, 1), "date_of_birth_status": "valid", "sex": "1",
        "sex_status": "valid", "postcode": "LS1 4AB", "postcode_status": "valid",
    }  # fmt: skip
    return pl.DataFrame([base | r for r in rows], schema=DEMOGRAPHICS)


def test_soundex_matches_the_reference_algorithm() -> None:
    cases = {
        "ROBERT": "R163", "RUPERT": "R163", "RUBIN": "R150", "ASHCRAFT": "A261",
        "ASHCROFT": "A261", "TYMCZAK": "T522", "PFISTER": "P236", "HONEYMAN": "H555",
        "LEE": "L000", "GUTIERREZ": "G362", "JACKSON": "J250",
    }  # fmt: skip
    assert {name: soundex(name) for name in cases} == cases


def test_bloom_filters_give_dice_that_separates_similar_names() -> None:
    smith, smyth, jones = bloom_filters(["SMITH", "SMYTH", "JONES"], derive_key(KEY, "name_bloom"))
    assert {len(smith), len(smyth), len(jones)} == {BLOOM_BITS}
    assert set(smith) <= {"0", "1"}
    assert dice(smith, smyth) > 0.45 > dice(smith, jones)
    # DuckDB compares them as BIT strings, which is how linkage will.
    con = duckdb.connect()
    sql = (
        "SELECT 2 * bit_count(a::BIT & b::BIT) / (bit_count(a::BIT) + bit_count(b::BIT)) "
        "FROM (SELECT ? AS a, ? AS b)"
    )
    assert con.execute(sql, [smith, smyth]).fetchall()[0][0] == pytest.approx(dice(smith, smyth))
    # Keyed: another key gives unrelated filters.
    other = bloom_filters(["SMITH"], derive_key(b"another-key-of-16-bytes", "name_bloom"))[0]
    assert other != smith


def test_linkage_encodings_expose_partial_agreement() -> None:
    frame = demographics(
        [
            {"local_id": "a", "given_name": "Zoë", "family_name": "O'Brien"},
            {"local_id": "b", "given_name": "zoe", "family_name": "OBRIEN"},  # same once normalised
            {"local_id": "c", "given_name": "OBrien", "family_name": "Zoe"},  # names swapped
            {"local_id": "d", "date_of_birth": date(1980, 1, 5)},  # day and month swapped
            {"local_id": "e", "date_of_birth": date(1980, 5, 2)},  # day wrong
            {"local_id": "f", "postcode": "LS1 4AZ"},  # same sector
            {"local_id": "g", "given_name": "John", "postcode": None, "postcode_status": "invalid"},
        ]
    )
    out = encode_demographics(frame, Encoder(KEY))
    a, b, c, d, e, f, g = out.iter_rows(named=True)
    assert (a["given_name_token"], a["family_name_token"]) == (
        b["given_name_token"],
        b["family_name_token"],
    )
    assert (c["given_name_token"], c["family_name_token"]) == (
        a["family_name_token"],
        a["given_name_token"],
    )
    assert d["date_of_birth_swap_token"] == a["date_of_birth_token"]
    assert d["date_of_birth_token"] != a["date_of_birth_token"]
    assert e["date_of_birth_ym_token"] == a["date_of_birth_ym_token"]
    assert e["date_of_birth_md_token"] != a["date_of_birth_md_token"]
    assert f["postcode_sector_token"] == a["postcode_sector_token"]
    assert f["postcode_token"] != a["postcode_token"]
    assert g["given_name_soundex_token"] != a["given_name_soundex_token"]  # J500 vs Z000
    assert g["postcode_token"] is None and g["postcode_status"] == "invalid"
    assert a["birth_month"] == "1980-05"
    # Purposes are separated: the same text never yields the same token in two roles.
    enc = Encoder(KEY)
    text = pl.Series(["SMITH"])
    tokens = {
        enc.name_tokens(text)[0],
        enc.nhs_tokens(text)[0],
        enc.postcode_tokens(text)[0],
        enc.dob_tokens(text)[0],
        enc.record_tokens(text)[0],
        enc.event_tokens(text)[0],
    }
    assert len(tokens) == 6
