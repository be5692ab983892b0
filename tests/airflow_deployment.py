"""A real Airflow deployment for tests: PostgreSQL and Airflow's four services as processes.

The shape of docker/compose.yaml without Docker: a PostgreSQL server (Debian's
``postgresql`` package, started in a temporary directory on a free local port) holds
Airflow's metadata database; ``airflow api-server``, ``scheduler``, ``dag-processor`` and
``triggerer`` run as separate processes with the LocalExecutor, and the tests talk to them
only through the REST API, with a token, as an operator would.

Every process is started in its own session, so stopping it kills its whole process group
(the LocalExecutor's workers and the task processes they fork included).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joinedup.catalogue import DAGS_DIR

# Debian's server binaries are versioned and not on PATH: /usr/lib/postgresql/<version>/bin.
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN = "admin"


class DeploymentError(RuntimeError):
    """Something in the deployment did not come up or did not answer in time."""


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, or None when none is installed."""
    found = sorted(
        (Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    """``check()``'s first truthy result, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # not up yet: remember why, for the timeout message
            last_error = exc
        else:
            if result:
                return result
        time.sleep(every)
    raise DeploymentError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last_error})")


def kill_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the process's group, then SIGKILL whatever is left after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # Workers the leader forked may outlive it: the group is killed in any case.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


class Postgres:
    """A throwaway PostgreSQL server in a temporary directory, on 127.0.0.1 only."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        # Not under pytest's tmp_path: that is root-only, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="joinedup-test-postgres-"))
        self.data = self.root / "pgdata"
        # PostgreSQL refuses to run as root: as root (CI), run its tools as the postgres user.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            pg = pwd.getpwnam("postgres")
            os.chown(self.root, pg.pw_uid, pg.pw_gid)
        self.root.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow:{self.password}@127.0.0.1:{self.port}/airflow"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise DeploymentError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self.as_user:
            pg = pwd.getpwnam("postgres")
            os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "airflow",
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
        )
        pwfile.unlink()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user="airflow",
            password=self.password,
            dbname="postgres",
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE airflow")
        conn.close()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(DeploymentError, subprocess.TimeoutExpired):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Airflow:
    """Airflow's four services against ``database_url``, the REST API on 127.0.0.1:port."""

    home: Path
    database_url: str
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log_ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))
    # Every service signs or checks the tasks' tokens with it: one secret, shared.
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # Login on: one admin, whose password the api-server generates into
            # $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            # Two cores shared with other test runs: few task processes at once.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # A task's first call to the execution API waits on a busy api-server (two cores,
            # other test runs): the default 5 s timeout fails tasks that never started.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            # The log servers' default ports would clash with another deployment on this host.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
            "JOINEDUP_DATA_DIR": str(self.data_dir),
            # A failing task is failed at once, not after minutes of retries.
            "JOINEDUP_TASK_RETRIES": "0",
            **self.extra_env,
        }
        return env

    def airflow(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env(),
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise DeploymentError(
                f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        self.airflow("db", "migrate", timeout=600)
        self.airflow("pools", "set", "joinedup_duckdb_writer", "1", "one DuckDB writer")
        env = self.env()
        for service in AIRFLOW_SERVICES:
            log = (self.home / f"{service}.log").open("ab")
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", "airflow", service],
                env=env,
                # Not the data directory's parent: the tasks find the data through
                # JOINEDUP_DATA_DIR alone, never relative to where a service started.
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
        wait_for("the api-server", self._api_up, timeout=180)

    def _api_up(self) -> bool:
        self._check_alive()
        with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=10) as r:
            return r.status == 200

    def _check_alive(self) -> None:
        for service, proc in self.processes.items():
            if proc.poll() is not None:
                raise DeploymentError(
                    f"airflow {service} exited with {proc.returncode}:\n{self.log_tail(service)}"
                )

    def log_tail(self, service: str, chars: int = 4000) -> str:
        path = self.home / f"{service}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.processes.values():
            kill_group(proc)
        self.processes.clear()

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def token(self) -> str:
        if self._token is None:
            password = json.loads(self.password_file.read_text())[ADMIN]
            status, body = self.request(
                "POST", "/auth/token", {"username": ADMIN, "password": password}, auth=False
            )
            if status != 201:
                raise DeploymentError(f"POST /auth/token: {status} {body}")
            self._token = body["access_token"]
        return self._token

    def request(
        self, method: str, path: str, body: dict | None = None, auth: bool = True
    ) -> tuple[int, Any]:
        """(status, parsed JSON body) of one REST call; errors are returned, not raised."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        """The body of a successful authenticated call; anything else raises, with the body."""
        status, payload = self.request(method, path, body)
        if not 200 <= status < 300:
            raise DeploymentError(f"{method} {path}: {status} {payload}")
        return payload

    def wait_for_dags(self, dag_ids: list[str], timeout: float) -> None:
        def parsed() -> bool:
            self._check_alive()
            found = {d["dag_id"] for d in self.api("GET", "/api/v2/dags?limit=100")["dags"]}
            return set(dag_ids) <= found

        wait_for(f"the dag-processor to parse {dag_ids}", parsed, timeout)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf}
        )
        return run["dag_run_id"]

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state (success or failed)."""

        def finished() -> str | None:
            self._check_alive()
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        return wait_for(f"{dag_id} run {run_id} to finish", finished, timeout, every=3)

    def failure_report(self, dag_id: str, run_id: str, chars: int = 3000) -> str:
        """The end of each failed task's log in this run, for an assertion's message."""
        report = []
        for task_id, state in self.task_states(dag_id, run_id).items():
            if state != "failed":
                continue
            run_dir = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            for log in sorted(run_dir.glob(f"task_id={task_id}/attempt=*.log")):
                report.append(f"--- {log}\n{log.read_text(errors='replace')[-chars:]}")
        # A task killed or refused before it could log says why only in the scheduler's log.
        scheduler = [
            line
            for line in self.log_tail("scheduler", 2_000_000).splitlines()
            if run_id in line or "error" in line.lower()
        ]
        report.append("--- scheduler.log, this run and errors:\n" + "\n".join(scheduler[-40:]))
        return "\n".join(report)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {t["task_id"]: t["state"] for t in body["task_instances"]}


@contextlib.contextmanager
def deployment(root: Path, data_dir: Path, extra_env: dict[str, str]) -> Iterator[Airflow]:
    """PostgreSQL and Airflow started under ``root``; everything stopped and removed after."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise DeploymentError(
            f"no PostgreSQL server under {PG_BIN_GLOB}: install Debian's postgresql package "
            "(`apt-get install -y postgresql`; .ci/run does)"
        )
    postgres = Postgres(bin_dir)
    airflow = Airflow(root / "airflow-home", postgres.url, data_dir, dict(extra_env))
    try:
        postgres.start()
        airflow.start()
        yield airflow
    finally:
        airflow.stop()
        postgres.stop()
        shutil.rmtree(root / "airflow-home", ignore_errors=True)
