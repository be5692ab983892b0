"""Airflow DAGs that ingest each source's landing extracts: one DAG per source.

Each DAG validates one source's files against its data contract, writes the
quarantine and ledger rows, and updates the source's Asset; the
link-and-build DAG is scheduled on those Assets. The work is done by
``joinedup.pipeline``; this file only says when.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, Param, dag, task

from joinedup.ingest.load import SOURCES
from joinedup.orchestration import (
    DATA_DIR_PARAM,
    DEFAULT_ARGS,
    PARAMS_DOC,
    START,
    UNPAUSED_DOC,
    source_asset_uri,
)

DOC = """
### Ingest `{source}` extracts

Validates every `landing/{source}/*.csv` file against its data contract
(docs/contracts.md). Rows that cannot be used go to `quarantine/{source}/` with a
reason, file and line; the ledger records rows received, loaded and
quarantined per file.

**When it fails**: a file that cannot be read as a delivery stops the run
(a missing required column, an empty or compressed or binary file, broken
quoting, an unsafe name or a link; see docs/contracts.md, "Files rejected whole").
The task log names the file and what is wrong: ask the supplier for a corrected
file, or move the bad file out of `landing/`, then clear the task. Quarantined rows
do not fail the run; review them in `quarantine/`.
"""


def _ingest_dag(source: str):
    @dag(
        dag_id=f"joinedup_ingest_{source}",
        description=f"Validate and load the {source} landing extracts",
        doc_md=DOC.format(source=source) + PARAMS_DOC + UNPAUSED_DOC,
        schedule=None,
        start_date=START,
        catchup=False,
        is_paused_upon_creation=False,  # why: UNPAUSED_DOC, in the DAG's docs
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["joinedup", "ingest", source],
        params={
            "data_dir": Param("", type="string", description=DATA_DIR_PARAM),
            "run_id": Param("", type="string", description="run id; blank: this DAG run's id"),
        },
    )
    def ingest_dag():
        @task(
            outlets=[Asset(source_asset_uri(source))],
            execution_timeout=timedelta(minutes=30),
        )
        def ingest(params=None, run_id=None, outlet_events=None) -> dict:
            """Checks the data directory (JOINEDUP_DATA_DIR, or data_dir inside it), then
            validates and loads the source's files."""
            from joinedup import pipeline
            from joinedup.orchestration import data_dir_for

            rid = params["run_id"] or run_id
            data_dir = str(data_dir_for(params["data_dir"]))
            summary = pipeline.ingest(data_dir, source, rid)
            # The link-and-build run these events start works in the same place, same id.
            outlet_events[Asset(source_asset_uri(source))].extra = {
                "run_id": rid,
                "data_dir": data_dir,
            }
            return summary

        ingest()

    return ingest_dag()


for _source in SOURCES:
    globals()[f"joinedup_ingest_{_source}"] = _ingest_dag(_source)
