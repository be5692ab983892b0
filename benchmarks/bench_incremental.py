"""Incremental linkage against a full re-link: time and drift.

Generates a population, delivers it in ``--deliveries`` monthly steps (the hospital
and social care files up to each month; GP from the start), links each delivery
incrementally (the first fully), then re-links the last delivery fully on a copy
(relink=True), which also measures the drift of incremental from full. The re-link
schedule is switched off here (every run incremental) so that the drift over all the
steps shows. Prints one JSON line per link and a summary.

    uv run --locked python benchmarks/bench_incremental.py --people 100000 --deliveries 2
    uv run --locked python benchmarks/bench_incremental.py --people 20000 --deliveries 12
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from joinedup.catalogue import LANDING, REPO_ROOT

REPO = REPO_ROOT
sys.path.insert(0, str(REPO / "tests"))

from ingest_fixtures import KEY, run_all  # noqa: E402

from joinedup.linkage import link, remove_linked_opt_outs  # noqa: E402
from joinedup.linkage.evaluate import evaluate  # noqa: E402
from joinedup.linkage.model import DEFAULT_MODEL_DIR  # noqa: E402
from joinedup.synth import generate  # noqa: E402


def _month(path: Path) -> str:
    """yyyymm of a monthly or quarterly landing file (quarter: its last month)."""
    stem = path.stem
    if stem[-2] == "q":
        return f"{stem[-6:-2]}{int(stem[-1]) * 3:02d}"
    return stem[-6:]


def _model_dir(root: Path) -> Path:
    model_dir = root / "model"
    model_dir.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "settings.json", model_dir / "settings.json")
    training = json.loads((DEFAULT_MODEL_DIR / "training.json").read_text())
    training["incremental"] |= {"relink_every_runs": 0, "relink_when_new_share_above": 1.0}
    (model_dir / "training.json").write_text(json.dumps(training))
    return model_dir


def _figures(summary: dict) -> dict:
    keep = ("mode", "records", "records_scored", "records_changed", "incremental", "drift")
    return {k: summary.get(k) for k in keep} | {"seconds": summary["seconds"]["total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--deliveries", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, default=None, help="scratch directory")
    args = parser.parse_args()
    root = Path(args.work or tempfile.mkdtemp(prefix="bench_incremental_"))
    data_dir = root / "data"
    generate(data_dir, people=args.people, seed=args.seed)
    landing = LANDING.under(data_dir)
    dated = [*(landing / "hospital").glob("*.csv"), *(landing / "social_care").glob("*.csv")]
    months = sorted({_month(p) for p in dated})
    cuts = months[-args.deliveries :]
    held = root / "held"
    held.mkdir()
    for path in dated:
        if _month(path) > cuts[0]:
            shutil.move(path, held / f"{path.parent.name}__{path.name}")
    model_dir = _model_dir(root)
    results = []
    for step, cut in enumerate(cuts, start=1):
        for path in sorted(held.iterdir()):
            source, name = path.name.split("__", 1)
            if _month(Path(name)) <= cut:
                shutil.move(path, landing / source / name)
        run_id = f"run-{step}"
        run_all(data_dir, run_id)
        if step == len(cuts):
            full_dir = root / "full"
            shutil.copytree(data_dir, full_dir)
        started = time.perf_counter()
        summary = link(data_dir, run_id, KEY, charts=False, model_dir=model_dir)
        wall = time.perf_counter() - started
        remove_linked_opt_outs(data_dir, KEY, run_id)
        results.append(_figures(summary) | {"step": step, "wall": round(wall, 1)})
        print(json.dumps(results[-1]), flush=True)
    started = time.perf_counter()
    full = link(full_dir, f"run-{len(cuts)}", KEY, charts=False, model_dir=model_dir, relink=True)
    wall = time.perf_counter() - started
    print(json.dumps(_figures(full) | {"step": "relink", "wall": round(wall, 1)}), flush=True)
    print(
        json.dumps(
            {
                "people": args.people,
                "deliveries": len(cuts),
                "last_incremental_seconds": results[-1]["seconds"],
                "full_relink_seconds": full["seconds"]["total"],
                "full_relink_drift_seconds": full["seconds"]["drift"],
                "drift_f1": full["drift"]["f1"],
                "drift_records_with_other_person_share": full["drift"][
                    "records_with_other_person_share"
                ],
                "f1_vs_truth_incremental": evaluate(data_dir, KEY)["joinedup"]["f1"],
                "f1_vs_truth_full": evaluate(full_dir, KEY)["joinedup"]["f1"],
                "load_average": os.getloadavg(),
            }
        )
    )
    if not args.work:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
