"""Monthly operation at scale (issue 23): the full build over M months, then month M+1.

    uv run --locked python benchmarks/bench_monthly.py --people 3000000 --months 36

1. ``joinedup synth --months M`` and one ``joinedup run``: the full build;
2. ``joinedup synth --months M+1`` delivered over it (months 1..M are the same files,
   byte for byte) and one more ``joinedup run``: the incremental monthly run.

Each step runs as its own process under ``/usr/bin/time -v``, so wall time and peak RSS
are the whole process tree's largest process (Airflow runs the tasks in-process). The
per-stage seconds come from the run summaries. Results go to
``benchmarks/results/monthly-<people>-<months>.json``; the table in RESULTS.md is written
by hand from them, with the load average printed here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from joinedup.catalogue import LANDING
from joinedup.provenance import run_record_path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
DEMO_KEY = "joinedup-DEMO-KEY-synthetic-data-only-do-not-use-with-real-data"


def _timed(args: list[str], log: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.setdefault("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, "-m", "joinedup.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.perf_counter() - started
    text = log.read_text()
    if done.returncode != 0:
        raise SystemExit(f"joinedup {' '.join(args)} failed (rc {done.returncode}); see {log}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {
        "command": "joinedup " + " ".join(args),
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(int(rss.group(1)) / 1024**2, 2) if rss else None,
        "load_average_at_start": round(load, 2),
    }


def _stage_seconds(data_dir: Path, run_id: str) -> dict:
    summary = json.loads(run_record_path(data_dir, run_id).read_text())
    seconds: dict = {}
    for stage, value in summary.items():
        if isinstance(value, dict) and "seconds" in value:
            seconds[stage] = value["seconds"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12, help="months in the full build")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    name = f"monthly-{args.people}-{args.months}"
    work = CACHE / name
    shutil.rmtree(work, ignore_errors=True)
    data_dir, scratch = work / "data", work / "deliveries"
    data_dir.mkdir(parents=True)
    result: dict = {"people": args.people, "months": args.months, "seed": args.seed}

    def deliver(months: int) -> dict:
        out = scratch / f"m{months}"
        step = _timed(
            ["synth", "--people", str(args.people), "--seed", str(args.seed), "--months",
             str(months), "--out", str(out)],
            work / f"synth-{months}.log",
        )  # fmt: skip
        shutil.copytree(LANDING.under(out), LANDING.under(data_dir), dirs_exist_ok=True)
        shutil.rmtree(out)
        return step

    result["synth_full"] = deliver(args.months)
    result["full_build"] = _timed(
        ["run", "--data-dir", str(data_dir), "--run-id", "full"], work / "full.log"
    )
    result["full_build"]["stages"] = _stage_seconds(data_dir, "full")
    print(json.dumps(result["full_build"], indent=2), flush=True)
    result["synth_next"] = deliver(args.months + 1)
    result["monthly_run"] = _timed(
        ["run", "--data-dir", str(data_dir), "--run-id", "next"], work / "next.log"
    )
    result["monthly_run"]["stages"] = _stage_seconds(data_dir, "next")
    result["monthly_share_of_full"] = round(
        result["monthly_run"]["seconds"] / result["full_build"]["seconds"], 3
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
