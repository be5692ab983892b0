"""Airflow DAG: opt-outs, pseudonymisation, linkage, quality gates, dbt, publish.

Scheduled on the ingest DAGs' Assets, so it runs once every source has
delivered. The work is done by ``joinedup.pipeline``; this file only says
when, in what order, and with which retries.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, Param, dag, task

from joinedup.ingest.load import SOURCES
from joinedup.orchestration import (
    DATA_DIR_PARAM,
    DEFAULT_ARGS,
    DUCKDB_POOL,
    PARAMS_DOC,
    START,
    UNPAUSED_DOC,
    run_id_from,
    source_asset_uri,
    task_list,
)

DOC = """
### Link and build

Runs once every source has delivered (the ingest DAGs' Assets). The tasks, in the
order they run (this list is made from the DAG itself, so it cannot drift from it):

{tasks}

**When it fails**: read the failed task's log; every error says what was wrong, where,
and what to do. Tasks are idempotent: fix the cause and clear the failed task.
A `privacy_gate` failure means an output holds identifiers: do not publish, find the
stage that wrote them. A `privacy_report` failure means the new marts break a
re-identification rule set to fail: read `privacy/report.html`, fix, and run again from
`stage_analytics` (the candidate was removed). docs/runbook.md has every failure and
what to do about it.
"""


@dag(
    dag_id="joinedup_link_and_build",
    description="Opt-outs, pseudonymisation, Splink linkage, quality gates, dbt marts, publish",
    schedule=[Asset(source_asset_uri(s)) for s in SOURCES],
    start_date=START,
    catchup=False,
    is_paused_upon_creation=False,  # why: UNPAUSED_DOC, in the DAG's docs
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["joinedup", "linkage"],
    params={
        "data_dir": Param("", type="string", description=DATA_DIR_PARAM),
        "run_id": Param("", type="string", description="run id; blank: from the ingest runs"),
        "trained_model": Param(
            "",
            type="string",
            description="reuse a model a run wrote: a file in DATA/linked/ whose SHA-256 a run "
            "record under DATA/runs/ lists; blank: train",
        ),
        "relink": Param(
            False,
            type="boolean",
            description="link every record afresh instead of incrementally, and report the "
            "drift of incremental linkage (docs/linkage.md)",
        ),
    },
)
def joinedup_link_and_build():
    @task
    def resolve_run(params=None, run_id=None, triggering_asset_events=None) -> dict:
        """Checks the run before any work: the data directory (JOINEDUP_DATA_DIR, or the
        one the ingest runs used inside it), a trained_model the pipeline wrote, the key
        and landing data; takes the run id from the ingest runs."""

        from joinedup import pipeline
        from joinedup.linkage.model import check_trained_model
        from joinedup.orchestration import data_dir_for

        data_dir = data_dir_for(params["data_dir"], triggering_asset_events)
        model = params["trained_model"]
        model = str(check_trained_model(data_dir, model)) if model else ""
        rid = run_id_from(params["run_id"], triggering_asset_events, run_id)
        pipeline.check_ready(data_dir)
        return {
            "data_dir": str(data_dir),
            "run_id": rid,
            "trained_model": model,
            "relink": bool(params.get("relink", False)),
        }

    @task(pool=DUCKDB_POOL)
    def ensure_ingested(run: dict) -> dict:
        """Every source has ledger rows for this run; re-ingests any that has not."""

        from joinedup import pipeline

        return pipeline.ensure_ingested(run["data_dir"], run["run_id"])

    @task(pool=DUCKDB_POOL)
    def opt_outs(run: dict, _ingested: dict) -> dict:
        """National data opt-out and GP type 1 objections removed before anything else."""

        from joinedup import pipeline

        return pipeline.opt_outs(run["data_dir"], run["run_id"])

    @task(pool=DUCKDB_POOL, execution_timeout=timedelta(hours=1))
    def pseudonymise(run: dict, _opt_outs: dict) -> dict:
        """Keyed tokens and linkage encodings; nothing identifiable leaves landing/."""

        from joinedup import pipeline

        return pipeline.pseudonymise_stage(run["data_dir"], run["run_id"])

    @task(pool=DUCKDB_POOL, execution_timeout=timedelta(hours=2))
    def link(run: dict, _pseudonymised: dict) -> dict:
        """Splink links records into stable persons and finds opted-out people's records that
        carry no NHS number (left out of record_person)."""

        from joinedup import pipeline
        from joinedup.linkage.model import check_trained_model

        model = run.get("trained_model") or None
        if model:  # checked again: the file could have changed since resolve_run
            model = str(check_trained_model(run["data_dir"], model))
        return pipeline.link_stage(
            run["data_dir"], run["run_id"], model, relink=bool(run.get("relink"))
        )

    @task(pool=DUCKDB_POOL, execution_timeout=timedelta(hours=1))
    def remove_linked_opt_outs(run: dict, _linked: dict) -> dict:
        """Those records, with all their events, leave pseudonymised/ and are counted in the
        ledger as opted out."""

        from joinedup import pipeline

        return pipeline.remove_linked_opt_outs_stage(run["data_dir"], run["run_id"])

    # A failed gate, a leak or an unbalanced ledger is not transient: never retry these.
    @task(retries=0, execution_timeout=timedelta(hours=1))
    def quality_gate_landing(run: dict, _ingested: dict) -> dict:
        """Great Expectations on the validated extracts: value sets, date ranges, volumes per
        organisation against the last delivery."""

        from joinedup import pipeline

        return pipeline.quality_gate(run["data_dir"], "landing", run["run_id"])

    @task(retries=0, execution_timeout=timedelta(hours=1))
    def quality_gates_inputs(run: dict, _linked_opt_outs: dict) -> dict:
        """Great Expectations on the pseudonymised and linked zones."""

        from joinedup import pipeline

        return {
            zone: pipeline.quality_gate(run["data_dir"], zone, run["run_id"])
            for zone in ("pseudonymised", "linked")
        }

    @task(pool=DUCKDB_POOL, execution_timeout=timedelta(hours=1))
    def build_warehouse(run: dict, _gates: dict) -> dict:
        """`dbt build` (models, secondary suppression, their tests) into warehouse.duckdb."""

        from joinedup import pipeline

        return pipeline.build_warehouse_stage(run["data_dir"], run["run_id"])

    @task(retries=0, execution_timeout=timedelta(hours=1))
    def quality_gates_marts(run: dict, _warehouse: dict) -> dict:
        """Great Expectations on the marts: suppression, rates, reconciliation."""

        from joinedup import pipeline

        return pipeline.quality_gate(run["data_dir"], "marts", run["run_id"])

    @task(retries=0, execution_timeout=timedelta(hours=1))
    def privacy_gate(run: dict, _marts_gate: dict) -> dict:
        """No landing identifier may appear in any output."""

        from joinedup import pipeline

        return pipeline.privacy_gate(run["data_dir"])

    @task(pool=DUCKDB_POOL)
    def stage_analytics(run: dict, _privacy: dict) -> dict:
        """The marts alone, as a hidden owner-only candidate beside analytics.duckdb."""

        from joinedup import pipeline

        return pipeline.stage_analytics_stage(run["data_dir"], run["run_id"])

    @task(pool=DUCKDB_POOL)
    def publish(run: dict, risk: dict) -> dict:
        """The candidate the report measured (same SHA-256) renamed over analytics.duckdb."""

        from joinedup import pipeline

        return pipeline.publish_stage(run["data_dir"], run["run_id"], risk["sha256"])

    @task
    def docs(run: dict, _published: dict) -> dict:
        """dbt docs (docs/dbt/) and Great Expectations Data Docs (quality/docs/)."""

        from joinedup import pipeline

        return pipeline.docs_stage(run["data_dir"])

    @task(retries=0, execution_timeout=timedelta(hours=1))
    def privacy_report(run: dict, staged: dict, opt_outs: dict, linked_opt_outs: dict) -> dict:
        """Re-identification risk of the candidate and the data protection pack (privacy/);
        warns, or fails where JOINEDUP_PRIVACY_ON_* say so (nothing is then published)."""

        from joinedup import pipeline

        return pipeline.privacy_report_stage(
            run["data_dir"],
            run["run_id"],
            {"opt_outs": opt_outs, "linked_opt_outs": linked_opt_outs},
            candidate=staged["candidate"],
        )

    @task(retries=0)
    def finalise(run: dict, stages: dict) -> dict:
        """The ledger must balance (received = loaded + quarantined + opted out); writes
        runs/<run id>.json with the run's provenance."""

        from joinedup import pipeline

        return pipeline.finalise(run["data_dir"], run["run_id"], stages)

    run = resolve_run()
    ingested = ensure_ingested(run)
    landing_gate = quality_gate_landing(run, ingested)
    removed = opt_outs(run, landing_gate)
    pseudo = pseudonymise(run, removed)
    linked = link(run, pseudo)
    linked_removed = remove_linked_opt_outs(run, linked)
    input_gates = quality_gates_inputs(run, linked_removed)
    warehouse = build_warehouse(run, input_gates)
    marts_gate = quality_gates_marts(run, warehouse)
    privacy = privacy_gate(run, marts_gate)
    staged = stage_analytics(run, privacy)
    risk = privacy_report(run, staged, removed, linked_removed)
    published = publish(run, risk)
    documented = docs(run, published)
    finalise(
        run,
        {
            "opt_outs": removed,
            "pseudonymise": pseudo,
            "linkage": linked,
            "linked_opt_outs": linked_removed,
            "quality": {"landing": landing_gate, "inputs": input_gates, "marts": marts_gate},
            "warehouse": warehouse,
            "privacy": privacy,
            "published": published,
            "docs": documented,
            "privacy_report": risk,
        },
    )


dag = joinedup_link_and_build()
dag.doc_md = DOC.format(tasks=task_list(dag)) + PARAMS_DOC + UNPAUSED_DOC
