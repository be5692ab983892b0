"""The national data opt-out round trip: submit the NHS numbers landed, apply the service's reply.

Both ways, on real landing files, the real ingest and opt-out stages and real Parquet:
the submission holds exactly the valid numbers landed (owner-only, with a manifest), and
a reply missing some numbers removes exactly those people's records, alongside today's
list of opted-out numbers. A reply that cannot answer the latest submission is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import ingest_fixtures as fx
import polars as pl
import pytest
from typer.testing import CliRunner

from joinedup import catalogue
from joinedup.catalogue import OPTED_OUT_REASONS, RESTRICTED_OPTED_OUT_ENCODINGS, cleared_path
from joinedup.cli import app
from joinedup.contracts import TABLES
from joinedup.deidentify import remove_opt_outs
from joinedup.deidentify.encodings import Encoder
from joinedup.deidentify.ndop import (
    NOT_RETURNED,
    NdopRoundTripError,
    latest_submission,
    write_submission,
)
from joinedup.ingest import OptOutListMissingError, ingest_source
from joinedup.ingest.ledger import read_ledger
from joinedup.ingest.load import SOURCES

RUN = "run-1"
HANA = "4000000098"  # only in hospital, delivered spaced
IVAN = "4000000101"  # only on a GP row ingest quarantines
NOT_VALID = "4000000005"  # wrong check digit: cannot be submitted
OUTSIDER = "4000000071"  # on the opt-out list, in no delivery
DEMOGRAPHIC_FILES = {
    "landing/gp/patients.csv",
    "landing/hospital/apc_episodes.csv",
    "landing/hospital/ae_attendances.csv",
    "landing/social_care/clients.csv",
}


def rows() -> dict[str, list[dict[str, str]]]:
    """The baseline people, plus numbers that pin what is submitted and what is not."""
    out = fx.baseline_rows()
    apc = out["hospital/apc_episodes"]
    apc.append(apc[0] | {"hospital_patient_id": "H00008", "nhs_number": "400 000 0098",
                         "spell_id": "SP0008"})  # fmt: skip
    apc.append(apc[0] | {"hospital_patient_id": "H00009", "nhs_number": NOT_VALID,
                         "spell_id": "SP0009"})  # fmt: skip
    gp = out["gp/patients"]
    gp.append(gp[0] | {"gp_patient_id": "G00010", "nhs_number": IVAN, "registration_date": "never"})
    # Alice again in social care with no NHS number: the service cannot check this record.
    alice = next(r for r in out["social_care/clients"] if r["la_person_id"] == fx.la_id("alice"))
    out["social_care/clients"].append(alice | {"la_person_id": "S00098", "nhs_number": ""})
    return out


def token(source: str, org: str, local_id: str) -> str:
    return Encoder(fx.KEY).record_tokens(pl.Series([f"{source}|{org}|{local_id}"]))[0]


def records_of(person: str) -> set[str]:
    return {
        token("gp", fx.PRACTICE, fx.gp_id(person)),
        token("hospital", "RR8", fx.hosp_id(person)),
        token("social_care", fx.LA, fx.la_id(person)),
    }


def surviving_tokens(data_dir: Path) -> set[str]:
    out: set[str] = set()
    for source, names in catalogue.PSEUDONYMISED_TABLES.items():
        for name in names:
            path = catalogue.pseudonymised_path(data_dir, source, name)
            out |= set(pl.read_parquet(path)["record_token"])
    return out


def submitted(data_dir: Path, manifest: dict) -> list[str]:
    return (data_dir / manifest["submission"]).read_text().splitlines()


def write_reply(data_dir: Path, lines: list[str], name: str = "ndop_reply_1.dat") -> Path:
    path = data_dir / TABLES["opt_outs/national_data_opt_out"].folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}\n" for line in lines).encode())
    return path


def ingest_all(data_dir: Path) -> None:
    for source in SOURCES:
        ingest_source(data_dir, source, RUN, today=fx.TODAY)


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """The fixture population landed and its submission written by the real command."""
    data_dir = tmp_path_factory.mktemp("ndop")
    fx.write_landing(data_dir, rows())
    result = CliRunner().invoke(app, ["opt-outs", "submission", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return data_dir, latest_submission(data_dir), result.output


def test_the_submission_holds_exactly_the_valid_nhs_numbers_landed(submission) -> None:
    data_dir, manifest, output = submission
    lines = submitted(data_dir, manifest)
    people = {nhs for nhs, *_ in fx.PEOPLE.values()}
    # Every person with a valid number on a landed row; not the list's outsider, not the
    # invalid number; the spaced number as digits; the quarantined row's number too.
    assert [line.rstrip(",") for line in lines] == sorted(people | {HANA, IVAN})
    assert all(re.fullmatch(r"\d{10},", line) for line in lines)
    raw = (data_dir / manifest["submission"]).read_bytes()
    assert b"\r" not in raw and raw.endswith(b",\n")
    assert manifest["submission"] in output and "ndop_reply_" in output


def test_the_submission_is_owner_only_with_a_manifest_that_adds_up(submission) -> None:
    data_dir, manifest, _ = submission
    path = data_dir / manifest["submission"]
    assert path.parent == catalogue.OUTBOX.under(data_dir)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for written in path.parent.iterdir():
        assert stat.S_IMODE(written.stat().st_mode) == 0o600, written.name
    assert manifest["numbers"] == len(submitted(data_dir, manifest)) == len(fx.PEOPLE) + 2
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert {d["file"] for d in manifest["deliveries"]} == DEMOGRAPHIC_FILES
    for d in manifest["deliveries"]:
        assert d["sha256"] == hashlib.sha256((data_dir / d["file"]).read_bytes()).hexdigest()
    # Frank's blank APC row, the invalid number, Bob's and Alice's number-less clients.
    assert manifest["rows_without_valid_nhs_number"] == 4
    demographic = ("gp/patients", "hospital/apc_episodes", "hospital/ae_attendances",
                   "social_care/clients")  # fmt: skip
    assert manifest["rows_read"] == sum(len(rows()[t]) for t in demographic)


@pytest.fixture(scope="module")
def applied(submission) -> tuple[Path, dict]:
    """The service's reply without Alice's and Dan's numbers, applied by a full run."""
    data_dir, manifest, _ = submission
    withheld = {fx.PEOPLE["alice"][0], fx.PEOPLE["dan"][0]}
    write_reply(data_dir, [n for n in submitted(data_dir, manifest) if n[:10] not in withheld])
    return data_dir, fx.run_all(data_dir, RUN)


