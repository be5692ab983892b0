"""Stages ``stage_analytics`` and ``publish``: two publications, each for its audience.

* ``commissioning/commissioning.duckdb``: the suppressed aggregate marts (``mart_``) and
  their description (``_joinedup_marts``), read-only for everyone (0444); the
  dashboard's only input, in a folder of its own so a deployment can mount that alone.
* ``analytics.duckdb``: the person-level marts (``dim_``, ``fct_``), coarsened by the
  dbt models, for analysts: 0440 with the group ``JOINEDUP_ANALYSTS_GROUP``, else 0400.
  Never readable by others: a date of admission with a month of birth singles people out.

:func:`stage_analytics` writes both as candidates beside the published files;
:func:`publish_candidate` renames each into place once the privacy report has measured
both (:func:`publish_analytics` does both steps at once, for tools and tests).
"""

from __future__ import annotations

import grp
import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import duckdb

from joinedup.atomic import atomic_path
from joinedup.catalogue import (
    CANDIDATE,
    COMMISSIONING,
    COMMISSIONING_CANDIDATE,
    PUBLICATIONS,
    PUBLISHED,
    WAREHOUSE,
)
from joinedup.provenance import read_stamp, run_stamp, sha256_file, stamp_duckdb
from joinedup.settings import Settings
from joinedup.sql import literal, quote
from joinedup.warehouse import marts as mart_metadata
from joinedup.warehouse.build import WarehouseError, drop_stale_wal

log = logging.getLogger(__name__)

MART_SCHEMA = "marts"
MART_PREFIXES = ("dim_", "fct_", "mart_")
# Which marts each publication holds, by name prefix.
PUBLICATION_PREFIXES: dict[str, tuple[str, ...]] = {
    "analytics": ("dim_", "fct_"),
    "commissioning": ("mart_",),
}
assert set(PUBLICATION_PREFIXES) == set(PUBLICATIONS)
# A column that makes a table person-level: none may reach the commissioners' file.
PERSON_COLUMN = "person_id"

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


def _published_dir(data_dir: Path) -> Path:
    published = Settings().published_dir
    return (Path(published) if published else Path(data_dir)).resolve()


def analytics_path(data_dir: Path) -> Path:
    """The analysts' file: in ``JOINEDUP_PUBLISHED_DIR`` if set, else in the data dir."""
    return _published_dir(data_dir) / PUBLISHED.path


def commissioning_path(data_dir: Path) -> Path:
    """The commissioners' file, under the same folder as :func:`analytics_path`.

    In a folder of its own (``commissioning/``): a deployment mounts that folder, and only
    it, read-only into the dashboard. A folder, not the file, because publishing renames a
    new file into place and a bind-mounted file would keep showing the old one.
    """
    return _published_dir(data_dir) / COMMISSIONING.path


def publication_paths(data_dir: Path) -> dict[str, Path]:
    """{publication: published path}, for ``analytics`` and ``commissioning``."""
    return {"analytics": analytics_path(data_dir), "commissioning": commissioning_path(data_dir)}


def candidate_path(data_dir: Path) -> Path:
    """Where :func:`stage_analytics` leaves the next ``analytics.duckdb`` until it is published.

    In the published file's folder, so publishing is one rename (atomic), and named so that
    nothing mistakes it for the published file: hidden, and not ending in ``.duckdb``, so
    the dashboard and an analyst's ``*.duckdb`` never open it. Not named as a temporary
    (``.<name>.tmp-<pid>``) either: the process that staged it has finished by design, and
    stale-temporary cleanup would take it before the privacy report and publish, which may
    run in other processes.
    """
    return analytics_path(data_dir).with_name(CANDIDATE)


def commissioning_candidate_path(data_dir: Path) -> Path:
    """The next ``commissioning.duckdb``, beside it, named like :func:`candidate_path`."""
    return commissioning_path(data_dir).with_name(COMMISSIONING_CANDIDATE)


def candidate_paths(data_dir: Path) -> dict[str, Path]:
    """{publication: staged candidate}, in the order of :func:`publication_paths`."""
    return {
        "analytics": candidate_path(data_dir),
        "commissioning": commissioning_candidate_path(data_dir),
    }


