"""A standalone Spark cluster on this machine, from pyspark's own distribution.

One master and one worker, each its own JVM (``spark-class
org.apache.spark.deploy.master.Master`` and ``...deploy.worker.Worker``), bound
to 127.0.0.1. The worker starts executors in further JVMs, so a link run
against ``spark://127.0.0.1:PORT`` exercises what a real cluster does and
``local[N]`` does not: tasks serialised to other processes, Python workers
started by the executors (``spark.pyspark.python``), and files the driver names
read and written by other processes (the checkpoint directory).

Used by ``tests/test_spark_cluster.py``, ``benchmarks/bench_spark.py --cluster``
and ``make spark-cluster`` (``python -m joinedup.linkage.spark_cluster``).
The master has no authentication: anyone on this machine can submit to it,
which is why it listens on loopback only. docs/runbook.md ("Linkage on a Spark
cluster") says what a real cluster needs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from joinedup.linkage.backend import LinkageError

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Cluster:
    """A running cluster: where to submit, where its web UI and logs are."""

    master_url: str
    web_url: str
    work_dir: Path
    cores: int
    memory: str


def spark_home() -> Path:
    """pyspark's installation, which is a Spark distribution (bin/spark-class, jars/)."""
    try:
        import pyspark
    except ImportError:
        raise LinkageError(
            "a Spark cluster needs pyspark: install the spark extra (`uv sync --extra spark`)"
        ) from None
    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").exists():
        raise LinkageError(f"{home} has no bin/spark-class: reinstall pyspark")
    return home


def free_port() -> int:
    """A port nothing listens on now (another process may take it before Spark does)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _status(web_url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{web_url}/json/", timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen, grace: float) -> None:
    """End the process and everything it started (its own process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # Executors the worker launched share its group and may outlive a terminated worker.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=grace)


@contextmanager
def standalone_cluster(
    work_dir: Path | None = None,
    *,
    port: int = 0,
    webui_port: int = 0,
    cores: int = 2,
    memory: str = "2g",
    timeout: float = 240.0,
) -> Iterator[Cluster]:
    """Start a master and a worker, wait until the worker has registered, stop both after.

    ``port`` and ``webui_port`` 0 pick free ports. Without ``work_dir`` a temporary
    directory holds the logs, the worker's executor directories and its shuffle files,
    and is removed afterwards. The waits are bounded by ``timeout`` seconds (the JVMs
    start slowly on a loaded machine); a process that exits or a master that does not
    see its worker in time raises a LinkageError with the end of its log.
    """
    home = spark_home()
    own_dir = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="joinedup-spark-")) if own_dir else Path(work_dir)
    port = port or free_port()
    webui_port = webui_port or free_port()
    worker_ui = free_port()
    logs, local = root / "logs", root / "local"
    for d in (logs, local, root / "work", root / "pids"):
        d.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOG_DIR": str(logs),
        # The executors' shuffle and spill files: on the worker's disk, not /tmp.
        "SPARK_LOCAL_DIRS": str(local),
        # Executors start their Python workers with this interpreter unless the
        # application sets spark.pyspark.python (joinedup's driver does).
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        # A port in use is an error, not a silent move to the next port (Spark's default),
        # which would leave the master somewhere other than the URL given out.
        "SPARK_DAEMON_JAVA_OPTS": "-Dspark.port.maxRetries=0",
    }
    master_url = f"spark://{HOST}:{port}"
    web_url = f"http://{HOST}:{webui_port}"
    spark_class = str(home / "bin" / "spark-class")
    commands = {
        "master": [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host", HOST, "--port", str(port), "--webui-port", str(webui_port),
        ],
        "worker": [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            master_url,
            "--host", HOST, "--webui-port", str(worker_ui),
            "--cores", str(cores), "--memory", memory, "--work-dir", str(root / "work"),
        ],
    }  # fmt: skip
    processes: dict[str, subprocess.Popen] = {}
    deadline = time.monotonic() + timeout

    def wait_for(what: str, ready) -> None:
        while time.monotonic() < deadline:
            for name, process in processes.items():
                if process.poll() is not None:
                    log = logs / f"{name}.log"
                    raise LinkageError(
                        f"the Spark {name} of {master_url} exited ({process.returncode}) "
                        f"while waiting for the {what}; its log ({log}) ends:\n{_tail(log)}"
                    )
            status = _status(web_url)
            if status is not None and ready(status):
                return
            time.sleep(1)
        raise LinkageError(
            f"no {what} after {timeout:.0f}s ({master_url}); the master's log ends:\n"
            f"{_tail(logs / 'master.log')}\nthe worker's:\n{_tail(logs / 'worker.log')}"
        )

    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "wb") as log:
                # A process group of its own: teardown ends the JVM and whatever it started.
                processes[name] = subprocess.Popen(
                    command,
                    env=env,
                    cwd=root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            (root / "pids" / f"{name}.pid").write_text(f"{processes[name].pid}\n")
            if name == "master":
                wait_for("master", lambda s: s.get("status") == "ALIVE")
        wait_for(
            f"worker with {cores} cores",
            lambda s: s.get("aliveworkers", 0) >= 1 and s.get("cores", 0) >= cores,
        )
        yield Cluster(master_url, web_url, root, cores, memory)
    finally:
        for process in reversed(processes.values()):
            _stop(process, grace=30)
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run a standalone Spark master and worker on 127.0.0.1 until Ctrl-C."
    )
    parser.add_argument("--port", type=int, default=7077, help="master port (0: a free one)")
    parser.add_argument("--webui-port", type=int, default=8090, help="master web UI port")
    parser.add_argument("--cores", type=int, default=2, help="cores the worker offers")
    parser.add_argument("--memory", default="2g", help="memory the worker offers executors")
    parser.add_argument("--work-dir", type=Path, help="logs and executor files (default: temp)")
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from a supervisor) stops the JVMs as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        with standalone_cluster(
            args.work_dir,
            port=args.port,
            webui_port=args.webui_port,
            cores=args.cores,
            memory=args.memory,
        ) as cluster:
            print(
                f"Spark master {cluster.master_url} (web UI {cluster.web_url}), logs in "
                f"{cluster.work_dir / 'logs'}; Ctrl-C stops it. To link on it:",
                flush=True,
            )
            print(
                f"  JOINEDUP_SPARK_MASTER={cluster.master_url} "
                'JOINEDUP_SPARK_CONF=\'{"spark.executor.memory": "1g"}\' '
                "joinedup run --linkage-backend spark",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except LinkageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