def test_a_number_not_returned_removes_that_persons_records_everywhere(applied) -> None:
    data_dir, summary = applied
    left = surviving_tokens(data_dir)
    for person in ("alice", "dan"):
        assert not records_of(person) & left, person
    # Returned, and no opt-out of any kind (Frank has no social care record).
    assert {
        token("gp", fx.PRACTICE, fx.gp_id("frank")),
        token("hospital", "RR8", fx.hosp_id("frank")),
    } <= left
    withheld = {fx.PEOPLE["alice"][0], fx.PEOPLE["dan"][0]}
    for name in ("gp/patients", "hospital/apc_episodes", "social_care/clients"):
        cleared = pl.read_parquet(cleared_path(data_dir, TABLES[name]))
        assert not set(cleared["nhs_number"].drop_nulls()) & withheld, name
    assert summary["opt_outs"]["national_opt_out_service"] == {
        "reply": "landing/opt_outs/ndop_reply_1.dat",
        "submission": summary["opt_outs"]["national_opt_out_service"]["submission"],
        "submitted": len(fx.PEOPLE) + 2,
        "returned": len(fx.PEOPLE),
        "not_returned": 2,
    }


def test_the_reason_is_recorded_and_the_ledger_balances(applied) -> None:
    data_dir, summary = applied
    assert summary["opt_outs"]["records_removed_by_reason"] == {
        "national_data_opt_out": 3,  # bob, from today's list, at GP, hospital and social care
        NOT_RETURNED: 5,  # alice at GP, hospital, social care; dan at GP, social care
        "type1_objection": 3,  # carol, eve, gina at GP
        "type1_objection_nhs_number": 1,  # carol's hospital record
    }
    reasons = pl.read_parquet(data_dir / OPTED_OUT_REASONS)
    alice = reasons.filter(pl.col("local_id").is_in([fx.gp_id("alice"), fx.la_id("alice")]))
    assert set(alice["reason"]) == {NOT_RETURNED}
    ledger = read_ledger(data_dir).filter(pl.col("run_id") == RUN)
    by_file = dict(zip(ledger["file"], ledger["rows_opted_out"], strict=True))
    assert by_file["landing/gp/patients.csv"] == 4 + 2  # bob, carol, eve, gina; alice, dan
    assert by_file["landing/hospital/apc_episodes.csv"] == 2 + 2  # bob, carol; alice's two
    assert by_file["landing/social_care/events.csv"] == 1 + 2  # bob's; alice's two
    total = ledger["rows_loaded"] + ledger["rows_quarantined"] + ledger["rows_opted_out"]
    assert (ledger["rows_received"] == total).all()


