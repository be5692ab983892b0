"""Incremental linkage: a later delivery scored against the persons linked before.

One synthetic population is delivered twice: first without the last five months of
hospital files and the last quarter of social care, then with them. The second run
links incrementally; a copy of the data directory at the same point links fully
(relink=True), so the two results on the same records can be compared.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from ingest_fixtures import KEY, run_all

from joinedup.catalogue import LINKAGE_OPTED_OUT_RECORDS
from joinedup.deidentify.encodings import Encoder
from joinedup.linkage import link, remove_linked_opt_outs
from joinedup.linkage.evaluate import evaluate, pairwise
from joinedup.linkage.incremental import FINGERPRINTS, FINGERPRINTS_AT_FULL, STATE
from joinedup.linkage.model import DEFAULT_MODEL_DIR
from joinedup.synth import generate

PEOPLE = 2500
KEYS = ["source", "record_token"]
# Pairwise F1 of incremental against a full re-link on the same records, at least
# (measured 1.0 here; see docs/linkage.md, Drift and tolerance).
F1_TOLERANCE = 0.995


def _held_back(landing: Path) -> list[Path]:
    hospital = [
        p for p in (landing / "hospital").glob("*.csv") if p.stem[-6:] >= "202511"
    ]  # the last five months of ECDS and HES APC
    return hospital + list((landing / "social_care").glob("*q4.csv"))


def _link(data_dir: Path, run_id: str, **kwargs) -> dict:
    summary = link(data_dir, run_id, KEY, charts=False, **kwargs)
    remove_linked_opt_outs(data_dir, KEY, run_id)  # the next stage, as in the DAG
    return summary


def _record_person(data_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(data_dir / "linked" / "record_person.parquet")


def _numbers(data_dir: Path) -> pl.DataFrame:
    frames = [
        pl.read_parquet(p, columns=["record_token", "nhs_number_token"]).with_columns(
            source=pl.lit(p.parent.name)
        )
        for p in (data_dir / "pseudonymised").glob("*/*.parquet")
        if p.stem in ("patients", "clients")
    ]
    return pl.concat(frames, how="diagonal").select(*KEYS, "nhs_number_token")


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("incremental")
    data_dir = root / "incremental"
    generate(data_dir, people=PEOPLE, seed=31)
    held = root / "held"
    held.mkdir()
    moved = {}
    for path in _held_back(data_dir / "landing"):
        moved[held / path.name] = path
        shutil.move(path, held / path.name)
    run_all(data_dir, "run-1")
    first = _link(data_dir, "run-1")
    rp1 = _record_person(data_dir)
    model1 = (data_dir / "linked" / "model.json").read_text()
    for source, target in moved.items():
        shutil.move(source, target)
    run_all(data_dir, "run-2")
    full_dir = root / "full"
    shutil.copytree(data_dir, full_dir)
    second = _link(data_dir, "run-2")
    relinked = _link(full_dir, "run-2", relink=True)
    return {
        "root": root,
        "dir": data_dir,
        "full_dir": full_dir,
        "first": first,
        "second": second,
        "relinked": relinked,
        "rp1": rp1,
        "model1": model1,
        "rp2": _record_person(data_dir),
    }


def test_the_first_run_links_fully_and_the_next_incrementally(deliveries: dict) -> None:
    first, second = deliveries["first"], deliveries["second"]
    assert first["mode"]["mode"] == "full"
    assert "no previous linkage state" in first["mode"]["why"]
    assert first["trained_this_run"] is True
    assert second["mode"]["mode"] == "incremental"
    assert second["trained_this_run"] is False
    # The model the first run trained is reused as it is.
    assert (deliveries["dir"] / "linked" / "model.json").read_text() == deliveries["model1"]
    for name in (FINGERPRINTS, FINGERPRINTS_AT_FULL, STATE, "model.json"):
        assert (deliveries["dir"] / "linked" / name).exists()
    state = json.loads((deliveries["dir"] / "linked" / STATE).read_text())
    assert state["runs_since_full"] == 1 and state["last_full_run_id"] == "run-1"


def test_only_new_and_changed_records_are_scored(deliveries: dict) -> None:
    second, rp1, rp2 = deliveries["second"], deliveries["rp1"], deliveries["rp2"]
    new = rp2.join(rp1, on=KEYS, how="anti")
    changed = second["records_changed"]
    # New records matched to an opted-out person (and so left out of record_person) are
    # the only others: the first run already caught those of the first delivery.
    opted_out = sum(second["records_removed_for_opt_out"].values())
    assert changed["new"] == new.height + opted_out
    assert new.height > 100
    assert second["records_scored"] == changed["new"] + changed["changed"]
    assert second["records_scored"] < 0.2 * rp2.height
    # The full link of the same records scores the pairs among unchanged records (U) and
    # those with a new or changed one (N); the first run scored U's and those of the
    # changed records with their old encodings (C). So incremental, which scores N only,
    # scores full - first + C pairs: exactly full - first when nothing changed.
    pairs = second["incremental"]["pairs_scored"]
    assert second["incremental"]["pairs_scored_estimated_from_record_share"] is None
    full, first = (
        deliveries["relinked"]["full_pairs_scored"],
        deliveries["first"]["full_pairs_scored"],
    )
    assert 0 < pairs < first
    assert full - first <= pairs <= full - first + 20 * changed["changed"]
    assert pairs < 0.5 * full


def test_unchanged_persons_keep_their_ids(deliveries: dict) -> None:
    rp1, rp2, second = deliveries["rp1"], deliveries["rp2"], deliveries["second"]
    both = rp1.join(rp2, on=KEYS, suffix="_now")
    assert both.height == rp1.height  # nothing of the first delivery left
    moved = both.filter(pl.col("person_id") != pl.col("person_id_now"))
    # An id changes only for the persons a new record merged into another.
    merged = second["incremental"]["persons_merged_into_others"]
    assert moved["person_id"].n_unique() == merged
    assert moved.height <= 0.001 * rp1.height


def test_a_new_record_joins_its_existing_person(deliveries: dict) -> None:
    rp1, rp2 = deliveries["rp1"], deliveries["rp2"]
    numbers = _numbers(deliveries["dir"]).drop_nulls("nhs_number_token")
    old = rp1.join(numbers, on=KEYS).select("nhs_number_token", "person_id").unique()
    new = rp2.join(rp1, on=KEYS, how="anti").join(numbers, on=KEYS)
    matched = new.join(old, on="nhs_number_token", suffix="_old")
    assert matched.height > 50
    joined = matched.filter(pl.col("person_id") == pl.col("person_id_old")).height
    assert joined / matched.height >= 0.99
    # Every generated hospital and social care patient is registered with a GP, so the
    # new records joined persons there were: no person was made for them.
    assert deliveries["second"]["ids_new"] <= 2


def test_incremental_is_as_accurate_as_full(deliveries: dict) -> None:
    incremental = evaluate(deliveries["dir"], KEY)["joinedup"]["f1"]
    full = evaluate(deliveries["full_dir"], KEY)["joinedup"]["f1"]
    assert incremental >= 0.99
    assert incremental >= full - 0.005


def test_relink_links_fully_and_reports_drift(deliveries: dict) -> None:
    relinked = deliveries["relinked"]
    assert relinked["mode"] == {
        "mode": "full",
        "why": "full re-link requested (--relink / relink=True)",
    }
    assert relinked["trained_this_run"] is True
    drift = relinked["drift"]
    assert drift["records_compared"] == relinked["records"]
    assert drift["f1"] >= F1_TOLERANCE
    assert drift["records_with_other_person_share"] <= 1 - F1_TOLERANCE
    # The drift is what the incremental run made of the same records.
    both = deliveries["rp2"].join(_record_person(deliveries["full_dir"]), on=KEYS, suffix="_full")
    assert both.height == deliveries["rp2"].height
    assert pairwise(both, "person_id", "person_id_full")["f1"] == drift["f1"]
    # ...and so are the opted-out people's records it would have kept: those the full link
    # removed and the incremental run (same inputs) did not.
    removed = {
        name: pl.read_parquet(deliveries[name] / LINKAGE_OPTED_OUT_RECORDS)
        for name in ("dir", "full_dir")
    }
    assert removed["full_dir"].height > 0
    assert drift["opt_out_records_kept_by_incremental"] == (
        removed["full_dir"].join(removed["dir"], on=KEYS, how="anti").height
    )
    state = json.loads((deliveries["full_dir"] / "linked" / STATE).read_text())
    assert state["runs_since_full"] == 0 and state["last_full_run_id"] == "run-2"


def test_records_opted_out_later_leave_record_person(deliveries: dict) -> None:
    data_dir = deliveries["root"] / "opted_out_later"
    shutil.copytree(deliveries["dir"], data_dir)
    landing = data_dir / "landing"
    with open(landing / "gp" / "patients.csv", newline="") as fh:
        patients = list(csv.DictReader(fh))
    numbers = _numbers(data_dir)
    rp = _record_person(data_dir)
    # Opt out people with a record in more than one source: all their records must go.
    per_person = rp.join(numbers, on=KEYS).group_by("person_id").agg(pl.col("source").n_unique())
    with_many = set(per_person.filter(pl.col("source") > 1)["person_id"])
    chosen = []
    raw = [p["nhs_number"] for p in patients if p["nhs_number"]]
    token_of = dict(zip(raw, Encoder(KEY).nhs_tokens(pl.Series(raw)).to_list(), strict=True))
    person_of_token = dict(
        rp.join(numbers, on=KEYS)
        .filter(pl.col("source") == "gp")
        .select("nhs_number_token", "person_id")
        .iter_rows()
    )
    for number, token in token_of.items():
        if person_of_token.get(token) in with_many:
            chosen.append((number, person_of_token[token]))
        if len(chosen) == 3:
            break
    assert len(chosen) == 3
    with open(landing / "opt_outs" / "national_data_opt_out.csv", "a") as fh:
        fh.writelines(f"{number}\n" for number, _ in chosen)
    gone = rp.filter(pl.col("person_id").is_in([p for _, p in chosen]))
    run_all(data_dir, "run-3")
    third = _link(data_dir, "run-3")
    assert third["mode"]["mode"] == "incremental"
    assert third["records_changed"]["removed"] >= gone.height > 3
    after = _record_person(data_dir)
    assert after.join(gone, on=KEYS, how="semi").is_empty()
    assert not after["person_id"].is_in([p for _, p in chosen]).any()
    fingerprints = pl.read_parquet(data_dir / "linked" / FINGERPRINTS)
    assert fingerprints.join(gone, on=KEYS, how="semi").is_empty()
    # Everyone else keeps their person id.
    kept = deliveries["rp2"].join(gone, on=KEYS, how="anti").join(after, on=KEYS, suffix="_now")
    assert (kept["person_id"] == kept["person_id_now"]).all()


def _model_dir(root: Path, **incremental: object) -> Path:
    model_dir = root / f"model_{'_'.join(incremental)}"
    model_dir.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "settings.json", model_dir / "settings.json")
    training = json.loads((DEFAULT_MODEL_DIR / "training.json").read_text())
    training["incremental"] |= incremental
    (model_dir / "training.json").write_text(json.dumps(training))
    return model_dir


def test_a_full_link_is_due_on_schedule(deliveries: dict) -> None:
    root = deliveries["root"]
    # A model definition other than the one the state was made with links fully...
    data_dir = root / "scheduled"
    shutil.copytree(deliveries["full_dir"], data_dir)
    every = _model_dir(root, relink_every_runs=1)
    summary = link(data_dir, "run-s", KEY, charts=False, model_dir=every)
    assert summary["mode"]["mode"] == "full"
    assert "settings.json or training.json changed" in summary["mode"]["why"]
    # ...and once the state is of this definition, every run is due with every run = 1.
    again = link(data_dir, "run-s2", KEY, charts=False, model_dir=every)
    assert again["mode"]["mode"] == "full"
    assert again["mode"]["why"].startswith("scheduled: 1 runs since the last full link")
    assert again["drift"]["f1"] == 1.0  # nothing new: incremental changes nothing


def test_a_full_link_is_due_when_many_records_are_new_since_the_last_one(
    deliveries: dict,
) -> None:
    """Two deliveries each under the bound, above it together: the model in use has seen
    neither, so the second run links fully (issue 23: a model trained on the first
    months missed opted-out people's records a full link found)."""
    root = deliveries["root"]
    data_dir = root / "many_new"
    shutil.copytree(deliveries["full_dir"], data_dir)
    bound = _model_dir(root, relink_when_new_share_above=0.04)
    link(data_dir, "run-m", KEY, charts=False, model_dir=bound)  # state of this definition
    linked = data_dir / "linked"
    everyone = pl.read_parquet(linked / FINGERPRINTS).sort(KEYS)
    n = everyone.height

    def forget(share_from: float, share_to: float, *names: str) -> None:
        """Records the state has not seen are new: a slice of them, in these files."""
        slice_ = everyone.slice(int(share_from * n), int(share_to * n) - int(share_from * n))
        for name in names:
            everyone.join(slice_, on=KEYS, how="anti").write_parquet(linked / name)

    forget(0.0, 0.03, FINGERPRINTS, FINGERPRINTS_AT_FULL)  # 3% new: under 4%
    first = link(data_dir, "run-m2", KEY, charts=False, model_dir=bound)
    assert first["mode"]["mode"] == "incremental", first["mode"]
    assert first["records_changed"]["new"] == int(0.03 * n)
    assert "(3.0% since the last full link)" in first["mode"]["why"]
    # The full link's fingerprints stay those of run-m's records, less the slice forgotten.
    assert pl.read_parquet(linked / FINGERPRINTS_AT_FULL).height == n - int(0.03 * n)

    forget(0.03, 0.05, FINGERPRINTS)  # 2% new this time...
    forget(0.0, 0.05, FINGERPRINTS_AT_FULL)  # ...and 5% since the full link
    second = link(data_dir, "run-m3", KEY, charts=False, model_dir=bound)
    assert second["mode"]["mode"] == "full"
    assert second["records_changed"]["new"] == int(0.05 * n) - int(0.03 * n)
    assert second["mode"]["why"].startswith(
        "new and changed records since the last full link are 5.0% of all, above"
    ), second["mode"]
    # A full link resets what the model has seen.
    assert pl.read_parquet(linked / FINGERPRINTS_AT_FULL).height == n


def test_a_changed_model_file_is_not_reused(deliveries: dict) -> None:
    data_dir = deliveries["root"] / "tampered"
    shutil.copytree(deliveries["dir"], data_dir)
    model = data_dir / "linked" / "model.json"
    model.write_text(model.read_text() + "\n")
    summary = link(data_dir, "run-t", KEY, charts=False)
    assert summary["mode"] == {
        "mode": "full",
        "why": "linked/model.json changed since the run that wrote it",
    }
    assert summary["drift"] is None  # the previous model is not run, not even to compare


def test_the_link_stage_and_the_dag_take_relink(deliveries: dict, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from joinedup import pipeline
    from joinedup.catalogue import DAGS_DIR

    dag = DagBag(str(DAGS_DIR)).dags["joinedup_link_and_build"]
    assert dag.params["relink"] is False  # incremental unless asked
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", KEY.decode())
    data_dir = deliveries["root"] / "stage"
    shutil.copytree(deliveries["dir"], data_dir)
    assert pipeline.link_stage(data_dir, "run-p")["mode"]["mode"] == "incremental"
    relinked = pipeline.link_stage(data_dir, "run-p2", relink=True)
    assert relinked["mode"]["why"] == "full re-link requested (--relink / relink=True)"
    assert relinked["drift"]["f1"] >= F1_TOLERANCE
