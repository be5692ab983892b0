"""Stages ``stage_analytics`` and ``publish``: the marts alone, for analysts.

* :func:`stage_analytics` copies the marts alone into a candidate file beside
  ``analytics.duckdb``;
* :func:`publish_candidate` renames it into place once the privacy report has measured
  it (:func:`publish_analytics` does both at once, for tools and tests);
  ``analytics.duckdb`` is the read-only file analysts open.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import duckdb

from joinedup.atomic import atomic_path
from joinedup.catalogue import CANDIDATE, PUBLISHED, WAREHOUSE
from joinedup.provenance import read_stamp, run_stamp, sha256_file, stamp_duckdb
from joinedup.settings import Settings
from joinedup.sql import literal, quote
from joinedup.warehouse import marts as mart_metadata
from joinedup.warehouse.build import WarehouseError, drop_stale_wal

log = logging.getLogger(__name__)

MART_SCHEMA = "marts"
MART_PREFIXES = ("dim_", "fct_", "mart_")

# Column names that would carry an identifier or a keyed token into the analysts' file.
# person_id is the linked pseudonym analysts join on; birth_month is year and month only.
IDENTIFIER_COLUMN = re.compile(
    r"token|nhs|given_name|family_name|surname|forename|full_name|date_of_birth|birth_date"
    r"|^dob$|_dob$|postcode|post_code|address|patient_id|local_id|la_person_id|spell_id"
    r"|attendance_id|^record_"
)
# A value shaped like a keyed HMAC-SHA256 (record_token and other tokens are 64 hex digits).
TOKEN_VALUE = r"^[0-9a-f]{64}$"


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
            f"select count(*) from warehouse.{MART_SCHEMA}.{quote(table)} "
            f"where length({quote(name)}) = 64 and regexp_full_match({quote(name)}, ?)",
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
    return (Path(published) if published else Path(data_dir)).resolve() / PUBLISHED.path


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
    return target.with_name(CANDIDATE)


def stage_analytics(data_dir: Path, run_id: str | None = None) -> Path:
    """Write the next ``analytics.duckdb`` as the candidate (:func:`candidate_path`), atomically.

    Only tables of the ``marts`` schema named ``dim_``/``fct_``/``mart_`` are copied, as
    tables in ``main`` (views would point back into the warehouse). A mart with an
    identifier-like column or token-shaped values stops it. The commissioner marts'
    metadata, from the build's dbt manifest, goes with them as ``main._joinedup_marts``
    (:func:`_describe_marts`). With a ``run_id`` the file gets ``main._joinedup_run``,
    the run that staged it. The candidate is readable by the
    pipeline's account alone (0400) until :func:`publish_candidate` makes it the published
    file; the previous ``analytics.duckdb`` is not touched.
    """
    data_dir = Path(data_dir).resolve()
    warehouse = WAREHOUSE.under(data_dir)
    if not warehouse.exists():
        raise WarehouseError(f"{warehouse} not found: run build_warehouse first.")
    target = candidate_path(data_dir)
    staged: list[str] = []
    with atomic_path(target) as tmp:
        con = duckdb.connect(str(tmp), config={"memory_limit": Settings().duckdb_memory_limit})
        # Not yet checked by the privacy report: the pipeline's account alone reads it.
        tmp.chmod(stat.S_IRUSR | stat.S_IWUSR)
        try:
            con.execute(f"attach {literal(str(warehouse))} as warehouse (read_only)")
            tables = _mart_tables(con)
            if not tables:
                raise WarehouseError(f"{warehouse} has no marts: was the build complete?")
            for table, comment in tables:
                columns = _columns(con, "warehouse", MART_SCHEMA, table)
                _check_publishable(con, table, columns)
                con.execute(
                    f"create table main.{quote(table)} as "
                    f"select * from warehouse.{MART_SCHEMA}.{quote(table)}"
                )
                if comment:
                    con.execute(f"comment on table main.{quote(table)} is {literal(comment)}")
                for name, _type, col_comment in columns:
                    if col_comment:
                        con.execute(
                            f"comment on column main.{quote(table)}.{quote(name)} "
                            f"is {literal(col_comment)}"
                        )
                staged.append(table)
            _describe_marts(con, data_dir, staged)
            con.execute("detach warehouse")
            if run_id is not None:
                stamp_duckdb(con, run_stamp(data_dir, run_id))
            con.execute("checkpoint")
        finally:
            con.close()
        tmp.chmod(stat.S_IRUSR)
        drop_stale_wal(target)
    log.info("staged %d marts at %s: %s", len(staged), target, ", ".join(staged))
    return target


def _describe_marts(con: duckdb.DuckDBPyConnection, data_dir: Path, staged: list[str]) -> None:
    """Write ``main._joinedup_marts``: what each commissioner mart's columns are, and the rule.

    From the manifest of the build that made the warehouse (``DATA/dbt/target``; for a
    warehouse without it, copied on its own, the project's, parsed with the build's vars),
    checked against the tables: every mart it describes is there with the columns it
    describes, every row through secondary suppression, and no table with suppression
    flags goes undescribed. The dashboard and the privacy report read the file's own
    description. Nothing is written when no staged table is a commissioner mart.
    """
    from joinedup.warehouse.build import PROJECT_DIR, _dbt_vars

    [(db,)] = con.execute("select current_database()").fetchall()
    flagged = [
        t
        for t in staged
        if any(c.endswith(mart_metadata.FLAG) for c, _t, _c in _columns(con, db, "main", t))
    ]
    if not flagged:
        return
    manifest = mart_metadata.manifest_path(data_dir)
    try:
        if manifest.exists():
            marts = mart_metadata.read_manifest(manifest)
        else:
            log.warning("%s not found: describing the marts from %s", manifest, PROJECT_DIR)
            manifest = PROJECT_DIR / "dbt_project.yml"
            marts = mart_metadata.project_marts(PROJECT_DIR, _dbt_vars(None))
    except mart_metadata.MartMetadataError as exc:
        raise WarehouseError(f"the marts' metadata in {manifest}: {exc}") from None
    for name, spec in marts.items():
        if name not in staged:
            raise WarehouseError(
                f"{manifest} describes {name}, which the warehouse does not hold: was the "
                "build complete?"
            )
        columns = tuple(c for c, _t, _c in _columns(con, db, "main", name))
        if columns != spec.column_names:
            raise WarehouseError(
                f"marts.{name} has columns {list(columns)} but {manifest} describes "
                f"{list(spec.column_names)}: the manifest is not the warehouse's build."
            )
        if spec.secondary:
            [(unprotected,)] = con.execute(
                f"select count(*) from main.{quote(name)} "
                f"where not coalesce({quote(mart_metadata.SECONDARY)}, false)"
            ).fetchall()
            if unprotected:
                raise WarehouseError(
                    f"marts.{name} has {unprotected:,} row(s) that secondary suppression did "
                    "not go through: build it with the disclosure_controlled materialization."
                )
    undescribed = [t for t in flagged if t not in marts]
    if undescribed:
        raise WarehouseError(
            f"{', '.join(undescribed)} carry suppression flags but the dbt project does not "
            "describe them as commissioner marts: move them to models/marts/commissioning/ "
            "and give every column its meta (joinedup.warehouse.marts)."
        )
    mart_metadata.write_table(con, marts.values())


def publish_candidate(data_dir: Path, *, sha256: str, run_id: str | None = None) -> Path:
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
    # Required, never defaulted: a candidate no report measured is not published.
    if not sha256:
        raise WarehouseError(
            f"refusing to publish {candidate}: no privacy report's SHA-256 was given, so "
            f"nothing says the report measured this file. {rerun}"
        )
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
    drop_stale_wal(target)
    os.replace(candidate, target)
    log.info("published %s", target)
    return target


def discard_candidate(data_dir: Path) -> bool:
    """Remove a staged candidate that must not be published; True if there was one."""
    candidate = candidate_path(data_dir)
    found = candidate.exists()
    candidate.unlink(missing_ok=True)
    drop_stale_wal(candidate)
    if found:
        log.warning("removed %s: it was not published", candidate)
    return found


def publish_analytics(data_dir: Path, run_id: str | None = None) -> Path:
    """Stage the marts and publish them at once, with no privacy report in between.

    For tests, tools and benchmarks of the warehouse alone. The pipeline runs the two
    steps as tasks of their own (``stage_analytics``, ``privacy_report``, ``publish``)
    so the report checks the very file that is then published.
    """
    staged = stage_analytics(data_dir, run_id)
    # No report measured it: this caller vouches for the file it has just staged.
    return publish_candidate(data_dir, sha256=sha256_file(staged), run_id=run_id)
