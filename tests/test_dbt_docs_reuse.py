"""What a pipeline build leaves out, and when it makes the docs again (issue 23).

A small synthetic population through the real ingest stages, truth linkage and real
``dbt build`` runs, several times in one data directory: a pipeline build leaves the dbt
unit tests to ``tests/test_dbt.py`` (which runs them all), and ``dbt docs generate`` runs
only when what the pages show (the project as parsed, its vars, the warehouse's tables
and columns) has changed since the docs kept beside the build's files were made.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from ingest_fixtures import pseudonymised_with_true_linkage

from joinedup.catalogue import DBT, WAREHOUSE
from joinedup.synth import generate
from joinedup.warehouse import build_warehouse, generate_docs
from joinedup.warehouse.build import DOCS_FILES, DOCS_KEPT, docs_inputs

pytestmark = pytest.mark.slow

PEOPLE = 300
SEED = 7


def _stamps(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_mtime_ns for name in DOCS_FILES}


def _catalog_columns(docs: Path) -> dict[str, list[tuple[str, str]]]:
    catalog = json.loads((docs / "catalog.json").read_text())
    return {
        node["metadata"]["schema"] + "." + node["metadata"]["name"]: sorted(
            (c["name"], c["type"]) for c in node["columns"].values()
        )
        for node in catalog["nodes"].values()
    }


def _warehouse_columns(warehouse: Path) -> dict[str, list[tuple[str, str]]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select schema_name || '.' || table_name, column_name, data_type "
            "from duckdb_columns() where database_name = current_database() "
            "and table_name not like '\\_joinedup%' escape '\\'"
        ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    for relation, column, kind in rows:
        columns.setdefault(relation, []).append((column, kind))
    return {r: sorted(c) for r, c in columns.items()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("docs-reuse")
    generate(data, PEOPLE, seed=SEED, layout="generic")
    pseudonymised_with_true_linkage(data)
    kept = DBT.under(data) / "target" / DOCS_KEPT
    first = build_warehouse(data)
    # The second build is the first on a carried-over warehouse: the incremental event
    # facts compile to their incremental SQL (macros/incremental_by_person.sql), which the
    # docs show, so it documents again; from then on a build is like the last.
    second = build_warehouse(data)
    second_docs = generate_docs(data)
    second_catalog = (second_docs / "catalog.json").read_bytes()
    second_stamps = _stamps(kept)
    third = build_warehouse(data)
    third_stamps = _stamps(kept)
    third_docs = generate_docs(data)
    return {
        "data": data,
        "kept": kept,
        "first": first,
        "second": second,
        "second_catalog": second_catalog,
        "second_stamps": second_stamps,
        "third": third,
        "third_stamps": third_stamps,
        "third_docs": third_docs,
    }


def test_a_pipeline_build_runs_no_unit_test(builds: dict) -> None:
    nodes = builds["first"]["nodes"]
    manifest = json.loads((DBT.under(builds["data"]) / "target/manifest.json").read_text())
    kinds = Counter(n["resource_type"] for n in manifest["nodes"].values())
    # The project has unit tests (test_dbt.py runs them); the build left them out.
    assert manifest["unit_tests"] and "unit_test" not in nodes
    assert nodes["seed"] == {"success": kinds["seed"]}
    assert nodes["model"] == {"success": kinds["model"]}
    assert set(nodes["test"]) <= {"pass", "warn"} and sum(nodes["test"].values()) == kinds["test"]


def test_a_build_on_unchanged_inputs_reuses_the_docs(builds: dict) -> None:
    assert builds["first"]["docs"] == "generated"
    assert not builds["first"]["incremental"]["carried_over"]
    assert builds["second"]["docs"] == "generated"
    assert builds["second"]["incremental"]["carried_over"]
    assert builds["third"]["docs"] == "reused"
    assert builds["third_stamps"] == builds["second_stamps"]
    docs = builds["third_docs"]
    # The docs stage copied the kept files (no dbt of its own), and they describe the
    # warehouse the third build made: every relation and column, with its type.
    assert not (builds["data"] / "dbt/docs-target").exists()
    assert (docs / "catalog.json").read_bytes() == builds["second_catalog"]
    assert _catalog_columns(docs) == _warehouse_columns(builds["data"] / WAREHOUSE.path)


def test_a_changed_var_generates_the_docs_again(builds: dict) -> None:
    data = builds["data"]
    changed = build_warehouse(data, dbt_vars={"readmission_window_days": 28})
    try:
        assert changed["docs"] == "generated"
        assert _stamps(builds["kept"]) != builds["third_stamps"]
        docs = generate_docs(data, dbt_vars={"readmission_window_days": 28})
        assert not (data / "dbt/docs-target").exists()
        assert _catalog_columns(docs) == _warehouse_columns(data / WAREHOUSE.path)
    finally:
        # Back as the fixture left it: later tests see the default build's docs.
        assert build_warehouse(data)["docs"] == "generated"


def test_the_docs_inputs_change_with_the_warehouse_schema(builds: dict, tmp_path: Path) -> None:
    data = builds["data"]
    manifest = DBT.under(data) / "target" / "manifest.json"
    copy = tmp_path / WAREHOUSE.path
    shutil.copy2(data / WAREHOUSE.path, copy)
    same = docs_inputs(manifest, copy)
    assert same == docs_inputs(manifest, data / WAREHOUSE.path)
    changes = (
        "alter table marts.dim_person alter column age type integer",
        "alter table marts.dim_person add column extra integer",
        "comment on column marts.dim_person.sex is 'changed'",
        "create view marts.another as select 1 as one",
    )
    for sql in changes:
        shutil.copy2(data / WAREHOUSE.path, copy)
        with duckdb.connect(str(copy)) as con:
            con.execute(sql)
        changed = docs_inputs(manifest, copy)
        assert changed["manifest"] == same["manifest"], sql
        assert changed["schema"] != same["schema"], sql
