"""Stages ``build_warehouse`` and ``docs``: run the dbt project, document it.

* :func:`build_warehouse` runs ``dbt build`` (seeds, models and data tests; the unit
  tests with ``unit_tests=True`` or ``JOINEDUP_DBT_UNIT_TESTS``) on the pseudonymised
  tables and ``linked/record_person.parquet`` and writes ``DATA/warehouse.duckdb``.
  Secondary suppression of the commissioner marts is part of the build (their
  materialization, ``macros/materializations/disclosure_controlled.sql``), so a hand-run
  ``dbt build`` gives the same marts;
* :func:`generate_docs` writes the dbt documentation site to ``DATA/docs/dbt/``: the files
  the build kept beside its own (``dbt docs generate`` on the build's parse, run only when
  the project, its vars or the warehouse's tables and columns changed since the kept
  files were made), or, when the warehouse is not the one they describe, a
  ``dbt docs generate`` of its own.

dbt's own files (``target/``, ``logs/``) go under ``DATA/dbt/``, never into the
repository. Paths reach ``profiles.yml`` and the source definitions through
environment variables set only for the duration of a call.

A build adds to the warehouse the last one left, when the same project made it: the
event facts are incremental by person (``macros/incremental_by_person.sql``).

The warehouse is built in a folder of its own beside the final file and moved
into place only when every node passed, so a failed or killed build leaves the
previous warehouse untouched. The file keeps its name (``warehouse.duckdb``)
while it is built because DuckDB names the database after the file and dbt's
views refer to that name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from joinedup.atomic import atomic_path, remove_stale_temporaries, write_text
from joinedup.catalogue import DBT, DBT_DOCS, REPO_ROOT, WAREHOUSE, WAREHOUSE_INPUTS
from joinedup.privacy.permissions import make_private_dirs, make_private_file
from joinedup.provenance import run_stamp, stamp_duckdb
from joinedup.settings import Settings, environment

log = logging.getLogger(__name__)

PROJECT_DIR = REPO_ROOT
WAREHOUSE_FILE = WAREHOUSE.path
DOCS_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")
# Beside the build's target files: the docs site as dbt last generated it, kept whole (every
# build rewrites target/manifest.json), and what those files were made from (project, vars,
# digests of the manifest and the warehouse's schema) and which warehouse file (by
# identity) they describe. While the marker exists, the kept files are the ones it names.
DOCS_KEPT = "joinedup-docs"
DOCS_MADE_FOR = "docs-for.json"
# Per dbt invocation, not per project: when and in which run dbt wrote the manifest, and
# each entry's parse time (new on a full parse of unchanged files).
_MANIFEST_VOLATILE = ("generated_at", "invocation_id", "invocation_started_at", "run_started_at")
# What dbt-duckdb's catalog reads (its macro duckdb__get_catalog): every relation's kind
# and comment, every column's position, type and comment. No row counts or sizes, so the
# same project on other data documents the same.
_SCHEMA_SQL = """
    select 'relation', schema_name, table_name, 'BASE TABLE', comment, null, null
    from duckdb_tables() where database_name = current_database()
    union all
    select 'relation', schema_name, view_name, 'VIEW', comment, null, null
    from duckdb_views() where database_name = current_database() and not internal
    union all
    select 'column', schema_name, table_name, column_name, comment, column_index, data_type
    from duckdb_columns() where database_name = current_database() and not internal
    order by all
