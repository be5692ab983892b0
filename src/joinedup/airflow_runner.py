"""Run the Airflow DAGs in-process (``dag.test()``) for ``joinedup run``.

The CLI does not know the pipeline's order: it runs the DAGs in ``dags/``,
first those with no schedule (the per-source ingest DAGs), then those
scheduled on the Assets the first ones update, each with the same conf.
Airflow's own output goes to ``DATA/airflow/logs/run-<id>.log``; the terminal
shows each task as it starts and ends, with its elapsed time, a line every
``PROGRESS_EVERY`` seconds while a task runs (with the latest thing the pipeline
logged), and one line per DAG.

A run may be killed at any point (SIGKILL, power loss). Every output is written
to a temporary name and renamed, so what a killed run leaves behind is: DAG runs
that Airflow's database still calls running, and hidden temporaries. The next
run on the data directory holds ``DATA/airflow/run.lock`` for its whole length
(two runs on one data directory would overwrite each other's files), so any DAG
run that ``dag.test()`` started and that is still running then belongs to a
dead process: it is marked failed, and the dead writers' temporaries are
removed, before anything runs. Re-run with the same ``--run-id`` to replace the
killed run's figures (every stage is idempotent per run id).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joinedup.atomic import remove_stale_temporaries, write_json
from joinedup.catalogue import AIRFLOW, DAGS_DIR
from joinedup.privacy.permissions import make_private_dirs

DAGS_FOLDER = DAGS_DIR
RUN_LOCK = "run.lock"
# A task running longer than this shows a progress line this often.
PROGRESS_EVERY = 15.0


# A run id names the run's log and summary files: nothing that could leave their folders.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class DagRunFailed(RuntimeError):
    """A DAG run did not succeed; the message names the DAG, failed tasks and the log."""


class InvalidRunId(ValueError):
    """A run id that could name a file outside its folder (or is otherwise unsafe)."""


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is safe to name files with, else InvalidRunId saying what is allowed."""
    if not RUN_ID.fullmatch(run_id):
        raise InvalidRunId(
            f"run id {run_id!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. 2026-04-delivery)"
        )
    return run_id


@dataclass(frozen=True)
class DagResult:
    dag_id: str
    state: str
    seconds: float
    failed_tasks: tuple[str, ...]


def airflow_env(data_dir: Path) -> dict[str, str]:
    """Environment for a local, self-contained Airflow under the data directory (SQLite)."""
    home = AIRFLOW.under(Path(data_dir).resolve())
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Every task reads its data directory from here (joinedup.orchestration).
        "JOINEDUP_DATA_DIR": str(Path(data_dir).resolve()),
        # An interactive run stops at the first failure instead of waiting out retries.
        "JOINEDUP_TASK_RETRIES": "0",
    }


def _writes_to_fd_1() -> bool:
    try:
        return sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # replaced by a test runner's capture
        return False


@contextlib.contextmanager
def _output_to(
    log_file: Path, progress: Callable[[str], None] = print
) -> Iterator[Callable[[str], None]]:
    """Send everything written to stdout/stderr (including by C code) to ``log_file``.

    Yields how to still reach the terminal meanwhile: ``progress`` itself when stdout is
    not file descriptor 1 (a test runner's capture), else a write to the saved terminal.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    to_terminal = _writes_to_fd_1()
    saved = os.dup(1), os.dup(2)

    def terminal(message: str) -> None:
        if to_terminal:
            os.write(saved[0], (message + "\n").encode("utf-8", "replace"))
        else:
            progress(message)

    with log_file.open("ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# Beside airflow.db: which Airflow packages last migrated it, and to which revision.
MIGRATED = "migrated.json"


def _airflow_packages() -> list[list[str]]:
    """Installed apache-airflow distributions and versions: what fixes the schema wanted.

    Airflow's migrations (and any provider's database manager) ship inside these packages,
    so while none of them changes, the revision a migration reaches cannot change either.
    """
    from importlib.metadata import distributions

    found = {
        (d.metadata["Name"] or "").lower().replace("_", "-"): d.version for d in distributions()
    }
    return sorted([name, v] for name, v in found.items() if name.startswith("apache-airflow"))


def _db_revisions() -> list[str] | None:
    """The Alembic revision(s) the metadata database says it is at; None if unreadable."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    try:
        with create_session() as session:
            return sorted(
                r[0] for r in session.execute(text("SELECT version_num FROM alembic_version"))
            )
    except Exception:  # no database yet, no table: migrate
        return None


