"""Linkage time on DuckDB and on Spark (local mode, a standalone cluster) for one population.

Usage::

    uv run --extra spark python benchmarks/bench_spark.py --people 100000 [--seed 42]
        [--backends duckdb spark spark-cluster] [--markdown]

``spark`` is local mode (``JOINEDUP_SPARK_MASTER``, default ``local[2]``);
``spark-cluster`` starts a standalone master and worker on 127.0.0.1
(``joinedup.linkage.spark_cluster``, as ``make spark-cluster`` does; the
worker offers ``--worker-cores`` and ``--worker-memory``, executors get
``--executor-memory``), links on it and stops it. The cluster's start-up is
not in the link time; it is reported as ``cluster_start_seconds``.

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
import time
from contextlib import ExitStack
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


def bench(people: int, seed: int, backends: list[str], cluster: dict[str, str]) -> dict:
    from joinedup.linkage.evaluate import evaluate
    from joinedup.linkage.spark_cluster import standalone_cluster
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
    if "spark-cluster" in backends:
        out["spark_cluster"] = cluster
    for backend in backends:
        shutil.rmtree(LINKED.under(data_dir), ignore_errors=True)
        # Inherited by the spawned stage, as the settings of a link task are.
        os.environ["JOINEDUP_LINKAGE_BACKEND"] = "spark" if backend == "spark-cluster" else backend
        extra = {}
        with ExitStack() as stack:
            if backend == "spark-cluster":
                started = time.monotonic()
                running = stack.enter_context(
                    standalone_cluster(
                        cores=int(cluster["worker_cores"]), memory=cluster["worker_memory"]
                    )
                )
                extra["cluster_start_seconds"] = round(time.monotonic() - started, 1)
                conf = {**settings.spark_conf, "spark.executor.memory": cluster["executor_memory"]}
                stack.enter_context(
                    _environ(
                        JOINEDUP_SPARK_MASTER=running.master_url,
                        JOINEDUP_SPARK_CONF=json.dumps(conf),
                    )
                )
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
            **extra,
        }
        print(f"  {backend}: {out['runs'][backend]}", file=sys.stderr, flush=True)
    return out


class _environ:
    """Set environment variables for a block, restoring what was there before."""

    def __init__(self, **values: str) -> None:
        self.values, self.saved = values, {k: os.environ.get(k) for k in values}

    def __enter__(self) -> None:
        os.environ.update(self.values)

    def __exit__(self, *_: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def markdown(result: dict) -> str:
    """The runs as a table for benchmarks/RESULTS.md."""
    m = result["machine"]
    lines = [
        f"Command: `{result['command']}`  ",
        f"Machine: {m['cpus']} cores, {m['memory_gb']} GB, Python {m['python']}, "
        f"{m['platform']}; pyspark {result['spark']['pyspark']}  ",
        f"Population: {result['people']:,} people (seed {result['seed']}), "
        f"{next(iter(result['runs'].values()))['records']:,} records",
    ]
    if "spark_cluster" in result:
        c = result["spark_cluster"]
        lines[-1] += "  "
        lines.append(
            f"Cluster: one master and one worker on 127.0.0.1 ({c['worker_cores']} cores, "
            f"{c['worker_memory']}), executor memory {c['executor_memory']}, shuffle "
            f"partitions {result['spark']['shuffle_partitions']}, driver memory "
            f"{result['spark']['driver_memory']}"
        )
    lines += [
        "",
        "| backend | link task s | train s | predict + cluster s | F1 | load avg before / after |",
        "|---|---|---|---|---|---|",
    ]
    for backend, run in result["runs"].items():
        name = {"spark": f"spark ({result['spark']['master']})"}.get(backend, backend)
        if "cluster_start_seconds" in run:
            name += f" (cluster start {run['cluster_start_seconds']} s, not included)"
        link = run["link_seconds"]
        lines.append(
            f"| {name} | {run['seconds']} | {link['train']} | {link['predict_cluster']} | "
            f"{run['f1']:.5f} | {run['load_average_before'][0]} / {run['load_average_after'][0]} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["duckdb", "spark"],
        choices=["duckdb", "spark", "spark-cluster"],
    )
    parser.add_argument("--worker-cores", default="2", help="spark-cluster: the worker's cores")
    parser.add_argument("--worker-memory", default="2g", help="spark-cluster: the worker's memory")
    parser.add_argument("--executor-memory", default="1g", help="spark-cluster: per executor")
    parser.add_argument("--markdown", action="store_true", help="also print a RESULTS.md table")
    args = parser.parse_args(argv)
    cluster = {
        "worker_cores": args.worker_cores,
        "worker_memory": args.worker_memory,
        "executor_memory": args.executor_memory,
    }
    from joinedup.settings import DEMO_KEY

    # Synthetic data only: the stages use the demo key (benchmarks/stages.py).
    os.environ.setdefault("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    result = bench(args.people, args.seed, args.backends, cluster)
    result["machine"] = machine()
    result["command"] = "uv run --extra spark python benchmarks/bench_spark.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "-".join(sorted(args.backends)) if "spark-cluster" in args.backends else ""
    path = RESULTS / f"{args.people}{'-' + name if name else ''}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["runs"], indent=2))
    print(f"written to {path}")
    if args.markdown:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
