"""What each column of a commissioner mart is: read from dbt, in one place for every consumer.

The commissioner marts (``models/marts/commissioning/mart_*.yml``) describe themselves
to everything downstream in dbt's ``meta``: each column's ``config: meta:`` says what it
is for disclosure control, and the mart's own ``config: meta:`` names it to the
dashboard and carries the disclosure rule's two numbers (set in ``dbt_project.yml``
from the vars ``suppression_threshold`` and ``rounding_base``, so they are the numbers
the mart was built with). The readers:

* secondary suppression runs inside ``dbt build``: the marts' materialization
  (``macros/materializations/disclosure_controlled.sql``) hands the model's node to
  :func:`from_node` (``joinedup.privacy.secondary_suppression.suppress_in_dbt``);
* ``stage_analytics`` reads the build's manifest (``DATA/dbt/target/manifest.json``,
  :func:`read_manifest`) and writes the metadata into the published file as
  ``main._joinedup_marts`` (:func:`write_table`), so the file describes itself: the
  dashboard (which sees that file alone) and the privacy report's differencing audit
  read it back with :func:`read_table`;
* the quality gate's suites come from the repository's project (:func:`project_marts`,
  ``dbt parse`` into a cache folder).

Column roles (``meta.role``) and what else each takes:

============== =========================================================================
breakdown      the breakdown label (``total``, ``month+la_code``, ...); exactly one
dimension      a commissioner dimension; null outside the breakdowns that hold it
key            in every row's identity whatever the breakdown (from/to event type)
count          withheld from 1 to threshold-1 (``<count>_suppressed`` set), else rounded.
               ``additive: false`` for counts of distinct people (cells do not add up);
               ``withheld_with: [count]`` when never larger than that count, so that
               withholding it takes this one too; ``sum_of: count`` and ``over: column``
               when it is the sum of that count over that column (a margin);
               ``same_as: [{mart: other_mart, column: its_count}]`` when it counts the
               same quantity as that count of another mart in the cells where the two
               definitions coincide (same breakdown and dimensions): the joint pass across
               marts links those cells, so a cell withheld in one mart is withheld in the
               other too
flag           ``of: count``: true where that count is withheld; named ``<count>_suppressed``
rate           ``numerator:``, ``denominator:`` (counts): from the published counts,
               withheld with either; ``per:`` the rate's unit (100, a percentage, unless
               given: 100000 for a rate per 100,000 people); ``dashboard:`` the
               dashboard's name for it
statistic      ``of: count``: withheld with that count (a median, say), and published only
               from a group of at least the mart's ``statistic_min_group`` (the var)
secondary_flag ``secondary_suppression``: true once secondary suppression has run
============== =========================================================================
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import yaml

from joinedup.catalogue import DBT, REPO_ROOT
from joinedup.settings import environment
from joinedup.sql import literal, quote

log = logging.getLogger(__name__)

# The materialization every commissioner mart has (dbt_project.yml, marts/commissioning).
MATERIALIZATION = "disclosure_controlled"
# The materialization of the one node after them that audits and protects them together.
ACROSS_MARTS = "disclosure_across_marts"
# The published file's description of its marts, beside its provenance table _joinedup_run.
TABLE = "_joinedup_marts"
FLAG = "_suppressed"
SECONDARY = "secondary_suppression"

ROLES = (
    "breakdown",
    "dimension",
    "key",
    "count",
    "flag",
    "rate",
    "statistic",
    "secondary_flag",
)
# The meta keys each role may carry besides ``role``.
_KEYS: dict[str, frozenset[str]] = {
    "breakdown": frozenset(),
    "dimension": frozenset(),
    "key": frozenset(),
    "count": frozenset({"additive", "withheld_with", "sum_of", "over", "same_as"}),
    "flag": frozenset({"of"}),
    "rate": frozenset({"numerator", "denominator", "per", "dashboard"}),
    "statistic": frozenset({"of"}),
    "secondary_flag": frozenset(),
}
_RULE_KEYS = ("suppression_threshold", "rounding_base", "statistic_min_group")


class MartMetadataError(ValueError):
    """A commissioner mart's meta is missing, unknown or inconsistent; the message says where."""


