"""``make bench``: time every pipeline stage on synthetic populations of several sizes.

    uv run python benchmarks/run.py --sizes 10000 100000 [--seed 42] [--no-accuracy]

For each size: the population is generated once per (size, seed) under
benchmarks/.cache/ (git-ignored) and reused; each stage runs in its own
spawned process, so its peak RSS is its own (interpreter and libraries
included). Results go to benchmarks/results/<size>.json and the table in
benchmarks/RESULTS.md between the generated-results markers, with the
machine and the command.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _child(name: str, data_dir: str, run_id: str, queue: mp.Queue) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(HERE))
    started = time.perf_counter()
    if name == "generate":
        from joinedup.synth import generate

        people, seed = run_id.split(":")
        generate(Path(data_dir), people=int(people), seed=int(seed))
        rows = None
    elif name == "accuracy":
        from accuracy import compare

        rows = compare(Path(data_dir))
    else:
        from stages import STAGES

        rows = STAGES[name](Path(data_dir), run_id)
    queue.put(
        {
            "stage": name,
            "seconds": round(time.perf_counter() - started, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rows": rows,
        }
    )


def run_stage(name: str, data_dir: Path, run_id: str) -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, str(data_dir), run_id, queue))
    proc.start()
    result = queue.get()  # before join: a large result would otherwise block the child
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"stage {name} failed (exit code {proc.exitcode})")
    return result


def machine() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    packages = ("polars", "duckdb", "splink", "apache-airflow", "dbt-core", "great-expectations")
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(mem, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: version(p) for p in packages},
    }


def bench(people: int, seed: int, accuracy: bool) -> dict:
    from stages import GATES, available

    # The generator's default layout (national) in the name: a cache from before it is not reused.
    data_dir = CACHE / f"{people}-{seed}-national"
    results = []
    if not (data_dir / "truth" / "records.csv").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        results.append(run_stage("generate", data_dir, f"{people}:{seed}"))
        print(f"  {results[-1]}", file=sys.stderr, flush=True)
    # Every run is a first run: only the generated landing zone and truth are kept (and
    # dbt's parse cache, which depends on the code, not the data). A previous run's
    # warehouse, published file, run records and GX results would change what the gates
    # read (a published file a finished run recorded is not rescanned, for one).
    for sub in (
        *("linked", "pseudonymised", "quarantine", "restricted", "ledger.csv"),
        *("warehouse.duckdb", "analytics.duckdb", "quality", "privacy", "runs", "docs"),
    ):
        path = data_dir / sub
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    run_id = f"bench-{people}"
    for stage in available():
        results.append(run_stage(stage, data_dir, run_id))
        print(f"  {results[-1]}", file=sys.stderr, flush=True)
    out = {"people": people, "seed": seed, "stages": results}
    out["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    if accuracy:
        acc = run_stage("accuracy", data_dir, run_id)
        out["accuracy"] = acc["rows"]
        out["accuracy_seconds"] = acc["seconds"]
    pipeline = [r for r in results if r["stage"] != "generate"]
    out["pipeline_seconds"] = round(sum(r["seconds"] for r in pipeline), 1)
    out["pipeline_peak_rss_mb"] = max(r["peak_rss_mb"] for r in pipeline)
    gates = sum(r["seconds"] for r in pipeline if r["stage"] in GATES)
    out["gates_seconds"] = round(gates, 1)
    out["gates_share"] = round(gates / out["pipeline_seconds"], 3)
    out["seconds_per_1000_people"] = round(out["pipeline_seconds"] / people * 1000, 3)
    return out


def markdown(runs: list[dict], command: str, info: dict) -> str:
    lines = [
        f"Commands: {command}  ",
        f"Machine: {info['cpus']} cores, {info['memory_gb']} GB, Python {info['python']}, "
        f"{info['platform']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()) + "  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
    ]
    # Every stage any run has, in the newest run's order (older runs may lack new stages).
    newest = max(runs, key=lambda r: r.get("finished", ""))
    stages = [s["stage"] for s in newest["stages"] if s["stage"] != "generate"]
    for r in runs:
        stages += [s["stage"] for s in r["stages"] if s["stage"] not in {*stages, "generate"}]
    header = "| stage | " + " | ".join(f"{r['people']:,} people: s / MB" for r in runs) + " |"
    lines += [header, "|---" * (len(runs) + 1) + "|"]
    for stage in stages:
        cells = []
        for r in runs:
            s = next((x for x in r["stages"] if x["stage"] == stage), None)
            cells.append(f"{s['seconds']:.1f} / {s['peak_rss_mb']:,}" if s else "-")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append(
        "| **pipeline (excl. synth)** | "
        + " | ".join(
            f"**{r['pipeline_seconds']:.1f} / {r['pipeline_peak_rss_mb']:,}**" for r in runs
        )
        + " |"
    )
    lines.append(
        "| gates (quality + privacy) share of the pipeline | "
        + " | ".join(f"{r['gates_share']:.0%}" if "gates_share" in r else "-" for r in runs)
        + " |"
    )
    lines.append(
        "| seconds per 1,000 people | "
        + " | ".join(f"{r['seconds_per_1000_people']:.3f}" for r in runs)
        + " |"
    )
    acc_runs = [r for r in runs if "accuracy" in r]
    if acc_runs:
        lines += ["", "Linkage accuracy (pairwise, against the generator's truth):", ""]
        lines += ["| people | method | precision | recall | F1 | recall, records without NHS no. |"]
        lines += ["|---|---|---|---|---|---|"]
        for r in acc_runs:
            for method, m in r["accuracy"].items():
                if method == "records":
                    continue
                no_nhs = m.get("recall_no_nhs")
                lines.append(
                    f"| {r['people']:,} | {method} | {m['precision']:.4f} | {m['recall']:.4f} | "
                    f"{m['f1']:.4f} | {'' if no_nhs is None else f'{no_nhs:.4f}'} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-accuracy", action="store_true", help="skip the baselines")
    parser.add_argument(
        "--accuracy-max", type=int, default=200_000, help="largest size scored for accuracy"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite RESULTS.md from results/ and stop"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        args.sizes = []
    from joinedup.settings import DEMO_KEY

    # Synthetic data only: the stages use the demo key too (benchmarks/stages.py).
    os.environ.setdefault("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    info = machine()
    runs = []
    for people in args.sizes:
        print(f"{people:,} people", file=sys.stderr, flush=True)
        r = bench(people, args.seed, not args.no_accuracy and people <= args.accuracy_max)
        r["machine"] = info
        r["command"] = "uv run python benchmarks/run.py " + " ".join(argv or sys.argv[1:])
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{people}.json").write_text(json.dumps(r, indent=2) + "\n")
        runs.append(r)
    # The table shows every size measured on this machine, latest run of each.
    every = sorted(
        (json.loads(p.read_text()) for p in RESULTS.glob("*.json") if p.stem.isdigit()),
        key=lambda r: r["people"],
    )
    commands = sorted({r.get("command", "") for r in every} - {""})
    table = markdown(every, " ; ".join(f"`{c}`" for c in commands), info)
    print(table)
    results_md = HERE / "RESULTS.md"
    text = results_md.read_text() if results_md.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1]
        results_md.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
