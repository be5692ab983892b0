"""``joinedup run --run-id``: the id names files, so only safe ids are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from joinedup.cli import app
from joinedup.settings import DEMO_KEY


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", ".hidden", "x" * 101, "run\n2"])
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
