"""The CLI's data directory defaults to the settings' (JOINEDUP_DATA_DIR), as dbt's does.

Each command runs through the real CLI and stops early (a small synth, a missing input,
a held run lock), so no test here runs the pipeline. A data directory a command must not
use is a plain file: a CLI that used it anyway would fail at once, not run the pipeline.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joinedup.airflow_runner import RUN_LOCK
from joinedup.cli import app
from joinedup.settings import DEMO_KEY


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A working directory (where ./data would go) and the data directory the settings name."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "data").write_text("not a data directory\n")
    monkeypatch.chdir(cwd)  # no .env here: the variable below is the only setting
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    monkeypatch.setenv("JOINEDUP_LINKAGE_BACKEND", "duckdb")
    monkeypatch.setenv("JOINEDUP_DATA_DIR", str(tmp_path / "from-settings"))
    return {"cwd": cwd, "settings": tmp_path / "from-settings", "option": tmp_path / "option"}


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _untouched(*paths: Path) -> bool:
    """Each path is still the plain file a command must not have used as a data directory."""
    return all(p.is_file() and p.read_text() == "not a data directory\n" for p in paths)


def _cwd_untouched(where: dict[str, Path]) -> bool:
    return list(where["cwd"].iterdir()) == [where["cwd"] / "data"] and _untouched(
        where["cwd"] / "data"
    )


def test_synth_writes_to_the_settings_data_dir(where: dict[str, Path]) -> None:
    result = _invoke("synth", "--people", "20", "--months", "1")
    assert result.exit_code == 0, result.output
    assert list((where["settings"] / "landing").glob("*/*.csv"))
    assert _cwd_untouched(where), "nothing in ./data"


def test_an_explicit_out_wins_over_the_settings(where: dict[str, Path]) -> None:
    where["settings"].write_text("not a data directory\n")
    result = _invoke("synth", "--people", "20", "--months", "1", "--out", str(where["option"]))
    assert result.exit_code == 0, result.output
    assert list((where["option"] / "landing").glob("*/*.csv"))
    assert _untouched(where["settings"]) and _cwd_untouched(where)


def _held_run_lock(data_dir: Path):
    """A delivery in landing/ and the run lock held, as by another run: `run` stops there."""
    (data_dir / "landing" / "gp").mkdir(parents=True)
    (data_dir / "landing" / "gp" / "patients.csv").write_text("nhs_number\n")
    lock = data_dir / "airflow" / RUN_LOCK
    lock.parent.mkdir()
    fh = lock.open("a")
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fh


@pytest.mark.parametrize("explicit", [False, True])
def test_run_uses_the_settings_data_dir_unless_given_one(
    where: dict[str, Path], explicit: bool
) -> None:
    data_dir = where["option"] if explicit else where["settings"]
    args = ["run", "--run-id", "r1"] + (["--data-dir", str(data_dir)] if explicit else [])
    if explicit:
        where["settings"].write_text("not a data directory\n")
    with _held_run_lock(data_dir):
        result = _invoke(*args)
    assert result.exit_code == 1, result.output
    assert f"another `joinedup run` is running on {data_dir}" in result.output
    assert _cwd_untouched(where)
    if explicit:
        assert _untouched(where["settings"])


@pytest.mark.parametrize(
    ("command", "names"),
    [
        (["evaluate"], "truth/records.csv not found"),
        (["privacy-report"], "analytics.duckdb not found"),
        (["trace", "../somefile"], "runs lists the content"),
    ],
)
def test_the_other_commands_read_the_settings_data_dir(
    where: dict[str, Path], command: list[str], names: str
) -> None:
    (where["cwd"].parent / "somefile").write_text("x")
    result = _invoke(*command)
    assert result.exit_code in (1, 2), result.output
    assert f"{where['settings']}/" in result.output and names in result.output, result.output
    given = _invoke(*command, "--data-dir", str(where["option"]))
    assert f"{where['option']}/" in given.output and names in given.output, given.output
    assert _cwd_untouched(where)


def test_an_invalid_setting_is_one_line_not_a_traceback(
    where: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOINEDUP_LINKAGE_BACKEND", "flink")
    result = _invoke("trace", "../somefile")
    assert result.exit_code == 2
    assert "invalid JOINEDUP_* setting: linkage_backend" in result.output