def _already_migrated(home: Path, packages: list[list[str]]) -> bool:
    """The database is at the revision these same Airflow packages migrated it to last time."""
    try:
        record = json.loads((home / MIGRATED).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("packages") != packages:
        return False
    revisions = _db_revisions()
    return bool(revisions) and revisions == record.get("revisions")


def _migrate(env: dict[str, str], log_file: Path) -> None:
    """Create or upgrade Airflow's metadata database (what ``airflow db migrate`` does).

    In this process, not a second interpreter: the run imports Airflow anyway, and
    ``airflow db migrate`` spent ~6 s of every run importing it again (issue 23). The
    environment (``airflow_env``) is set before Airflow is first imported, so its
    settings point at this data directory's database.

    Checking a migrated database against Airflow's ~125 migration scripts costs 1-4 s per
    run (issue 23), so after a migration ``MIGRATED`` records the Airflow packages and the
    revision reached; a run whose packages and database revision both still match skips
    the migration and does only the rest of what ``upgradedb`` does on a current database
    (the default pool, the log template). Any difference, or no record, migrates.
    """
    home = Path(env["AIRFLOW_HOME"])
    # XComs, config and logs: owner-only, whatever the umask Airflow writes with.
    make_private_dirs(home, home)
    with _output_to(log_file):
        from airflow.models import import_all_models
        from airflow.utils.db import (
            add_default_pool_if_not_exists,
            synchronize_log_template,
            upgradedb,
        )

        packages = _airflow_packages()
        try:
            if _already_migrated(home, packages):
                import_all_models()  # as upgradedb does: the ORM's relationships need them
                add_default_pool_if_not_exists()
                synchronize_log_template()
                return
            (home / MIGRATED).unlink(missing_ok=True)
            upgradedb()
        # Airflow exits (SystemExit) when the database cannot be migrated automatically.
        except (Exception, SystemExit) as exc:
            raise DagRunFailed(
                f"migrating Airflow's metadata database failed ({exc!r}); see {log_file}"
            ) from exc
        revisions = _db_revisions()
        if revisions:
            write_json({"packages": packages, "revisions": revisions}, home / MIGRATED)


_ERROR = re.compile(r"^[\w.]+(Error|Exception): ")
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def last_error(log_file: Path) -> str:
    """The last exception message in the Airflow log (our errors say what to do)."""
    lines = log_file.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if _ERROR.match(line)]
    if not starts:
        return ""
    block = []
    for line in lines[starts[-1] :]:
        if _LOG_LINE.match(line):
            break
        block.append(line)
    return "\n".join(block[:20])


