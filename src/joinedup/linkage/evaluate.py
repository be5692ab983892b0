"""Score linkage against the generator's truth (synthetic populations only).

Pairwise figures count pairs of records placed in the same person: a true
positive is a pair that is in one predicted person and one true person.
Opted-out people's records that survive linkage count as errors in the
opt-out figures, not in precision and recall, which are computed over the
records linkage actually received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from joinedup.atomic import write_text
from joinedup.catalogue import LINKAGE_EVALUATION, RECORD_PERSON, RECORD_TABLES, pseudonymised_path
from joinedup.truth import truth_records


def _pairs(groups: pl.Series) -> int:
    n = groups.value_counts()["count"].cast(pl.Int64)
    return int((n * (n - 1) // 2).sum())


def pairwise(records: pl.DataFrame, predicted: str, actual: str = "person_key") -> dict[str, float]:
    """Pairwise precision, recall and F1 of grouping ``predicted`` against ``actual``."""
    both = records.select(pl.concat_str([predicted, actual], separator="\x1f")).to_series()
    tp = _pairs(both)
    pp = _pairs(records[predicted])
    ap = _pairs(records[actual])
    precision = tp / pp if pp else 1.0
    recall = tp / ap if ap else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "true_pairs": ap,
        "predicted_pairs": pp,
    }


def _records_received(data_dir: Path) -> pl.DataFrame:
    frames = [
        pl.read_parquet(
            pseudonymised_path(data_dir, source, table),
            columns=["source", "record_token", "nhs_number_token"],
        )
        for source, table in RECORD_TABLES.items()
    ]
    return pl.concat(frames)


def evaluate(data_dir: Path, key: bytes) -> dict[str, Any]:
    """Linkage quality of ``DATA/linked/record_person.parquet`` and of simple baselines."""
    data_dir = Path(data_dir)
    truth = truth_records(data_dir, key)
    received = _records_received(data_dir).join(truth, on=["source", "record_token"], how="left")
    if received["person_key"].null_count():
        raise ValueError(
            "pseudonymised records not in truth: was this data made by `joinedup synth`?"
        )
    record_person = pl.read_parquet(data_dir / RECORD_PERSON)
    scored = received.join(record_person, on=["source", "record_token"], how="inner")
    clean = scored.filter(~pl.col("opted_out"))

    # Baseline: records with the same valid NHS number are one person; others stand alone.
    nhs_only = clean.with_columns(
        nhs_group=pl.coalesce("nhs_number_token", pl.concat_str([pl.lit("r|"), "record_token"]))
    )
    no_nhs = clean.filter(pl.col("nhs_number_token").is_null())
    # Recall for records without an NHS number: share of their true partner pairs recovered.
    partners = clean.join(
        no_nhs.select("record_token", "person_key", "person_id"), on="person_key", suffix="_x"
    )
    partners = partners.filter(pl.col("record_token") != pl.col("record_token_x"))

    opted_truth = truth.filter(pl.col("opted_out"))
    surviving_opted = record_person.join(opted_truth, on=["source", "record_token"], how="inner")
    others_total = truth.filter(~pl.col("opted_out")).height
    others_kept = scored.filter(~pl.col("opted_out")).height
    true_persons = clean["person_key"].n_unique()
    predicted_persons = clean["person_id"].n_unique()
    exact_clusters = (
        clean.group_by("person_id")
        .agg(pl.col("person_key").n_unique().alias("k"), pl.col("person_key").first())
        .filter(pl.col("k") == 1)
        .join(
            clean.group_by("person_key").agg(pl.col("person_id").n_unique().alias("j")),
            on="person_key",
        )
        .filter(pl.col("j") == 1)
        .height
    )
    return {
        "records_scored": clean.height,
        "joinedup": pairwise(clean, "person_id"),
        "nhs_number_only": pairwise(nhs_only, "nhs_group"),
        "records_without_nhs_number": no_nhs.height,
        "recall_records_without_nhs_number": round(
            (partners["person_id"] == partners["person_id_x"]).mean() if partners.height else 1.0, 5
        ),
        "persons_true": true_persons,
        "persons_predicted": predicted_persons,
        "clusters_exactly_right_share": round(exact_clusters / max(1, true_persons), 5),
        "opt_out": {
            "opted_out_records_in_truth": opted_truth.height,
            "opted_out_records_surviving": surviving_opted.height,
            "removed_share": round(1 - surviving_opted.height / max(1, opted_truth.height), 5),
            "other_records_removed_share": round(1 - others_kept / max(1, others_total), 5),
        },
    }


def write_evaluation(data_dir: Path, key: bytes) -> tuple[dict[str, Any], Path]:
    result = evaluate(data_dir, key)
    path = Path(data_dir) / LINKAGE_EVALUATION
    write_text(json.dumps(result, indent=2), path)
    return result, path


def format_table(result: dict[str, Any]) -> str:
    """The evaluation as a small readable table."""
    rows = [("method", "precision", "recall", "F1")]
    for name in ("joinedup", "nhs_number_only"):
        r = result[name]
        rows.append((name, f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}"))
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)) for r in rows]
    o = result["opt_out"]
    lines += [
        "",
        f"records scored: {result['records_scored']:,}; without NHS number: "
        f"{result['records_without_nhs_number']:,} "
        f"(recall {result['recall_records_without_nhs_number']:.4f})",
        f"persons: true {result['persons_true']:,}, predicted {result['persons_predicted']:,}; "
        f"clusters exactly right: {result['clusters_exactly_right_share']:.2%}",
        f"opt-outs: {o['removed_share']:.2%} of opted-out people's records removed; "
        f"{o['other_records_removed_share']:.3%} of other records removed",
    ]
    return "\n".join(lines)