@dataclass(frozen=True)
class MartColumn:
    """One column of a commissioner mart, as its ``meta`` describes it."""

    name: str
    role: str
    additive: bool = True
    of: str | None = None  # flag, statistic: the count it goes with
    numerator: str | None = None  # rate
    denominator: str | None = None  # rate
    per: int = 100  # rate: per 100 (a percentage) or, say, per 100,000 people
    dashboard: str | None = None  # rate: the dashboard's name for it
    withheld_with: tuple[str, ...] = ()  # count: withheld when any of these is
    sum_of: str | None = None  # count: the sum of this count ...
    over: str | None = None  # ... over this column
    # count: (mart, column) pairs counting the same quantity where the definitions coincide
    same_as: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_meta(cls, name: str, meta: Mapping[str, Any], where: str = "") -> MartColumn:
        at = f"{where}: column {name}" if where else f"column {name}"
        role = meta.get("role")
        if role not in ROLES:
            raise MartMetadataError(
                f"{at}: meta.role is {role!r}; give it one of {', '.join(ROLES)} in the mart's "
                "YAML (config: meta: role: ...), see joinedup.warehouse.marts"
            )
        unknown = set(meta) - {"role"} - _KEYS[role]
        if unknown:
            raise MartMetadataError(
                f"{at}: meta key(s) {', '.join(sorted(unknown))} do not apply to role {role}; "
                f"it takes {', '.join(sorted(_KEYS[role])) or 'nothing else'}"
            )
        withheld = meta.get("withheld_with") or ()
        if isinstance(withheld, str):
            withheld = (withheld,)
        additive = meta.get("additive", True)
        if not isinstance(additive, bool):
            raise MartMetadataError(f"{at}: meta.additive must be true or false")
        same_as = _same_as(meta.get("same_as"), at)
        per = meta.get("per", 100)
        if isinstance(per, bool) or not isinstance(per, int) or per < 1:
            raise MartMetadataError(f"{at}: meta.per must be a whole number from 1, got {per!r}")
        return cls(
            name=name,
            role=role,
            additive=additive,
            of=meta.get("of"),
            numerator=meta.get("numerator"),
            denominator=meta.get("denominator"),
            per=per,
            dashboard=meta.get("dashboard"),
            withheld_with=tuple(withheld),
            sum_of=meta.get("sum_of"),
            over=meta.get("over"),
            same_as=same_as,
        )

    @property
    def meta(self) -> dict[str, Any]:
        """The column's meta as dbt has it (defaults left out)."""
        out: dict[str, Any] = {"role": self.role}
        if not self.additive:
            out["additive"] = False
        for key in ("of", "numerator", "denominator", "dashboard", "sum_of", "over"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.role == "rate" and self.per != 100:
            out["per"] = self.per
        if self.withheld_with:
            out["withheld_with"] = list(self.withheld_with)
        if self.same_as:
            out["same_as"] = [{"mart": m, "column": c} for m, c in self.same_as]
        return out

    @property
    def disclosure(self) -> str:
        """The disclosure rule this column is published under, in words."""
        if self.role == "count":
            rule = "withheld (null, flag set) from 1 to threshold-1, else rounded"
            if self.withheld_with:
                rule += f"; withheld with {', '.join(self.withheld_with)}"
            if not self.additive:
                rule += "; distinct people: cells do not add up"
            if self.same_as:
                twins = ", ".join(f"{m}.{c}" for m, c in self.same_as)
                rule += f"; the same quantity as {twins} where the definitions coincide"
            return rule
        if self.role == "rate":
            unit = "a percentage" if self.per == 100 else f"a rate per {self.per:,}"
            return (
                f"{self.numerator} as {unit} of {self.denominator}, from the published "
                "counts; withheld with either"
            )
        if self.role == "statistic":
            return f"withheld with {self.of}, and where {self.of} is below statistic_min_group"
        if self.role == "flag":
            return f"true where {self.of} is withheld"
        if self.role == "secondary_flag":
            return "true once secondary suppression has run: a withheld count may be any from 1"
        return "published as it is"


@dataclass(frozen=True)
class MartSpec:
    """A commissioner mart: its columns in order, its dashboard key, its disclosure rule."""

    name: str
    columns: tuple[MartColumn, ...]
    dashboard: str | None = None
    suppression_threshold: int | None = None
    rounding_base: int | None = None
    # The fewest people a statistic that is not a count (a median) may describe.
    statistic_min_group: int | None = None
    where: str = field(default="", compare=False)  # the YAML file, for messages

    def __post_init__(self) -> None:
        self._check()

    def _names(self, *roles: str) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role in roles)

    def column(self, name: str) -> MartColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def breakdown(self) -> str:
        return self._names("breakdown")[0]

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The commissioner dimensions (null outside the breakdowns that hold them)."""
        return self._names("dimension")

    @property
    def keys(self) -> tuple[str, ...]:
        """Columns in every row's identity whatever the breakdown."""
        return self._names("key")

    @property
    def identity(self) -> tuple[str, ...]:
        """The columns that make a row: breakdown, dimensions and keys, in column order."""
        return self._names("breakdown", "dimension", "key")

    @property
    def counts(self) -> tuple[str, ...]:
        return self._names("count")

    @property
    def additive_counts(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "count" and c.additive)

    @property
    def distinct_counts(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "count" and not c.additive)

    @property
    def flags(self) -> tuple[str, ...]:
        return self._names("flag")

    @property
    def rates(self) -> dict[str, tuple[str, str]]:
        """{rate column: (numerator count, denominator count)}."""
        return {c.name: (c.numerator, c.denominator) for c in self.columns if c.role == "rate"}

    def rate_per(self, rate: str) -> int:
        """The unit of a rate column: 100 for a percentage, 100000 for a rate per 100,000."""
        return next(c.per for c in self.columns if c.role == "rate" and c.name == rate)

    @property
    def statistics(self) -> tuple[str, ...]:
        return self._names("statistic")

    @property
    def secondary(self) -> bool:
        return bool(self._names("secondary_flag"))

    @property
    def statistic_of(self) -> dict[str, str]:
        """{statistic column: the count it describes}."""
        return {c.name: c.of for c in self.columns if c.role == "statistic"}

    @property
    def twins(self) -> tuple[tuple[str, str, str], ...]:
        """(count, other mart, its count): the same quantity where the definitions coincide."""
        return tuple((c.name, mart, column) for c in self.columns for mart, column in c.same_as)

    @property
    def margins(self) -> tuple[tuple[str, str, str], ...]:
        """(margin count, part count, column the parts are summed over)."""
        return tuple(
            (c.name, c.sum_of, c.over) for c in self.columns if c.role == "count" and c.sum_of
        )

    @cached_property
    def related(self) -> dict[str, tuple[str, ...]]:
        """What secondary suppression withholds with each count: the rates and statistics
        computed from it and the counts never larger than it."""
        out: dict[str, tuple[str, ...]] = {}
        for count in self.counts:
            goes = [
                c.name
                for c in self.columns
                if (c.role == "rate" and count in (c.numerator, c.denominator))
                or (c.role == "statistic" and c.of == count)
                or (c.role == "count" and count in c.withheld_with)
            ]
            if goes:
                out[count] = tuple(goes)
        return out

    def _check(self) -> None:
        at = self.where or self.name

        def fail(message: str) -> None:
            raise MartMetadataError(f"{at}: {message}")

        names = self.column_names
        if len(set(names)) != len(names):
            fail("a column is described twice")
        if self._names("breakdown") != ("breakdown",):
            fail("exactly one column, named breakdown, must have role breakdown")
        counts = set(self.counts)
        if not counts:
            fail("no column has role count")
        for c in self.columns:
            if c.role == "flag" and (c.of not in counts or c.name != f"{c.of}{FLAG}"):
                fail(f"flag {c.name} must have of: <its count> and be named <count>{FLAG}")
            if c.role == "statistic" and c.of not in counts:
                fail(f"statistic {c.name} must have of: one of the counts {sorted(counts)}")
            if c.role == "rate" and not {c.numerator, c.denominator} <= counts:
                fail(f"rate {c.name} must have numerator: and denominator: among the counts")
            if c.role == "secondary_flag" and c.name != SECONDARY:
                fail(f"the secondary_flag column must be named {SECONDARY}")
            for other in c.withheld_with:
                if other not in counts or other == c.name:
                    fail(f"{c.name}: withheld_with names {other}, which is not another count")
            if c.sum_of is not None and (
                c.sum_of not in counts or c.over not in self.dimensions + self.keys
            ):
                fail(f"{c.name}: sum_of must name a count and over a dimension or key")
            if c.over is not None and c.sum_of is None:
                fail(f"{c.name}: over without sum_of")
        for count in counts:
            if f"{count}{FLAG}" not in self.flags:
                fail(f"count {count} has no flag column {count}{FLAG} (role flag, of: {count})")
        dashboards = [c.dashboard for c in self.columns if c.dashboard]
        if len(set(dashboards)) != len(dashboards):
            fail("two rates have the same dashboard name")

    @property
    def mart_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.dashboard is not None:
            out["dashboard"] = self.dashboard
        for key in _RULE_KEYS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _same_as(value: Any, at: str) -> tuple[tuple[str, str], ...]:
    """``same_as: [{mart: ..., column: ...}, ...]`` as (mart, column) pairs, or an error."""
    if value is None:
        return ()
    example = "same_as: [{mart: mart_readmissions, column: index_discharges}]"
    if not isinstance(value, list) or not value:
        raise MartMetadataError(f"{at}: meta.same_as must be a non-empty list, e.g. {example}")
    out = []
    for item in value:
        if (
            not isinstance(item, Mapping)
            or set(item) != {"mart", "column"}
            or not all(isinstance(item[k], str) and item[k] for k in ("mart", "column"))
        ):
            raise MartMetadataError(
                f"{at}: meta.same_as entry {item!r} must have exactly mart: and column: "
                f"(names), e.g. {example}"
            )
        out.append((item["mart"], item["column"]))
    if len(set(out)) != len(out):
        raise MartMetadataError(f"{at}: meta.same_as names the same column twice")
    return tuple(out)


