"""The HTML a run writes for people opens fully with no network, as in a secure data environment.

Each page is opened in Debian's chromium with every request that is not a ``file:`` URL
aborted: a page that needs a CDN fails to load a script and draws nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_browser import launch
from ingest_fixtures import KEY, run_all

import joinedup.linkage
import joinedup.synth
from joinedup.catalogue import LINKAGE_CHARTS

pytestmark = pytest.mark.browser

# What each kind of page draws once its scripts have run.
DRAWN = {
    "cluster_studio.html": "svg, canvas",
    "match_weights.html": ".vega-embed canvas, .vega-embed svg",
    "m_u_parameters.html": ".vega-embed canvas, .vega-embed svg",
    "waterfall_sample.html": ".vega-embed canvas, .vega-embed svg",
}


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("charts")
    joinedup.synth.generate(d, people=600, seed=5)
    run_all(d)
    joinedup.linkage.link(d, "run-1", KEY, charts=True)
    return d / LINKAGE_CHARTS


def _open_offline(page, path: Path) -> list[str]:
    """Open ``path`` with the network cut; return what failed to load or raised."""
    failures: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            failures.append(f"blocked {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: failures.append(f"error {exc}"))
    page.on("requestfailed", lambda req: failures.append(f"failed {req.url}"))
    page.goto(path.as_uri(), wait_until="load")
    return failures


def test_every_linkage_chart_draws_with_no_network(charts: Path) -> None:
    from playwright.sync_api import sync_playwright

    pages = sorted(charts.glob("*.html"))
    assert {p.name for p in pages} == set(DRAWN)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            for path in pages:
                page = browser.new_page()
                failures = _open_offline(page, path)
                page.wait_for_selector(DRAWN[path.name], timeout=30_000)
                assert failures == [], (path.name, failures)
                page.close()
        finally:
            browser.close()


def test_the_check_sees_a_page_that_needs_the_network(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "cdn.html"
    page_file.write_text(
        '<html><script src="https://cdn.jsdelivr.net/npm/vega@5"></script><body></body></html>'
    )
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            failures = _open_offline(browser.new_page(), page_file)
        finally:
            browser.close()
    assert any("cdn.jsdelivr.net" in f for f in failures)
