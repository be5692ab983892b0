"""Static checks of docker/ (no Docker engine runs here: these are the only checks made)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCKER = Path(__file__).parents[1] / "docker"


def test_compose_defines_the_deployment() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    expected = {
        "postgres",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "dashboard",
    }
    assert expected <= set(services)
    for name in expected - {"postgres"}:
        service = services[name]
        assert any(str(v).startswith("joinedup-data:/data") for v in service["volumes"]), name
        assert service["env_file"] == ".env", name
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    # The dashboard only reads the data volume.
    assert services["dashboard"]["volumes"] == ["joinedup-data:/data:ro"]


def test_no_secret_is_baked_into_images_or_compose() -> None:
    for path in (DOCKER / "Dockerfile", DOCKER / "compose.yaml", DOCKER / ".env.example"):
        text = path.read_text()
        assert not re.search(r"JOINEDUP_PSEUDONYMISATION_KEY=\S", text), path
        assert "DEMO-KEY" not in text, path


def test_dockerfile_installs_the_locked_environment() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    instructions = [
        line.split()[0] for line in text.splitlines() if line and not line.startswith(("#", " "))
    ]
    assert instructions[0] == "FROM"
    assert set(instructions) <= {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "CMD", "EXPOSE"}
    assert "uv sync --locked" in text and "USER joinedup" in text
    assert "COPY pyproject.toml uv.lock" in text
