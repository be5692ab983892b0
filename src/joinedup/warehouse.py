"""The care-pathway warehouse: run the dbt project, publish its marts, document it.

The stage functions for the DAG, each a plain call:

* :func:`build_warehouse` runs ``dbt build`` (seeds, models, data tests, unit
  tests) on the pseudonymised tables and ``linked/record_person.parquet``, then
  secondary suppression on the commissioner marts (joinedup.secondary_suppression),
  and writes ``DATA/warehouse.duckdb``;
* :func:`stage_analytics` copies the marts alone into a candidate file beside
  ``analytics.duckdb``, and :func:`publish_candidate` renames it into place once the
  privacy report has measured it (:func:`publish_analytics` does both at once);
  ``analytics.duckdb`` is the read-only file analysts open;
* :func:`generate_docs` writes the dbt documentation site to ``DATA/docs/dbt/``.

dbt's own files (``target/``, ``logs/``) go under ``DATA/dbt/``, never into the
repository. Paths reach ``profiles.yml`` and the source definitions through
environment variables set only for the duration of a call.

The warehouse is built in a folder of its own beside the final file and moved
into place only when every node passed, so a failed or killed build leaves the
previous warehouse untouched. The file keeps its name (``warehouse.duckdb``)
while it is built because DuckDB names the database after the file and dbt's
views refer to that name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from joinedup.atomic import atomic_path, remove_stale_temporaries
from joinedup.permissions import make_private_dirs, make_private_file
from joinedup.provenance import read_stamp, run_stamp, sha256_file, stamp_duckdb
from joinedup.settings import Settings

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[2]
WAREHOUSE = "warehouse.duckdb"
ANALYTICS = "analytics.duckdb"
# The staged analytics file is ".analytics.duckdb.candidate" (candidate_path).
CANDIDATE_SUFFIX = ".candidate"
DBT_DIR = "dbt"
DOCS_DIR = "docs/dbt"
MART_SCHEMA = "marts"
MART_PREFIXES = ("dim_", "fct_", "mart_")
DOCS_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")

# The inputs the sources read, relative to the data directory, and the stage that writes them.
INPUTS: dict[str, str] = {
    "pseudonymised/gp/patients.parquet": "pseudonymise",
    "pseudonymised/gp/events.parquet": "pseudonymise",
    "pseudonymised/hospital/patients.parquet": "pseudonymise",
    "pseudonymised/hospital/apc_episodes.parquet": "pseudonymise",
    "pseudonymised/hospital/ae_attendances.parquet": "pseudonymise",
    "pseudonymised/social_care/clients.parquet": "pseudonymise",
    "pseudonymised/social_care/events.parquet": "pseudonymise",
    "linked/record_person.parquet": "linkage",
}

# Column names that would carry an identifier or a keyed token into the analysts' file.
# person_id is the linked pseudonym analysts join on; birth_month is year and month only.
IDENTIFIER_COLUMN = re.compile(
    r"token|nhs|given_name|family_name|surname|forename|full_name|date_of_birth|birth_date"
    r"|^dob$|_dob$|postcode|post_code|address|patient_id|local_id|la_person_id|spell_id"
    r"|attendance_id|^record_"
)
# A value shaped like a keyed HMAC-SHA256 (record_token and other tokens are 64 hex digits).
TOKEN_VALUE = r"^[0-9a-f]{64}$"

_FAILED = {"error", "fail", "runtime error"}


class WarehouseError(RuntimeError):
    """The warehouse could not be built, published or documented; the message says why."""


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a dbt call, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _dbt_vars(extra: dict[str, Any] | None) -> dict[str, Any]:
    # The disclosure threshold is one pipeline setting (JOINEDUP_SUPPRESSION_THRESHOLD), not a
    # number that could drift apart between dbt and the Python side. The coarsening options
    # (JOINEDUP_COARSEN_*) reach the marts as the columns they withhold.
    from joinedup.privacy_report.coarsening import Coarsening

    settings = Settings()
    return {
        "suppression_threshold": settings.suppression_threshold,
        **Coarsening.from_settings(settings).dbt_vars(),
        **(extra or {}),
    }


def _invoke(
    command: list[str],
    data_dir: Path,
    warehouse_path: Path,
    *,
    project_dir: Path,
    target_path: Path,
    dbt_vars: dict[str, Any],
    threads: int | None,
) -> Any:
    from dbt.cli.main import dbtRunner

    env = {
        "JOINEDUP_DATA_DIR": str(data_dir),
        "JOINEDUP_WAREHOUSE_PATH": str(warehouse_path),
        # profiles.yml reads it: the build is capped (and spills) like every other stage.
        "JOINEDUP_DUCKDB_MEMORY_LIMIT": Settings().duckdb_memory_limit,
        "DO_NOT_TRACK": "1",
    }
    if threads:
        env["JOINEDUP_DBT_THREADS"] = str(threads)
    args = [
        *command,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(data_dir / DBT_DIR / "logs"),
        "--vars",
        json.dumps(dbt_vars),
        # The console gets warnings and errors; the full record is in DATA/dbt/logs/dbt.log.
        "--log-level",
        "warn",
        "--log-level-file",
        "info",
    ]
    log.info("dbt %s (data dir %s)", " ".join(command), data_dir)
    try:
        with _environment(env):
            return dbtRunner().invoke(args)
    finally:
        _release_duckdb(warehouse_path)


def _release_duckdb(database: Path) -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process, checkpointing it.

    dbt-duckdb holds its connection after a run; until it is closed, recent writes may
    sit in the write-ahead log beside the file, and moving the file alone would lose
    them. Closing the last connection checkpoints the log into the file.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    env = DuckDBConnectionManager._ENV
    if env is not None:
        env.close()
    DuckDBConnectionManager.close_all_connections()
    wal = database.with_name(database.name + ".wal")
    if wal.exists():
        with duckdb.connect(str(database)) as con:
            con.execute("checkpoint")
    if wal.exists():
        raise WarehouseError(f"{database} could not be checkpointed ({wal.name} remains)")


def _drop_stale_wal(database: Path) -> None:
    """Remove a write-ahead log left beside ``database`` before a new file replaces it.

    A process killed while it had the file open for writing leaves ``<name>.wal``.
    DuckDB refuses to open a file beside a log that is not its own ("WAL does not
    match database file"), so the new file would be unreadable. The old file is being
    replaced, so its log has nothing to keep.
    """
    wal = database.with_name(database.name + ".wal")
    if wal.exists():
        log.warning("removing %s left by an interrupted run", wal)
        wal.unlink()


def _check_inputs(data_dir: Path) -> None:
    missing = [(p, stage) for p, stage in INPUTS.items() if not (data_dir / p).exists()]
    if missing:
        listed = "; ".join(f"{p} (written by {stage})" for p, stage in missing)
        raise WarehouseError(
            f"cannot build the warehouse in {data_dir}: missing {listed}. Run the ingest "
            "stages and linkage for this data directory first."
        )


def _node_results(result: Any) -> list[Any]:
    return list(getattr(getattr(result, "result", None), "results", None) or [])


def _failure_message(what: str, result: Any, data_dir: Path) -> str:
    log_file = data_dir / DBT_DIR / "logs" / "dbt.log"
    failed = [r for r in _node_results(result) if str(r.status) in _FAILED]
    if not failed:
        reason = result.exception or "no node failed; see the log"
        return f"dbt {what} failed: {reason} (log: {log_file})"
    lines = []
    for r in failed:
        message = (r.message or str(r.status)).strip().splitlines()
        lines.append(f"  {r.node.resource_type} {r.node.name}: {message[0] if message else ''}")
    skipped = sum(1 for r in _node_results(result) if str(r.status) == "skipped")
    return (
        f"dbt {what} failed on {len(failed)} node(s)"
        + (f" ({skipped} downstream skipped)" if skipped else "")
        + ":\n"
        + "\n".join(lines)
        + f"\nFix the data or the model, then build again (log: {log_file})."
    )


def build_warehouse(
    data_dir: Path,
    *,
    threads: int | None = None,
    dbt_vars: dict[str, Any] | None = None,
    project_dir: Path | None = None,
    run_id: str | None = None,
) -> dict:
    """Run ``dbt build`` and write ``DATA/warehouse.duckdb``; raise :class:`WarehouseError`.

    ``dbt_vars`` override the project's vars (e.g. ``{"extract_end_date": "2026-03-31"}``).
    With a ``run_id`` the file gets its provenance table ``main._joinedup_run``.
    Returns a summary: the warehouse path, seconds, node counts by type and status,
    and the names of tests that warned.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir).resolve()
    project_dir = Path(project_dir or PROJECT_DIR).resolve()
    if not (project_dir / "dbt_project.yml").exists():
        raise WarehouseError(f"no dbt project at {project_dir} (dbt_project.yml not found)")
    _check_inputs(data_dir)

    # A fixed name: dbt re-parses the whole project whenever the profile (which holds this
    # path) changes, so a per-run name would cost a full parse on every build.
    build_dir = data_dir / ".warehouse-build"
    shutil.rmtree(build_dir, ignore_errors=True)
    # The warehouse holds record tokens (staging, intermediate): data engineers only.
    make_private_dirs(build_dir, build_dir)
    variables = _dbt_vars(dbt_vars)
    try:
        result = _invoke(
            ["build"],
            data_dir,
            build_dir / WAREHOUSE,
            project_dir=project_dir,
            target_path=data_dir / DBT_DIR / "target",
            dbt_vars=variables,
            threads=threads,
        )
        if not result.success:
            raise WarehouseError(_failure_message("build", result, data_dir))
        secondary = _secondary_suppression(build_dir / WAREHOUSE, variables, project_dir)
        if run_id is not None:
            with duckdb.connect(str(build_dir / WAREHOUSE)) as con:
                stamp_duckdb(con, run_stamp(data_dir, run_id))
        target = data_dir / WAREHOUSE
        make_private_file(build_dir / WAREHOUSE)
        _drop_stale_wal(target)
        os.replace(build_dir / WAREHOUSE, target)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)

    results = _node_results(result)
    counts: dict[str, dict[str, int]] = {}
    for (kind, status), n in sorted(
        Counter((str(r.node.resource_type), str(r.status)) for r in results).items()
    ):
        counts.setdefault(kind, {})[status] = n
    warnings = sorted(r.node.name for r in results if str(r.status) == "warn")
    seconds = round(time.perf_counter() - started, 2)
    log.info("warehouse built in %.1fs: %s (%d warnings)", seconds, target, len(warnings))
    return {
        "warehouse": str(target),
        "seconds": seconds,
        "nodes": counts,
        "warnings": warnings,
        "secondary_suppression": secondary,
    }


