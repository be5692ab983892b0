"""The catalogue is the one place for zones, their paths, their tables and the repo root.

Static checks over the code that runs (the package, the DAGs, the dashboard, the
benchmarks): a zone's path spelled out as a path, a list of the pseudonymised tables,
or the repository root computed from ``__file__`` anywhere but ``catalogue.py`` fails
here, naming the file and line and what to import instead. And a run writes only where
the catalogue says.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from joinedup import catalogue
from joinedup.catalogue import PSEUDONYMISED_TABLES, REPO_ROOT, ZONES

CODE = ("src/joinedup", "dags", "dashboard", "benchmarks")
OWNER = REPO_ROOT / "src" / "joinedup" / "catalogue.py"
ZONE_PATHS = {z.path for z in ZONES}
# A string constant shaped like a path (no spaces): an error message may name a path.
PATH_LIKE = re.compile(r"[\w.\-/*<>{}]+")
TABLE_NAMES = {n for names in PSEUDONYMISED_TABLES.values() for n in names}


def _code_files() -> list[Path]:
    files = [p for d in CODE for p in sorted((REPO_ROOT / d).rglob("*.py"))]
    return [p for p in files if p != OWNER]


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def _names_a_zone(text: str) -> str | None:
    """The zone whose path ``text`` is, or lies under, if it is shaped like a path."""
    if not PATH_LIKE.fullmatch(text):
        return None
    for path in ZONE_PATHS:
        if (text == path and "/" in path) or text.startswith(path + "/"):
            return path
    return None


def _path_operands(tree: ast.Module) -> set[int]:
    """Constants used as a path: an operand of ``/``, an argument of Path()/joinpath(), or
    a module-level constant of its own (``LINKED = "linked"``, to be joined later)."""
    found = {
        id(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found |= {id(n) for n in (node.left, node.right) if isinstance(n, ast.Constant)}
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ("Path", "joinpath"):
                found |= {id(a) for a in node.args if isinstance(a, ast.Constant)}
    return found


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings, operands = _docstrings(tree), _path_operands(tree)
    where = path.relative_to(REPO_ROOT).as_posix()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings:
                continue
            zone = _names_a_zone(node.value)
            if zone is None and id(node) in operands and node.value in ZONE_PATHS:
                zone = node.value
            if zone is not None:
                out.append(
                    f"{where}:{node.lineno}: {node.value!r} spells out the path of zone "
                    f"{zone!r}: use joinedup.catalogue (its Zone.under(data_dir) or constants)"
                )
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            # A dict's values are searched whole: {"gp": ("patients", "events"), ...}
            items = [*node.keys, *node.values] if isinstance(node, ast.Dict) else node.elts
            searched = [n for item in items if item for n in ast.walk(item)]
            if not isinstance(node, ast.Dict):
                searched = [n for n in node.elts if n]
            values = [n.value for n in searched if isinstance(n, ast.Constant)]
            if len(TABLE_NAMES.intersection(values)) >= 3:
                out.append(
                    f"{where}:{node.lineno}: a list of pseudonymised tables; use "
                    "joinedup.catalogue.PSEUDONYMISED_TABLES / RECORD_TABLES"
                )
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
            and "__file__" in ast.unparse(node.value)
        ):
            out.append(
                f"{where}:{node.lineno}: computes the repository root from __file__; "
                "use joinedup.catalogue.REPO_ROOT"
            )
    return out


def test_no_module_spells_out_a_zone_path_a_table_list_or_the_repo_root() -> None:
    found = [v for p in _code_files() for v in _violations(p)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from pathlib import Path\nROOT = Path(__file__).resolve().parents[2]\n",
        'def f(d):\n    return d / "pseudonymised" / "gp"\n',
        'RECORD = "linked/record_person.parquet"\n',
        'LINKED = "linked"\n',
        'T = {"gp": ("patients", "events"), "social_care": ("clients", "events")}\n',
    ],
)
def test_the_check_finds_each_kind(tmp_path: Path, source: str) -> None:
    module = REPO_ROOT / "benchmarks" / f"_probe_{tmp_path.name}.py"
    module.write_text(source, encoding="utf-8")
    try:
        assert _violations(module)
    finally:
        module.unlink()


def test_the_check_lets_messages_and_docstrings_name_paths(tmp_path: Path) -> None:
    module = REPO_ROOT / "benchmarks" / f"_probe_{tmp_path.name}.py"
    module.write_text(
        '"""Reads linked/record_person.parquet."""\n'
        'MESSAGE = "put extracts under landing/gp and run again"\n'
        'def gate(zone):\n    return zone == "landing"\n',
        encoding="utf-8",
    )
    try:
        assert _violations(module) == []
    finally:
        module.unlink()


def test_every_zone_is_written_by_a_stage_and_amendments_say_why() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(catalogue.DAGS_DIR))
    tasks = {t.task_id for dag in bag.dags.values() for t in dag.tasks}
    paths = [z.path for z in ZONES]
    assert len(paths) == len(set(paths)) and len({z.name for z in ZONES}) == len(ZONES)
    for zone in ZONES:
        # Landing is the suppliers'; a zone a command writes (`joinedup ...`) has no task.
        if zone is not catalogue.LANDING and not zone.writer.startswith("joinedup "):
            assert zone.writer in tasks, (zone.name, zone.writer)
        for stage, why in zone.amended_by:
            assert stage in tasks and len(why) > 20, (zone.name, stage)


@pytest.mark.slow  # the session's published population: a minute to build
def test_a_run_writes_only_inside_the_catalogues_zones(published_population: Path) -> None:
    top = {p.name for p in published_population.iterdir()}
    declared = {z.path.split("/")[0] for z in ZONES} | {"truth"}  # truth/: the generator's
    assert top <= declared, sorted(top - declared)
    for zone in ZONES:
        if zone.private and zone.under(published_population).exists():
            path = zone.under(published_population)
            mode = path.stat().st_mode & 0o777
            assert mode == (0o700 if path.is_dir() else 0o600), (zone.path, oct(mode))
