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
    for name in expected - {"postgres", "dashboard"}:
        service = services[name]
        assert "joinedup-data:/data" in service["volumes"], name
        assert "joinedup-published:/published" in service["volumes"], name
        assert service["environment"]["JOINEDUP_PUBLISHED_DIR"] == "/published", name
        assert service["env_file"] == ".env", name
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")


def test_the_dashboard_sees_only_the_published_marts_read_only_and_no_key() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    dashboard = compose["services"]["dashboard"]
    # One mount: the folder publish renames analytics.duckdb into, read-only. Not the
    # data volume (identifiable zones), and not the file itself (a bind-mounted file keeps
    # the inode it was mounted with, so a re-published file would never be seen).
    assert dashboard["volumes"] == ["joinedup-published:/published:ro"]
    assert "env_file" not in dashboard  # docker/.env holds the pseudonymisation key
    assert not any("KEY" in name for name in dashboard.get("environment", {}))
    assert dashboard["environment"]["JOINEDUP_DATA_DIR"] == "/published"
    assert "--data-dir /published" in " ".join(dashboard["command"].split())
    assert "joinedup-published" in compose["volumes"]
    # The publishing services write there; nothing else lives in that volume.
    writers = [
        name
        for name, service in compose["services"].items()
        if "joinedup-published:/published" in service.get("volumes", [])
    ]
    assert writers and all(name.startswith("airflow-") for name in writers)
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "chown joinedup /data /published" in dockerfile


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
