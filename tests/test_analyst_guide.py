"""Every example query in docs/analyst-guide.md runs against a real analytics.duckdb,
with commissioning.duckdb attached beside it as the guide's "Opening the file" says.

The database is the session's shared published population (``published_population``
in conftest.py: a synthetic population through the real ingest, opt-out,
pseudonymisation and Splink linkage stages, a real ``dbt build`` and
``publish_analytics``), so this module adds no pipeline run of its own to the suite.
It is opened read-only, as analysts open it. Each ```sql block must run, return at
least one row, and return exactly the columns its ``-- columns:`` line names, so the
guide cannot drift from the marts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from joinedup.warehouse import analytics_path, commissioning_path

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "analyst-guide.md"
RUNBOOK = REPO / "docs" / "runbook.md"
SUITES = REPO / "expectations" / "expectations"
MIN_QUERIES = 8

_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.S | re.M)
_COLUMNS = re.compile(r"\A-- columns: (.+)\n")
_HEADING = re.compile(r"^#{2,4} (.+)$", re.M)


def guide_queries(text: str) -> list[tuple[str, str]]:
    """(id, sql) of every ```sql block, the id taken from the nearest heading above it."""
    found = []
    for n, block in enumerate(_BLOCK.finditer(text), start=1):
        headings = _HEADING.findall(text, 0, block.start())
        title = headings[-1] if headings else "top"
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:50]
        found.append((f"q{n:02d}-{slug}", block.group(1)))
    return found


def expected_columns(sql: str) -> list[str]:
    match = _COLUMNS.match(sql)
    assert match, f"the query does not start with a '-- columns: a, b' line:\n{sql}"
    return [c.strip() for c in match.group(1).split(",")]


QUERIES = guide_queries(GUIDE.read_text())


@pytest.fixture(scope="module")
def analytics(published_population: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(analytics_path(published_population)), read_only=True)
    # As the guide opens them: the analysts' file, the commissioners' attached beside it.
    path = str(commissioning_path(published_population)).replace("'", "''")
    con.execute(f"attach '{path}' as commissioning (read_only)")
    con.execute("set search_path = 'analytics.main,commissioning.main'")
    yield con
    con.close()


def test_the_guide_has_enough_queries_each_naming_its_columns() -> None:
    assert len(QUERIES) >= MIN_QUERIES, f"{GUIDE.name} has {len(QUERIES)} ```sql blocks"
    for query_id, sql in QUERIES:
        assert expected_columns(sql), query_id


@pytest.mark.parametrize("sql", [q for _, q in QUERIES], ids=[i for i, _ in QUERIES])
def test_example_query_runs_and_returns_rows(analytics: duckdb.DuckDBPyConnection, sql: str):
    result = analytics.sql(sql)
    assert result is not None, "the block is not a query"
    assert result.columns == expected_columns(sql)
    rows = result.fetchall()
    assert rows, "the query returned no rows on the test population"


def test_every_published_table_is_described_in_the_guide(
    analytics: duckdb.DuckDBPyConnection,
) -> None:
    published = {r[0] for r in analytics.sql("select table_name from duckdb_tables()").fetchall()}
    described = set(re.findall(r"^### `(\w+)`$", GUIDE.read_text(), re.M))
    assert published == described


def test_the_runbook_names_every_quality_suite() -> None:
    """The runbook's gate table covers every suite of the committed GX project."""
    suites = {".".join(p.relative_to(SUITES).with_suffix("").parts) for p in SUITES.rglob("*.json")}
    assert len(suites) > 20
    runbook = RUNBOOK.read_text()
    missing = sorted(s for s in suites if f"`{s}`" not in runbook)
    assert not missing, f"{RUNBOOK.name} does not name these suites: {', '.join(missing)}"