def test_a_record_the_service_cannot_check_is_left_to_linkage(applied) -> None:
    """Alice's number-less record stays at this stage; her removed records' encodings are
    restricted, so linkage finds it as it finds any opted-out person's (today's rule)."""
    data_dir, _ = applied
    orphan_token = token("social_care", fx.LA, "S00098")
    assert orphan_token in surviving_tokens(data_dir)
    restricted = pl.read_parquet(data_dir / RESTRICTED_OPTED_OUT_ENCODINGS)
    assert records_of("alice") <= set(restricted["record_token"])
    clients = pl.read_parquet(catalogue.pseudonymised_path(data_dir, "social_care", "clients"))
    encoder = Encoder(fx.KEY)
    orphan = encoder.unseal(clients.filter(pl.col("record_token") == orphan_token))
    cols = ["given_name_token", "family_name_token", "date_of_birth_token", "postcode_token"]
    assert orphan.select(cols).row(0) in set(encoder.unseal(restricted).select(cols).rows())


@pytest.fixture
def landed(tmp_path: Path) -> tuple[Path, dict]:
    fx.write_landing(tmp_path, rows())
    return tmp_path, write_submission(tmp_path)


def refused(data_dir: Path, match: str) -> None:
    ingest_all(data_dir)
    with pytest.raises(NdopRoundTripError, match=match):
        remove_opt_outs(data_dir, RUN)
    # Refused before anything is cleared: pseudonymise has nothing to read.
    assert not cleared_path(data_dir, TABLES["gp/patients"]).exists()


def test_a_reply_with_a_number_never_submitted_is_refused(landed) -> None:
    data_dir, manifest = landed
    lines = submitted(data_dir, manifest)
    write_reply(data_dir, [*lines[:3], f"{OUTSIDER},", *lines[3:]])
    refused(data_dir, r"ndop_reply_1\.dat line 4 .*did not hold.*answers another submission")


def test_a_reply_older_than_the_submission_is_refused(landed) -> None:
    data_dir, manifest = landed
    reply = write_reply(data_dir, submitted(data_dir, manifest))
    day_before = reply.stat().st_mtime - 86_400
    os.utime(reply, (day_before, day_before))
    refused(data_dir, "older than the latest submission")


def test_a_delivery_changed_after_the_submission_is_refused(landed) -> None:
    data_dir, manifest = landed
    write_reply(data_dir, submitted(data_dir, manifest))
    changed = rows()
    changed["social_care/clients"].append(
        changed["social_care/clients"][0] | {"la_person_id": "S00200", "nhs_number": "4000000128"}
    )
    fx.write_table(data_dir, "social_care/clients", changed["social_care/clients"])
    refused(data_dir, r"landing/social_care/clients\.csv .*changed after.*new submission")


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (["The file contains one or more invalid NHS Numbers."], "did not check the submission"),
        ([f"{fx.PEOPLE['alice'][0]},", "40000000,"], r"line 2 .*not a valid NHS number"),
    ],
)
def test_a_reply_the_service_refused_or_that_is_not_a_reply_is_refused(
    landed, reply: list[str], match: str
) -> None:
    data_dir, _ = landed
    write_reply(data_dir, reply)
    refused(data_dir, match)


