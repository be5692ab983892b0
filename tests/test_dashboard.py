"""The commissioners' dashboard, served by Streamlit and driven in a real browser.

A module fixture builds a small population the way the pipeline does (generate, ingest,
opt-outs, pseudonymise, Splink linkage, dbt build, publish commissioning.duckdb), serves
``dashboard/app.py`` on a free port and opens it in Debian's chromium through
Playwright. Each page must render its Plotly charts as SVG with no Streamlit
exception, a filter must change the figures, and no count from 1 to 7 may be visible.

How a count is recognised (see :func:`small_counts` and :func:`bad_published_counts`):

* in any text (the page's visible text, SVG text, every string a chart carries for its
  hover labels), a whole number directly followed by a count noun ("5 people",
  "3 emergency readmissions") or a count noun, a colon and a whole number
  ("Transitions: 5"). A count noun is one of people/person(s), patient(s), record(s),
  row(s), transition(s), discharge(s), readmission(s), attendance(s), admission(s),
  event(s), stay(s). "Whole number": digits with optional thousands commas, not part
  of a code (E06000901), a date or range (2025-04, 18-44), a decimal (7.0) or a
  percentage (5%);
* in every HTML table cell and every metric value (the dashboard puts figures only
  there), a cell that is a bare whole number (optionally with the † mark) is a count;
  no other figure is a bare whole number there (rates end in %, medians have a decimal,
  IMD quintiles read "IMD 2");
* in chart data, every value of a trace that declares ``meta.counts`` (Sankey link
  values, funnel-plot denominators, ledger bars); every Sankey must declare it.

A count passes if it is 0 or a published count: at least 8 and a multiple of 5.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_browser import (
    choose,
    figures_signature,
    launch,
    plotly_traces,
    serve,
    wait_for_change,
    wait_ready,
)

# The test's own body only (func_only): under xdist the session's published population
# (minutes to build on a loaded machine) may be built in this module's first test's set-up;
# the server and browser fixtures have their own deadlines.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300, func_only=True)]

SUPPRESSED = "suppressed (<8)"
# (url path, title, Plotly charts the page must draw on this population)
PAGES = [
    ("", "Pathways: where people go around a hospital stay", 1),
    ("readmissions", "30-day emergency readmissions", 3),
    ("social-care", "Discharge to social care", 3),
    # One chart at least per indicator mart (one per rate); test_indicators_page counts them.
    ("indicators", "National indicators", 5),
    ("coverage", "Data coverage", 1),
]

NAV = {
    "readmissions": "Readmissions",
    "social-care": "Discharge to social care",
    "indicators": "National indicators",
    "coverage": "Data coverage",
}

_NOUN = (
    r"(?:people|persons?|patients?|records?|rows?|transitions?|discharges?|readmissions?"
    r"|attendances?|admissions?|events?|stays?)"
)
_QUALIFIER = r"(?:(?:adult|emergency|index|hospital|source|linked)\s+)?"
_WHOLE = r"(?<![\w.,/–-])(\d{1,3}(?:,\d{3})+|\d+)(?![\w%/–-]|[.,]\d)"
COUNT_BEFORE_NOUN = re.compile(_WHOLE + r"\s+" + _QUALIFIER + _NOUN + r"\b", re.IGNORECASE)
NOUN_COLON_COUNT = re.compile(r"\b" + _NOUN + r"\s*:\s*" + _WHOLE, re.IGNORECASE)
BARE_COUNT = re.compile(r"^\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\s*†)?\s*$")


def small_counts(text: str) -> list[str]:
    """Phrases in ``text`` that state a count from 1 to 7."""
    found = []
    for pattern in (COUNT_BEFORE_NOUN, NOUN_COLON_COUNT):
        for m in pattern.finditer(text):
            if 1 <= int(m.group(1).replace(",", "")) <= 7:
                found.append(m.group(0))
    return found


def _unpublished(value: float) -> bool:
    return value != 0 and (value < 8 or value % 5 != 0)


def bad_published_counts(cells: list[str]) -> list[str]:
    """Table cells / metric values that are counts but not 0 or a published count."""
    bad = []
    for cell in cells:
        m = BARE_COUNT.match(cell)
        if m and _unpublished(int(m.group(1).replace(",", ""))):
            bad.append(cell)
    return bad


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def disclosure_problems(page: Any) -> list[str]:
    """Every way the open page could show a count from 1 to 7 (empty list: none)."""
    problems = []
    text = page.inner_text("body")
    svg_text = " | ".join(page.evaluate("[...document.querySelectorAll('svg text')]"
                                        ".map(t => t.textContent)"))  # fmt: skip
    problems += [f"text: {p!r}" for p in small_counts(text) + small_counts(svg_text)]
    # textContent, not innerText: tables inside closed expanders count too.
    cells = page.evaluate(
        """() => [...document.querySelectorAll(
                 'table td, table th, [data-testid="stMetricValue"]')].map(e => e.textContent)"""
    )
    problems += [f"table/metric: {c!r}" for c in bad_published_counts(cells)]
    for trace in plotly_traces(page):
        for s in _strings(trace["strings"]):
            problems += [f"chart text: {p!r}" for p in small_counts(s)]
        meta = trace["meta"] or {}
        if trace["type"] == "sankey" and meta.get("counts") != "link.value":
            problems.append("a Sankey without meta.counts: its values cannot be checked")
        where = meta.get("counts")
        if where:
            values = trace["link_value"] if where == "link.value" else trace[where]
            if not isinstance(values, list):
                problems.append(f"{trace['type']} counts in {where} are not a plain list")
                continue
            problems += [
                f"{trace['type']} {where}: {v}"
                for v in values
                if v is not None and _unpublished(float(v))
            ]
    return problems


def exceptions(page: Any) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


# --- the detector itself: it must find what it is meant to find -------------------------


@pytest.mark.parametrize(
    "text",
    [
        "5 people",
        "Transitions: 7",
        "1 emergency readmission",
        "Index discharges: 3",
        "2 records removed",
        "a total of 4 hospital stays",
    ],
)
def test_small_count_detector_finds_counts(text: str) -> None:
    assert small_counts(text), text


@pytest.mark.parametrize(
    "text",
    [
        "Transitions: suppressed (<8)",
        "counts from 1 to 7 are suppressed",
        "age 18-44",
        "within 7 days of discharge",
        "IMD 1 – most deprived",
        "Apr 2025 – Mar 2026",
        "E06000901",
        "5.2% of discharges",
        "630 people",
        "30-day emergency readmissions",
        "Median days: 7.0",
        "Transitions: 10",
    ],
)
def test_small_count_detector_ignores_other_numbers(text: str) -> None:
    assert small_counts(text) == [], text


def test_published_count_rule() -> None:
    assert bad_published_counts(["0", "10", "1,235", "630 †", SUPPRESSED, "12.5%", "7.0"]) == []
    assert bad_published_counts(["5", "7", "12", "3 †"]) == ["5", "7", "12", "3 †"]


# --- the app in a browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def population(published_population: Path) -> Path:
    # 3,000 people, built once per session in conftest.py and shared with
    # test_dashboard_load.py and test_access.py.
    return published_population


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app(population: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    log = tmp_path_factory.mktemp("dashboard-log") / "streamlit.log"
    with serve(population, log) as url:
        yield {"url": url, "log": log}
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


@pytest.mark.browser
def test_every_page_renders_charts_without_exceptions_or_small_counts(app: dict, page: Any) -> None:
    page.goto(app["url"])
    for path, title, charts in PAGES:
        if path:
            page.locator('[data-testid="stSidebarNav"] a').filter(has_text=NAV[path]).click()
            page.wait_for_url(f"**/{path}")
        wait_ready(page, charts)
        assert page.get_by_role("heading", name=title).is_visible(), path
        assert exceptions(page) == [], path
        svgs = page.locator(".js-plotly-plot .main-svg")
        assert svgs.count() >= charts, path
        if path == "":
            assert page.locator(".js-plotly-plot g.sankey").count() == 1
            assert page.locator(".js-plotly-plot .sankey-link").count() > 3
        assert disclosure_problems(page) == [], path
        text = page.inner_text("body")
        assert "About this data" in text and "rounded to the nearest 5" in text
        assert "Period:" in text and "Definition:" in text, path


@pytest.mark.browser
def test_filters_change_the_figures_and_stay_disclosure_safe(app: dict, page: Any) -> None:
    page.goto(app["url"])
    wait_ready(page, 1)
    before = figures_signature(page)
    links_before = plotly_traces(page)[0]["link_value"]
    choose(page, "Local authority", "E06000901")
    wait_for_change(page, before)
    assert plotly_traces(page)[0]["link_value"] != links_before
    assert "Local authority E06000901" in page.inner_text("body")
    assert exceptions(page) == [] and disclosure_problems(page) == []

    page.goto(app["url"] + "/readmissions")
    wait_ready(page, 3)
    before = figures_signature(page)
    choose(page, "Age band", "65-74")
    wait_for_change(page, before)
    assert exceptions(page) == [] and disclosure_problems(page) == []
    before = figures_signature(page)
    page.locator('[data-testid="stRadio"]').get_by_text("IMD quintile", exact=True).click()
    wait_for_change(page, before)
    assert exceptions(page) == [] and disclosure_problems(page) == []


def _indicator_marts(population: Path) -> dict[str, str]:
    """{mart: description} of the published file's marts broken down by Core20PLUS5, read
    apart from the dashboard's own code."""
    import duckdb

    from joinedup.catalogue import COMMISSIONING

    with duckdb.connect(str(population / COMMISSIONING.path), read_only=True) as con:
        return dict(
            con.execute(
                "select t.table_name, t.comment from duckdb_tables() as t "
                "where t.table_name in (select mart from _joinedup_marts "
                "where column_name = 'core20plus5' and role = 'dimension')"
            ).fetchall()
        )


