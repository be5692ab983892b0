"""Landing layouts as data: how a national (or local) extract maps onto the landing tables.

joinedup's landing tables (:mod:`joinedup.contracts`) are its internal schema. A
*layout* (``src/joinedup/layouts/<name>.yaml``) describes one delivered file format:
its file name pattern, its columns (matched case-insensitively, with kinds, date
formats and code sets), which of them identify a person, how later deliveries revise
earlier ones, and, per landing table it feeds, where each landing column comes from.
Ingest reads a layout's files, translates every row into the landing table's columns
(keeping the file and line it came from) and then applies the landing contract as it
does to any file, so quarantine, the ledger and redelivery work the same for all.

A *mapping* (a YAML file in ``JOINEDUP_MAPPINGS_DIR``, kept in version control)
describes a local variant of a shipped layout with no code: ``extends: hes_apc``, its
own file pattern, renamed columns, other date formats and local codes mapped to
national ones. It is validated when loaded; a file it cannot read is rejected with the
file, the column and the mapping to edit; a code it does not map quarantines the row
with ``unknown_code:<column>`` (file and line in the quarantine).

Revision rules (``revises``): ``month`` (a later file for the same month and
organisations replaces the earlier, as generic files), ``year_to_date`` (a later file
replaces every earlier one whose months it covers: the SUS/HES financial-year-to-date
refresh), and ``latest_submission`` with a ``supersede`` rule per table (each row has an
identity made of columns; among rows of the same identity the one from the latest
submission wins and the others are quarantined as ``superseded_by:<file>:<line>``: the
CLD resubmission of earlier events).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from joinedup.contracts import TABLES, Table
from joinedup.ingest.errors import IngestError

# Package data, found through the package (not the repository) so an installed copy has it.
SHIPPED = Path(str(resources.files("joinedup") / "layouts"))
MAPPINGS_ENV = "JOINEDUP_MAPPINGS_DIR"
KINDS = ("text", "date", "time", "snomed")
REVISIONS = ("month", "year_to_date", "latest_submission", "snapshot")
ISO_DATE = "%Y-%m-%d"
# Hidden columns a translated frame carries to ingest's supersession rule (validate.py).
IDENTITY = "__identity__"
SUBMITTED = "__submitted__"


class LayoutError(IngestError):
    """A layout or mapping file that cannot be used; the message names the file and the key."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        super().__init__(
            f"{path}: {problem} Fix the file (docs/contracts.md, 'Layouts' describes every key) "
            "and re-run; nothing was ingested."
        )


@dataclass(frozen=True)
class Delivered:
    """One column of a delivered file."""

    name: str
    kind: str = "text"
    required: bool = False  # must be in the header
    optional: bool = False  # may be absent from the header (then blank)
    codes: dict[str, str] | None = None  # code -> meaning; another value quarantines its row
    date_format: str = ISO_DATE
    description: str = ""


@dataclass(frozen=True)
class Supersede:
    """Rows of one identity: the latest submission's wins (CLD resubmissions)."""

    identity: tuple[str, ...]  # delivered columns (after renaming) whose values make one event
    # Delivered date column ordering submissions (later wins); None: the later delivery
    # (file name, then line) wins, for feeds whose rows carry no submission date (HES).
    submitted: str | None


@dataclass(frozen=True)
class Layout:
    name: str
    revision: int
    title: str
    source: str
    files: str
    revises: str
    columns: tuple[Delivered, ...]
    tables: dict[str, dict[str, Any]]  # "source/table" -> landing column -> spec
    identifies_person: tuple[str, ...] = ()
    description: str = ""
    specification: str = ""
    supersede: dict[str, Supersede] = field(default_factory=dict)
    path: Path | None = None
    # A mapping: the layout it varies, local column name -> the layout's, local codes.
    extends: str | None = None
    rename: dict[str, str] = field(default_factory=dict)
    code_maps: dict[str, dict[str, str]] = field(default_factory=dict)

    def column(self, name: str) -> Delivered:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def local_name(self, name: str) -> str:
        """The header name a file of this layout carries for the layout column ``name``."""
        back = {national: local for local, national in self.rename.items()}
        return back.get(name, name)

    def targets(self, table: Table) -> bool:
        return table.qualified_name in self.tables


def _fail(path: Path, problem: str) -> LayoutError:
    return LayoutError(path, problem)


def _expand_numbered(path: Path, numbered: dict[str, Any]) -> list[Delivered]:
    out = []
    for stem, spec in numbered.items():
        count, width = int(spec["positions"]), int(spec.get("width", 2))
        if count < 1:
            raise _fail(path, f"numbered.{stem}.positions must be at least 1.")
        for n in range(1, count + 1):
            pos = f"{n:0{width}d}"
            out.append(
                Delivered(
                    f"{stem}_{pos}",
                    # The first position is in every header; later ones may be absent.
                    optional=n > 1,
                    description=str(spec.get("description", "")).format(n=pos),
                )
            )
    return out


