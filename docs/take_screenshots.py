"""Take the README's dashboard screenshots (docs/dashboard-*.png) from a built data directory.

    uv run python docs/take_screenshots.py --data-dir data

Serves the dashboard, opens each page in Debian's chromium (as the browser tests do)
and saves the whole page. The committed images come from a 20,000-person synthetic
population (``joinedup synth --people 20000 --seed 11`` and the pipeline).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dashboard_browser import launch, serve, wait_ready

DOCS = Path(__file__).resolve().parent
# (file name, url path with query, charts the page draws at least)
SHOTS = [
    ("dashboard-pathways.png", "", 1),
    ("dashboard-readmissions.png", "readmissions?readmissions_compare=IMD+quintile", 3),
    ("dashboard-social-care.png", "social-care", 3),
    ("dashboard-coverage.png", "coverage", 1),
]
WIDTH = 1280


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    log = args.data_dir / "screenshots_streamlit.log"
    with serve(args.data_dir, log) as url, sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        for name, path, charts in SHOTS:
            page.set_viewport_size({"width": WIDTH, "height": 900})
            page.goto(f"{url}/{path}")
            wait_ready(page, charts)
            # Streamlit scrolls inside its main block: grow the window to the content instead.
            height = page.evaluate(
                "document.querySelector('[data-testid=stMainBlockContainer]')"
                ".getBoundingClientRect().height"
            )
            page.set_viewport_size({"width": WIDTH, "height": int(height) + 120})
            wait_ready(page, charts)
            page.wait_for_timeout(1000)  # Plotly re-lays out after the resize
            page.screenshot(path=str(args.out / name))
            print(args.out / name)
        browser.close()


if __name__ == "__main__":
    main()
