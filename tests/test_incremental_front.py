"""Incremental runs, the front of the pipeline (issue 23): a run reads only what is new.

A generated landing is delivered in two steps (the last month's hospital files and
the last social care quarter held back, then delivered), taking the real stages
(ingest, opt-outs, pseudonymise, the ledger's balance) through each step. The second
run must read only the new files, and every output must be byte for byte what a full
rebuild (``full_rebuild=True``, the cache ignored) writes for the same landing and
ledger history, and frame-equal to a fresh data directory's.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import KEY

from joinedup.catalogue import INGEST_CACHE, LANDING
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.ingest import SOURCES, finalise_ledger, ingest_source
from joinedup.ingest.ledger import COUNTS, read_ledger
from joinedup.privacy.permissions import is_owner_only
from joinedup.synth import generate

# Held back from the first delivery: the last month of HES APC, ECDS and GP events, the last
# CLD quarter.
LATE = (
    "hospital/hes_apc_202603.csv",
    "hospital/ecds_202603.csv",
    "social_care/cld_2025q4.csv",
    "gp/events_202603.csv",
)
# What every front stage writes: compared byte for byte.
OUTPUTS = ("landing/_validated", "quarantine", "landing/_cleared", "pseudonymised")
LEDGER_COLUMNS = ["source", "table", "file", *COUNTS, "sha256", "status", "period"]


def run_front(data_dir: Path, run_id: str, *, full_rebuild: bool = False) -> dict:
    summary = {
        "ingest": {
            s: ingest_source(data_dir, s, run_id, full_rebuild=full_rebuild) for s in SOURCES
        }
    }
    summary["opt_outs"] = remove_opt_outs(data_dir, run_id)
    summary["pseudonymise"] = pseudonymise(data_dir, KEY, run_id)
    summary["ledger"] = finalise_ledger(data_dir, run_id)
    return summary


def files_read(summary: dict) -> set[str]:
    return {f for s in summary["ingest"].values() for f in s["files_read"]}


def files_reused(summary: dict) -> set[str]:
    return {f for s in summary["ingest"].values() for f in s["files_reused"]}


def checksums(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every output file of the front stages, the cache aside."""
    out = {}
    for zone in OUTPUTS:
        for path in sorted((data_dir / zone).rglob("*.parquet")):
            rel = path.relative_to(data_dir).as_posix()
            if not rel.startswith(INGEST_CACHE):
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def ledger_of(data_dir: Path, run_id: str) -> pl.DataFrame:
    ledger = read_ledger(data_dir).filter(pl.col("run_id") == run_id)
    return ledger.select(LEDGER_COLUMNS).sort("source", "table", "file")


