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
import sys
from pathlib import Path

from joinedup.atomic import write_json

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CACHE = HERE / ".cache"

# The shared harness: each named stage (benchmarks/stages.py) in its own spawned process.
from run import run_stage  # noqa: E402


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
        stages.append("privacy_gate")
    for stage in stages:
        results.append(run_stage(stage, data_dir, run_id))
        print(f"  {results[-1]}", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--scan", action="store_true", help="also time the privacy gate")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)
    results = run(args.people, args.seed, args.data_dir, args.scan)
    pipeline = [r for r in results if r["stage"] not in ("generate", "privacy_gate")]
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
        write_json(payload, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