def check_twins(marts: Mapping[str, MartSpec]) -> None:
    """Every ``same_as`` names a count of another mart with the same breakdowns' columns.

    Twin cells are matched on the breakdown and every dimension and key, so the other mart
    must have exactly the same identity columns; and the declaration must be made on both
    sides, so that reading either mart's YAML tells the reader its counts are shared.
    """
    for _name, spec in sorted(marts.items()):
        for count, other, column in spec.twins:
            at = f"{spec.where or spec.name}: column {count}: meta.same_as {other}.{column}"
            if other == spec.name:
                raise MartMetadataError(f"{at} names its own mart; name another commissioner mart")
            if other not in marts:
                raise MartMetadataError(
                    f"{at}: there is no commissioner mart {other} (known: {', '.join(marts)})"
                )
            twin = marts[other]
            if column not in twin.counts:
                raise MartMetadataError(
                    f"{at}: {other} has no count {column} (its counts: {', '.join(twin.counts)})"
                )
            if twin.identity != spec.identity:
                raise MartMetadataError(
                    f"{at}: {other} is broken down by {list(twin.identity)}, {spec.name} by "
                    f"{list(spec.identity)}; twin cells need the same breakdown, dimension "
                    "and key columns"
                )
            if (column, spec.name, count) not in twin.twins:
                raise MartMetadataError(
                    f"{at}: {twin.where or other} does not declare it back; add same_as: "
                    f"[{{mart: {spec.name}, column: {count}}}] to its column {column}"
                )


