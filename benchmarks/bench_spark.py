"""Linkage time on DuckDB and on Spark (local mode) for the same pseudonymised population.

Usage::

    uv run --extra spark python benchmarks/bench_spark.py --people 100000 [--seed 42]
        [--backends duckdb spark]

The population is generated and ingested, opt-outs removed and pseudonymised
once per (people, seed) under ``benchmarks/.cache/spark-<people>-<seed>/``
(git-ignored). Then the link stage runs once per backend, each in its own
spawned process (``run.run_stage``) from an empty ``linked/``, and is scored
against the truth. Results: ``benchmarks/results/spark/<people>.json``, with
the machine's load average before and after each run (the machine may be
shared). The peak RSS is the Python process's; Spark's JVM (driver heap capped
by JOINEDUP_SPARK_DRIVER_MEMORY) is a separate process and not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

from joinedup.catalogue import LINKAGE_SUMMARY, LINKED, PSEUDONYMISED

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CACHE = HERE / ".cache"
RESULTS = HERE / "results" / "spark"

from run import machine, run_stage  # noqa: E402

PREPARE = [
    *(f"ingest:{s}" for s in ("gp", "hospital", "social_care", "opt_outs", "reference")),
    "remove_opt_outs",
    "pseudonymise",
]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench(people: int, seed: int, backends: list[str]) -> dict:
    from joinedup.linkage.evaluate import evaluate
    from joinedup.settings import DEMO_KEY, Settings

    data_dir = CACHE / f"spark-{people}-{seed}"
    if not PSEUDONYMISED.under(data_dir).exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        run_stage("generate", data_dir, f"{people}:{seed}")
        for stage in PREPARE:
            print(f"  {run_stage(stage, data_dir, 'bench')}", file=sys.stderr, flush=True)
    settings = Settings()
    out: dict = {
        "people": people,
        "seed": seed,
        "spark": {
            "pyspark": version("pyspark"),
            "master": settings.spark_master,
            "driver_memory": settings.spark_driver_memory,
            "shuffle_partitions": settings.spark_shuffle_partitions,
        },
        "runs": {},
    }
    for backend in backends:
        shutil.rmtree(LINKED.under(data_dir), ignore_errors=True)
        os.environ["JOINEDUP_LINKAGE_BACKEND"] = backend  # inherited by the spawned stage
        before = _load()
        result = run_stage("link", data_dir, f"bench-{backend}")
        after = _load()
        summary = json.loads((data_dir / LINKAGE_SUMMARY).read_text())
        scores = evaluate(data_dir, DEMO_KEY.encode())
        out["runs"][backend] = {
            "seconds": result["seconds"],
            "link_seconds": summary["seconds"],
            "peak_rss_mb_python": result["peak_rss_mb"],
            "records": result["rows"],
            "persons": summary["persons"],
            "f1": scores["joinedup"]["f1"],
            "precision": scores["joinedup"]["precision"],
            "recall": scores["joinedup"]["recall"],
            "load_average_before": before,
            "load_average_after": after,
        }
        print(f"  {backend}: {out['runs'][backend]}", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--backends", nargs="+", default=["duckdb", "spark"])
    args = parser.parse_args(argv)
    from joinedup.settings import DEMO_KEY

    # Synthetic data only: the stages use the demo key (benchmarks/stages.py).
    os.environ.setdefault("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    result = bench(args.people, args.seed, args.backends)
    result["machine"] = machine()
    result["command"] = "uv run --extra spark python benchmarks/bench_spark.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.people}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["runs"], indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
