"""Benchmark the Great Expectations quality gates on a generated population.

Usage::

    uv run python benchmarks/bench_quality.py --people 100000 [--seed 42] [--data-dir DIR]
        [--run-id ID] [--together] [--json results.json]

The population goes once through the real stages (generate, ingest, opt-outs,
pseudonymise, Splink linkage, dbt build) under ``benchmarks/.cache/quality-<N>-<seed>/``
(git-ignored) and is reused. Then each zone's gate runs in its own spawned
process, so its peak resident set size is its own; ``seconds`` is the gate alone
and ``import_seconds`` the one-off cost of importing Great Expectations in that
process (an Airflow task pays it once per task). With ``--together`` the four gates
run one after the other in a single process, as ``joinedup run`` (``dag.test()``, in
process) and ``benchmarks/stages.py::quality_gates`` run them: the import is paid
once. A gate that fails is reported, not fatal: the time is what is measured.
Each timing starts from an empty ``DATA/quality/`` (as in ``benchmarks/run.py``).
``--run-id`` names the run the data directory was built with (``benchmarks/run.py``
builds ``benchmarks/.cache/<N>-<seed>/`` as ``bench-<N>``), which the marts gate
reconciles with the ledger.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from joinedup.atomic import write_json
from joinedup.catalogue import QUALITY, RECORD_PERSON, WAREHOUSE, pseudonymised_path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RUN_ID = "bench"
ZONES = ("landing", "pseudonymised", "linked", "marts")


def _prepare_step(name: str, data_dir: str, people: int, seed: int) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from joinedup import deidentify, ingest, linkage, warehouse
    from joinedup.settings import DEMO_KEY

    path, key = Path(data_dir), DEMO_KEY.encode()
    if name == "generate":
        from joinedup.synth import generate

        generate(path, people=people, seed=seed)
    elif name == "ingest":
        for source in ingest.SOURCES:
            ingest.ingest_source(path, source, RUN_ID)
        deidentify.remove_opt_outs(path, RUN_ID)
        deidentify.pseudonymise(path, key, RUN_ID)
        ingest.finalise_ledger(path, RUN_ID)
    elif name == "link":
        linkage.link(path, RUN_ID, key, charts=False)
    elif name == "build_warehouse":
        warehouse.build_warehouse(path)
    else:
        raise ValueError(name)


def _gates(zones: tuple[str, ...], data_dir: str, run_id: str, queue: mp.Queue) -> None:
    """Run ``zones``' gates one after the other in this process; one result per zone."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    started = time.perf_counter()
    import great_expectations  # noqa: F401  (timed apart from the gate)

    from joinedup.quality import QualityGateError, run_gates

    imported = time.perf_counter()
    for n, zone in enumerate(zones):
        begun = time.perf_counter()
        try:
            summary = run_gates(Path(data_dir), zone, run_id)
        except QualityGateError as exc:
            summary = exc.summary
        queue.put(
            {
                "zone": zone,
                "seconds": round(time.perf_counter() - begun, 2),
                "import_seconds": round(imported - started, 2) if n == 0 else 0.0,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "suites": len(summary["suites"]),
                "expectations": sum(s["evaluated"] for s in summary["suites"].values()),
                "rows": sum(s["rows"] for s in summary["suites"].values()),
                "passed": summary["passed"],
                "critical": len(summary["critical"]),
                "warnings": len(summary["warnings"]),
            }
        )


def _spawn(target: Callable[..., None], *args: object) -> mp.Process:
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    return proc


def prepare(people: int, seed: int, data_dir: Path | None) -> Path:
    """The cached population, taken through every stage the gates read."""
    data_dir = Path(data_dir or CACHE / f"quality-{people}-{seed}")
    steps = {
        "generate": data_dir / "truth/records.csv",
        "ingest": pseudonymised_path(data_dir, "social_care", "events"),
        "link": data_dir / RECORD_PERSON,
        "build_warehouse": WAREHOUSE.under(data_dir),
    }
    for name, output in steps.items():
        if output.exists():
            continue
        print(f"preparing {people:,} people: {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = _spawn(_prepare_step, name, str(data_dir), people, seed)
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"{name} failed (exit code {proc.exitcode})")
        print(f"  {name}: {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return data_dir


def run(
    people: int,
    seed: int = 42,
    data_dir: Path | None = None,
    run_id: str = RUN_ID,
    together: bool = False,
) -> dict:
    """Time every zone's gate on ``people`` synthetic people."""
    data_dir = prepare(people, seed, data_dir)
    # Every timing is a first run, as in benchmarks/run.py: earlier results would make
    # each gate's Data Docs index (which lists every stored result) longer.
    shutil.rmtree(QUALITY.under(data_dir), ignore_errors=True)
    results = []
    for zones in [ZONES] if together else [(zone,) for zone in ZONES]:
        queue: mp.Queue = mp.get_context("spawn").Queue()
        proc = _spawn(_gates, zones, str(data_dir), run_id, queue)
        for _ in zones:
            result = queue.get()
            results.append(result)
            print(f"  {result}", file=sys.stderr, flush=True)
        proc.join()
    return {"people": people, "seed": seed, "together": together, "gates": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--run-id", default=RUN_ID, help="run the data directory was built as")
    parser.add_argument(
        "--together", action="store_true", help="all four gates in one process (one import)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)
    result = run(args.people, args.seed, args.data_dir, args.run_id, args.together)
    print(f"\n{args.people:,} people (seed {args.seed})")
    header = ("zone", "seconds", "GX import s", "peak RSS MB", "suites", "expect.", "rows", "ok")
    print("{:<15}{:>9}{:>13}{:>13}{:>8}{:>9}{:>12}{:>5}".format(*header))
    for r in result["gates"]:
        print(
            f"{r['zone']:<15}{r['seconds']:>9.2f}{r['import_seconds']:>13.2f}"
            f"{r['peak_rss_mb']:>13,}{r['suites']:>8}{r['expectations']:>9}{r['rows']:>12,}"
            f"{'yes' if r['passed'] else 'NO':>5}"
        )
    total = sum(r["seconds"] for r in result["gates"])
    imports = sum(r["import_seconds"] for r in result["gates"])
    print(f"{'all gates':<15}{total:>9.2f}{imports:>13.2f}")
    print(f"{'with imports':<15}{total + imports:>9.2f}")
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
