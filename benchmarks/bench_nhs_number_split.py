"""What splitting clusters on distinct NHS numbers gains, and what wrong valid numbers cost it.

    uv run --locked python benchmarks/bench_nhs_number_split.py --people 20000 \
        --wrong-numbers 0 0.005 0.02

The split (src/joinedup/linkage/nhs_number_split.py) rests on the modulus 11 check:
a keying error in one digit, or two adjacent digits swapped, gives an invalid number,
which ingest blanks. The generator makes only such errors, so on its data the split
cannot be wrong. A number that is wrong and still valid (a tracing error, another
family member's number picked) is what it cannot see: this benchmark gives a share
of the numbered records one (``opt_out_escapes.mistype_numbers``: half a number
nobody holds, half another person's) and links the same records with the split on
and off, scoring both pairwise against the generator's truth.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from opt_out_escapes import mistype_numbers
from stages import KEY, STAGES

from joinedup.linkage import link
from joinedup.linkage.evaluate import evaluate
from joinedup.linkage.model import DEFAULT_MODEL_DIR

PREPARE = ("ingest:gp", "ingest:hospital", "ingest:social_care", "ingest:opt_outs")
PREPARE += ("ingest:reference", "remove_opt_outs", "pseudonymise")


def _model_dir(work: Path, split: bool) -> Path:
    out = work / f"model-split-{split}"
    shutil.copytree(DEFAULT_MODEL_DIR, out)
    training = json.loads((out / "training.json").read_text())
    training.setdefault("clustering", {})["split_on_distinct_nhs_numbers"] = split
    (out / "training.json").write_text(json.dumps(training))
    return out


def measure(people: int, seed: int, share: float, layout: str) -> dict:
    from joinedup.synth import generate

    work = Path(tempfile.mkdtemp(prefix="nhs_split_"))
    try:
        data_dir = work / "data"
        generate(data_dir, people=people, seed=seed, layout=layout)
        changed = mistype_numbers(data_dir, share, seed) if share else 0
        for stage in PREPARE:
            STAGES[stage](data_dir, "bench")
        result: dict = {"people": people, "layout": layout, "wrong_valid_share": share}
        result["records_given_a_wrong_valid_number"] = changed
        for split in (False, True):
            summary = link(data_dir, "bench", KEY, model_dir=_model_dir(work, split), charts=False)
            scored = evaluate(data_dir, KEY)["joinedup"]
            result[f"split_{'on' if split else 'off'}"] = {
                k: scored[k] for k in ("precision", "recall", "f1")
            } | {"nhs_number_split": summary.get("nhs_number_split")}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=42)
    # generic: mistype_numbers rewrites joinedup's own layout only (in the national layouts
    # it would reach the GP extract alone).
    parser.add_argument("--layout", choices=["generic", "national"], default="generic")
    parser.add_argument("--wrong-numbers", type=float, nargs="+", default=[0.0, 0.005, 0.02])
    args = parser.parse_args()
    print("| wrong valid numbers | split | precision | recall | F1 | clusters split |")
    print("|---|---|---|---|---|---|")
    for share in args.wrong_numbers:
        r = measure(args.people, args.seed, share, args.layout)
        for side in ("split_off", "split_on"):
            m = r[side]
            split = (m["nhs_number_split"] or {}).get("clusters_split", "")
            cells = [f"{share:.1%}", side.removeprefix("split_")]
            cells += [f"{m[k]:.4f}" for k in ("precision", "recall", "f1")] + [str(split)]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