"""
# dbt's docs app ships two template strings a browser reads as URLs before anything fills
# them in: its tree icons' ``<use xlink:href="{{ getIcon(...) }}">`` (parsed, and fetched as
# a file beside the page, before Angular interpolates them; from file: Chromium refuses each
# as an unsafe load and logs an error, hundreds a page) and a favicon link whose
# ``${require(...)}`` webpack never ran. ``ng-attr-href`` has Angular set the icon reference
# once it is known (SVG 2's plain ``href``, which Chromium resolves in the page); the favicon
# names no file there is, so it goes.
DOCS_HTML_REWRITES = (
    ('<use xlink:href="{{', '<use ng-attr-href="{{'),
    ('<link rel="shortcut icon" href="${require(\'./assets/favicons/favicon.ico\')}"/>', ""),
)

_FAILED = {"error", "fail", "runtime error"}
# Beside the build's target files: what the warehouse now in place was built from (a digest
# of the project's models, macros, seeds and settings, the vars and the versions). The next
# build starts from a copy of that warehouse only while the digest is the same, so its
# incremental models (the event facts, macros/incremental_by_person.sql) add to tables
# the same code made.
CARRIED_OVER_FOR = "warehouse-built-from.json"
_PROJECT_INPUTS = ("models", "macros", "seeds", "dbt_project.yml", "profiles.yml")


class WarehouseError(RuntimeError):
    """The warehouse could not be built, published or documented; the message says why."""


def _dbt_vars(extra: dict[str, Any] | None) -> dict[str, Any]:
    # The disclosure threshold is one pipeline setting (JOINEDUP_SUPPRESSION_THRESHOLD), not a
    # number that could drift apart between dbt and the Python side. The coarsening options
    # (JOINEDUP_COARSEN_*) reach the marts as the columns they withhold.
    from joinedup.privacy.coarsening import Coarsening

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

    data_dir = Path(data_dir).absolute()
    warehouse_path = Path(warehouse_path).absolute()
    project_dir = Path(project_dir).absolute()
    target_path = Path(target_path).absolute()
    env = {
        "JOINEDUP_DATA_DIR": str(data_dir),
        # Relative, and dbt runs in the file's folder: dbt hashes the profile's values
        # (this path among them) and re-parses the whole project when they change, so an
        # absolute path would cost a full parse in every new data directory.
        "JOINEDUP_WAREHOUSE_PATH": warehouse_path.name,
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
        str(DBT.under(data_dir) / "logs"),
        "--vars",
        json.dumps(dbt_vars),
        # The console gets warnings and errors; the full record is in DATA/dbt/logs/dbt.log.
        "--log-level",
        "warn",
        "--log-level-file",
        "info",
    ]
    log.info("dbt %s (data dir %s)", " ".join(command), data_dir)
    _seed_partial_parse(project_dir, target_path)
    try:
        with _CWD_LOCK, environment(env), _working_directory(warehouse_path.parent):
            result = dbtRunner().invoke(args)
    finally:
        _release_duckdb(warehouse_path)
    _keep_partial_parse(project_dir, target_path)
    return result


# dbt's partial-parse state, shared by every data directory built from this project: with
# the profile's values the same everywhere (a relative warehouse path), the state one data
# directory's build left is valid in the next one's, and dbt checks it (file checksums,
# vars, profile, env vars) before using any of it. A data directory's own target folder
# keeps its copy; a new one starts from the project's.
_PARTIAL_PARSE = "partial_parse.msgpack"
_SHARED_PARTIAL_PARSE = Path("target") / "joinedup_partial_parse.msgpack"
_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    saved = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved)


def _seed_partial_parse(project_dir: Path, target_path: Path) -> None:
    shared = project_dir / _SHARED_PARTIAL_PARSE
    own = target_path / _PARTIAL_PARSE
    if own.exists() or not shared.exists():
        return
    try:
        target_path.mkdir(parents=True, exist_ok=True)
        with atomic_path(own) as tmp:
            shutil.copyfile(shared, tmp)
    except OSError as error:  # a cache only: without it dbt parses in full
        log.info("dbt partial-parse state not copied from %s: %s", shared, error)


def _keep_partial_parse(project_dir: Path, target_path: Path) -> None:
    own = target_path / _PARTIAL_PARSE
    shared = project_dir / _SHARED_PARTIAL_PARSE
    if not own.exists():
        return
    try:
        if (
            shared.exists()
            and shared.stat().st_size == own.stat().st_size
            and shared.read_bytes() == own.read_bytes()
        ):
            return
        with atomic_path(shared) as tmp:
            shutil.copyfile(own, tmp)
    except OSError as error:  # e.g. a read-only project: the next new data dir parses in full
        log.info("dbt partial-parse state not kept in %s: %s", shared, error)


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


def drop_stale_wal(database: Path) -> None:
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
    missing = [(p, stage) for p, stage in WAREHOUSE_INPUTS.items() if not (data_dir / p).exists()]
    if missing:
        listed = "; ".join(f"{p} (written by {stage})" for p, stage in missing)
        raise WarehouseError(
            f"cannot build the warehouse in {data_dir}: missing {listed}. Run the ingest "
            "stages and linkage for this data directory first."
        )


def _node_results(result: Any) -> list[Any]:
    return list(getattr(getattr(result, "result", None), "results", None) or [])


def _failure_message(what: str, result: Any, data_dir: Path) -> str:
    log_file = DBT.under(data_dir) / "logs" / "dbt.log"
    failed = [r for r in _node_results(result) if str(r.status) in _FAILED]
    if not failed:
        reason = result.exception or "no node failed; see the log"
        return f"dbt {what} failed: {reason} (log: {log_file})"
    lines = []
    for r in failed:
        message = [m for m in (r.message or str(r.status)).strip().splitlines() if m.strip()]
        # Python (secondary suppression in the marts' materialization) fails with a
        # traceback, whose last line says why.
        said = message[-1].strip() if message and "Traceback" in r.message else ""
        said = said or (message[0] if message else "")
        lines.append(f"  {r.node.resource_type} {r.node.name}: {said}")
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
    unit_tests: bool | None = None,
) -> dict:
    """Run ``dbt build`` and write ``DATA/warehouse.duckdb``; raise :class:`WarehouseError`.

    ``dbt_vars`` override the project's vars (e.g. ``{"extract_end_date": "2026-03-31"}``).
    With a ``run_id`` the file gets its provenance table ``main._joinedup_run``.
    ``unit_tests`` (default: the setting ``dbt_unit_tests``, off) runs the project's dbt
    unit tests too: they test the models' SQL on rows of their own, not the data, so a
    pipeline build leaves them to the test suite (``tests/test_dbt.py``).
    The build starts from a copy of the warehouse in place when the same project (models,
    macros, seeds, vars, versions: :func:`project_state`) built it and the setting
    ``full_rebuild`` is off: the incremental event facts then compute only the persons
    whose inputs changed (``models/intermediate/people/int_person_input_changes.sql``).
    Returns a summary: the warehouse path, seconds, node counts by type and status,
    the names of tests that warned, and ``incremental`` (whether the warehouse was
    carried over, how many persons' event facts were computed, of how many).
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
    # dbt's target and logs quote the warehouse's rows and counts.
    make_private_dirs(DBT.under(data_dir), DBT.under(data_dir))
    variables = _dbt_vars(dbt_vars)
    # What the kept docs were made from: the build documents again only what changed.
    previous = _read_marker(DBT.under(data_dir) / "target")
    if unit_tests is None:
        unit_tests = Settings().dbt_unit_tests
    command = ["build"] if unit_tests else ["build", "--exclude-resource-type", "unit_test"]
    state = project_state(project_dir, variables)
    try:
        carried_over = _carry_over(data_dir, build_dir / WAREHOUSE_FILE, state)
        result = _invoke(
            command,
            data_dir,
            build_dir / WAREHOUSE_FILE,
            project_dir=project_dir,
            target_path=DBT.under(data_dir) / "target",
            dbt_vars=variables,
            threads=threads,
        )
        if not result.success:
            raise WarehouseError(_failure_message("build", result, data_dir))
        incremental = {"carried_over": carried_over, **_changed_persons(build_dir / WAREHOUSE_FILE)}
        documented, docs = _document_build(
            data_dir, build_dir / WAREHOUSE_FILE, project_dir, variables, previous
        )
        if run_id is not None:
            with duckdb.connect(str(build_dir / WAREHOUSE_FILE)) as con:
                stamp_duckdb(con, run_stamp(data_dir, run_id))
        target = WAREHOUSE.under(data_dir)
        make_private_file(build_dir / WAREHOUSE_FILE)
        drop_stale_wal(target)
        # No moment where the marker names a project that did not build the file in place.
        (DBT.under(data_dir) / "target" / CARRIED_OVER_FOR).unlink(missing_ok=True)
        os.replace(build_dir / WAREHOUSE_FILE, target)
        write_text(
            json.dumps({"project_state": state}), DBT.under(data_dir) / "target" / CARRIED_OVER_FOR
        )
        if documented:
            documented["warehouse"] = _file_identity(target)
            write_text(json.dumps(documented), DBT.under(data_dir) / "target" / DOCS_MADE_FOR)
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
    log.info(
        "warehouse event facts: %s persons of %s computed (%s)",
        incremental["changed_persons"],
        incremental["persons"],
        "incrementally, on the last build's warehouse" if carried_over else "in full",
    )
    return {
        "warehouse": str(target),
        "seconds": seconds,
        "nodes": counts,
        "warnings": warnings,
        "docs": docs,
        "secondary_suppression": _secondary_suppression(results),
        "incremental": incremental,
    }


def project_state(project_dir: Path, dbt_vars: dict[str, Any]) -> str:
    """A digest of everything a warehouse table is made of besides the data: the project's
    models, macros, seeds, dbt_project.yml and profile, the vars, and the dbt, dbt-duckdb
    and DuckDB versions (DuckDB's ``hash()`` finds the changed persons)."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for name in _PROJECT_INPUTS:
        root = project_dir / name
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    digest.update(json.dumps(dbt_vars, sort_keys=True).encode())
    for package in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{package}={version(package)}".encode())
    return digest.hexdigest()


def _carry_over(data_dir: Path, build_file: Path, state: str) -> bool:
    """Start the build from a copy of the warehouse in place, if the same project built it
    (:data:`CARRIED_OVER_FOR`) and no full rebuild was asked for. Returns whether it did."""
    previous = WAREHOUSE.under(data_dir)
    marker = DBT.under(data_dir) / "target" / CARRIED_OVER_FOR
    if Settings().full_rebuild or not previous.exists():
        return False
    try:
        built_from = json.loads(marker.read_text()).get("project_state")
    except (OSError, ValueError, AttributeError):
        return False
    if built_from != state:
        log.info("warehouse: the project changed since the last build; building in full")
        return False
    shutil.copyfile(previous, build_file)
    make_private_file(build_file)
    return True


def _changed_persons(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        changed, persons = con.sql(
            "select count(*) filter (where changed), count(*) filter (where input_hash is not null)"
            " from intermediate.int_person_input_changes"
        ).fetchall()[0]
    return {"changed_persons": changed, "persons": persons}


def _file_identity(path: Path) -> dict[str, int]:
    # A rename keeps all three; any write to the file, or another file, changes one.
    st = path.stat()
    return {"inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_marker(work: Path) -> dict[str, Any] | None:
    try:
        made_for = json.loads((work / DOCS_MADE_FOR).read_text())
    except (OSError, ValueError):
        return None
    return made_for if isinstance(made_for, dict) else None


def docs_inputs(manifest: Path, warehouse: Path) -> dict[str, str]:
    """Digests of what the docs pages show: dbt's ``manifest`` (every node, source, macro,
    test and exposure as parsed and compiled, with the dbt version) less what changes with
    each invocation, and the schema of ``warehouse`` as the docs' catalog reads it."""
    parsed = json.loads(manifest.read_text(encoding="utf-8"))
    for key in _MANIFEST_VOLATILE:
        parsed.get("metadata", {}).pop(key, None)
    for section in parsed.values():
        if isinstance(section, dict):
            for entry in section.values():
                if isinstance(entry, dict):
                    entry.pop("created_at", None)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        schema = con.execute(_SCHEMA_SQL).fetchall()
    return {
        "manifest": hashlib.sha256(json.dumps(parsed, sort_keys=True).encode()).hexdigest(),
        "schema": hashlib.sha256(json.dumps(schema, default=str).encode()).hexdigest(),
    }