def _secondary_suppression(
    database: Path, variables: dict[str, Any], project_dir: Path
) -> dict[str, Any]:
    """Withhold more cells of the commissioner marts until subtraction recovers none.

    Here, after dbt build and before the marts gate and publishing, rather than in dbt:
    it audits, withholds and audits again to a fixed point (joinedup.secondary_suppression).
    """
    from joinedup.privacy_report.rules import rounding_base
    from joinedup.secondary_suppression import (
        SecondarySuppressionError,
        apply_secondary_suppression,
    )

    base = variables.get("rounding_base") or rounding_base(project_dir)
    try:
        with duckdb.connect(str(database)) as con:
            return apply_secondary_suppression(
                con, threshold=int(variables["suppression_threshold"]), rounding_base=int(base)
            )
    except SecondarySuppressionError as exc:
        raise WarehouseError(f"secondary suppression failed: {exc}") from None


def _mart_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None]]:
    return con.execute(
        """
        select table_name, comment
        from duckdb_tables()
        where database_name = 'warehouse' and schema_name = ?
        order by table_name
        """,
        [MART_SCHEMA],
    ).fetchall()


def _columns(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> list:
    return con.execute(
        """
        select column_name, data_type, comment
        from duckdb_columns()
        where database_name = ? and schema_name = ? and table_name = ?
        order by column_index
        """,
        [database, schema, table],
    ).fetchall()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _check_publishable(con: duckdb.DuckDBPyConnection, table: str, columns: list) -> None:
    """Refuse a mart that would carry an identifier or a keyed token to analysts."""
    if not table.startswith(MART_PREFIXES):
        raise WarehouseError(
            f"marts.{table} is not a mart (names start with {', '.join(MART_PREFIXES)}); "
            "move it out of models/marts or rename it before publishing."
        )
    bad = [name for name, _type, _c in columns if IDENTIFIER_COLUMN.search(name)]
    if bad:
        raise WarehouseError(
            f"marts.{table} has identifier-like column(s) {', '.join(bad)}; "
            "drop them from the mart before publishing to analysts."
        )
    texts = [
        name
        for name, dtype, _c in columns
        if dtype == "VARCHAR" and name != "person_id" and not name.endswith("_key")
    ]
    for name in texts:
        n = con.execute(
            f"select count(*) from warehouse.{MART_SCHEMA}.{_quote(table)} "
            f"where length({_quote(name)}) = 64 and regexp_full_match({_quote(name)}, ?)",
            [TOKEN_VALUE],
        ).fetchall()[0][0]
        if n:
            raise WarehouseError(
                f"marts.{table}.{name} holds {n:,} value(s) shaped like keyed tokens; "
                "tokens must not reach analysts."
            )


def analytics_path(data_dir: Path) -> Path:
    """Where the marts are published: ``JOINEDUP_PUBLISHED_DIR`` if set, else the data dir.

    A deployment points it at a folder of its own and mounts that folder read-only into
    the dashboard: a folder, not the file, because publishing renames a new file into
    place and a bind-mounted file would keep showing the old one.
    """
    published = Settings().published_dir
    return (Path(published) if published else Path(data_dir)).resolve() / ANALYTICS


def candidate_path(data_dir: Path) -> Path:
    """Where :func:`stage_analytics` leaves the next ``analytics.duckdb`` until it is published.

    In the published file's folder, so publishing is one rename (atomic), and named so that
    nothing mistakes it for the published file: hidden, and not ending in ``.duckdb``, so
    the dashboard (which opens ``analytics.duckdb`` by name) and an analyst's ``*.duckdb``
    never open it. Not named as a temporary (``.<name>.tmp-<pid>``) either: the process
    that staged it has finished by design, and stale-temporary cleanup would take it
    before the privacy report and publish, which may run in other processes.
    """
    target = analytics_path(data_dir)
    return target.with_name(f".{target.name}{CANDIDATE_SUFFIX}")


def stage_analytics(data_dir: Path, run_id: str | None = None) -> Path:
    """Write the next ``analytics.duckdb`` as the candidate (:func:`candidate_path`), atomically.

    Only tables of the ``marts`` schema named ``dim_``/``fct_``/``mart_`` are copied, as
    tables in ``main`` (views would point back into the warehouse). A mart with an
    identifier-like column or token-shaped values stops it. With a ``run_id`` the file
    gets ``main._joinedup_run``, the run that staged it. The candidate is readable by the
    pipeline's account alone (0400) until :func:`publish_candidate` makes it the published
    file; the previous ``analytics.duckdb`` is not touched.
    """
    data_dir = Path(data_dir).resolve()
    warehouse = data_dir / WAREHOUSE
    if not warehouse.exists():
        raise WarehouseError(f"{warehouse} not found: run build_warehouse first.")
    target = candidate_path(data_dir)
    staged: list[str] = []
    with atomic_path(target) as tmp:
        con = duckdb.connect(str(tmp), config={"memory_limit": Settings().duckdb_memory_limit})
        # Not yet checked by the privacy report: the pipeline's account alone reads it.
        tmp.chmod(stat.S_IRUSR | stat.S_IWUSR)
        try:
            con.execute(f"attach {_literal(str(warehouse))} as warehouse (read_only)")
            tables = _mart_tables(con)
            if not tables:
                raise WarehouseError(f"{warehouse} has no marts: was the build complete?")
            for table, comment in tables:
                columns = _columns(con, "warehouse", MART_SCHEMA, table)
                _check_publishable(con, table, columns)
                con.execute(
                    f"create table main.{_quote(table)} as "
                    f"select * from warehouse.{MART_SCHEMA}.{_quote(table)}"
                )
                if comment:
                    con.execute(f"comment on table main.{_quote(table)} is {_literal(comment)}")
                for name, _type, col_comment in columns:
                    if col_comment:
                        con.execute(
                            f"comment on column main.{_quote(table)}.{_quote(name)} "
                            f"is {_literal(col_comment)}"
                        )
                staged.append(table)
            con.execute("detach warehouse")
            if run_id is not None:
                stamp_duckdb(con, run_stamp(data_dir, run_id))
            con.execute("checkpoint")
        finally:
            con.close()
        tmp.chmod(stat.S_IRUSR)
        _drop_stale_wal(target)
    log.info("staged %d marts at %s: %s", len(staged), target, ", ".join(staged))
    return target


def publish_candidate(
    data_dir: Path, *, sha256: str | None = None, run_id: str | None = None
) -> Path:
    """Make the staged candidate the published ``analytics.duckdb``: one rename.

    ``sha256`` is the checksum of the file the privacy report measured, ``run_id`` the
    run that must have staged it: a candidate that is not that file, or was staged by
    another run, is refused and nothing is published. The published file is read-only
    for everyone (0444): analysts open it with ``duckdb.connect(path, read_only=True)``.
    """
    candidate = candidate_path(data_dir)
    target = analytics_path(data_dir)
    rerun = "Nothing was published; re-run the run (same --run-id) so stage_analytics and "
    rerun += "the privacy report run again before publish."
    if not candidate.exists():
        raise WarehouseError(
            f"nothing to publish: {candidate} not found (stage_analytics writes it, the "
            f"privacy report removes it when it fails). {rerun}"
        )
    if sha256 is not None:
        found = sha256_file(candidate)
        if found != sha256:
            raise WarehouseError(
                f"{candidate} is not the file the privacy report measured (SHA-256 "
                f"{found[:12]}..., the report measured {sha256[:12]}...). {rerun}"
            )
    if run_id is not None:
        stamp = read_stamp(candidate) or {}
        if stamp.get("run_id") != run_id:
            raise WarehouseError(
                f"{candidate} was staged by run {stamp.get('run_id')!r}, not {run_id!r}. {rerun}"
            )
    candidate.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    _drop_stale_wal(target)
    os.replace(candidate, target)
    log.info("published %s", target)
    return target


def discard_candidate(data_dir: Path) -> bool:
    """Remove a staged candidate that must not be published; True if there was one."""
    candidate = candidate_path(data_dir)
    found = candidate.exists()
    candidate.unlink(missing_ok=True)
    _drop_stale_wal(candidate)
    if found:
        log.warning("removed %s: it was not published", candidate)
    return found


def publish_analytics(data_dir: Path, run_id: str | None = None) -> Path:
    """Stage the marts and publish them at once, with no privacy report in between.

    For tests, tools and benchmarks of the warehouse alone. The pipeline runs the two
    steps as tasks of their own (``stage_analytics``, ``privacy_report``, ``publish``)
    so the report checks the very file that is then published.
    """
    stage_analytics(data_dir, run_id)
    return publish_candidate(data_dir, run_id=run_id)


def generate_docs(
    data_dir: Path, *, dbt_vars: dict[str, Any] | None = None, project_dir: Path | None = None
) -> Path:
    """Write the dbt documentation site (``dbt docs generate --static``) to ``DATA/docs/dbt/``.

    Needs a built warehouse (the catalog reads its tables). ``static_index.html`` opens
    from disk with no server; ``index.html`` needs ``manifest.json`` and ``catalog.json``
    beside it. The folder is replaced whole, so readers never see a mix of two builds.
    """
    data_dir = Path(data_dir).resolve()
    project_dir = Path(project_dir or PROJECT_DIR).resolve()
    warehouse = data_dir / WAREHOUSE
    if not warehouse.exists():
        raise WarehouseError(f"{warehouse} not found: run build_warehouse before generate_docs.")
    # Its own target folder, kept between runs for dbt's partial parsing.
    work = data_dir / DBT_DIR / "docs-target"
    target = data_dir / DOCS_DIR
    staged = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    # Named as atomic.py names temporaries, so a killed run's are found and removed.
    old = target.with_name(f".{target.name}.old.tmp-{os.getpid()}")
    for name in (target.name, f"{target.name}.old"):
        remove_stale_temporaries(target.parent, only_for=name)
    try:
        result = _invoke(
            ["docs", "generate", "--static"],
            data_dir,
            warehouse,
            project_dir=project_dir,
            target_path=work,
            dbt_vars=_dbt_vars(dbt_vars),
            threads=None,
        )
        if not result.success:
            raise WarehouseError(_failure_message("docs generate", result, data_dir))
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for name in DOCS_FILES:
            if (work / name).exists():
                shutil.copy2(work / name, staged / name)
        if target.exists():
            os.replace(target, old)
        os.replace(staged, target)
    finally:
        for folder in (staged, old):
            shutil.rmtree(folder, ignore_errors=True)
    log.info("dbt docs written to %s", target)
    return target