def analysts_gid(settings: Settings | None = None) -> int | None:
    """The gid of ``JOINEDUP_ANALYSTS_GROUP`` (a name or a number), None when unset."""
    group = (settings or Settings()).analysts_group
    if group is None or not group.strip():
        return None
    group = group.strip()
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise WarehouseError(
            f"JOINEDUP_ANALYSTS_GROUP={group!r}: there is no such group on this machine; set "
            "it to the analysts' group (a name from /etc/group or a numeric gid), or unset it "
            "so analytics.duckdb is readable by the pipeline's account alone."
        ) from None


def _copy_marts(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str | None]]) -> list[str]:
    """Copy these warehouse marts, with their descriptions, into ``main``; their names."""
    staged = []
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
                    f"comment on column main.{quote(table)}.{quote(name)} is {literal(col_comment)}"
                )
        staged.append(table)
    return staged


def _stage_one(
    data_dir: Path, publication: str, tables: list[tuple[str, str | None]], run_id: str | None
) -> Path:
    target = candidate_paths(data_dir)[publication]
    with atomic_path(target) as tmp:
        con = duckdb.connect(str(tmp), config={"memory_limit": Settings().duckdb_memory_limit})
        # Not yet checked by the privacy report: the pipeline's account alone reads it.
        tmp.chmod(stat.S_IRUSR | stat.S_IWUSR)
        try:
            con.execute(
                f"attach {literal(str(WAREHOUSE.under(data_dir)))} as warehouse (read_only)"
            )
            staged = _copy_marts(con, tables)
            if publication == "commissioning":
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


def stage_analytics(data_dir: Path, run_id: str | None = None) -> dict[str, Path]:
    """Write the next two publications as candidates (:func:`candidate_paths`), atomically.

    Only tables of the ``marts`` schema are copied, as tables in ``main`` (views would
    point back into the warehouse): ``dim_``/``fct_`` to the analysts' candidate, ``mart_``
    to the commissioners'. A mart with an identifier-like column or token-shaped values
    stops it, and so does a commissioner mart with a ``person_id`` (person-level rows
    never reach the commissioners' file). The commissioner marts' metadata, from the
    build's dbt manifest, goes with them as ``main._joinedup_marts``
    (:func:`_describe_marts`). With a ``run_id`` each file gets ``main._joinedup_run``,
    the run that staged it. The candidates are readable by the pipeline's account alone
    (0400) until :func:`publish_candidate` publishes them; the published files are not
    touched. Returns {publication: candidate}.
    """
    data_dir = Path(data_dir).resolve()
    warehouse = WAREHOUSE.under(data_dir)
    if not warehouse.exists():
        raise WarehouseError(f"{warehouse} not found: run build_warehouse first.")
    # Refused before anything is written: a bad group is a setting to fix, not a run to redo.
    analysts_gid()
    with duckdb.connect() as con:
        con.execute(f"attach {literal(str(warehouse))} as warehouse (read_only)")
        tables = _mart_tables(con)
        if not tables:
            raise WarehouseError(f"{warehouse} has no marts: was the build complete?")
        for table, _comment in tables:
            if not table.startswith(MART_PREFIXES):
                _check_publishable(con, table, [])
            columns = _columns(con, "warehouse", MART_SCHEMA, table)
            if table.startswith("mart_") and any(c == PERSON_COLUMN for c, _t, _c in columns):
                raise WarehouseError(
                    f"marts.{table} has a {PERSON_COLUMN} column: it is person-level, and "
                    "commissioner marts (mart_) are published to everyone. Aggregate it, or "
                    "name it dim_/fct_ so it is published to analysts alone."
                )
    by_publication = {
        p: [t for t in tables if t[0].startswith(prefixes)]
        for p, prefixes in PUBLICATION_PREFIXES.items()
    }
    for publication, chosen in by_publication.items():
        if not chosen:
            # A warehouse of one kind of mart (a partial project, a test) still publishes
            # both files, so neither audience is left reading a previous run's.
            log.warning(
                "%s has no %s marts: %s is published with its run stamp alone",
                warehouse,
                "/".join(PUBLICATION_PREFIXES[publication]),
                publication,
            )
    return {p: _stage_one(data_dir, p, chosen, run_id) for p, chosen in by_publication.items()}


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


def _published_mode(publication: str, gid: int | None) -> int:
    if publication == "commissioning":
        return stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    return stat.S_IRUSR | stat.S_IRGRP if gid is not None else stat.S_IRUSR