def numbered_columns(layout: Layout, stem: str, start: int) -> list[str]:
    """``stem_NN`` columns of a layout from position ``start`` on, in order."""
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+)$")
    found = [(int(m.group(1)), c.name) for c in layout.columns if (m := pattern.match(c.name))]
    return [name for n, name in sorted(found) if n >= start]


def _column(path: Path, name: str, spec: Any) -> Delivered:
    spec = spec or {}
    if not isinstance(spec, dict):
        raise _fail(path, f"columns.{name} must be a mapping of keys (kind, required, ...).")
    unknown = set(spec) - {"kind", "required", "optional", "codes", "format", "description"}
    if unknown:
        raise _fail(path, f"columns.{name} has unknown key(s) {', '.join(sorted(unknown))}.")
    kind = spec.get("kind", "text")
    if kind not in KINDS:
        raise _fail(path, f"columns.{name}.kind is {kind!r}; expected one of {', '.join(KINDS)}.")
    codes = spec.get("codes")
    if isinstance(codes, list):
        codes = {str(c): "" for c in codes}
    elif codes is not None:
        codes = {str(k): str(v) for k, v in codes.items()}
    return Delivered(
        name=name.lower(),
        kind=kind,
        required=bool(spec.get("required", False)),
        optional=bool(spec.get("optional", False)),
        codes=codes,
        date_format=str(spec.get("format", ISO_DATE)),
        description=str(spec.get("description", "")),
    )


def _check_date_format(path: Path, where: str, fmt: str) -> None:
    try:
        stamp = datetime(2024, 12, 31).strftime(fmt)
        if datetime.strptime(stamp, fmt).date() != datetime(2024, 12, 31).date():
            raise ValueError
    except ValueError:
        raise _fail(
            path, f"{where} is {fmt!r}, which does not read back a full date (use e.g. %d/%m/%Y)."
        ) from None


def _spec_columns(spec: Any) -> list[str]:
    """Delivered columns a landing-column spec reads (for validation)."""
    if spec is None:
        return []
    if isinstance(spec, str):
        return [spec]
    if "first_of" in spec:
        return [c for s in spec["first_of"] for c in _spec_columns(s)]
    if "datetime" in spec:
        return list(spec["datetime"])
    if "column" in spec:
        return [spec["column"]]
    return []


def _check_tables(path: Path, layout: Layout) -> None:
    names = set(layout.column_names)
    stems = {re.sub(r"_\d+$", "", n) for n in names}
    for qualified, columns in layout.tables.items():
        table = TABLES.get(qualified)
        if table is None:
            raise _fail(
                path, f"tables.{qualified} is not a landing table ({', '.join(sorted(TABLES))})."
            )
        if table.source != layout.source:
            raise _fail(path, f"tables.{qualified} belongs to source {table.source!r}.")
        unknown = set(columns) - set(table.all_column_names)
        if unknown:
            raise _fail(
                path,
                f"tables.{qualified} names column(s) {', '.join(sorted(unknown))} that "
                f"{qualified} does not have.",
            )
        missing = [c for c in table.column_names if c not in columns]
        if missing:
            raise _fail(
                path,
                f"tables.{qualified} says nothing of {', '.join(missing)}: give each a "
                "delivered column, or null if the feed does not carry it.",
            )
        for landing, spec in columns.items():
            if isinstance(spec, dict) and "join" in spec:
                if spec["join"] not in stems:
                    raise _fail(path, f"tables.{qualified}.{landing}: no numbered {spec['join']}.")
                continue
            for c in _spec_columns(spec):
                if c not in names:
                    raise _fail(
                        path,
                        f"tables.{qualified}.{landing} reads column {c!r}, which is not among "
                        "the layout's columns.",
                    )
    for qualified, rule in layout.supersede.items():
        for c in (*rule.identity, *([rule.submitted] if rule.submitted else [])):
            if c not in names:
                raise _fail(path, f"supersede.{qualified} names unknown column {c!r}.")