def _column_meta(column: Mapping[str, Any]) -> Mapping[str, Any]:
    return (column.get("config") or {}).get("meta") or column.get("meta") or {}


def _rule_number(meta: Mapping[str, Any], key: str, where: str) -> int | None:
    value = meta.get(key)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MartMetadataError(f"{where}: meta.{key} is {value!r}, not a whole number") from None


def from_node(node: Mapping[str, Any]) -> MartSpec:
    """A commissioner mart from its dbt node (a manifest entry, or ``model`` in a macro)."""
    where = node.get("patch_path") or node.get("original_file_path") or node["name"]
    where = str(where).split("://")[-1]
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    columns = node.get("columns") or {}
    if not columns:
        raise MartMetadataError(
            f"{where}: {node['name']} is materialized {MATERIALIZATION} but its YAML describes "
            "no columns; give every column a config: meta: role: (joinedup.warehouse.marts)"
        )
    return MartSpec(
        name=node["name"],
        columns=tuple(
            MartColumn.from_meta(name, _column_meta(c), where) for name, c in columns.items()
        ),
        dashboard=meta.get("dashboard"),
        suppression_threshold=_rule_number(meta, "suppression_threshold", where),
        rounding_base=_rule_number(meta, "rounding_base", where),
        statistic_min_group=_rule_number(meta, "statistic_min_group", where),
        where=where,
    )


