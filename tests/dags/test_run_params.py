"""What a DAG run may be given: the data directory is JOINEDUP_DATA_DIR (a param may only
narrow it), and a trained model only one the pipeline wrote and recorded.

The checks are the functions the DAGs' first tasks call, on real directories; the DAG runs
themselves are in test_run_params_dag_test.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from joinedup.linkage.model import UntrustedModelError, check_trained_model
from joinedup.orchestration import data_dir_for, deployed_data_dir
from joinedup.provenance import sha256_file
from joinedup.settings import RunConfigError


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """JOINEDUP_DATA_DIR set to an existing absolute directory; no .env in the cwd."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    monkeypatch.setenv("JOINEDUP_DATA_DIR", str(data))
    return data


def test_the_setting_must_be_set_absolute_and_an_existing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()  # what a relative default would have found: never used
    monkeypatch.delenv("JOINEDUP_DATA_DIR", raising=False)
    with pytest.raises(RunConfigError, match="JOINEDUP_DATA_DIR is not set: set it to the abs"):
        deployed_data_dir()
    monkeypatch.setenv("JOINEDUP_DATA_DIR", "data")
    with pytest.raises(RunConfigError, match="JOINEDUP_DATA_DIR=data is relative"):
        deployed_data_dir()
    monkeypatch.setenv("JOINEDUP_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(RunConfigError, match="missing is not a directory"):
        deployed_data_dir()
    monkeypatch.setenv("JOINEDUP_DATA_DIR", str(tmp_path / "data"))
    assert deployed_data_dir() == (tmp_path / "data").resolve()


def test_a_blank_param_is_the_setting_and_a_param_may_only_narrow_it(root: Path) -> None:
    assert data_dir_for("") == root
    assert data_dir_for("sub") == root / "sub"
    assert data_dir_for(str(root / "sub")) == root / "sub"
    assert data_dir_for(str(root)) == root
    outside = root.parent / "elsewhere"
    outside.mkdir()
    (root / "link-out").symlink_to(outside)
    for param in ("..", "../elsewhere", str(outside), "link-out", "/"):
        with pytest.raises(RunConfigError, match="lies outside JOINEDUP_DATA_DIR"):
            data_dir_for(param)
    with pytest.raises(RunConfigError, match="is not a directory"):
        data_dir_for("not-there")


def _events(*extras: dict[str, str]) -> dict[str, list[SimpleNamespace]]:
    """Triggering asset events as Airflow hands them to a task: per asset, events with extra."""
    return {f"joinedup://landing/s{i}": [SimpleNamespace(extra=e)] for i, e in enumerate(extras)}


def test_an_asset_triggered_run_works_where_its_ingest_runs_did(root: Path) -> None:
    sub = str(root / "sub")
    assert data_dir_for("", _events({"run_id": "r"}, {"run_id": "r"})) == root
    assert data_dir_for("", _events({"data_dir": sub}, {"data_dir": sub})) == root / "sub"
    with pytest.raises(RunConfigError, match="used different data directories"):
        data_dir_for("", _events({"data_dir": sub}, {"data_dir": str(root)}))
    # An event is checked like a param: one naming a place outside the setting is refused.
    with pytest.raises(RunConfigError, match="lies outside"):
        data_dir_for("", _events({"data_dir": str(root.parent)}))


def _recorded_model(data_dir: Path, name: str = "model.json") -> Path:
    """A model file in DATA/linked/ and a run record listing its SHA-256, as finalise writes."""
    model = data_dir / "linked" / name
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text(json.dumps({"link_type": "dedupe_only", "comparisons": []}))
    record = {
        "provenance": {
            "run_id": "r0",
            "linkage": {"model": {"path": f"linked/{name}", "sha256": sha256_file(model)}},
            "outputs": [],
        }
    }
    (data_dir / "runs").mkdir(exist_ok=True)
    (data_dir / "runs" / "r0.json").write_text(json.dumps(record))
    return model


def test_a_model_a_run_wrote_and_recorded_is_accepted(root: Path) -> None:
    model = _recorded_model(root)
    assert check_trained_model(root, model) == model
    assert check_trained_model(root, "linked/model.json") == model


def test_a_model_outside_linked_is_refused_even_with_a_record(root: Path) -> None:
    other = root.parent / "other"
    model = _recorded_model(other)  # recorded, but by another data directory
    with pytest.raises(UntrustedModelError, match=r"is not in .*/data/linked"):
        check_trained_model(root, model)
    (root / "linked").mkdir()
    (root / "linked" / "escape.json").symlink_to(model)
    with pytest.raises(UntrustedModelError, match="is not in"):
        check_trained_model(root, root / "linked" / "escape.json")
    with pytest.raises(UntrustedModelError, match="is not in"):
        check_trained_model(root, "/proc/self/environ")


def test_a_model_no_run_recorded_or_changed_since_is_refused(root: Path) -> None:
    model = _recorded_model(root)
    crafted = root / "linked" / "crafted.json"
    crafted.write_text(model.read_text().replace("dedupe_only", "link_only"))
    with pytest.raises(UntrustedModelError, match=r"is in no run record under .*/runs"):
        check_trained_model(root, crafted)
    model.write_text(model.read_text() + " ")
    with pytest.raises(UntrustedModelError, match="changed after its run"):
        check_trained_model(root, model)
    with pytest.raises(UntrustedModelError, match="does not exist"):
        check_trained_model(root, root / "linked" / "gone.json")