@pytest.mark.browser
def test_indicators_page_shows_every_indicator_by_place_and_core20_with_its_definition(
    app: dict, page: Any, population: Path
) -> None:
    marts = _indicator_marts(population)
    # The three marts of the last session at least; the page lists none by name.
    assert {"mart_bcf_metrics", "mart_acsc_admissions", "mart_still_at_home_91_days"} <= set(marts)
    page.goto(app["url"] + "/indicators")
    wait_ready(page, len(marts))
    assert exceptions(page) == []
    text = page.inner_text("body")
    for mart in marts:
        assert f"Table {mart}." in text, mart
    assert page.locator(".js-plotly-plot").count() >= len(marts)
    # By place and by Core20PLUS5, in the tables and the charts.
    assert "E06000901" in text and "not Core20" in text
    traces = plotly_traces(page)
    assert any("Core20" in (t["x"] or []) for t in traces)
    assert any("E06000901" in (t["x"] or []) for t in traces)
    assert disclosure_problems(page) == []
    # The definition is one click away: hidden, then shown by its expander.
    expanders = page.locator('[data-testid="stExpander"]').filter(has_text="Definition and source")
    assert expanders.count() == len(marts)
    words = marts[sorted(marts)[0]].split()
    before = page.inner_text("body")
    # Six plain words of the definition (no markdown to render) that the page does not
    # show with its expander closed.
    phrase = next(
        p
        for p in (" ".join(words[i : i + 6]) for i in range(len(words) - 6))
        if re.fullmatch(r"[A-Za-z ]+", p) and p not in before
    )
    expanders.first.locator("summary").click()
    page.wait_for_function("t => document.body.innerText.includes(t)", arg=phrase)