def from_manifest(manifest: Mapping[str, Any]) -> dict[str, MartSpec]:
    """Every commissioner mart of a dbt manifest (``manifest.json`` as a dict), by name.

    A commissioner mart is a model materialized ``disclosure_controlled``; a model of
    another materialization whose columns have a meta role is refused, since its counts
    would not go through secondary suppression.
    """
    marts: dict[str, MartSpec] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        if (node.get("config") or {}).get("materialized") == MATERIALIZATION:
            spec = from_node(node)
            marts[spec.name] = spec
        elif any(_column_meta(c).get("role") for c in (node.get("columns") or {}).values()):
            raise MartMetadataError(
                f"{node.get('patch_path') or node['name']}: {node['name']} describes its "
                f"columns for disclosure control but is not materialized {MATERIALIZATION}: "
                "move it to models/marts/commissioning/ (or set +materialized)"
            )
    dashboards = [m.dashboard for m in marts.values() if m.dashboard]
    if len(set(dashboards)) != len(dashboards):
        raise MartMetadataError(f"two marts have the same dashboard key: {sorted(dashboards)}")
    check_twins(marts)
    return dict(sorted(marts.items()))


def read_manifest(path: Path) -> dict[str, MartSpec]:
    return from_manifest(json.loads(Path(path).read_text(encoding="utf-8")))


def manifest_path(data_dir: Path) -> Path:
    """The manifest of the last ``build_warehouse`` into ``data_dir``."""
    return DBT.under(data_dir) / "target" / "manifest.json"


# --- the published file's own description ------------------------------------------------


def write_table(con: duckdb.DuckDBPyConnection, marts: Iterable[MartSpec]) -> None:
    """(Re)write ``main._joinedup_marts``: one row per column of every mart."""
    con.execute(f"drop table if exists main.{TABLE}")
    con.execute(
        f"""
        create table main.{TABLE} (
            mart varchar not null,
            column_name varchar not null,
            column_index integer not null,
            role varchar not null,
            disclosure varchar not null,
            meta varchar not null,
            mart_meta varchar not null,
            suppression_threshold integer,
            rounding_base integer
        )
        """
    )
    rows = [
        (
            m.name,
            c.name,
            i,
            c.role,
            c.disclosure,
            json.dumps(c.meta),
            json.dumps(m.mart_meta),
            m.suppression_threshold,
            m.rounding_base,
        )
        for m in marts
        for i, c in enumerate(m.columns, start=1)
    ]
    if rows:
        con.executemany(f"insert into main.{TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        f"comment on table main.{TABLE} is "
        + literal(
            "What each column of the commissioner marts is (role, the rule it is published "
            "under, its dbt meta), and the disclosure rule's threshold and rounding base: "
            "from the dbt models' YAML (joinedup.warehouse.marts)."
        )
    )


