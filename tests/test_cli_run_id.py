"""``joinedup run --run-id``: the id names files, so only safe ids are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from joinedup.airflow_runner import InvalidRunId, run_dags
from joinedup.cli import app
from joinedup.settings import DEMO_KEY

UNSAFE = ["../escape", "a/b", "..", ".hidden", "x" * 101, "run\n2"]


@pytest.mark.parametrize("run_id", UNSAFE)
def test_an_unsafe_run_id_is_refused_before_anything_is_written(
    tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    landing = tmp_path / "data" / "landing" / "gp"
    landing.mkdir(parents=True)
    (landing / "patients.csv").write_text("header\n")
    result = CliRunner().invoke(
        app, ["run", "--data-dir", str(tmp_path / "data"), "--run-id", run_id]
    )
    assert result.exit_code == 2
    assert "is not allowed" in result.output
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["landing"]
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("run_id", ["../escape", "a/b", ".hidden"])
def test_an_unsafe_run_id_on_an_empty_landing_is_refused_before_the_demo_population(
    tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty landing makes `run` generate a demo population: not before the id is checked."""
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = CliRunner().invoke(
        app, ["run", "--data-dir", str(data_dir), "--run-id", run_id, "--demo-people", "50"]
    )
    assert result.exit_code == 2, result.output
    assert "is not allowed" in result.output
    assert "demo population" not in result.output
    assert list(tmp_path.rglob("*")) == [data_dir], "nothing may be written"


@pytest.mark.parametrize("run_id", UNSAFE)
def test_run_dags_refuses_an_unsafe_run_id_before_anything_is_written(
    tmp_path: Path, run_id: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    log_file = data_dir / "airflow" / "logs" / "x.log"
    with pytest.raises(InvalidRunId, match="is not allowed"):
        run_dags(data_dir, {"data_dir": str(data_dir), "run_id": run_id}, log_file, print)
    assert list(data_dir.iterdir()) == []
