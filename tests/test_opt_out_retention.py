"""Opted-out people's files: only what their readers use, and kept no longer than the limit.

``landing/_opted_out/`` (identifiable) and ``restricted/`` (keyed encodings) exist for
the run that writes them. They hold only the columns their readers take, and the
finalise task removes any of their files older than JOINEDUP_OPTED_OUT_RETENTION_DAYS,
listing each in the run record.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import KEY, run_all, write_landing
from pydantic import ValidationError

from joinedup import pipeline
from joinedup.catalogue import (
    OPTED_OUT,
    OPTED_OUT_REASONS,
    OPTED_OUT_RECORDS,
    RESTRICTED,
    RESTRICTED_OPTED_OUT_ENCODINGS,
)
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.deidentify.encodings import LINKAGE_ENCODINGS
from joinedup.ingest.records import DEMOGRAPHICS
from joinedup.settings import Settings

RUN = "run-1"
DAY = 86_400


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = write_landing(tmp_path / "data")
    run_all(data_dir, RUN)
    return data_dir


def _files(data_dir: Path) -> set[str]:
    return {
        p.relative_to(data_dir).as_posix()
        for zone in (OPTED_OUT, RESTRICTED)
        for p in zone.under(data_dir).rglob("*")
        if p.is_file()
    }


def _age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def _finalise(data_dir: Path, monkeypatch: pytest.MonkeyPatch, days: str) -> dict:
    monkeypatch.setenv("JOINEDUP_OPTED_OUT_RETENTION_DAYS", days)
    pipeline.finalise(data_dir, RUN)
    record = pipeline.run_summary_path(data_dir, RUN)
    return json.loads(record.read_text())["opt_out_retention"]


def test_the_files_hold_only_the_columns_their_readers_use(data_dir: Path) -> None:
    # pseudonymise encodes the demographics (and checks the demo key on number and postcode)
    assert pl.read_parquet_schema(data_dir / OPTED_OUT_RECORDS).names() == list(DEMOGRAPHICS)
    # remove_linked_opt_outs splits the ledger's opted-out rows by reason
    assert pl.read_parquet_schema(data_dir / OPTED_OUT_REASONS).names() == [
        "source", "org_code", "local_id", "reason",
    ]  # fmt: skip
    # linkage loads what it compares: no organisation, reason, birth month or status
    restricted = pl.read_parquet(data_dir / RESTRICTED_OPTED_OUT_ENCODINGS)
    assert restricted.columns == ["source", "record_token", *LINKAGE_ENCODINGS]
    assert restricted.height == 7  # every removed record with demographics (test_opt_outs)


def test_finalise_removes_the_files_older_than_the_limit_and_records_them(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _files(data_dir)
    assert {OPTED_OUT_RECORDS, OPTED_OUT_REASONS, RESTRICTED_OPTED_OUT_ENCODINGS} <= before
    _age(data_dir / OPTED_OUT_RECORDS, 31)
    _age(data_dir / RESTRICTED_OPTED_OUT_ENCODINGS, 45)
    _age(data_dir / OPTED_OUT_REASONS, 29)

    retention = _finalise(data_dir, monkeypatch, "30")

    assert retention["retention_days"] == 30
    removed = {r["path"]: r for r in retention["removed"]}
    assert set(removed) == {OPTED_OUT_RECORDS, RESTRICTED_OPTED_OUT_ENCODINGS}
    assert 30.9 <= removed[OPTED_OUT_RECORDS]["age_days"] <= 31.1
    assert removed[RESTRICTED_OPTED_OUT_ENCODINGS]["written"].endswith("+00:00")
    assert _files(data_dir) == before - set(removed)
    assert (data_dir / OPTED_OUT_REASONS).exists()


def test_a_run_within_the_limit_removes_nothing(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _files(data_dir)
    assert _finalise(data_dir, monkeypatch, "30") == {"retention_days": 30, "removed": []}
    assert _files(data_dir) == before


def test_zero_days_removes_them_at_the_end_of_the_run_and_a_rerun_recreates_them(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _files(data_dir)
    retention = _finalise(data_dir, monkeypatch, "0")
    assert {r["path"] for r in retention["removed"]} == before
    assert _files(data_dir) == set()
    # Re-running the run from its opt_outs task makes them again.
    remove_opt_outs(data_dir, RUN)
    pseudonymise(data_dir, KEY, RUN)
    assert _files(data_dir) == before


def test_a_negative_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOINEDUP_OPTED_OUT_RETENTION_DAYS", "-1")
    with pytest.raises(ValidationError, match="opted_out_retention_days"):
        Settings()
    monkeypatch.delenv("JOINEDUP_OPTED_OUT_RETENTION_DAYS")
    assert Settings().opted_out_retention_days == 30
