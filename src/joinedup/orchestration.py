"""What the Airflow DAGs share: default arguments, Asset names, pools, run ids.

Kept in the package (not in dags/) so the CLI and tests use the same names.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2025, 1, 1, tzinfo=UTC)

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


def run_id_from(param: str, events: Any, own_run_id: str) -> str:
    """The run id a link-and-build run works under.

    An explicit param wins; otherwise, when every source was ingested under the
    same run id (as `joinedup run` does), that one; otherwise this DAG run's own
    id (the sources are then re-ingested under it by ``ensure_ingested``).
    """
    if param:
        return param
    ids = set()
    for asset_events in (events or {}).values():
        for event in asset_events:
            rid = (getattr(event, "extra", None) or {}).get("run_id")
            if rid:
                ids.add(rid)
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
