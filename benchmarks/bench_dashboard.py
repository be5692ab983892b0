"""Benchmark the dashboard in a real browser: first paint and filter-change times.

    uv run python benchmarks/bench_dashboard.py --data-dir data [--runs 5] [--out FILE.json]

Serves ``dashboard/app.py`` on a free port against
``DATA/commissioning/commissioning.duckdb`` and drives it with Playwright in Debian's
chromium (``/usr/bin/chromium``, or ``JOINEDUP_CHROMIUM``). Measured, in seconds, from
the browser's side:

* ``first_paint_cold``: first visit of each page after the server starts (Streamlit's
  caches empty: the catalogue and each mart breakdown are read from DuckDB);
* ``first_paint``: the same page in a new browser session (new Streamlit session,
  caches warm), ``--runs`` times;
* ``filter_change``: choosing a filter value (a local authority on Pathways, an age band
  on Readmissions) until the figures have changed and Streamlit's run has finished;
  the first choice of a value may read a breakdown, later ones hit the cache;
* ``filter_change_cached``: switching back to "All" (everything cached).

A page is painted when Streamlit reports its run finished, no skeleton is left and
the page's Plotly charts are drawn as SVG. Results print as a table and, with
``--out``, are written as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from joinedup.catalogue import COMMISSIONING, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))

from dashboard_browser import (
    choose,
    figures_signature,
    launch,
    serve,
    wait_for_change,
    wait_ready,
)

# (url path, charts the page draws at least, filter to change: (label, value) or None)
PAGES: list[tuple[str, int, tuple[str, str] | None]] = [
    ("", 1, ("Local authority", None)),  # None: the first value offered
    ("readmissions", 2, ("Age band", "65-74")),
    ("social-care", 2, None),
    ("coverage", 1, None),
]


def _first_option(page: Any, label: str) -> str:
    page.get_by_role("combobox", name=label).click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return next(o for o in options if o != "All")


def _timed_paint(page: Any, url: str, charts: int) -> float:
    start = time.perf_counter()
    page.goto(url)
    wait_ready(page, charts)
    return time.perf_counter() - start


def _timed_change(page: Any, label: str, value: str) -> float:
    before = figures_signature(page)
    start = time.perf_counter()
    choose(page, label, value)
    wait_for_change(page, before)
    return time.perf_counter() - start


def run(data_dir: Path, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, list[float]]] = {}
    log = Path(data_dir) / "bench_dashboard_streamlit.log"
    with serve(data_dir, log) as url, sync_playwright() as pw:
        browser = launch(pw)
        try:
            for i in range(runs + 1):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                for path, charts, change in PAGES:
                    name = path or "pathways"
                    r = results.setdefault(name, {})
                    paint = _timed_paint(page, f"{url}/{path}", charts)
                    r.setdefault("first_paint_cold" if i == 0 else "first_paint", []).append(paint)
                    if change is None:
                        continue
                    label, value = change
                    value = value or _first_option(page, label)
                    key = "filter_change" if i else "filter_change_cold"
                    r.setdefault(key, []).append(_timed_change(page, label, value))
                    r.setdefault("filter_change_cached", []).append(
                        _timed_change(page, label, "All")
                    )
                context.close()
        finally:
            browser.close()
    return {
        "data_dir": str(Path(data_dir).resolve()),
        "commissioning_mb": round(COMMISSIONING.under(data_dir).stat().st_size / 1e6, 1),
        "runs": runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "seconds": results,
    }


def _summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5, help="warm repetitions (default 5)")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if not COMMISSIONING.under(args.data_dir).exists():
        parser.error(f"{COMMISSIONING.under(args.data_dir)} not found: run the pipeline first")
    result = run(args.data_dir, args.runs)
    size = result["commissioning_mb"]
    print(f"dashboard on {result['data_dir']} ({size} MB commissioning.duckdb)")
    print("seconds: median (min–max)")
    for page, metrics in result["seconds"].items():
        for metric, values in metrics.items():
            print(f"  {page:<14} {metric:<22} {_summary(values)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
