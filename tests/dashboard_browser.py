"""Drive the dashboard in a real browser: serve it, open pages, wait for Streamlit, read figures.

Shared by tests/test_dashboard.py and benchmarks/bench_dashboard.py. The browser is
Debian's chromium (Playwright cannot download its own here), headless and offline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("JOINEDUP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# Every Plotly figure on the page, as data: each trace's type, meta and value arrays.
PLOTLY_DATA_JS = """
() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => (gd.data || []).map(t => ({
  type: t.type || 'scatter',
  meta: t.meta ?? null,
  x: t.x ?? null, y: t.y ?? null,
  link_value: t.link ? (t.link.value ?? null) : null,
  strings: [t.text, t.hovertext, t.customdata, t.name,
            t.link ? t.link.customdata : null, t.node ? t.node.label : null]
}))).flat()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(
    data_dir: Path | None, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run ``streamlit run dashboard/app.py`` on a free port; yield its URL; stop it after."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
        "--server.port", str(port), "--server.headless", "true",
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    if data_dir is not None:
        command += ["--", "--data-dir", str(data_dir)]
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"streamlit did not start (see {log_path}):\n{log_path.read_text()}"
                    )
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def launch(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"no chromium at {CHROMIUM}: install Debian's (apt-get install -y chromium) "
            "or set JOINEDUP_CHROMIUM"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_ready(page: Any, charts: int = 0, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished the run and ``charts`` Plotly SVGs are drawn."""
    page.wait_for_selector(READY, timeout=timeout_ms)
    page.wait_for_function(
        """n => !document.querySelector('[data-testid="stSkeleton"]')
               && document.querySelectorAll('.js-plotly-plot .main-svg').length >= n""",
        arg=charts,
        timeout=timeout_ms,
    )
    page.wait_for_selector(READY, timeout=timeout_ms)


def plotly_traces(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(PLOTLY_DATA_JS)


def figures_signature(page: Any) -> str:
    """Everything the page shows as figures: chart data and metric values, as one string."""
    return page.evaluate(
        """() => JSON.stringify([
             [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd.data),
             [...document.querySelectorAll('[data-testid="stMetricValue"]')]
               .map(e => e.textContent)])"""
    )


def wait_for_change(page: Any, before: str, timeout_ms: int = 60_000) -> None:
    """After a widget change: wait for the rerun to change the figures, then to finish."""
    page.wait_for_function(
        """before => JSON.stringify([
             [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd.data),
             [...document.querySelectorAll('[data-testid="stMetricValue"]')]
               .map(e => e.textContent)]) !== before""",
        arg=before,
        timeout=timeout_ms,
    )
    wait_ready(page, timeout_ms=timeout_ms)


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (a react-aria combobox)."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()
