"""Ingest, opt-outs and pseudonymisation on a generated population checked against its truth."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import KEY

from joinedup import catalogue
from joinedup.catalogue import OPTED_OUT_RECORDS
from joinedup.contracts import SNOMED_TYPE1_OBJECTION, SNOMED_TYPE1_WITHDRAWN
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.deidentify.encodings import Encoder
from joinedup.ingest import SOURCES, finalise_ledger, ingest_source
from joinedup.privacy.scan import scan
from joinedup.synth import generate
from joinedup.truth import truth_records

RUN = "synthetic-1"
# "source/table", from the catalogue: record grain first, then every event table.
RECORD_TABLES = tuple(f"{s}/{t}" for s, t in catalogue.RECORD_TABLES.items())
EVENT_TABLES = tuple(
    f"{s}/{t}" for s, names in catalogue.PSEUDONYMISED_TABLES.items() for t in names[1:]
)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    data_dir = tmp_path_factory.mktemp("synthetic")
    generate(data_dir, people=2000, seed=7)
    summary = {"ingest": [ingest_source(data_dir, s, RUN) for s in SOURCES]}
    summary["opt_outs"] = remove_opt_outs(data_dir, RUN)
    summary["pseudonymise"] = pseudonymise(data_dir, KEY, RUN)
    summary["ledger"] = finalise_ledger(data_dir, RUN)
    return data_dir, summary


def records(data_dir: Path) -> pl.DataFrame:
    return pl.concat(
        pl.read_parquet(data_dir / f"pseudonymised/{name}.parquet").select(
            "source", "record_token", "nhs_number_status"
        )
        for name in RECORD_TABLES
    )


def test_ledger_balances_and_opt_outs_are_counted(population) -> None:
    _, summary = population
    ledger = summary["ledger"]
    assert ledger["rows_received"] == (
        ledger["rows_loaded"] + ledger["rows_quarantined"] + ledger["rows_opted_out"]
    )
    assert ledger["rows_opted_out"] > 0
    assert summary["opt_outs"]["type1_objecting_records"] > 0
    assert summary["opt_outs"]["type1_withdrawn"] > 0


def _latest_type1_code_objects(data_dir: Path) -> pl.DataFrame:
    """GP records (org_code, local_id) whose latest type 1 code in landing is an objection."""
    codes = [SNOMED_TYPE1_OBJECTION, SNOMED_TYPE1_WITHDRAWN]
    events = pl.concat(
        pl.read_csv(p, infer_schema=False)
        for p in sorted((data_dir / "landing/gp").glob("events*.csv"))
    )
    return (
        events.filter(pl.col("snomed_code").is_in(codes))
        .sort("event_date")
        .group_by("practice_code", "gp_patient_id")
        .agg(pl.col("snomed_code").last())
        .filter(pl.col("snomed_code") == SNOMED_TYPE1_OBJECTION)
        .select(
            pl.col("practice_code").alias("org_code"), pl.col("gp_patient_id").alias("local_id")
        )
    )


def test_no_opted_out_person_keeps_a_record_identifiable_as_theirs(population) -> None:
    """Survivors of opted-out people carry no valid NHS number and no type 1 objection.

    Ingest can remove only what the record itself shows: a number on the national
    list, or a type 1 objection. A record with no valid number of a person on the
    national list (GP records too: ``nhs_blank`` is 0.2% there) is removed later, by
    linkage (test_linked_opt_outs), so it may survive this stage.
    """
    data_dir, _ = population
    truth = truth_records(data_dir, KEY)
    out = records(data_dir)
    assert out.height > 1000
    surviving = truth.filter(pl.col("opted_out")).join(out, on=["source", "record_token"])
    assert surviving.filter(pl.col("nhs_number_status") == "valid").is_empty()
    objecting = _latest_type1_code_objects(data_dir)
    assert objecting.height > 0  # the check below can fail
    messages = pl.concat_str(pl.lit("gp"), "org_code", "local_id", separator="|")
    objecting_tokens = Encoder(KEY).record_tokens(objecting.select(messages)["literal"])
    assert not out["record_token"].is_in(objecting_tokens.implode()).any()
    removed_tokens = truth.filter(pl.col("opted_out")).join(
        out, on=["source", "record_token"], how="anti"
    )["record_token"]
    for name in EVENT_TABLES:
        events = pl.read_parquet(data_dir / f"pseudonymised/{name}.parquet")
        assert not events["record_token"].is_in(removed_tokens.implode()).any(), name


def test_nobody_is_removed_who_did_not_opt_out(population) -> None:
    data_dir, _ = population
    removed = pl.read_parquet(data_dir / OPTED_OUT_RECORDS)
    truth = pl.read_csv(data_dir / "truth/records.csv", infer_schema=False)
    joined = removed.join(truth, on=["source", "org_code", "local_id"], how="left", coalesce=True)
    assert joined["opted_out"].to_list() == ["true"] * removed.height


def test_privacy_scan_finds_nothing_in_pseudonymised_but_finds_a_planted_name(
    population, tmp_path: Path
) -> None:
    data_dir, _ = population
    pseudonymised = data_dir / "pseudonymised"
    assert scan(data_dir / "landing", [pseudonymised, data_dir / "restricted"]).is_empty()
    surname = pl.read_csv(data_dir / "landing/gp/patients.csv", infer_schema=False)["family_name"][
        0
    ]
    planted = tmp_path / "planted.parquet"
    clients = pl.read_parquet(pseudonymised / "social_care/clients.parquet")
    clients.with_columns(pl.lit(f"carer: {surname}").alias("notes")).write_parquet(planted)
    found = scan(data_dir / "landing", [pseudonymised, planted])
    assert found.select("column", "kind", "value").unique().rows() == [
        ("notes", "name", surname.lower())
    ]