def landed(data_dir: Path) -> set[str]:
    landing = LANDING.under(data_dir)
    return {
        p.relative_to(landing).as_posix()
        for p in landing.glob("*/*.csv")
        if not p.parent.name.startswith("_")
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("generated")
    generate(data_dir, people=1500, seed=11)
    assert set(LATE) <= landed(data_dir), "the generator no longer writes the held-back files"
    return data_dir


@pytest.fixture(scope="module")
def two_steps(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The landing delivered in two runs; returns the data dir and both runs' summaries."""
    data_dir = tmp_path_factory.mktemp("incremental") / "data"
    shutil.copytree(generated, data_dir)
    held = tmp_path_factory.mktemp("held")
    for name in LATE:
        shutil.move(LANDING.under(data_dir) / name, held / Path(name).name)
    first = run_front(data_dir, "run-1")
    for name in LATE:
        shutil.move(held / Path(name).name, LANDING.under(data_dir) / name)
    second = run_front(data_dir, "run-2")
    return data_dir, {"run-1": first, "run-2": second}


def test_the_second_run_reads_only_the_new_files(two_steps) -> None:
    data_dir, runs = two_steps
    first, second = runs["run-1"], runs["run-2"]
    late = {f"landing/{n}" for n in LATE}
    assert files_reused(first) == set()
    assert late.isdisjoint(files_read(first))
    assert files_read(second) == late
    # Loaded files come from the cache; replaced ones are not even read (their profile is kept).
    ledger = ledger_of(data_dir, "run-2")
    loaded = set(ledger.filter(pl.col("status") == "loaded")["file"])
    assert files_reused(second) == loaded - late
    replaced = set(ledger.filter(pl.col("status") == "replaced")["file"])
    assert replaced and replaced <= files_read(first)
    cache = data_dir / INGEST_CACHE
    entries = list(cache.rglob("*.parquet"))
    assert entries and all(is_owner_only(p) for p in entries)
    assert all(is_owner_only(d) for d in [cache, *(p for p in cache.rglob("*") if p.is_dir())])


def test_outputs_equal_a_full_rebuild_of_the_same_landing(two_steps, tmp_path: Path) -> None:
    data_dir, _ = two_steps
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(data_dir, rebuilt)
    summary = run_front(rebuilt, "run-2", full_rebuild=True)
    assert files_reused(summary) == set()
    assert checksums(rebuilt) == checksums(data_dir)
    assert ledger_of(rebuilt, "run-2").equals(ledger_of(data_dir, "run-2"))


def test_outputs_equal_a_fresh_data_directory(two_steps, generated: Path, tmp_path: Path) -> None:
    data_dir, _ = two_steps
    fresh = tmp_path / "fresh"
    shutil.copytree(generated, fresh)
    summary = run_front(fresh, "run-1")
    assert files_reused(summary) == set()
    for rel in checksums(data_dir):
        assert pl.read_parquet(fresh / rel).equals(pl.read_parquet(data_dir / rel)), rel
    assert set(checksums(fresh)) == set(checksums(data_dir))
    assert ledger_of(fresh, "run-1").equals(ledger_of(data_dir, "run-2"))


def _copy_of(two_steps: tuple[Path, dict], tmp_path: Path) -> Path:
    """The two-step data directory, copied for a test that changes it."""
    work = tmp_path / "work"
    shutil.copytree(two_steps[0], work)
    return work


def test_a_changed_file_is_read_again_and_a_gone_one_leaves_the_cache(
    two_steps, tmp_path: Path
) -> None:
    work = _copy_of(two_steps, tmp_path)
    landing = LANDING.under(work)
    changed = landing / LATE[0]
    lines = changed.read_bytes().splitlines(keepends=True)
    changed.write_bytes(b"".join(lines[:-1]))  # same name, one row fewer
    before = set((work / INGEST_CACHE).rglob("*.parquet"))
    summary = run_front(work, "run-3")
    assert files_read(summary) == {f"landing/{LATE[0]}"}
    row = ledger_of(work, "run-3").filter(pl.col("file") == f"landing/{LATE[0]}")
    assert row["rows_received"].item() == len(lines) - 2  # the header and the dropped row
    after = set((work / INGEST_CACHE).rglob("*.parquet"))
    assert len(after) == len(before) and after != before  # its old entry went, a new one came

    (landing / LATE[1]).unlink()
    summary = run_front(work, "run-4")
    assert files_read(summary) == set()
    assert len(set((work / INGEST_CACHE).rglob("*.parquet"))) == len(after) - 1


def test_a_person_who_opts_out_between_runs_is_gone_from_every_output(
    two_steps, tmp_path: Path
) -> None:
    work = _copy_of(two_steps, tmp_path)
    cleared = pl.read_parquet(work / "landing/_cleared/gp/patients.parquet")
    person = cleared.filter(pl.col("nhs_number").is_not_null()).row(0, named=True)
    opt_outs = LANDING.under(work) / "opt_outs/national_data_opt_out.csv"
    with opt_outs.open("a", encoding="utf-8") as fh:
        fh.write(f"{person['nhs_number']}\n")
    summary = run_front(work, "run-3")
    assert files_read(summary) == {"landing/opt_outs/national_data_opt_out.csv"}
    for path in (work / "landing/_cleared").rglob("*.parquet"):
        frame = pl.read_parquet(path)
        if "nhs_number" in frame.columns:
            assert person["nhs_number"] not in frame["nhs_number"].to_list(), path
    gp = pl.read_parquet(work / "landing/_cleared/gp/patients.parquet")
    assert gp.height < cleared.height
    assert pl.read_parquet(work / "pseudonymised/gp/patients.parquet").height == gp.height

    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(work, rebuilt)
    run_front(rebuilt, "run-3", full_rebuild=True)
    assert checksums(rebuilt) == checksums(work)
