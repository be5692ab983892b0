"""The ``joinedup`` command line.

Errors a person can act on are printed as one line on stderr with a non-zero
exit status; tracebacks are kept for bugs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from tqdm import tqdm

from joinedup.catalogue import AIRFLOW, LANDING, RUNS
from joinedup.synth import SynthError, generate

app = typer.Typer(
    help="joinedup: linked-data population health pipeline (synthetic data only in demos).",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)


DATA_DIR_DEFAULT = "default: JOINEDUP_DATA_DIR, else ./data"


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"joinedup: error: {message}", err=True)
    raise typer.Exit(code)


def resolve_data_dir(option: Path | None) -> Path:
    """The data directory: the command's option if given, else the settings' (JOINEDUP_DATA_DIR,
    or .env), else ``data``; the same default dbt and the dashboard use."""
    if option is not None:
        return option
    from pydantic import ValidationError

    from joinedup.settings import Settings

    try:
        return Settings().data_dir
    except ValidationError as exc:
        fail(f"invalid JOINEDUP_* setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def synth(
    people: Annotated[int, typer.Option(help="number of people in the population")] = 10_000,
    seed: Annotated[int, typer.Option(help="random seed; same arguments, same files")] = 42,
    out: Annotated[
        Path | None,
        typer.Option(help=f"data directory for landing/ and truth/ ({DATA_DIR_DEFAULT})"),
    ] = None,
    start: Annotated[str, typer.Option(help="first month of activity, YYYY-MM")] = "2025-04",
    months: Annotated[
        int,
        typer.Option(
            help="months delivered (1-60): the first N months of one population simulated "
            "over 60, so each month's files are the same whatever N is"
        ),
    ] = 12,
    noise: Annotated[
        str, typer.Option(help="identifier-noise profile: standard, or harsh (untraced feeds)")
    ] = "standard",
    layout: Annotated[
        str,
        typer.Option(
            help="national: HES APC and ECDS monthly, CLD quarterly (as an ICB receives "
            "them); generic: joinedup's own layout, one file per table"
        ),
    ] = "national",
) -> None:
    """Write a synthetic landing zone (GP, hospital, social care, opt-outs) and its truth."""
    from joinedup.synth.params import params_for

    try:
        params = params_for(noise)
    except ValueError as exc:
        fail(str(exc))
    out = resolve_data_dir(out)
    with tqdm(total=max(people, 0), unit="people", desc="synth", disable=None) as bar:
        try:
            summary = generate(
                out,
                people,
                seed,
                start=start,
                months=months,
                params=params,
                progress=bar.update,
                layout=layout,
            )
        except SynthError as exc:
            bar.close()
            fail(str(exc))
    typer.echo(
        f"wrote {summary.people:,} people (seed {seed}) to {out}/landing in {summary.seconds:.1f}s"
    )
    for table, rows in summary.rows.items():
        typer.echo(f"  {table:<34} {rows:>12,} rows")


@app.command()
def run(
    data_dir: Annotated[
        Path | None,
        typer.Option(help=f"data directory (landing/ and all outputs; {DATA_DIR_DEFAULT})"),
    ] = None,
    demo_people: Annotated[
        int, typer.Option(help="people in the demo population made when landing/ is empty")
    ] = 10_000,
    run_id: Annotated[str, typer.Option(help="run id (default: run-<UTC timestamp>)")] = "",
    linkage_model: Annotated[
        Path | None,
        typer.Option(
            help="reuse a trained Splink model instead of training: a model.json an earlier "
            "run wrote in DATA/linked/ (its SHA-256 in a record under DATA/runs/)"
        ),
    ] = None,
    progress_every: Annotated[
        float, typer.Option(help="seconds between progress lines while a task runs")
    ] = 15.0,
    relink: Annotated[
        bool,
        typer.Option(
            "--relink",
            help="link every record afresh (train, score all pairs) instead of incrementally, "
            "and report how far incremental linkage had drifted (docs/linkage.md)",
        ),
    ] = False,
    linkage_backend: Annotated[
        Literal["duckdb", "spark"] | None,
        typer.Option(
            help="engine the linkage runs on (default JOINEDUP_LINKAGE_BACKEND, else duckdb); "
            "spark needs the spark extra and Java, see docs/linkage.md (Scale-out)"
        ),
    ] = None,
) -> None:
    """Run the whole pipeline through its Airflow DAGs (in-process, local SQLite)."""
    from joinedup.airflow_runner import DagRunFailed, InvalidRunId, check_run_id, run_dags
    from joinedup.pipeline import run_summary_path
    from joinedup.report import format_run_summary
    from joinedup.settings import MissingKeyError, Settings

    # The run id names log and summary files: it is checked before anything is read or written.
    try:
        run_id = check_run_id(run_id or datetime.now(UTC).strftime("run-%Y%m%dT%H%M%SZ"))
    except InvalidRunId as exc:
        fail(str(exc))
    data_dir = resolve_data_dir(data_dir).resolve()
    try:
        Settings().key()
    except MissingKeyError as exc:
        fail(str(exc))
    if linkage_model:
        from joinedup.linkage.model import UntrustedModelError, check_trained_model

        # Refused here, not at link_and_build's first task after every source was ingested.
        try:
            check_trained_model(data_dir, linkage_model.resolve())
        except UntrustedModelError as exc:
            fail(str(exc))
    if linkage_backend:
        # The DAG's tasks read their settings from the environment of this process.
        os.environ["JOINEDUP_LINKAGE_BACKEND"] = linkage_backend
    if Settings().linkage_backend == "spark":
        from joinedup.linkage.backend import LinkageError
        from joinedup.linkage.spark_backend import check_available

        try:
            check_available()
        except LinkageError as exc:
            fail(str(exc))
    if not any(LANDING.under(data_dir).glob("*/*.csv")):
        typer.echo(
            f"no landing data in {data_dir}: generating a {demo_people:,}-person demo population"
        )
        try:
            generate(data_dir, demo_people, seed=42)
        except SynthError as exc:
            fail(str(exc))
    # The DAGs read the data directory from JOINEDUP_DATA_DIR, which run_dags sets.
    conf: dict[str, Any] = {"run_id": run_id}
    if linkage_model:
        conf["trained_model"] = str(linkage_model.resolve())
    if relink:
        conf["relink"] = True
    log_file = AIRFLOW.under(data_dir) / "logs" / f"{run_id}.log"
    typer.echo(f"run {run_id} on {data_dir} (Airflow log: {log_file})")
    try:
        run_dags(data_dir, conf, log_file, progress=typer.echo, progress_every=progress_every)
    except DagRunFailed as exc:
        fail(str(exc), code=1)
    summary = json.loads(run_summary_path(data_dir, run_id).read_text())
    typer.echo("")
    typer.echo(format_run_summary(data_dir, summary))


@app.command()
def evaluate(
    data_dir: Annotated[
        Path | None,
        typer.Option(help=f"data directory of a linked synthetic run ({DATA_DIR_DEFAULT})"),
    ] = None,
) -> None:
    """Score the linkage against the synthetic truth (pairwise precision, recall, F1)."""
    from joinedup.linkage.evaluate import format_table, write_evaluation
    from joinedup.settings import MissingKeyError, Settings

    data_dir = resolve_data_dir(data_dir)
    try:
        result, path = write_evaluation(data_dir, Settings().key())
    except (MissingKeyError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(format_table(result))
    typer.echo(f"\nwritten to {path}")


@app.command("privacy-report")
def privacy_report(
    data_dir: Annotated[
        Path | None,
        typer.Option(help=f"data directory of a run (analytics.duckdb, runs/; {DATA_DIR_DEFAULT})"),
    ] = None,
    run_id: Annotated[str, typer.Option(help="run the pack describes (default: the last)")] = "",
) -> None:
    """Measure re-identification risk of the published marts; write DATA/privacy/ (report, pack)."""
    data_dir = resolve_data_dir(data_dir)
    from joinedup.privacy.kanon import RiskInputError
    from joinedup.privacy.report import (
        PrivacyRiskError,
        summary_lines,
        write_privacy_report,
    )

    try:
        summary = write_privacy_report(data_dir, run_id=run_id or None)
    except (RiskInputError, ValueError) as exc:
        fail(str(exc))
    except PrivacyRiskError as exc:
        fail(str(exc), code=1)
    typer.echo("\n".join(summary_lines(summary)))


@app.command()
def trace(
    path: Annotated[Path, typer.Argument(help="a file a run read or wrote")],
    data_dir: Annotated[
        Path | None, typer.Option(help=f"data directory holding runs/ ({DATA_DIR_DEFAULT})")
    ] = None,
) -> None:
    """Which run wrote (or read) a file, found by its SHA-256 in the run records."""
    data_dir = resolve_data_dir(data_dir)
    from joinedup.provenance import read_stamp
    from joinedup.provenance import trace as find_runs

    if not path.is_file():
        fail(f"{path} is not a file")
    found = find_runs(data_dir, path)
    for f in found:
        typer.echo(f"{f['role']} of run {f['run_id']} (finished {f['finished_at']}) as {f['path']}")
    stamp = read_stamp(path) if path.suffix == ".duckdb" else None
    if stamp:
        typer.echo(
            f"{path.name} says: written by run {stamp['run_id']} at {stamp['written_at']} "
            f"with code {stamp['code_version']}"
        )
    if not found and not stamp:
        fail(
            f"no run record in {RUNS.under(data_dir)} lists the content of {path}: it was changed "
            "after its run, made outside the pipeline, or belongs to another data directory",
            code=1,
        )


opt_outs_app = typer.Typer(
    help="The national data opt-out round trip with NHS England's service (docs/runbook.md).",
    no_args_is_help=True,
)
app.add_typer(opt_outs_app, name="opt-outs")


@opt_outs_app.command("submission")
def opt_outs_submission(
    data_dir: Annotated[
        Path | None, typer.Option(help=f"data directory holding landing/ ({DATA_DIR_DEFAULT})")
    ] = None,
) -> None:
    """Write the NHS numbers landed, for the national data opt-out service, to DATA/outbox/."""
    from joinedup.deidentify.ndop import write_submission
    from joinedup.ingest import IngestError

    data_dir = resolve_data_dir(data_dir)
    try:
        manifest = write_submission(data_dir)
    except IngestError as exc:
        fail(str(exc))
    typer.echo(
        f"wrote {manifest['submission']}: {manifest['numbers']:,} NHS numbers from "
        f"{len(manifest['deliveries'])} delivery file(s); "
        f"{manifest['rows_without_valid_nhs_number']:,} row(s) carry no valid NHS number "
        "and cannot be checked by the service"
    )
    typer.echo(
        "send it through MESH to the Check for National Data Opt-outs service, then save "
        f"its reply as {manifest['reply_expected_as']}"
    )


if __name__ == "__main__":  # pragma: no cover
    app()