def publish_candidate(
    data_dir: Path, *, sha256: Mapping[str, str], run_id: str | None = None
) -> dict[str, Path]:
    """Make both staged candidates the published files: one rename each.

    ``sha256`` is {publication: checksum of the candidate the privacy report measured}, for
    ``analytics`` and ``commissioning``; ``run_id`` the run that must have staged them.
    Both are checked before either is renamed: a candidate that is not the file the report
    measured, or was staged by another run, is refused and nothing is published.
    ``commissioning.duckdb`` is published read-only for everyone (0444);
    ``analytics.duckdb`` 0440 with group ``JOINEDUP_ANALYSTS_GROUP``, else 0400. Readers
    open them with ``duckdb.connect(path, read_only=True)``. Returns {publication: path}.
    """
    candidates = candidate_paths(data_dir)
    targets = publication_paths(data_dir)
    rerun = "Nothing was published; re-run the run (same --run-id) so stage_analytics and "
    rerun += "the privacy report run again before publish."
    if not isinstance(sha256, Mapping):
        raise WarehouseError(
            "publish needs the privacy report's SHA-256 of each publication, as "
            f"{{publication: sha256}} for {', '.join(PUBLICATIONS)} (the report's "
            f"'sha256'), not {type(sha256).__name__}. {rerun}"
        )
    for publication, candidate in candidates.items():
        if not candidate.exists():
            raise WarehouseError(
                f"nothing to publish: {candidate} not found (stage_analytics writes it, the "
                f"privacy report removes it when it fails). {rerun}"
            )
        # Required, never defaulted: a candidate no report measured is not published.
        expected = sha256.get(publication)
        if not expected:
            raise WarehouseError(
                f"refusing to publish {candidate}: no privacy report's SHA-256 was given for "
                f"{publication}, so nothing says the report measured this file. {rerun}"
            )
        found = sha256_file(candidate)
        if found != expected:
            raise WarehouseError(
                f"{candidate} is not the file the privacy report measured (SHA-256 "
                f"{found[:12]}..., the report measured {expected[:12]}...). {rerun}"
            )
        if run_id is not None:
            stamp = read_stamp(candidate) or {}
            if stamp.get("run_id") != run_id:
                raise WarehouseError(
                    f"{candidate} was staged by run {stamp.get('run_id')!r}, not {run_id!r}. "
                    f"{rerun}"
                )
    gid = analysts_gid()
    if gid is not None:
        try:
            os.chown(candidates["analytics"], -1, gid)
        except PermissionError:
            raise WarehouseError(
                f"cannot give {candidates['analytics']} to group {gid} "
                f"(JOINEDUP_ANALYSTS_GROUP={Settings().analysts_group!r}): the pipeline's "
                f"account must be a member of that group. {rerun}"
            ) from None
    published = {}
    # The commissioners' file first: should the second rename fail, analysts keep a file
    # as consistent as before, and the dashboard already shows the new figures.
    for publication in ("commissioning", "analytics"):
        candidate, target = candidates[publication], targets[publication]
        candidate.chmod(_published_mode(publication, gid))
        drop_stale_wal(target)
        os.replace(candidate, target)
        log.info("published %s", target)
        published[publication] = target
    return {p: published[p] for p in targets}


def discard_candidate(data_dir: Path) -> bool:
    """Remove the staged candidates that must not be published; True if there were any."""
    found = False
    for candidate in candidate_paths(data_dir).values():
        if candidate.exists():
            found = True
            log.warning("removed %s: it was not published", candidate)
        candidate.unlink(missing_ok=True)
        drop_stale_wal(candidate)
    return found


def publish_analytics(data_dir: Path, run_id: str | None = None) -> dict[str, Path]:
    """Stage both publications and publish them at once, with no privacy report in between.

    For tests, tools and benchmarks of the warehouse alone. The pipeline runs the two
    steps as tasks of their own (``stage_analytics``, ``privacy_report``, ``publish``)
    so the report checks the very files that are then published.
    """
    staged = stage_analytics(data_dir, run_id)
    # No report measured them: this caller vouches for the files it has just staged.
    return publish_candidate(
        data_dir, sha256={p: sha256_file(c) for p, c in staged.items()}, run_id=run_id
    )
