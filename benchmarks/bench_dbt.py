"""Benchmark the dbt warehouse build (and publishing) on a generated population.

Usage::

    uv run python benchmarks/bench_dbt.py --people 100000 [--seed 42] [--threads 4]
        [--data-dir DIR] [--publish] [--docs] [--json results.json]

The population is generated, ingested and pseudonymised once per (people, seed)
by ``bench_ingest`` under ``benchmarks/.cache/`` (git-ignored) and reused;
``linked/record_person.parquet`` comes from the generator's truth (perfect
linkage), so the benchmark measures dbt alone, not Splink. Each step runs in its
own spawned process, so its peak resident set size is its own (interpreter, dbt
and DuckDB included). DuckDB's memory is capped by ``JOINEDUP_DUCKDB_MEMORY_LIMIT``
when set (e.g. ``8GB``), else it uses DuckDB's default of 80% of RAM.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

from joinedup.atomic import write_json
from joinedup.catalogue import RECORD_PERSON, WAREHOUSE, pseudonymised_path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
ROW_COUNTS = (
    "dim_person",
    "fct_care_events",
    "fct_hospital_spells",
    "fct_pathway_transitions",
    "fct_discharges_to_social_care",
    "mart_pathway_flows",
)


def _step(name: str, data_dir: str, threads: int | None, queue: mp.Queue) -> None:
    """Run one step in this (child) process; report seconds, peak RSS and a summary."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from joinedup import warehouse

    path = Path(data_dir)
    started = time.perf_counter()
    detail: dict = {}
    if name == "record_person":
        from joinedup.atomic import write_parquet
        from joinedup.settings import DEMO_KEY
        from joinedup.truth import record_person_from_truth

        frame = record_person_from_truth(path, DEMO_KEY.encode())
        write_parquet(frame, path / RECORD_PERSON)
        detail = {"records": frame.height}
    elif name == "build_warehouse":
        summary = warehouse.build_warehouse(path, threads=threads)
        detail = {"nodes": summary["nodes"], "warnings": len(summary["warnings"])}
    elif name == "publish_analytics":
        warehouse.publish_analytics(path)
    elif name == "generate_docs":
        warehouse.generate_docs(path)
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    queue.put({"step": name, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb), **detail})


def run_step(name: str, data_dir: Path, threads: int | None = None) -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_step, args=(name, str(data_dir), threads, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"step {name} failed (exit code {proc.exitcode})")
    return queue.get()


def _prepare(people: int, seed: int, data_dir: Path | None) -> Path:
    """The cached ingested population (made by bench_ingest when missing)."""
    sys.path.insert(0, str(HERE))
    import bench_ingest

    data_dir = Path(data_dir or CACHE / f"ingest-{people}-{seed}")
    if not pseudonymised_path(data_dir, "social_care", "events").exists():
        print(f"preparing {people:,} people in {data_dir} ...", file=sys.stderr, flush=True)
        bench_ingest.run(people, seed, data_dir)
    return data_dir


def _sizes(data_dir: Path) -> dict:
    import duckdb

    warehouse = WAREHOUSE.under(data_dir)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = {
            t: con.execute(f"select count(*) from marts.{t}").fetchall()[0][0] for t in ROW_COUNTS
        }
    return {"rows": rows, "warehouse_mb": round(warehouse.stat().st_size / 2**20)}


def run(
    people: int,
    seed: int = 42,
    data_dir: Path | None = None,
    threads: int | None = None,
    publish: bool = False,
    docs: bool = False,
) -> dict:
    """Build the warehouse for ``people`` synthetic people; returns the measurements."""
    data_dir = _prepare(people, seed, data_dir)
    steps = ["record_person", "build_warehouse"]
    if publish:
        steps.append("publish_analytics")
    if docs:
        steps.append("generate_docs")
    results = []
    for step in steps:
        results.append(run_step(step, data_dir, threads))
        print(f"  {results[-1]}", file=sys.stderr, flush=True)
    return {"people": people, "seed": seed, "steps": results, **_sizes(data_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="dbt threads (default 4)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--publish", action="store_true", help="also time publish_analytics")
    parser.add_argument("--docs", action="store_true", help="also time generate_docs")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)
    result = run(args.people, args.seed, args.data_dir, args.threads, args.publish, args.docs)
    print(f"\n{args.people:,} people (seed {args.seed})")
    print(f"{'step':<20}{'seconds':>10}{'peak RSS MB':>14}")
    for r in result["steps"]:
        print(f"{r['step']:<20}{r['seconds']:>10.2f}{r['peak_rss_mb']:>14,}")
    print(f"warehouse.duckdb: {result['warehouse_mb']:,} MB")
    for table, n in result["rows"].items():
        print(f"  {table:<32}{n:>14,} rows")
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
