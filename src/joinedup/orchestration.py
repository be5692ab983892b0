"""What the Airflow DAGs share: default arguments, Asset names, pools, run ids.

Kept in the package (not in dags/) so the CLI and tests use the same names.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joinedup.settings import RunConfigError

START = datetime(2025, 1, 1, tzinfo=UTC)

# Where the data lives is deployment configuration (joinedup.settings.Settings.data_dir).
DATA_DIR_SETTING = "JOINEDUP_DATA_DIR"
DATA_DIR_PARAM = (
    f"blank: {DATA_DIR_SETTING} (or, for a run its Assets started, the folder its ingest "
    f"runs used); else a folder inside {DATA_DIR_SETTING}, absolute or relative to it"
)

# Appended to every DAG's documentation (dags/).
PARAMS_DOC = f"""
**Where the data is**: `{DATA_DIR_SETTING}`, an absolute path set in the environment of
every Airflow process, is the data directory; no conf is needed. A `data_dir` param can only
narrow it to a folder inside it. A bad value fails the first task, before any work.
"""

UNPAUSED_DOC = """
**Not paused at creation** (`is_paused_upon_creation=False`): these DAGs run only when
someone triggers an ingest DAG, and `joinedup_link_and_build` only when every ingest DAG
has updated its Asset. Paused, a triggered run would wait and the Asset events would start
nothing until someone noticed, with no error anywhere; pause a DAG by hand to hold
deliveries back.
"""

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "joinedup-data-engineering",
    # Scheduled runs retry transient failures; `joinedup run` sets 0 to fail fast.
    "retries": int(os.environ.get("JOINEDUP_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(minutes=30),
}

# DuckDB allows one writer per file: tasks that write the data directory's
# databases share a one-slot pool (created by `joinedup run` / `make airflow`).
DUCKDB_POOL = "joinedup_duckdb_writer"


def source_asset_uri(source: str) -> str:
    return f"joinedup://landing/{source}"


def deployed_data_dir() -> Path:
    """The data directory every DAG task works in: JOINEDUP_DATA_DIR, absolute and existing.

    Deployment configuration, not a run parameter: ingest runs and the link-and-build runs
    their Assets start must agree with no conf at all, and a scheduler's working directory
    is nobody's business, so a relative or missing setting is refused rather than guessed.
    """
    from joinedup.settings import Settings

    settings = Settings()
    where = f"{DATA_DIR_SETTING} in the environment of every Airflow process (scheduler, "
    where += "workers, dag-processor, api-server)"
    if "data_dir" not in settings.model_fields_set:
        raise RunConfigError(
            f"{DATA_DIR_SETTING} is not set: set it to the absolute path of the data "
            f"directory {where}; `joinedup run` sets it from --data-dir"
        )
    root = settings.data_dir
    if not root.is_absolute():
        raise RunConfigError(
            f"{DATA_DIR_SETTING}={root} is relative: set it to an absolute path {where}"
        )
    if not root.is_dir():
        raise RunConfigError(
            f"{DATA_DIR_SETTING}={root} is not a directory: create it (and put extracts in "
            f"its landing/) or correct {DATA_DIR_SETTING}"
        )
    return root.resolve()


def _event_values(events: Any, key: str) -> set[str]:
    found = set()
    for asset_events in (events or {}).values():
        for event in asset_events:
            value = (getattr(event, "extra", None) or {}).get(key)
            if value:
                found.add(value)
    return found


def data_dir_for(param: str, events: Any = None) -> Path:
    """The data directory of one DAG run: JOINEDUP_DATA_DIR, or a folder inside it.

    ``param`` (the ``data_dir`` run parameter) may only narrow the setting: a path inside
    it, absolute or relative to it. Blank, an asset-triggered run takes the one its
    ingest runs used (``events``: their outlet events), else the setting itself.
    """
    root = deployed_data_dir()
    if not param:
        used = _event_values(events, "data_dir")
        if len(used) > 1:
            raise RunConfigError(
                f"the ingest runs that triggered this run used different data directories "
                f"({', '.join(sorted(used))}): trigger it again with data_dir set to one"
            )
        param = used.pop() if used else ""
    if not param:
        return root
    candidate = (root / param).resolve()  # an absolute param replaces root here
    if not candidate.is_relative_to(root):
        raise RunConfigError(
            f"data_dir {param!r} lies outside {DATA_DIR_SETTING} ({root}): a run may only "
            f"use that directory or a folder inside it; leave data_dir blank to use {root}"
        )
    if not candidate.is_dir():
        raise RunConfigError(f"data_dir {param!r} ({candidate}) is not a directory")
    return candidate


def run_id_from(param: str, events: Any, own_run_id: str) -> str:
    """The run id a link-and-build run works under.

    An explicit param wins; otherwise, when every source was ingested under the
    same run id (as `joinedup run` does), that one; otherwise this DAG run's own
    id (the sources are then re-ingested under it by ``ensure_ingested``).
    """
    if param:
        return param
    ids = _event_values(events, "run_id")
    return ids.pop() if len(ids) == 1 else own_run_id


def task_list(dag: Any) -> str:
    """The DAG's tasks as a numbered Markdown list, in an order they can run in.

    Each task upstream of another comes first; ties keep the order the DAG defines them
    in. Each line is the task's own docstring, so the DAG's documentation is made from
    the DAG and there is no second statement of the order to keep true.
    """
    tasks = list(dag.tasks)
    position = {t.task_id: i for i, t in enumerate(tasks)}
    waiting = {t.task_id: set(t.upstream_task_ids) for t in tasks}
    ordered: list[Any] = []
    while waiting:
        ready = sorted((tid for tid, up in waiting.items() if not up), key=position.__getitem__)
        if not ready:
            raise ValueError(f"{dag.dag_id}: tasks {sorted(waiting)} form a cycle")
        first = ready[0]
        ordered.append(tasks[position[first]])
        del waiting[first]
        for up in waiting.values():
            up.discard(first)
    lines = []
    for n, t in enumerate(ordered, 1):
        about = " ".join((t.doc_md or t.doc or "").split())
        lines.append(f"{n}. `{t.task_id}` - {about}" if about else f"{n}. `{t.task_id}`")
    return "\n".join(lines)
