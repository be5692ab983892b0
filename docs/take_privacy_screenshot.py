"""Take the README's privacy report screenshot (docs/privacy-report.png) from a run.

    uv run python docs/take_privacy_screenshot.py --data-dir data

Opens ``DATA/privacy/report.html`` from disk in Debian's chromium (as the browser tests
do) and saves the top of the page. The committed image comes from the 10,000-person
demo population of ``make run``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dashboard_browser import launch

DOCS = Path(__file__).resolve().parent
WIDTH, HEIGHT = 1280, 2200


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=DOCS / "privacy-report.png")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    report = (args.data_dir / "privacy" / "report.html").resolve()
    if not report.exists():
        sys.exit(f"{report} not found: run the pipeline (make run) or joinedup privacy-report")
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.goto(report.as_uri())
        page.wait_for_selector("h1")
        page.screenshot(path=str(args.out))
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
