"""The generator's linkage truth, keyed the way the pipeline keys records.

Only evaluation, tests and benchmarks read ``DATA/truth/records.csv``; the
pipeline never does. Truth records carry raw local ids, so their
``record_token`` is recomputed here with the run's key to compare like with
like.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from joinedup.deidentify.encodings import Encoder

TRUTH_FILE = "truth/records.csv"


def truth_records(data_dir: Path, key: bytes) -> pl.DataFrame:
    """source, record_token, person_key, opted_out for every record the generator wrote."""
    path = Path(data_dir) / TRUTH_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: truth exists only for populations made by `joinedup synth`"
        )
    truth = pl.read_csv(path, schema_overrides={"opted_out": pl.Boolean}, infer_schema=False)
    messages = pl.concat_str(["source", "org_code", "local_id"], separator="|")
    tokens = Encoder(key).record_tokens(truth.select(messages.alias("m"))["m"])
    return truth.select(
        "source",
        tokens.alias("record_token"),
        "person_key",
        pl.col("opted_out").cast(pl.Boolean),
    )


def record_person_from_truth(data_dir: Path, key: bytes) -> pl.DataFrame:
    """A record_person table as perfect linkage would write it (opted-out people removed).

    Used to check downstream models independently of linkage quality. The
    person_id is a hash of the truth key, so it carries no information.
    """
    t = truth_records(data_dir, key).filter(~pl.col("opted_out"))
    ids = [hashlib.sha256(k.encode()).hexdigest()[:16] for k in t["person_key"].to_list()]
    return t.select("source", "record_token").with_columns(person_id=pl.Series(ids))