def test_two_replies_or_a_reply_without_a_submission_are_refused(tmp_path: Path) -> None:
    fx.write_landing(tmp_path, rows())
    write_reply(tmp_path, [f"{fx.PEOPLE['alice'][0]},"])
    refused(tmp_path, "no submission")
    manifest = write_submission(tmp_path)
    write_reply(tmp_path, submitted(tmp_path, manifest), "ndop_reply_2.dat")
    refused(tmp_path, r"more than one national data opt-out reply .*ndop_reply_1\.dat")


def test_a_reply_stands_in_for_the_list_and_without_either_the_stage_stops(
    tmp_path: Path,
) -> None:
    data = rows()
    del data["opt_outs/national_data_opt_out"]
    fx.write_landing(tmp_path, data)
    ingest_all(tmp_path)
    with pytest.raises(OptOutListMissingError, match="reply to a submission"):
        remove_opt_outs(tmp_path, RUN)
    manifest = write_submission(tmp_path)
    bob = fx.PEOPLE["bob"][0]
    write_reply(tmp_path, [n for n in submitted(tmp_path, manifest) if not n.startswith(bob)])
    summary = remove_opt_outs(tmp_path, RUN)
    assert summary["national_opt_out_numbers"] == 0
    assert summary["records_removed_by_reason"][NOT_RETURNED] == 3  # bob's, as by the list
    assert "national_data_opt_out" not in summary["records_removed_by_reason"]


def test_without_a_reply_the_list_works_as_before(tmp_path: Path) -> None:
    fx.write_landing(tmp_path, rows())
    write_submission(tmp_path)  # a submission sent, its reply not back yet
    ingest_all(tmp_path)
    summary = remove_opt_outs(tmp_path, RUN)
    assert summary["national_opt_out_service"] is None
    assert summary["records_removed_by_reason"]["national_data_opt_out"] == 3
    assert NOT_RETURNED not in summary["records_removed_by_reason"]


def test_validated_data_the_submission_never_saw_is_refused(tmp_path: Path) -> None:
    """Ingested before a delivery was taken out, submitted after: its people were never
    checked, so the stage stops rather than keep them."""
    fx.write_landing(tmp_path, rows())
    extra = fx.write_table(
        tmp_path,
        "social_care/clients",
        [rows()["social_care/clients"][0] | {"la_person_id": "S00300", "nhs_number": "4000000136"}],
        filename="clients_extra.csv",
    )
    ingest_all(tmp_path)
    extra.unlink()
    manifest = write_submission(tmp_path)
    write_reply(tmp_path, submitted(tmp_path, manifest))
    with pytest.raises(NdopRoundTripError, match=r"1 NHS number\(s\) .*not in the latest"):
        remove_opt_outs(tmp_path, RUN)


def test_a_manifest_that_is_not_one_is_refused(landed) -> None:
    data_dir, manifest = landed
    write_reply(data_dir, submitted(data_dir, manifest))
    (catalogue.OUTBOX.under(data_dir) / "ndop_submission_x.json").write_text("{not json")
    refused(data_dir, r"outbox/ndop_submission_x\.json: not a submission manifest")


def test_the_landing_gate_takes_a_reply_in_place_of_the_list(tmp_path: Path) -> None:
    from joinedup.quality import run_gates
    from joinedup.quality.gates import QualityGateError

    data = rows()
    del data["opt_outs/national_data_opt_out"]
    fx.write_landing(tmp_path, data)
    manifest = write_submission(tmp_path)
    ingest_all(tmp_path)
    bob = fx.PEOPLE["bob"][0]
    write_reply(tmp_path, [n for n in submitted(tmp_path, manifest) if not n.startswith(bob)])
    gate = run_gates(tmp_path, "landing", RUN, run_date=fx.TODAY)
    assert gate["passed"]
    # A reply that returns nobody is as empty as an empty list: every person would go.
    write_reply(tmp_path, [])
    with pytest.raises(QualityGateError, match=r"landing\.opt_outs\.national_data_opt_out"):
        run_gates(tmp_path, "landing", RUN, run_date=fx.TODAY)
