"""The HTML a run writes for people opens fully with no network, as in a secure data environment.

Each page is opened in Debian's chromium with every request that is not a ``file:`` URL
aborted: a page that needs a CDN fails to load a script or a style and draws nothing.
Every HTML file a whole run leaves in its data directory is opened, and each kind must
show that its scripts ran and its styles applied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_browser import launch
from ingest_fixtures import KEY, run_all

import joinedup.linkage
import joinedup.synth
from joinedup.catalogue import DBT, DBT_DOCS, LINKAGE_CHARTS, PRIVACY, QUALITY
from joinedup.settings import DEMO_KEY

pytestmark = pytest.mark.browser

VEGA = ".vega-embed canvas, .vega-embed svg"


def _gx_page(also: str = "true") -> str:
    """A GX page drawn: bootstrap's stylesheet applied (its navbar is a flex box),
    bootstrap-table on every table meant for it, and where the page shows Font Awesome
    icons, the font loaded."""
    return f"""() => {{
      const nav = document.querySelector('nav.navbar');
      const icons = document.querySelector('.fas, .far, .fa');
      const tables = 'table[data-toggle="table"]';
      return !!nav && getComputedStyle(nav).display === 'flex'
        && document.querySelectorAll(tables).length
           === document.querySelectorAll('.bootstrap-table ' + tables).length
        && (!icons || document.fonts.check('900 16px "Font Awesome 6 Free"'))
        && ({also});
    }}"""


# Each kind of page, by what its scripts draw once they have run: a CSS selector, or a
# JavaScript function that returns true.
DRAWN = {
    "match_weights.html": VEGA,
    "m_u_parameters.html": VEGA,
    "waterfall_sample.html": VEGA,
    "cluster_studio.html": "svg, canvas",
    "data docs index": _gx_page("!!document.querySelector('.bootstrap-table')"),
    "data docs suite": _gx_page(),
    "data docs validation": _gx_page(),
    # dbt's docs app, its scripts and the manifest inlined: the project's folder in the tree
    # it renders (a model's own page is opened for every model, by _dbt_models_drawn).
    "dbt docs": "() => [...document.querySelectorAll('[ng-click=\"onFolderClick(item)\"]')]"
    ".some(a => a.textContent.trim() === 'joinedup')",
    # joinedup's own pages: styled by their inline stylesheet, a table of figures.
    "privacy report": "table th",
    "data protection pack": "table th",
}


def _kind(page: Path, data_dir: Path) -> str | None:
    rel = page.relative_to(data_dir).as_posix()
    docs = f"{QUALITY.path}/docs/"
    if rel == docs + "index.html":
        return "data docs index"
    if rel.startswith(docs + "expectations/"):
        return "data docs suite"
    if rel.startswith(docs + "validations/"):
        return "data docs validation"
    if rel.startswith(LINKAGE_CHARTS + "/"):
        return page.name
    if rel == f"{DBT_DOCS.path}/static_index.html":
        return "dbt docs"
    if rel == f"{PRIVACY.path}/report.html":
        return "privacy report"
    if rel == f"{PRIVACY.path}/data_protection_pack.html":
        return "data protection pack"
    return None


# dbt's index.html fetches manifest.json and catalog.json beside it, which a browser
# refuses from file: (with or without a network); it is for `dbt docs serve`.
# static_index.html, the same app with both inlined, is the one to open from disk.
SERVED_ONLY = {f"{DBT_DOCS.path}/index.html"}


def _open_offline(page, path: Path) -> list[str]:
    """Open ``path`` with the network cut; return what failed to load, raised or logged an error."""
    failures: list[str] = []

    def failed(req) -> None:
        failures.append(f"failed {req.url} {req.failure}")

    def route(r) -> None:
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            failures.append(f"blocked {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: failures.append(f"error {exc}"))
    page.on("requestfailed", failed)

    def console(msg) -> None:
        if msg.type == "error":
            failures.append(f"console {msg.text}")

    page.on("console", console)
    page.goto(path.as_uri(), wait_until="load")
    return failures


def _drawn(page, check: str) -> None:
    if check.startswith("()"):
        page.wait_for_function(check, timeout=30_000)
    else:
        page.wait_for_selector(check, timeout=30_000)


# A model's page drawn: the tree has opened down to it (its name, highlighted), the page's
# title is its name and its columns table lists the catalogue's columns (catalog.json
# inlined too).
DBT_MODEL_DRAWN = """([id, name, columns]) => {
  const node = document.querySelector(`[data-nav-unique-id="${id}"]`);
  const title = document.querySelector('.app-title');
  const shown = [...document.querySelectorAll('.app-details td')]
    .map(td => td.textContent.trim().toLowerCase());
  // The tree breaks a long name over lines: compared without its white space.
  return !!node && node.offsetParent !== null
    && node.textContent.replace(/\\s+/g, '') === name
    && !!title && title.textContent.trim().split(/\\s+/)[0] === name
    && columns.every(c => shown.includes(c));
}"""


def _dbt_models_drawn(page, path: Path) -> int:
    """Open every model of the project (``manifest.json`` beside the page) in dbt's docs app
    and wait for its page to draw; return how many."""
    manifest = json.loads((path.parent / "manifest.json").read_text())
    catalog = json.loads((path.parent / "catalog.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    for unique_id, node in sorted(models.items()):
        # Every model is a table or a view in the warehouse, so in the catalogue.
        columns = [c.lower() for c in catalog["nodes"][unique_id]["columns"]]
        page.evaluate(f"() => {{ location.hash = '#!/model/{unique_id}'; }}")
        page.wait_for_function(
            DBT_MODEL_DRAWN, arg=[unique_id, node["name"], columns], timeout=30_000
        )
    return len(models)


def _open_all(pages: dict[Path, str], color_schemes: dict[str, tuple[str, ...]]) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            for path, kind in pages.items():
                for scheme in color_schemes.get(kind, ("light",)):
                    page = browser.new_page(color_scheme=scheme)
                    failures = _open_offline(page, path)
                    try:
                        _drawn(page, DRAWN[kind])
                        if kind == "dbt docs":
                            assert _dbt_models_drawn(page, path) > 0, f"{path}: no models"
                    except PlaywrightTimeout:
                        pytest.fail(f"{path} ({kind}, {scheme}) never drew; {failures}")
                    # Late requests (fonts, images a script adds) have been made by now.
                    page.wait_for_load_state("networkidle", timeout=60_000)
                    assert failures == [], (str(path), scheme, failures)
                    page.close()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("charts")
    joinedup.synth.generate(d, people=600, seed=5)
    run_all(d)
    joinedup.linkage.link(d, "run-1", KEY, charts=True)
    return d / LINKAGE_CHARTS


def test_every_linkage_chart_draws_with_no_network(charts: Path) -> None:
    pages = {p: p.name for p in sorted(charts.glob("*.html"))}
    assert set(pages.values()) == {k for k in DRAWN if k.endswith(".html")}
    _open_all(pages, {})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole `joinedup run` on a small demo population: every artefact it writes."""
    data_dir = tmp_path_factory.mktemp("offline-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["JOINEDUP_PSEUDONYMISATION_KEY"] = DEMO_KEY
    command = [sys.executable, "-m", "joinedup.cli", "run", "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*command, "--demo-people", "600", "--run-id", "offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return data_dir


@pytest.mark.slow
def test_every_html_a_run_writes_opens_with_no_network(finished_run: Path) -> None:
    found = sorted(finished_run.rglob("*.html"))
    pages = {}
    for path in found:
        rel = path.relative_to(finished_run).as_posix()
        # dbt's working folder (owner-only; the docs for people are copied to docs/dbt).
        if rel in SERVED_ONLY or rel.startswith(f"{DBT.path}/"):
            continue
        kind = _kind(path, finished_run)
        assert kind is not None, f"{path}: a kind of page this test does not know; add it"
        pages[path] = kind
    # Every kind is there: a run that stopped writing one would otherwise pass.
    assert set(pages.values()) == set(DRAWN)
    # GX's dark theme loads its own logo (from S3, until rewritten).
    dark = ("light", "dark")
    _open_all(pages, {"data docs index": dark, "data docs validation": dark})


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