def _document_build(
    data_dir: Path,
    warehouse: Path,
    project_dir: Path,
    dbt_vars: dict[str, Any],
    previous: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, str]:
    """Keep the docs site's files (``dbt docs generate --static``) beside the build's own.

    Here, with the build's profile and target folder, dbt's partial parsing reuses the
    manifest the build just saved; ``generate_docs`` on its own parses the project again
    (its profile names the final warehouse), ~10 s at every size (issue 23). dbt runs only
    when the kept files were made from another project, other vars, another manifest or
    another warehouse schema (``previous``, the last marker): otherwise they are already
    the pages dbt would write, and are kept as they are.

    Returns what the docs were made from, for the marker written once the warehouse is in
    place (``generate_docs`` then copies the kept files instead of running dbt), or None
    when dbt failed: the docs stage then runs dbt itself; the build does not fail over its
    docs. With it, how the docs came: ``reused``, ``generated`` or ``failed``.
    """
    work = DBT.under(data_dir) / "target"
    kept = work / DOCS_KEPT
    # Through JSON as the marker goes, so tuples and lists compare equal.
    made_from = json.loads(
        json.dumps(
            {
                "project_dir": str(project_dir),
                "vars": dbt_vars,
                **docs_inputs(work / "manifest.json", warehouse),
            }
        )
    )
    if (
        previous is not None
        and {key: previous.get(key) for key in made_from} == made_from
        and all((kept / name).exists() for name in DOCS_FILES)
    ):
        log.info("dbt docs unchanged since %s was made: kept", kept)
        return made_from, "reused"
    # The kept files are about to change: no marker may name them meanwhile.
    (work / DOCS_MADE_FOR).unlink(missing_ok=True)
    result = _docs_generate(data_dir, warehouse, project_dir, work, dbt_vars)
    if not result.success:
        log.warning("%s", _failure_message("docs generate", result, data_dir))
        return None, "failed"
    _replace_folder(kept, work, lambda _: None)
    return made_from, "generated"


