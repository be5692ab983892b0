"""Opted-out people's records that escape linkage's opt-out check, and records wrongly removed.

    uv run --locked python benchmarks/opt_out_escapes.py --people 20000 --seed 42 \
        --wrong-numbers 0.02

Generates a population, then gives a share of the records that carry a valid NHS
number a wrong but valid one, as a keying error does: half a number that belongs to
nobody, half another person's. Runs ingest to ``remove_linked_opt_outs`` and counts,
against the generator's truth:

* before: what linkage removed when it scored only records without an NHS number
  (the same scores: those records are scored alike either way, so this is the
  removed set restricted to them);
* after: every record it now scores (also those whose number no other record of
  their linked person confirms).

The population is synthetic; nothing is kept but the figures printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from stages import KEY

from joinedup.catalogue import (
    LINKAGE_OPTED_OUT_RECORDS,
    OPTED_OUT_RECORDS,
    RECORD_TABLES,
    landing_files,
    pseudonymised_path,
)
from joinedup.contracts import DEMOGRAPHIC_TABLES
from joinedup.deidentify.encodings import Encoder
from joinedup.nhs_number import check_digits_np
from joinedup.truth import truth_records

KEY_COLUMNS = ["source", "record_token"]


def _valid_unissued(rng: np.random.Generator, n: int, issued: set[str]) -> list[str]:
    """Valid synthetic-range (99...) NHS numbers that no person of the population holds."""
    out: list[str] = []
    while len(out) < n:
        bases = rng.integers(990_000_000, 1_000_000_000, size=4 * n, dtype=np.int64)
        checks = check_digits_np(bases)
        for base, check in zip(bases, checks, strict=True):
            number = f"{base}{check}"
            if 0 <= check <= 9 and number not in issued and len(out) < n:
                out.append(number)
                issued.add(number)
    return out


def mistype_numbers(data_dir: Path, share: float, seed: int) -> int:
    """Give ``share`` of the records with a valid NHS number a wrong valid one; returns how many.

    A record's number changes on every row of the record (a hospital record's episodes
    and attendances alike), as when a patient's number is keyed wrong at registration.
    """
    rng = np.random.default_rng(seed)
    frames = {
        path: (table, pl.read_csv(path, infer_schema=False))
        for tables in DEMOGRAPHIC_TABLES.values()
        for table in tables
        for path in landing_files(data_dir, table)
    }
    issued = {n for _, f in frames.values() for n in f["nhs_number"].drop_nulls().to_list()}
    others = sorted(issued)
    changed = 0
    for tables in DEMOGRAPHIC_TABLES.values():
        mine = [(p, t, f) for p, (t, f) in frames.items() if t in tables]
        org, local = tables[0].record
        records = (
            pl.concat(f.select(org, local, "nhs_number") for _, _, f in mine)
            .filter(pl.col("nhs_number").str.len_chars() == 10)
            .unique(subset=[org, local], keep="first")
            .sort(org, local)
        )
        pick = records.filter(pl.Series(rng.random(records.height) < share))
        # Half a number nobody holds, half another person's.
        nobody = rng.random(pick.height) < 0.5
        new = iter(_valid_unissued(rng, int(nobody.sum()), issued))
        replacement = []
        for own, is_nobody in zip(pick["nhs_number"].to_list(), nobody, strict=True):
            other = next(new) if is_nobody else own
            while other == own:
                other = others[int(rng.integers(0, len(others)))]
            replacement.append(other)
        mapping = pick.select(org, local).with_columns(pl.Series("__new", replacement))
        for path, table, frame in mine:
            o, lo = table.record
            out = frame.join(
                mapping.rename({org: o, local: lo}), on=[o, lo], how="left", maintain_order="left"
            )
            out = out.with_columns(pl.coalesce("__new", "nhs_number").alias("nhs_number"))
            out.drop("__new").write_csv(path)
        changed += pick.height
    return changed


def _record_tokens(data_dir: Path) -> pl.DataFrame:
    """Every record linkage saw, with whether it had an NHS-number token."""
    return pl.concat(
        pl.read_parquet(
            pseudonymised_path(data_dir, source, name), columns=["record_token", "nhs_number_token"]
        ).select(
            pl.lit(source).alias("source"),
            "record_token",
            pl.col("nhs_number_token").is_null().alias("no_number"),
        )
        for source, name in RECORD_TABLES.items()
    )


def measure(data_dir: Path, changed: int) -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from stages import STAGES

    seconds = {}
    for name in (
        "ingest:gp", "ingest:hospital", "ingest:social_care", "ingest:opt_outs",
        "ingest:reference", "remove_opt_outs", "pseudonymise", "link",
    ):  # fmt: skip
        started = time.perf_counter()
        STAGES[name](data_dir, "bench")
        seconds[name] = round(time.perf_counter() - started, 1)
    records = _record_tokens(data_dir)
    removed = pl.read_parquet(data_dir / LINKAGE_OPTED_OUT_RECORDS).join(
        records, on=KEY_COLUMNS, how="left"
    )
    truth = truth_records(data_dir, KEY)
    present = records.join(truth, on=KEY_COLUMNS, how="left")
    opted_present = present.filter(pl.col("opted_out"))

    # People who did not opt out but lost a record at ingest: a number mistyped into an
    # opted-out person's makes ingest remove that record, and the opted-out encodings are
    # then their own, so linkage rightly finds their other records (counted apart).
    lost_at_ingest = truth.filter(~pl.col("opted_out")).join(records, on=KEY_COLUMNS, how="anti")

    at_ingest = pl.read_parquet(
        data_dir / OPTED_OUT_RECORDS, columns=["source", "org_code", "local_id"]
    )
    encoded = truth_records(data_dir, KEY).join(
        at_ingest.with_columns(
            record_token=Encoder(KEY).record_tokens(
                at_ingest.select(
                    pl.concat_str(["source", "org_code", "local_id"], separator="|")
                ).to_series()
            )
        ),
        on=KEY_COLUMNS,
        how="semi",
    )
    unfindable = opted_present.join(encoded, on="person_key", how="anti")

    def figures(removed_set: pl.DataFrame) -> dict:
        labelled = removed_set.join(truth, on=KEY_COLUMNS, how="left")
        wrong = labelled.filter(~pl.col("opted_out").fill_null(False))
        follows = wrong.join(lost_at_ingest, on="person_key", how="semi").height
        escaped = opted_present.join(removed_set, on=KEY_COLUMNS, how="anti")
        return {
            "removed": removed_set.height,
            "wrongly_removed": wrong.height - follows,
            "removed_after_ingest_removed_a_record_of_theirs": follows,
            "escaped": escaped.height,
            "escaped_with_a_number": int((~escaped["no_number"]).sum()),
            # Nothing to find them by: no record of theirs went at ingest, so linkage has
            # no encodings of them (the national list holds numbers only).
            "escaped_with_no_encodings_to_match": escaped.join(
                unfindable, on="person_key", how="semi"
            ).height,
        }

    return {
        "records_given_a_wrong_valid_number": changed,
        "opted_out_records_left_after_ingest": opted_present.height,
        "before": figures(removed.filter(pl.col("no_number")).select(KEY_COLUMNS)),
        "after": figures(removed.select(KEY_COLUMNS)),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--wrong-numbers", type=float, default=0.02)
    args = parser.parse_args()
    from joinedup.synth import generate

    work = Path(tempfile.mkdtemp(prefix="opt_out_escapes_"))
    try:
        data_dir = work / "data"
        generate(data_dir, people=args.people, seed=args.seed)
        changed = mistype_numbers(data_dir, args.wrong_numbers, args.seed)
        result = {"people": args.people, "seed": args.seed, "share": args.wrong_numbers}
        print(json.dumps(result | measure(data_dir, changed), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
