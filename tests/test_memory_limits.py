"""The configured DuckDB memory limit reaches every stage that runs DuckDB at scale.

A million people stay within memory because DuckDB spills beyond
``JOINEDUP_DUCKDB_MEMORY_LIMIT`` (default 8GB) instead of growing. The stages that
hold large tables in DuckDB are linkage, the dbt build and publish. Each is run here
with a limit of 1KB, which no query fits: the stage must fail with DuckDB's out-of-
memory error, which it can only do if the limit reached its connection. (With DuckDB's
own default, 80% of RAM, every one of them succeeds on this data.) A failed stage must
leave the previous outputs as they were.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from ingest_fixtures import KEY, run_all, write_landing

import joinedup.linkage
from joinedup import warehouse
from joinedup.settings import Settings

# The test's own body only (func_only): under xdist the session's published population may
# be built in this module's first test's set-up (test_access built it, untimed, in one process).
pytestmark = pytest.mark.timeout(300, func_only=True)

NOTHING_FITS = "1KB"
OUT_OF_MEMORY = "Out of Memory"
PROFILE = Path(__file__).resolve().parents[1] / "profiles.yml"


def test_the_dbt_profile_defaults_to_the_settings_limit() -> None:
    """Run by hand (dbt build with no JOINEDUP_ variables), dbt gets the same cap."""
    default = re.search(
        r"memory_limit: \"\{\{ env_var\('JOINEDUP_DUCKDB_MEMORY_LIMIT', '([^']+)'\) \}\}\"",
        PROFILE.read_text(),
    )
    assert default, "profiles.yml sets no memory_limit from JOINEDUP_DUCKDB_MEMORY_LIMIT"
    assert default.group(1) == Settings.model_fields["duckdb_memory_limit"].default


@pytest.mark.slow  # the session's published population: a minute to build
def test_the_dbt_build_runs_under_the_configured_limit(
    published_population: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = published_population / "warehouse.duckdb"
    before = built.read_bytes()
    monkeypatch.setenv("JOINEDUP_DUCKDB_MEMORY_LIMIT", NOTHING_FITS)
    with pytest.raises(warehouse.WarehouseError, match=OUT_OF_MEMORY):
        warehouse.build_warehouse(published_population)
    assert built.read_bytes() == before  # the last good warehouse stays


@pytest.mark.slow  # the session's published population: a minute to build
def test_publish_runs_under_the_configured_limit(
    published_population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = tmp_path / "published"
    monkeypatch.setenv("JOINEDUP_PUBLISHED_DIR", str(published))
    monkeypatch.setenv("JOINEDUP_DUCKDB_MEMORY_LIMIT", NOTHING_FITS)
    with pytest.raises(duckdb.OutOfMemoryException):
        warehouse.publish_analytics(published_population)
    assert not (published / "analytics.duckdb").exists()
    assert [p.name for p in published.rglob("*") if p.is_file()] == []  # no temporary either

    monkeypatch.setenv("JOINEDUP_DUCKDB_MEMORY_LIMIT", "256MB")
    assert all(p.exists() for p in warehouse.publish_analytics(published_population).values())


def test_linkage_runs_under_the_configured_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_landing(tmp_path)
    run_all(tmp_path)
    monkeypatch.setenv("JOINEDUP_DUCKDB_MEMORY_LIMIT", NOTHING_FITS)
    with pytest.raises(Exception, match=OUT_OF_MEMORY):
        joinedup.linkage.link(tmp_path, "run-1", KEY, charts=False)
    assert not (tmp_path / "linked" / "record_person.parquet").exists()