def _docs_generate(
    data_dir: Path, warehouse: Path, project_dir: Path, work: Path, dbt_vars: dict[str, Any]
) -> Any:
    """``dbt docs generate --static`` on ``warehouse``, its files written to ``work``."""
    return _invoke(
        ["docs", "generate", "--static"],
        data_dir,
        warehouse,
        project_dir=project_dir,
        target_path=work,
        dbt_vars=dbt_vars,
        threads=None,
    )


def _replace_folder(target: Path, source: Path, finish: Callable[[Path], None]) -> None:
    """Replace folder ``target`` whole with copies of the docs files in ``source``, each
    passed to ``finish`` once copied, so a reader never sees a mix of two builds."""
    # Named as atomic.py names temporaries, so a killed run's are found and removed.
    staged = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old.tmp-{os.getpid()}")
    for name in (target.name, f"{target.name}.old"):
        remove_stale_temporaries(target.parent, only_for=name)
    try:
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for name in DOCS_FILES:
            if (source / name).exists():
                shutil.copy2(source / name, staged / name)
                finish(staged / name)
        if target.exists():
            os.replace(target, old)
        os.replace(staged, target)
    finally:
        for folder in (staged, old):
            shutil.rmtree(folder, ignore_errors=True)


def _documented_warehouse(
    data_dir: Path, warehouse: Path, project_dir: Path, dbt_vars: dict[str, Any]
) -> Path | None:
    """The folder of docs files the build kept when they describe ``warehouse`` as it is
    now, made from this project with these vars; else None."""
    work = DBT.under(data_dir) / "target"
    made_for = _read_marker(work)
    if made_for is None:
        return None
    # Through JSON as the marker went, so tuples and lists compare equal.
    wanted = json.loads(json.dumps({"project_dir": str(project_dir), "vars": dbt_vars}))
    wanted["warehouse"] = _file_identity(warehouse)
    if {key: made_for.get(key) for key in wanted} != wanted:
        return None
    if not all((work / DOCS_KEPT / name).exists() for name in DOCS_FILES):
        return None
    return work / DOCS_KEPT