def _parse_layout(path: Path, data: dict[str, Any]) -> Layout:
    required = ("layout", "revision", "title", "source", "files", "revises", "columns", "tables")
    missing = [k for k in required if k not in data]
    if missing:
        raise _fail(path, f"missing key(s) {', '.join(missing)}.")
    if data["revises"] not in REVISIONS:
        raise _fail(path, f"revises is {data['revises']!r}; expected one of {REVISIONS}.")
    columns = [_column(path, n, s) for n, s in data["columns"].items()]
    columns += _expand_numbered(path, data.get("numbered") or {})
    for c in columns:
        if c.kind == "date":
            _check_date_format(path, f"columns.{c.name}.format", c.date_format)
    supersede = {
        q: Supersede(tuple(r["identity"]), r.get("submitted"))
        for q, r in (data.get("supersede") or {}).items()
    }
    if data["revises"] == "latest_submission" and not supersede:
        raise _fail(path, "revises: latest_submission needs a supersede rule per table.")
    layout = Layout(
        name=str(data["layout"]),
        revision=int(data["revision"]),
        title=str(data["title"]),
        source=str(data["source"]),
        files=str(data["files"]),
        revises=str(data["revises"]),
        columns=tuple(columns),
        tables={q: dict(cols) for q, cols in data["tables"].items()},
        identifies_person=tuple(data.get("identifies_person") or ()),
        description=str(data.get("description", "")),
        specification=str(data.get("specification", "")),
        supersede=supersede,
        path=path,
    )
    _check_tables(path, layout)
    return layout


def _parse_mapping(path: Path, data: dict[str, Any], shipped: dict[str, Layout]) -> Layout:
    allowed = {"mapping", "revision", "extends", "files", "description", "rename", "formats"}
    unknown = set(data) - allowed - {"codes"}
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(sorted(unknown))} (allowed: {allowed}).")
    for key in ("mapping", "revision", "extends", "files"):
        if key not in data:
            raise _fail(path, f"missing key {key!r}.")
    base = shipped.get(str(data["extends"]))
    if base is None:
        raise _fail(
            path, f"extends {data['extends']!r}, not a shipped layout ({', '.join(shipped)})."
        )
    national = set(base.column_names)
    rename = {str(k).lower(): str(v).lower() for k, v in (data.get("rename") or {}).items()}
    for local, target in rename.items():
        if target not in national:
            raise _fail(path, f"rename.{local}: {target!r} is not a column of {base.name}.")
    formats = {str(k).lower(): str(v) for k, v in (data.get("formats") or {}).items()}
    columns = []
    for c in base.columns:
        if c.name in formats:
            if c.kind != "date":
                raise _fail(path, f"formats.{c.name}: {c.name} is not a date column.")
            _check_date_format(path, f"formats.{c.name}", formats[c.name])
            c = Delivered(**{**c.__dict__, "date_format": formats[c.name]})
        columns.append(c)
    for name in set(formats) - national:
        raise _fail(path, f"formats.{name}: {name!r} is not a column of {base.name}.")
    code_maps = {}
    for name, codes in (data.get("codes") or {}).items():
        name = str(name).lower()
        if name not in national:
            raise _fail(path, f"codes.{name}: {name!r} is not a column of {base.name}.")
        code_maps[name] = {str(k): str(v) for k, v in (codes or {}).items()}
    return Layout(
        **{
            **base.__dict__,
            "name": str(data["mapping"]),
            "revision": int(data["revision"]),
            "files": str(data["files"]),
            "description": str(data.get("description", base.description)),
            "columns": tuple(columns),
            "path": path,
            "extends": base.name,
            "rename": rename,
            "code_maps": code_maps,
        }
    )


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _fail(path, f"is not valid YAML{where}.") from None
    if not isinstance(data, dict):
        raise _fail(path, "must hold a mapping of keys at its top level.")
    return data


@cache
def _shipped() -> dict[str, Layout]:
    out = {}
    for path in sorted(SHIPPED.glob("*.yaml")):
        layout = _parse_layout(path, _load_yaml(path))
        out[layout.name] = layout
    return out


def shipped_layouts() -> dict[str, Layout]:
    """The national layouts joinedup ships, by name."""
    return dict(_shipped())


def mappings_dir() -> Path | None:
    """The folder of local mapping files (``JOINEDUP_MAPPINGS_DIR``), if one is set."""
    from joinedup.settings import Settings  # settings read the environment when asked

    return Settings().mappings_dir


def load_mappings(folder: Path | None) -> list[Layout]:
    """Every mapping file (``*.yaml``) in ``folder``, validated."""
    if folder is None:
        return []
    if not folder.is_dir():
        raise LayoutError(folder, f"({MAPPINGS_ENV}) is not a folder.")
    shipped = _shipped()
    return [_parse_mapping(p, _load_yaml(p), shipped) for p in sorted(folder.glob("*.yaml"))]


def layouts_for(
    table: Table | None, mappings: list[Layout] | None = None, source: str | None = None
) -> list[Layout]:
    """The layouts and mappings whose files feed ``table`` (or any table of ``source``).

    Mappings come first: a file both a mapping and its layout match is the mapping's.
    """
    if mappings is None:
        mappings = load_mappings(mappings_dir())
    every = [*mappings, *_shipped().values()]
    if table is not None:
        return [layout for layout in every if layout.targets(table)]
    return [layout for layout in every if layout.source == source]


