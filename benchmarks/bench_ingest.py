"""Benchmark ingest, opt-out removal and pseudonymisation on a generated population.

Usage::

    uv run python benchmarks/bench_ingest.py --people 100000 [--seed 42] [--data-dir DIR]
        [--scan] [--json results.json]

Each stage runs in its own fresh process (spawned, not forked), so the peak
resident set size reported for a stage is that stage's alone, including the
interpreter and libraries (about 100-150 MB of it). The population is generated
once per (people, seed) under ``benchmarks/.cache/`` (git-ignored) and reused.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"


def _stage(name: str, data_dir: str, run_id: str, queue: mp.Queue) -> None:
    """Run one stage in this (child) process; report seconds, peak RSS and a row count."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from joinedup.ingest import (
        SOURCES,
        finalise_ledger,
        ingest_source,
        pseudonymise,
        remove_opt_outs,
    )
    from joinedup.settings import DEMO_KEY

    path = Path(data_dir)
    started = time.perf_counter()
    if name == "generate":
        from joinedup.synth import generate

        people, seed = run_id.split(":")
        generate(path, people=int(people), seed=int(seed))
        rows = None
    elif name.startswith("ingest:"):
        source = name.split(":", 1)[1]
        assert source in SOURCES
        summary = ingest_source(path, source, run_id)
        rows = sum(t["received"] for t in summary["tables"].values())
    elif name == "remove_opt_outs":
        rows = sum(remove_opt_outs(path, run_id)["rows_removed"].values())
    elif name == "pseudonymise":
        rows = sum(pseudonymise(path, DEMO_KEY.encode(), run_id)["rows"].values())
    elif name == "finalise_ledger":
        rows = finalise_ledger(path, run_id)["rows_received"]
    elif name == "privacy_scan":
        from joinedup.privacy_scan import scan

        rows = scan(path / "landing", [path / "pseudonymised", path / "restricted"]).height
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    queue.put(
        {"stage": name, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb), "rows": rows}
    )


def run_stage(name: str, data_dir: Path, run_id: str) -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_stage, args=(name, str(data_dir), run_id, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"stage {name} failed (exit code {proc.exitcode})")
    return queue.get()


def run(
    people: int, seed: int = 42, data_dir: Path | None = None, scan: bool = False
) -> list[dict]:
    """Time every stage on ``people`` synthetic people; returns one dict per stage."""
    data_dir = Path(data_dir or CACHE / f"ingest-{people}-{seed}")
    results: list[dict] = []
    if not (data_dir / "truth/records.csv").exists():
        results.append(run_stage("generate", data_dir, f"{people}:{seed}"))
    run_id = f"bench-{people}"
    from joinedup.ingest.load import SOURCES

    stages = [f"ingest:{s}" for s in SOURCES] + [
        "remove_opt_outs",
        "pseudonymise",
        "finalise_ledger",
    ]
    if scan:
        stages.append("privacy_scan")
    for stage in stages:
        results.append(run_stage(stage, data_dir, run_id))
        print(f"  {results[-1]}", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--scan", action="store_true", help="also time the privacy scan")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)
    results = run(args.people, args.seed, args.data_dir, args.scan)
    pipeline = [r for r in results if r["stage"] not in ("generate", "privacy_scan")]
    print(f"\n{args.people:,} people (seed {args.seed})")
    print(f"{'stage':<24}{'seconds':>10}{'peak RSS MB':>14}{'rows':>14}")
    for r in results:
        rows = "" if r["rows"] is None else f"{r['rows']:,}"
        print(f"{r['stage']:<24}{r['seconds']:>10.2f}{r['peak_rss_mb']:>14,}{rows:>14}")
    total = sum(r["seconds"] for r in pipeline)
    peak = max(r["peak_rss_mb"] for r in pipeline)
    print(f"{'pipeline total':<24}{total:>10.2f}{peak:>14,}")
    if args.json:
        payload = {"people": args.people, "seed": args.seed, "stages": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