def _secondary_suppression(results: list[Any]) -> dict[str, Any]:
    """What secondary suppression did to each commissioner mart during the build.

    Each mart's materialization (disclosure_controlled) leaves its summary as JSON in the
    node's adapter response (``code``): rounds, cells recoverable before, cells withheld
    by the primary rule, and the cells it withheld on top. The pass over every mart
    together (the disclosure_across_marts node) leaves its own: rounds, the twin counts
    linked, and the cells it withheld in each mart (``across_marts``).
    """
    from joinedup.warehouse.marts import ACROSS_MARTS, MATERIALIZATION

    marts = []
    across = None
    for r in results:
        config = getattr(r.node, "config", None)
        materialized = getattr(config, "materialized", None)
        if materialized not in (MATERIALIZATION, ACROSS_MARTS):
            continue
        response = getattr(r, "adapter_response", None) or {}
        if materialized == ACROSS_MARTS:
            across = json.loads(response["code"])
        else:
            marts.append(json.loads(response["code"]))
    marts.sort(key=lambda m: m["mart"])
    return {
        "criterion": "exact",
        "seconds": round(
            sum(m.get("seconds", 0) for m in marts) + (across or {}).get("seconds", 0), 2
        ),
        "marts": marts,
        "across_marts": across,
    }


