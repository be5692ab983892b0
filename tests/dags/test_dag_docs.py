"""The task order is written once, by the DAG; its documentation and the docs follow it."""

from __future__ import annotations

import re

import pytest

from joinedup.catalogue import DAGS_DIR, REPO_ROOT
from joinedup.orchestration import task_list


@pytest.fixture(scope="module")
def link_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_DIR)).dags["joinedup_link_and_build"]


def _listed(doc: str) -> list[str]:
    return re.findall(r"^\d+\. `(\w+)`", doc, flags=re.M)


def test_the_dag_doc_lists_every_task_once_after_its_upstreams(link_dag) -> None:
    listed = _listed(link_dag.doc_md)
    assert sorted(listed) == sorted(t.task_id for t in link_dag.tasks)
    at = {task_id: i for i, task_id in enumerate(listed)}
    for t in link_dag.tasks:
        for up in t.upstream_task_ids:
            assert at[up] < at[t.task_id], (up, t.task_id)
        # Each line says what the task does, from the task's own docstring.
        assert (t.doc_md or "").strip(), f"task {t.task_id} has no docstring"


def test_task_list_follows_dependencies_not_definition_order() -> None:
    from datetime import datetime

    from airflow.sdk import DAG
    from airflow.sdk.bases.operator import BaseOperator

    with DAG("order_probe", start_date=datetime(2025, 1, 1), schedule=None) as dag:
        late = BaseOperator(task_id="defined_first_runs_last", doc_md="Last.")
        early = BaseOperator(task_id="defined_last_runs_first", doc_md="First.")
        early >> late
    assert _listed(task_list(dag)) == ["defined_last_runs_first", "defined_first_runs_last"]


# A sequence written out: a numbered list item or table row, or a chain of arrows.
_SEQUENCE = re.compile(r"^\s*(\d+\.|\|\s*\d+\s*\|)|→|->")


def _ordered_mentions(text: str, ids: set[str]) -> list[str]:
    """Task ids named in lines (or paragraphs) that write a sequence out."""
    found: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines() if not ("→" in block or "->" in block) else [block]
        for line in lines:
            if _SEQUENCE.search(line):
                found += [t for t in re.findall(r"`(\w+)`", line) if t in ids]
    return list(dict.fromkeys(found))


def test_no_doc_writes_the_task_order_out_again(link_dag) -> None:
    ids = {t.task_id for t in link_dag.tasks}
    docs = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *REPO_ROOT.glob("docs/*.md")]
    for path in (p for p in docs if p.exists()):
        numbered = _ordered_mentions(path.read_text(encoding="utf-8"), ids)
        assert len(numbered) < 3, (
            f"{path.relative_to(REPO_ROOT)} numbers the DAG's tasks ({', '.join(numbered)}): "
            "refer to the DAG's documentation (dags/joinedup_link_and_build.py) instead"
        )


def test_the_order_check_finds_a_list_a_table_and_an_arrow_chain() -> None:
    ids = {"opt_outs", "pseudonymise", "link"}
    for text in (
        "1. `opt_outs`\n2. `pseudonymise`\n3. `link`\n",
        "| 1 | `opt_outs` |\n| 2 | `pseudonymise` |\n| 3 | `link` |\n",
        "`opt_outs` (first) →\n`pseudonymise` → `link`\n",
    ):
        assert len(_ordered_mentions(text, ids)) == 3, text
    assert _ordered_mentions("`opt_outs` then `link`, see the DAG", ids) == []
