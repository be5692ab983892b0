"""joinedup against plaintext Splink with its stock comparisons, on standard and harsh noise.

    uv run --locked python benchmarks/bench_linkage_robust.py --people 20000 100000 \
        --noise standard harsh [--layout generic|national] [--no-plaintext]

For each noise profile and size: a population from ``joinedup synth`` (``params_for``),
taken through ingest, opt-outs and pseudonymise (cached under ``benchmarks/.cache/``),
then

* joinedup: the ``link`` stage in a fresh process (as the pipeline runs it), on keyed
  encodings only;
* plaintext Splink: the same records before pseudonymisation (the cleared identifiers
  inside the landing zone: benchmark only), Splink's stock comparisons
  (``NameComparison``, ``DateOfBirthComparison``, ``PostcodeComparison``, exact NHS
  number and sex), blocking rules of the same kinds as joinedup's on plaintext
  prefixes, the same training procedure and the same thresholds.

Both are scored pairwise against the generator's truth, on the records joinedup linked.
Writes ``benchmarks/results/linkage_robust/<noise>-<people>-<seed>.json`` and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import polars as pl
from accuracy import plaintext_clusters, plaintext_records
from run import machine, run_stage
from stages import KEY

from joinedup.atomic import write_json
from joinedup.catalogue import LINKAGE_SUMMARY, PSEUDONYMISED, RECORD_PERSON
from joinedup.linkage.evaluate import evaluate, pairwise
from joinedup.truth import truth_records

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results" / "linkage_robust"
PREPARE = ("ingest:gp", "ingest:hospital", "ingest:social_care", "ingest:opt_outs")
PREPARE += ("ingest:reference", "remove_opt_outs", "pseudonymise")


def prepare(people: int, noise: str, seed: int, layout: str) -> Path:
    """A population of ``noise``, pseudonymised (made once per profile, layout, size, seed)."""
    data_dir = CACHE / f"robust-{noise}-{layout}-{people}-{seed}"
    if PSEUDONYMISED.under(data_dir).exists():
        return data_dir
    from joinedup.synth import generate
    from joinedup.synth.params import params_for

    generate(data_dir, people=people, seed=seed, params=params_for(noise), layout=layout)
    for stage in PREPARE:
        run_stage(stage, data_dir, "run-1")
    return data_dir


def plaintext_stock_splink(records: pl.DataFrame) -> pl.DataFrame:
    """Clusters of plaintext Splink with its library's stock comparisons."""
    import splink.comparison_library as cl
    from splink import block_on

    given, family = "substr(given_name, 1, 2)", "substr(family_name, 1, 2)"
    district = "split_part(postcode, ' ', 1)"
    year, month, day = "year(date_of_birth)", "month(date_of_birth)", "day(date_of_birth)"
    stock = [
        cl.ExactMatch("nhs_number"),
        cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("family_name").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=False),
        cl.PostcodeComparison("postcode"),
        cl.ExactMatch("sex"),
    ]
    # The kinds of joinedup's rules (linkage/settings.json), on plaintext prefixes where
    # joinedup has keyed Soundex tokens.
    rules = [
        block_on("nhs_number"),
        block_on("date_of_birth", family),
        block_on("date_of_birth", given),
        block_on("date_of_birth", district),
        block_on(given, family, year, month),
        block_on(given, family, year, day),
        block_on(given, family, month, day),
        block_on("family_name", month, day),
        block_on("postcode", given),
        block_on("postcode", family),
    ]
    return plaintext_clusters(records, stock, rules, rules[3])


def bench(
    people: int, noise: str, seed: int, layout: str, plaintext: bool = True
) -> dict[str, Any]:
    data_dir = prepare(people, noise, seed, layout)
    linked = run_stage("link", data_dir, "run-1")
    ours = evaluate(data_dir, KEY)
    summary = json.loads((data_dir / LINKAGE_SUMMARY).read_text())
    result = {
        "people": people,
        "noise": noise,
        "layout": layout,
        "seed": seed,
        "joinedup": ours["joinedup"]
        | {"seconds": linked["seconds"], "peak_rss_mb": linked["peak_rss_mb"]},
        "nhs_number_split": summary.get("nhs_number_split"),
        "nhs_number_only": ours["nhs_number_only"],
    }
    if not plaintext:
        return result
    truth = truth_records(data_dir, KEY).filter(~pl.col("opted_out"))
    keys = ["source", "record_token"]
    on_linked = pl.read_parquet(data_dir / RECORD_PERSON).select(keys)
    plain = plaintext_records(data_dir).join(truth, on=keys).join(on_linked, on=keys)
    started = time.perf_counter()
    clusters = plaintext_stock_splink(plain.drop("person_key", "opted_out"))
    seconds = round(time.perf_counter() - started, 1)
    scored = clusters.join(plain.select(*keys, "person_key"), on=keys)
    blocking = (summary.get("training_choice") or {}).get("prediction_blocking") or {}
    return result | {
        "records": plain.height,
        "joinedup_pairs_scored": blocking.get("pairs_to_score"),
        "plaintext_stock_splink": pairwise(scored, "cluster_id") | {"seconds": seconds},
    }


def markdown(results: list[dict[str, Any]]) -> str:
    header = "| noise | layout | people | method | precision | recall | F1 | seconds |"
    rows = [_row(r, method) for r in results for method in METHODS if method in r]
    return "\n".join([header, "|---" * 8 + "|", *rows])


METHODS = ("joinedup", "plaintext_stock_splink", "nhs_number_only")


def _row(result: dict[str, Any], method: str) -> str:
    m = result[method]
    cells = [result["noise"], result["layout"], f"{result['people']:,}", method]
    cells += [f"{m[k]:.4f}" for k in ("precision", "recall", "f1")] + [str(m.get("seconds", ""))]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # generic: joinedup's own layout, every feed with names; national: as an ICB receives
    # them (HES APC, ECDS and CLD), hospital feeds without names.
    parser.add_argument("--layout", choices=["generic", "national"], default="generic")
    parser.add_argument("--noise", nargs="+", default=["standard", "harsh"])
    parser.add_argument("--people", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--seed", type=int, default=42)
    # joinedup alone (a re-measure after a change to joinedup: plaintext Splink's figures
    # do not move, and at 1M it would take longer than joinedup).
    parser.add_argument("--no-plaintext", dest="plaintext", action="store_false")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    info = machine()
    results = []
    for noise in args.noise:
        for people in args.people:
            result = bench(people, noise, args.seed, args.layout, args.plaintext)
            result |= {"machine": info}
            write_json(result, RESULTS / f"{noise}-{args.layout}-{people}-{args.seed}.json")
            results.append(result)
            print(markdown([result]), flush=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