@pytest.mark.browser
def test_filters_are_in_the_url_so_a_view_can_be_shared(app: dict, page: Any) -> None:
    page.goto(app["url"] + "/social-care?sex=Female")
    wait_ready(page, 1)
    assert page.get_by_role("combobox", name="Sex").input_value() == "Female"
    assert "Female" in page.inner_text("body")
    assert exceptions(page) == [] and disclosure_problems(page) == []


@pytest.mark.browser
def test_the_check_fails_on_a_small_count_planted_in_the_page(app: dict, page: Any) -> None:
    page.goto(app["url"])
    wait_ready(page, 1)
    assert disclosure_problems(page) == []
    page.evaluate(
        """() => {
             const p = document.createElement('p');
             p.textContent = 'Emergency readmissions: 5';
             document.querySelector('[data-testid="stMain"]').appendChild(p);
             const cell = document.querySelector('table td:nth-child(3)');
             cell.textContent = '3';
             const gd = document.querySelector('.js-plotly-plot');
             gd.data[0].link.value[0] = 6;
           }"""
    )
    problems = disclosure_problems(page)
    assert any("readmissions: 5" in p for p in problems), problems
    assert any(p.startswith("table/metric: '3'") for p in problems), problems
    assert any(p == "sankey link.value: 6" for p in problems), problems


@pytest.mark.browser
def test_the_dashboard_runs_on_commissioning_duckdb_alone(
    population: Path, browser: Any, tmp_path: Path
) -> None:
    """What the Docker dashboard mounts: the commissioning folder, read-only, and nothing
    else (no analytics.duckdb, ledger or linkage summary). Every mart page draws its charts."""
    import shutil

    from joinedup.catalogue import COMMISSIONING

    only = tmp_path / "published"
    folder = (only / COMMISSIONING.path).parent
    folder.mkdir(parents=True)
    shutil.copy2(population / COMMISSIONING.path, folder)
    folder.chmod(0o555)
    log = tmp_path / "streamlit.log"
    try:
        with serve(only, log) as url:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(url)
            for path, title, charts in PAGES:
                if path:
                    page.locator('[data-testid="stSidebarNav"] a').filter(
                        has_text=NAV[path]
                    ).click()
                    page.wait_for_url(f"**/{path}")
                wait_ready(page, charts if path != "coverage" else 0)
                assert page.get_by_role("heading", name=title).is_visible(), path
                assert exceptions(page) == [], path
                if path != "coverage":  # its ledger and linkage figures are not mounted
                    assert page.locator(".js-plotly-plot .main-svg").count() >= charts, path
                assert disclosure_problems(page) == [], path
            context.close()
        assert sorted(p.name for p in folder.iterdir()) == [Path(COMMISSIONING.path).name]
    finally:
        folder.chmod(0o755)
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.browser
def test_missing_commissioning_file_shows_how_to_build_it(browser: Any, tmp_path: Path) -> None:
    empty = tmp_path / "no-data-yet"
    empty.mkdir()
    log = tmp_path / "streamlit.log"
    # The data directory from the environment this time (no --data-dir).
    with serve(None, log, env={"JOINEDUP_DATA_DIR": str(empty)}) as url:
        context = browser.new_context()
        page = context.new_page()
        for path in ("", "/readmissions"):
            page.goto(url + path)
            wait_ready(page)
            text = page.inner_text("body")
            assert "No commissioning database" in text and "make run" in text
            assert str(empty) in text
            assert exceptions(page) == []
        context.close()