# --- translation ------------------------------------------------------------------------


def missing_columns(layout: Layout, header: tuple[str, ...]) -> list[str]:
    """Columns a file of this layout must carry but its (normalised) header lacks, by local name."""
    return [
        layout.local_name(c.name)
        for c in layout.columns
        if not c.optional and layout.local_name(c.name) not in header
    ]


def read_columns(layout: Layout, header: tuple[str, ...]) -> list[str]:
    """The header names a layout reads from a file (its columns, by their local names)."""
    known = {layout.local_name(c.name) for c in layout.columns}
    return [h for h in header if h in known]


def _text(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars()


def _normalised(layout: Layout, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """Delivered columns under their layout names, local codes mapped, dates as ISO text.

    Returns the frame and one reason expression per coded column (null when fine).
    """
    present = {layout.local_name(c.name): c.name for c in layout.columns}
    frame = frame.rename({h: present[h] for h in frame.columns if h in present})
    missing = [c.name for c in layout.columns if c.name not in frame.columns]
    frame = frame.with_columns(pl.lit("").alias(c) for c in missing)
    exprs, reasons = [], []
    for c in layout.columns:
        value = _text(c.name)
        local = layout.code_maps.get(c.name)
        if local:
            value = value.replace(local)
        if c.kind == "date" and c.date_format != ISO_DATE:
            parsed = value.str.strptime(pl.Date, c.date_format, strict=False)
            # An unreadable date stays as delivered: the contract then quarantines it.
            value = (
                pl.when(parsed.is_not_null()).then(parsed.dt.strftime(ISO_DATE)).otherwise(value)
            )
        exprs.append(value.alias(c.name))
        if c.codes is not None or local:
            # A local code map without a national code set: its targets are the codes.
            allowed = list(c.codes or {}) or list((local or {}).values())
            bad = (pl.col(c.name) != "") & ~pl.col(c.name).is_in(allowed)
            reasons.append(pl.when(bad).then(pl.lit(f"unknown_code:{layout.local_name(c.name)}")))
    return frame.with_columns(exprs), reasons


def _landing_expr(layout: Layout, spec: Any) -> pl.Expr:
    if spec is None:
        return pl.lit("")
    if isinstance(spec, str):
        return pl.col(spec)
    if "join" in spec:
        cols = numbered_columns(layout, spec["join"], int(spec.get("from", 1)))
        parts = [pl.when(pl.col(c) != "").then(pl.col(c)) for c in cols]
        return pl.concat_str(parts, separator="; ", ignore_nulls=True)
    if "datetime" in spec:
        day, time = spec["datetime"]
        return (
            pl.when(pl.col(day) == "")
            .then(pl.lit(""))
            .when(pl.col(time) == "")
            .then(pl.col(day) + pl.lit("T00:00"))
            .otherwise(pl.col(day) + pl.lit("T") + pl.col(time))
        )
    if "first_of" in spec:
        options = [_landing_expr(layout, s) for s in spec["first_of"]]
        return pl.coalesce([pl.when(o != "").then(o) for o in options]).fill_null("")
    if "map" in spec:
        return pl.col(spec["column"]).replace_strict(spec["map"], default=None).fill_null("")
    raise ValueError(f"unknown column spec {spec!r}")


def _joined_reasons(reasons: list[pl.Expr]) -> pl.Expr:
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    return pl.when(joined != "").then(joined)


def translate(
    frame: pl.DataFrame, layout: Layout, table: Table, problems: str, fixed: list[str]
) -> pl.DataFrame:
    """A layout file's rows (text, local header names) as ``table``'s landing columns.

    ``problems`` is the read problems column, ``fixed`` the columns carried as they are
    (file and line). The result has the fixed columns, every landing column, the read
    problems (with any unknown code added) and, where the layout supersedes rows, the
    identity and submission date of each row.
    """
    frame, reasons = _normalised(layout, frame)
    spec = layout.tables[table.qualified_name]
    rule = layout.supersede.get(table.qualified_name)
    extra = [
        pl.lit(None, dtype=pl.String).alias(IDENTITY),
        pl.lit(None, dtype=pl.String).alias(SUBMITTED),
    ]
    if rule is not None:
        extra = [
            pl.concat_str(
                [pl.col(c).str.to_lowercase() for c in rule.identity], separator="|"
            ).alias(IDENTITY),
            (pl.col(rule.submitted) if rule.submitted else pl.lit(None, pl.String)).alias(
                SUBMITTED
            ),
        ]
    return frame.select(
        *fixed,
        *[_landing_expr(layout, spec.get(c)).alias(c) for c in table.all_column_names],
        _joined_reasons([pl.col(problems), *reasons]).alias(problems),
        *extra,
    )
