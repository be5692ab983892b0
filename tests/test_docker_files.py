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
    # One mount: the folder publish renames commissioning.duckdb into, read-only. Not the
    # data volume (identifiable zones), not the analysts' analytics.duckdb beside it
    # (person level), and not the file itself (a bind-mounted file keeps the inode it was
    # mounted with, so a re-published file would never be seen).
    assert dashboard["volumes"] == [
        {
            "type": "volume",
            "source": "joinedup-published",
            "target": "/published/commissioning",
            "read_only": True,
            "volume": {"subpath": "commissioning"},
        }
    ]
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


# -- what reaches the image, and the secrets (issue 24: information-governance review) ----

REPO = DOCKER.parent
KEY_SECRET = "joinedup_pseudonymisation_key"


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: from the context root, `*` within one
    path segment, `**` across any number of them."""
    pattern = pattern.strip().strip("/")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: the last matching pattern wins, and a
    pattern that matches a folder leaves out everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _ignore_regex(raw[1:] if negate else raw)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_context_leaves_out_data_secrets_history_and_caches() -> None:
    assert "COPY . ." in (DOCKER / "Dockerfile").read_text()  # hence the .dockerignore
    patterns = _dockerignore()
    left_out = [
        "data/landing/gp/patients.csv",  # identifiable extracts
        "data/analytics.duckdb",
        "data-100k/landing/gp/patients.csv",  # a benchmark's data directory
        "analytics.duckdb",
        ".env",
        ".env.local",
        "docker/.env",
        "dashboard/.env",
        ".git/config",
        ".venv/bin/python",
        "src/joinedup/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
        "benchmarks/.cache/x",
        "target/manifest.json",
        "logs/dbt.log",
    ]
    assert [p for p in left_out if not _ignored(p, patterns)] == []
    # ... and what the image needs is still sent.
    kept = [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "src/joinedup/catalogue.py",
        "dags/joinedup_link_and_build.py",
        "models/marts/commissioning/mart_readmissions.yml",
        "dashboard/app.py",
        "docker/Dockerfile",
        "profiles.yml",
    ]
    assert [p for p in kept if _ignored(p, patterns)] == []


def test_the_key_is_a_mounted_secret_file_never_a_variable() -> None:
    compose = _compose()
    assert "file" in compose["secrets"][KEY_SECRET]
    pipeline = {n: s for n, s in compose["services"].items() if n.startswith("airflow-")}
    assert pipeline
    for name, service in pipeline.items():
        assert KEY_SECRET in service["secrets"], name
        env = service["environment"]
        assert env["JOINEDUP_PSEUDONYMISATION_KEY_FILE"] == f"/run/secrets/{KEY_SECRET}", name
        assert "JOINEDUP_PSEUDONYMISATION_KEY" not in env, name
    dashboard = compose["services"]["dashboard"]
    assert "secrets" not in dashboard
    # The template operators copy to docker/.env must not invite the key as a variable.
    example = (DOCKER / ".env.example").read_text()
    assert not re.search(r"^\s*JOINEDUP_PSEUDONYMISATION_KEY\s*=", example, re.MULTILINE)
    assert re.search(r"^JOINEDUP_KEY_FILE=", example, re.MULTILINE)


def test_secrets_are_required_with_no_defaults() -> None:
    compose = _compose()
    required = r"\$\{%s:\?[^}]+\}"
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert re.fullmatch(required % "AIRFLOW_JWT_SECRET", env["AIRFLOW__API_AUTH__JWT_SECRET"])
    password = compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert re.fullmatch(required % "POSTGRES_PASSWORD", password)
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert re.fullmatch(
        r"postgresql\+psycopg2://airflow:%s@postgres:5432/airflow"
        % (required % "POSTGRES_PASSWORD"),
        conn,
    )
    assert re.fullmatch(required % "JOINEDUP_KEY_FILE", compose["secrets"][KEY_SECRET]["file"])
    text = (DOCKER / "compose.yaml").read_text()
    # No secret falls back to a value: `${VAR:-x}` / `${VAR-x}` for any secret-like name.
    assert not re.findall(r"\$\{\w*(?:SECRET|PASSWORD|KEY)\w*:?-", text)
    assert "airflow:airflow@" not in text
    # Each required variable is named in the template, blank, for the operator to set.
    example = (DOCKER / ".env.example").read_text()
    for name in ("AIRFLOW_JWT_SECRET", "POSTGRES_PASSWORD", "JOINEDUP_KEY_FILE"):
        assert re.search(rf"^{name}=$", example, re.MULTILINE), name


def test_published_ports_are_bound_to_loopback_unless_configured() -> None:
    compose = _compose()
    published = {n: s["ports"] for n, s in compose["services"].items() if s.get("ports")}
    assert set(published) == {"airflow-api-server", "dashboard"}
    for name, ports in published.items():
        for port in ports:
            assert re.fullmatch(r"\$\{JOINEDUP_BIND:-127\.0\.0\.1\}:(\d+):\1", str(port)), (
                name,
                port,
            )
    assert "postgres" not in published  # the metadata database is reached inside only
