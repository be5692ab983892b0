"""The commissioners' pathway dashboard.

    streamlit run dashboard/app.py [-- --data-dir DATA]     (or: make dashboard)

Reads only ``DATA/commissioning/commissioning.duckdb`` (opened read-only: the suppressed
aggregate marts, no person-level table) plus, where they are there, the aggregate
coverage figures of ``DATA/ledger.csv`` and ``DATA/linked/summary.json``: without them
(a deployment that mounts the commissioning folder alone) the coverage page says so.
The data directory comes from ``--data-dir``, else ``JOINEDUP_DATA_DIR``, else ``./data``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from joinedup.catalogue import REPO_ROOT

# `streamlit run` puts only this script's folder on sys.path; the repository root makes
# `dashboard` importable as a package, the same way the tests import it.
sys.path.insert(0, str(REPO_ROOT))

import streamlit as st

from dashboard import disclosure, ui
from dashboard.data import DashboardDataError, catalogue
from dashboard.views import coverage, indicators, pathways, readmissions, social_care

PAGES: list[tuple[str, str, str, Callable[[ui.Context], None]]] = [
    ("pathways", "Pathways", ":material/account_tree:", pathways.render),
    ("readmissions", "Readmissions", ":material/replay:", readmissions.render),
    ("social-care", "Discharge to social care", ":material/home_health:", social_care.render),
    ("indicators", "National indicators", ":material/monitoring:", indicators.render),
    ("coverage", "Data coverage", ":material/fact_check:", coverage.render),
]


def data_dir_from(argv: list[str]) -> Path:
    parser = argparse.ArgumentParser(prog="dashboard/app.py")
    parser.add_argument("--data-dir", default=os.environ.get("JOINEDUP_DATA_DIR", "data"))
    args, _unknown = parser.parse_known_args(argv)
    return Path(args.data_dir)


def main() -> None:
    st.set_page_config(page_title="joinedup · care pathways", page_icon="🧭", layout="wide")
    data_dir = data_dir_from(sys.argv[1:])
    try:
        cat = catalogue(data_dir)
        # Figures and labels follow the rule the file on show was built with.
        disclosure.use_rule(cat.rule)
        ctx: ui.Context | None = ui.Context(data_dir, cat, ui.sidebar_filters(cat))
        reason = ""
    except DashboardDataError as exc:
        disclosure.use_rule(None)
        ctx, reason = None, str(exc)
    ui.about_note()

    def page(render: Callable[[ui.Context], None]) -> Callable[[], None]:
        def show() -> None:
            if ctx is None:
                ui.missing_page(data_dir, reason)
            else:
                render(ctx)

        return show

    nav = st.navigation(
        [
            st.Page(page(render), title=title, icon=icon, url_path=path, default=i == 0)
            for i, (path, title, icon, render) in enumerate(PAGES)
        ]
    )
    nav.run()


main()
