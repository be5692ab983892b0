"""`joinedup run` shows every task as it starts and ends, and progress while long ones run.

The CLI runs as a person runs it (a subprocess writing to a pipe, so the terminal is file
descriptor 1 while Airflow's own output goes to the log).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joinedup.catalogue import DAGS_DIR
from joinedup.cli import app
from joinedup.settings import DEMO_KEY


def test_a_model_from_elsewhere_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    data = tmp_path / "data"
    (data / "landing" / "gp").mkdir(parents=True)
    (data / "landing" / "gp" / "patients.csv").write_text("nhs_number\n")
    model = tmp_path / "model.json"
    model.write_text("{}")
    result = CliRunner().invoke(
        app, ["run", "--data-dir", str(data), "--run-id", "r1", "--linkage-model", str(model)]
    )
    assert result.exit_code == 2, result.output
    assert f"trained model '{model}' is not in {data / 'linked'}" in result.output
    assert sorted(p.name for p in data.iterdir()) == ["landing"], "no Airflow home, no log"


@pytest.mark.slow
def test_run_prints_every_task_of_link_and_build_started_and_ended(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    tasks = [t.task_id for t in DagBag(str(DAGS_DIR)).dags["joinedup_link_and_build"].tasks]
    data = tmp_path / "data"
    env = {**os.environ, "JOINEDUP_PSEUDONYMISATION_KEY": DEMO_KEY}
    env.pop("JOINEDUP_PSEUDONYMISATION_KEY_FILE", None)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "joinedup.cli", "run", "--data-dir", str(data)),
            *("--demo-people", "300", "--run-id", "progress", "--progress-every", "0.5"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    section = out[out.index("  joinedup_link_and_build\n") :]
    for task_id in tasks:
        started = re.search(rf"^    {task_id} +started$", section, flags=re.M)
        ended = re.search(
            rf"^    {task_id} +done +\d+(\.\d)?s$|^    {task_id} +done +\d+m\d\ds$",
            section,
            flags=re.M,
        )
        assert started and ended and started.start() < ended.start(), (task_id, section)
    # The long ones show progress: a line with elapsed time while they run.
    for task_id in ("link", "build_warehouse"):
        assert re.search(rf"^    {task_id} +running +\S+", section, flags=re.M), task_id
