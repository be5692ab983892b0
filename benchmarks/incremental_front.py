"""The front of a monthly run (ingest, opt-outs, pseudonymise), full rebuild against incremental.

    uv run --locked python benchmarks/incremental_front.py DATA [--late FILE ...]

``DATA`` is a generated data directory (``joinedup synth --people N --out DATA``); it is
copied, the ``--late`` landing files (default: the last month of HES APC and ECDS and the
last CLD quarter) are held back for a first run, then delivered for a second, timed
twice on the same ledger history: with the caches ignored (``full_rebuild``, what every
run did before) and incrementally. Prints each stage's seconds as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.ingest import SOURCES, finalise_ledger, ingest_source
from joinedup.settings import DEMO_KEY

LATE = ("hospital/hes_apc_202603.csv", "hospital/ecds_202603.csv", "social_care/cld_2025q4.csv")


def front(data_dir: Path, run_id: str, *, full_rebuild: bool) -> dict[str, float]:
    times: dict[str, float] = {}
    started = time.perf_counter()
    for source in SOURCES:
        ingest_source(data_dir, source, run_id, full_rebuild=full_rebuild)
    times["ingest"] = time.perf_counter() - started
    started = time.perf_counter()
    remove_opt_outs(data_dir, run_id)
    times["opt_outs"] = time.perf_counter() - started
    started = time.perf_counter()
    pseudonymise(data_dir, DEMO_KEY.encode(), run_id)
    times["pseudonymise"] = time.perf_counter() - started
    finalise_ledger(data_dir, run_id)
    return {k: round(v, 1) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--late", nargs="*", default=list(LATE))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="incremental-front-") as tmp:
        work, held = Path(tmp) / "data", Path(tmp) / "held"
        shutil.copytree(args.data_dir / "landing", work / "landing")
        held.mkdir()
        for name in args.late:
            shutil.move(work / "landing" / name, held / Path(name).name)
        result = {"first (without the late files)": front(work, "run-1", full_rebuild=False)}
        for name in args.late:
            shutil.move(held / Path(name).name, work / "landing" / name)
        rebuilt = Path(tmp) / "rebuilt"
        shutil.copytree(work, rebuilt)
        result["second, full rebuild"] = front(rebuilt, "run-2", full_rebuild=True)
        shutil.rmtree(rebuilt)
        result["second, incremental"] = front(work, "run-2", full_rebuild=False)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
