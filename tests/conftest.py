"""Test-session settings shared by every test module.

Airflow reads its configuration when first imported, so a private AIRFLOW_HOME
(SQLite) is set here, before any test imports it.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path

import pytest

# `make test` runs the suite in pytest-xdist workers, which inherit the environment of the
# process that started them: a home set there would be one SQLite file for every worker
# (they would migrate and write it at once). So each process that set the home sets its own,
# and a home the caller set (no marker) is kept.
_OURS = "JOINEDUP_TEST_AIRFLOW_HOME"
if "AIRFLOW_HOME" not in os.environ or os.environ.get(_OURS) == os.environ["AIRFLOW_HOME"]:
    _AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="joinedup-test-airflow-"))
    os.environ["AIRFLOW_HOME"] = os.environ[_OURS] = str(_AIRFLOW_HOME)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).parents[1] / "dags"))


# `make test-fast` leaves out the tests marked browser, spark, crash or slow (pyproject.toml).
# A test that drives chromium must be marked browser, and one that reads the published
# population (a minute to build) slow or browser, or it would slow the edit loop unnoticed.
_LEFT_OUT_OF_TEST_FAST = ("browser", "spark", "crash", "slow")
_BROWSER_CALLS = ("sync_playwright(", "async_playwright(")
_drives_chromium: dict[object, bool] = {}


def _calls_playwright(func: object) -> bool:
    if func not in _drives_chromium:
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError):
            source = ""
        _drives_chromium[func] = any(call in source for call in _BROWSER_CALLS)
    return _drives_chromium[func]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that starts Playwright (itself or in a fixture) unmarked browser, and one
    that uses the published population with none of the markers test-fast leaves out."""
    unmarked = []
    for item in items:
        if "published_population" in getattr(item, "fixturenames", ()) and not any(
            item.get_closest_marker(m) for m in _LEFT_OUT_OF_TEST_FAST
        ):
            unmarked.append(f"{item.nodeid} (uses published_population: mark it slow)")
        if item.get_closest_marker("browser") is not None:
            continue
        funcs = [getattr(item, "function", None)]
        fixtures = getattr(item, "_fixtureinfo", None)  # every fixture the test uses
        if fixtures is not None:
            funcs += [d.func for defs in fixtures.name2fixturedefs.values() for d in defs]
        if any(_calls_playwright(f) for f in funcs if f is not None):
            unmarked.append(f"{item.nodeid} (starts a browser: mark it browser)")
    if unmarked:
        raise pytest.UsageError(
            "unmarked, these tests would slow `make test-fast` down (its markers are in "
            "pyproject.toml): " + "; ".join(unmarked)
        )
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _heaviest_modules_first(items)


# Marked modules in the order they go to an xdist worker: the longest kinds first.
_HEAVIEST_FIRST = ("crash", "spark", "slow", "browser")


def _heaviest_modules_first(items: list[pytest.Item]) -> None:
    """Under xdist (`make test`: whole modules to a worker, in this order, as the Makefile
    passes --no-loadscope-reorder) the modules with a crash test go first, then spark, then
    slow or browser, so no long module starts last and leaves one worker running alone.
    Stable: a module's own order is kept; every worker sorts the same items the same way."""
    rank: dict[Path, int] = {}
    for item in items:
        marks = [i for i, m in enumerate(_HEAVIEST_FIRST) if item.get_closest_marker(m)]
        rank[item.path] = min([rank.get(item.path, len(_HEAVIEST_FIRST)), *marks])
    items.sort(key=lambda item: rank[item.path])


# The published population the dashboard tests share: the dbt build is the slow part
# (about a minute here), so it is built once per session, not once per module.
DASHBOARD_PEOPLE = 3_000
DASHBOARD_SEED = 11


@pytest.fixture(scope="session")
def published_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory run through ingest, linkage, dbt build and publish.

    Read it, never change it: several modules use the same directory.
    """
    from ingest_fixtures import KEY, run_all

    import joinedup.linkage
    import joinedup.synth
    import joinedup.warehouse

    d = tmp_path_factory.mktemp("published-population")
    joinedup.synth.generate(d, people=DASHBOARD_PEOPLE, seed=DASHBOARD_SEED)
    run_all(d)
    joinedup.linkage.link(d, "run-1", KEY, charts=False)
    # With the run id, as the pipeline does: the published file carries its _joinedup_run stamp.
    joinedup.warehouse.build_warehouse(d, run_id="run-1")
    joinedup.warehouse.publish_analytics(d, "run-1")
    return d