@contextlib.contextmanager
def _run_lock(data_dir: Path) -> Iterator[None]:
    """Hold DATA/airflow/run.lock for a whole run; the kernel frees it if the run dies."""
    lock_file = AIRFLOW.under(data_dir) / RUN_LOCK
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DagRunFailed(
                f"another `joinedup run` is running on {data_dir} (it holds {lock_file}); "
                "wait for it to finish, or stop it, then run again."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def close_interrupted_runs() -> list[str]:
    """Mark failed the joinedup DAG runs ``dag.test()`` started that are still running.

    Call only while holding the run lock: then no live process owns such a run, and
    its "running" tasks were killed with it. Runs that a scheduler started (``make
    airflow``) are left to the scheduler. Returns ``"<dag_id> <run_id>"`` per run closed.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, State, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select

    closed = []
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(
                DagRun.dag_id.like("joinedup_%"),
                DagRun.state.in_([DagRunState.RUNNING, DagRunState.QUEUED]),
                DagRun.triggered_by == DagRunTriggeredByType.TEST,
            )
        ).all()
        for dag_run in runs:
            for ti in dag_run.get_task_instances(session=session):
                if ti.state == TaskInstanceState.RUNNING:
                    ti.set_state(TaskInstanceState.FAILED, session=session)
                elif ti.state not in State.finished:  # never started: it waited on the killed one
                    ti.set_state(TaskInstanceState.UPSTREAM_FAILED, session=session)
            dag_run.set_state(DagRunState.FAILED)
            closed.append(f"{dag_run.dag_id} {dag_run.run_id}")
    return closed


def remove_leftover_temporaries(data_dir: Path) -> list[Path]:
    """Temporaries of killed writers anywhere in the data directory (not Airflow's home)."""
    data_dir = Path(data_dir)
    removed: list[Path] = []
    for folder, subfolders, _files in os.walk(data_dir):
        if Path(folder) == data_dir and "airflow" in subfolders:
            subfolders.remove("airflow")
        removed += remove_stale_temporaries(Path(folder))
        # Removed temporary folders are not walked into.
        subfolders[:] = [d for d in subfolders if (Path(folder) / d).exists()]
    return removed


def _elapsed(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class _LastMessage(logging.Handler):
    """Keeps the latest INFO message the pipeline logged: what a long task is doing now."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.message = " ".join(record.getMessage().split())[:120]


class TaskProgress:
    """Airflow task listener for ``dag.test()``: a line per task start and end, and while a
    task runs, a line every ``every`` seconds with its elapsed time and latest log message.

    Registered once per process with Airflow's listener manager; ``emit`` is swapped per
    DAG run. The ticker is a thread because ``dag.test()`` runs each task in this one.
    """

    def __init__(self) -> None:
        self.emit: Callable[[str], None] | None = None
        self.every = PROGRESS_EVERY
        self.last = _LastMessage()
        self._lock = threading.Lock()
        self._running: dict[str, float] = {}  # task id: when it started
        self._shown: dict[str, float] = {}  # task id: when its last line was shown
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _say(self, line: str) -> None:
        emit = self.emit
        if emit is not None:
            with self._lock:
                emit(line)

    @contextlib.contextmanager
    def reporting(self, emit: Callable[[str], None], every: float) -> Iterator[None]:
        self.emit, self.every = emit, every
        self._running.clear()
        self._shown.clear()
        self._wake.clear()
        pipeline_log = logging.getLogger("joinedup")
        pipeline_log.addHandler(self.last)
        # The handler sees INFO only if the logger passes it on; restored afterwards.
        level = pipeline_log.level
        if pipeline_log.getEffectiveLevel() > logging.INFO:
            pipeline_log.setLevel(logging.INFO)
        self._thread = threading.Thread(target=self._tick, name="joinedup-progress", daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._wake.set()
            self._thread.join()
            pipeline_log.removeHandler(self.last)
            pipeline_log.setLevel(level)
            self.emit = None

    def _tick(self) -> None:
        while not self._wake.wait(min(self.every, 1.0)):
            now = time.perf_counter()
            for task_id, since in list(self._running.items()):
                if now - self._shown.get(task_id, since) >= self.every:
                    self._shown[task_id] = now
                    doing = f"  ({self.last.message})" if self.last.message else ""
                    self._say(f"    {task_id:<26} running  {_elapsed(now - since):>7}{doing}")

    def _end(self, task_id: str, word: str) -> None:
        since = self._running.pop(task_id, None)
        took = _elapsed(time.perf_counter() - since) if since is not None else "?"
        self._say(f"    {task_id:<26} {word:<8} {took:>7}")

    # Airflow's task instance listener hooks (airflow.sdk listener spec).
    def on_task_instance_running(self, previous_state, task_instance) -> None:
        self.last.message = ""
        self._running[task_instance.task_id] = time.perf_counter()
        self._say(f"    {task_instance.task_id:<26} started")

    def on_task_instance_success(self, previous_state, task_instance) -> None:
        self._end(task_instance.task_id, "done")

    def on_task_instance_failed(self, previous_state, task_instance, error) -> None:
        self._end(task_instance.task_id, "failed")

    def on_task_instance_skipped(self, previous_state, task_instance) -> None:
        self._end(task_instance.task_id, "skipped")


_PROGRESS: TaskProgress | None = None


def task_progress() -> TaskProgress:
    """This process's TaskProgress, registered with Airflow's listener manager once."""
    global _PROGRESS
    if _PROGRESS is None:
        from airflow.listeners import hookimpl
        from airflow.sdk.listener import get_listener_manager

        progress = TaskProgress()
        for name in (
            "on_task_instance_running",
            "on_task_instance_success",
            "on_task_instance_failed",
            "on_task_instance_skipped",
        ):
            hookimpl(getattr(TaskProgress, name))
        get_listener_manager().add_listener(progress)
        _PROGRESS = progress
    return _PROGRESS


def _is_asset_scheduled(dag) -> bool:
    return type(dag.timetable).__name__ == "AssetTriggeredTimetable"


def run_dags(
    data_dir: Path,
    conf: dict[str, Any],
    log_file: Path,
    progress: Callable[[str], None] = print,
    progress_every: float = PROGRESS_EVERY,
) -> list[DagResult]:
    """Run every joinedup DAG once, ingest DAGs first, stopping at the first failure.

    The tasks read ``data_dir`` from JOINEDUP_DATA_DIR, set here as a scheduler's
    environment would set it. ``progress`` gets each line for the terminal.
    """
    if conf.get("run_id"):  # blank: the DAG runs take their own ids
        check_run_id(conf["run_id"])  # before the lock, the log or Airflow's home is made
    with _run_lock(data_dir):
        return _run_dags(data_dir, conf, log_file, progress, progress_every)


def _run_dags(
    data_dir: Path,
    conf: dict[str, str],
    log_file: Path,
    progress: Callable[[str], None],
    progress_every: float,
) -> list[DagResult]:
    env = airflow_env(data_dir)
    os.environ.update(env)
    t0 = time.perf_counter()
    progress("preparing Airflow (local SQLite metadata database) ...")
    _migrate(env, log_file)
    results: list[DagResult] = []
    leftovers = remove_leftover_temporaries(data_dir)
    if leftovers:
        progress(f"  removed {len(leftovers)} temporary file(s) an interrupted run left")
    with _output_to(log_file):
        closed = close_interrupted_runs()
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.pool import Pool

        from joinedup.orchestration import DUCKDB_POOL

        Pool.create_or_update_pool(
            DUCKDB_POOL, slots=1, description="one DuckDB writer at a time", include_deferred=False
        )
        bag = DagBag(str(DAGS_FOLDER))
        if bag.import_errors:
            errors = "; ".join(f"{k}: {v.splitlines()[-1]}" for k, v in bag.import_errors.items())
            raise DagRunFailed(f"DAG files failed to import: {errors}")
    ordered = sorted(
        (d for d in bag.dags.values() if d.dag_id.startswith("joinedup_")),
        key=lambda d: (_is_asset_scheduled(d), d.dag_id),
    )
    if closed:
        progress(f"  marked failed {len(closed)} DAG run(s) an interrupted run left running")
    progress(f"  ready in {time.perf_counter() - t0:.0f}s; {len(ordered)} DAGs to run")
    reporter = task_progress()
    for dag in ordered:
        started = time.perf_counter()
        progress(f"  {dag.dag_id}")
        with (
            _output_to(log_file, progress) as terminal,
            reporter.reporting(terminal, progress_every),
        ):
            dag_run = dag.test(run_conf=conf)
        failed = tuple(ti.task_id for ti in dag_run.get_task_instances() if ti.state == "failed")
        result = DagResult(dag.dag_id, str(dag_run.state), time.perf_counter() - started, failed)
        results.append(result)
        progress(f"  {dag.dag_id:<36} {result.state:<8} {result.seconds:6.1f}s")
        if result.state != "success":
            raise DagRunFailed(
                f"{dag.dag_id} {result.state} at task {', '.join(failed) or '?'} "
                f"(later tasks did not run).\n{last_error(log_file)}\nFull log: {log_file}"
            )
    return results