def offline_docs_html(page: Path) -> None:
    """Rewrite dbt's docs page in place so it opens, from disk or served, asking for no file
    that is not there (``DOCS_HTML_REWRITES`` says what and why)."""
    text = page.read_text(encoding="utf-8")
    for old, new in DOCS_HTML_REWRITES:
        text = text.replace(old, new)
    page.write_text(text, encoding="utf-8")


def generate_docs(
    data_dir: Path, *, dbt_vars: dict[str, Any] | None = None, project_dir: Path | None = None
) -> Path:
    """Write the dbt documentation site (``dbt docs generate --static``) to ``DATA/docs/dbt/``.

    Needs a built warehouse (the catalog reads its tables). ``static_index.html`` opens
    from disk with no server; ``index.html`` needs ``manifest.json`` and ``catalog.json``
    beside it. The folder is replaced whole, so readers never see a mix of two builds.
    The files ``build_warehouse`` generated are used when they describe this warehouse
    file, this project and these vars (``DOCS_MADE_FOR``); otherwise dbt runs here.
    """
    data_dir = Path(data_dir).resolve()
    project_dir = Path(project_dir or PROJECT_DIR).resolve()
    warehouse = WAREHOUSE.under(data_dir)
    if not warehouse.exists():
        raise WarehouseError(f"{warehouse} not found: run build_warehouse before generate_docs.")
    # Its own target folder, kept between runs for dbt's partial parsing.
    work = DBT.under(data_dir) / "docs-target"
    target = DBT_DOCS.under(data_dir)
    built = _documented_warehouse(data_dir, warehouse, project_dir, _dbt_vars(dbt_vars))
    if built is not None:
        work = built
    else:
        result = _docs_generate(data_dir, warehouse, project_dir, work, _dbt_vars(dbt_vars))
        if not result.success:
            raise WarehouseError(_failure_message("docs generate", result, data_dir))
    _replace_folder(
        target, work, lambda path: offline_docs_html(path) if path.suffix == ".html" else None
    )
    log.info("dbt docs written to %s", target)
    return target