def read_table(con: duckdb.DuckDBPyConnection, database: str | None = None) -> dict[str, MartSpec]:
    """The marts a DuckDB file describes in ``main._joinedup_marts``; {} without the table."""
    db = database or con.execute("select current_database()").fetchall()[0][0]
    found = con.execute(
        "select 1 from duckdb_tables() where database_name = ? and schema_name = 'main' "
        "and table_name = ?",
        [db, TABLE],
    ).fetchall()
    if not found:
        return {}
    rows = con.execute(
        f"select mart, column_name, meta, mart_meta from {quote(db)}.main.{TABLE} "
        "order by mart, column_index"
    ).fetchall()
    nodes: dict[str, dict[str, Any]] = {}
    for mart, column, meta, mart_meta in rows:
        node = nodes.setdefault(
            mart, {"name": mart, "config": {"meta": json.loads(mart_meta)}, "columns": {}}
        )
        node["columns"][column] = {"meta": json.loads(meta)}
    return {name: from_node(node) for name, node in nodes.items()}


# --- the repository's project ------------------------------------------------------------


def _project_files(project_dir: Path) -> list[Path]:
    config = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    folders = [
        *config.get("model-paths", ["models"]),
        *config.get("macro-paths", ["macros"]),
        *config.get("seed-paths", ["seeds"]),
        *config.get("test-paths", ["tests"]),
        *config.get("snapshot-paths", ["snapshots"]),
        *config.get("analysis-paths", ["analyses"]),
    ]
    files = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in folders:
        root = project_dir / folder
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.is_file())
    return files


def _digest(project_dir: Path, dbt_vars: Mapping[str, Any]) -> str:
    from dbt.version import __version__ as dbt_version

    h = hashlib.sha256(f"{dbt_version}\n{json.dumps(dict(dbt_vars), sort_keys=True)}".encode())
    for path in _project_files(project_dir):
        h.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:32]


def _cache_dir() -> Path:
    base = Path(tempfile.gettempdir()) / f"joinedup-dbt-parse-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    return base


def parse_manifest(
    project_dir: Path = REPO_ROOT, dbt_vars: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest of ``dbt parse`` on a project, cached by the content of its files.

    dbt's files go to a temporary folder, never into the repository; the manifest is kept
    under the system temp folder, keyed by a digest of every file dbt reads, so an
    unchanged project is not parsed again (a parse takes tens of seconds).
    """
    from dbt.cli.main import dbtRunner

    project_dir = Path(project_dir).resolve()
    dbt_vars = dict(dbt_vars or {})
    cached = _cache_dir() / f"{_digest(project_dir, dbt_vars)}.json"
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    work = Path(tempfile.mkdtemp(prefix="parse-", dir=_cache_dir()))
    with environment({"JOINEDUP_DATA_DIR": str(work), "DO_NOT_TRACK": "1"}):
        args = ["parse", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
        args += ["--target-path", str(work / "target"), "--log-path", str(work / "logs")]
        args += ["--log-level", "warn", "--vars", json.dumps(dbt_vars)]
        log.info("dbt parse of %s for its marts' metadata", project_dir)
        result = dbtRunner().invoke(args)
        manifest = work / "target" / "manifest.json"
        if not result.success or not manifest.exists():
            raise MartMetadataError(
                f"dbt parse of {project_dir} failed ({result.exception or 'see the log'}; "
                f"log: {work / 'logs' / 'dbt.log'})"
            )
        staged = cached.with_name(f".{cached.name}.tmp-{os.getpid()}")
        shutil.copyfile(manifest, staged)
        os.replace(staged, cached)
        shutil.rmtree(work, ignore_errors=True)
        return json.loads(cached.read_text(encoding="utf-8"))


def project_marts(
    project_dir: Path = REPO_ROOT, dbt_vars: Mapping[str, Any] | None = None
) -> dict[str, MartSpec]:
    """The commissioner marts of the repository's dbt project, from ``dbt parse``."""
    return from_manifest(parse_manifest(project_dir, dbt_vars))
