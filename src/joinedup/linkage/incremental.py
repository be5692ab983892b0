"""Incremental linkage: score only the new and changed records, keep the persons there are.

A run finds in ``DATA/linked/`` what the previous one left: ``record_person.parquet``,
``model.json``, ``record_fingerprints.parquet`` (a keyed hash of each record's unsealed
encodings) and ``linkage_state.json`` (runs since the last full link, the model
definition and key it ran under, the SHA-256 of the model it wrote). From them:

* **delta** - records whose fingerprint is new (new records) or differs (changed
  encodings: a corrected name, a new address), and records gone from pseudonymised/
  (removed: opted out since, or replaced in a redelivery);
* **scoring** - the previous model, no training; the Linker is built over *all*
  records, so Splink's term-frequency tables are those of the whole current data, as
  a full run would compute them, but every prediction blocking rule gets the extra
  condition ``l.linkage_new = 1 OR r.linkage_new = 1``: only pairs with at least one
  new or changed record are scored;
* **clustering** - connected components over the previous persons (each unchanged
  record stays with its person) and the new edges above the cluster threshold. A new
  record that matches two persons joins them into one (counted in the summary as
  ``merges``); assign_person_ids then gives the merged person the id it shares most
  records with and retires the other, exactly as a full run would;
* **NHS-number split** - on the clusters the new edges touched only: those holding two
  valid numbers have their within-cluster pairs re-scored (same Linker, whole-data term
  frequencies) and are split as in a full run (nhs_number_split.py).

What incremental cannot do, and a full re-link does: re-train the model (m/u and the
term frequencies baked into pairs scored earlier stay those of their run), and split
a person whose bridging record changed or left (the remaining records stay together).
The drift this allows is measured whenever a full link follows incremental ones
(:func:`drift`), and written to ``linked/summary.json``.
"""

from __future__ import annotations

import copy
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from joinedup.atomic import write_parquet, write_text
from joinedup.catalogue import RECORD_TABLES
from joinedup.deidentify.encodings import LINKAGE_ENCODINGS, derive_key
from joinedup.linkage.backend import LinkageBackend
from joinedup.linkage.evaluate import pairwise
from joinedup.linkage.inputs import linkage_input_path
from joinedup.linkage.model import LinkageModel

KEYS = ["source", "record_token"]
FINGERPRINTS = "record_fingerprints.parquet"
# The fingerprints of the records the last full link linked (and, unless a model was
# given, trained on): what the model in use has seen, for the share new since it.
FINGERPRINTS_AT_FULL = "record_fingerprints_at_full_link.parquet"
STATE = "linkage_state.json"
NEW_FLAG = "linkage_new"  # column added to records_<source>: 1 for a record to score

# Used when training.json has no "incremental" section (see docs/linkage.md).
DEFAULT_SCHEDULE = {"relink_every_runs": 12, "relink_when_new_share_above": 0.2}


def record_fingerprints(data_dir: Path, key: bytes) -> pl.DataFrame:
    """(source, record_token, fingerprint) of every record linkage reads this run.

    The stored encodings are sealed with a per-record mask, so the same values look
    different after every pseudonymise run; the fingerprint is a keyed hash of the
    *unsealed* values (the scratch copies write_linkage_inputs made), so it changes
    only when what the model compares changes.
    """
    fkey = derive_key(key, "linkage_fingerprint")
    frames = []
    for source in RECORD_TABLES:
        frame = pl.read_parquet(
            linkage_input_path(data_dir, source), columns=[*KEYS, *LINKAGE_ENCODINGS]
        )
        text = frame.select(
            pl.concat_str(
                [pl.col(c).cast(pl.String).fill_null("\x00") for c in LINKAGE_ENCODINGS],
                separator="\x1f",
            )
        ).to_series()
        digests = [hmac.digest(fkey, t.encode(), "sha256")[:16].hex() for t in text]
        frames.append(frame.select(KEYS).with_columns(fingerprint=pl.Series(digests)))
    return pl.concat(frames).sort(KEYS)


@dataclass(frozen=True)
class Delta:
    new: pl.DataFrame  # source, record_token: not linked before
    changed: pl.DataFrame  # linked before, encodings differ
    removed: pl.DataFrame  # linked before, gone from pseudonymised/
    total: int  # records this run

    @property
    def to_score(self) -> pl.DataFrame:
        return pl.concat([self.new, self.changed])

    @property
    def new_share(self) -> float:
        return (self.new.height + self.changed.height) / max(1, self.total)

    def counts(self) -> dict[str, int]:
        return {
            "new": self.new.height,
            "changed": self.changed.height,
            "removed": self.removed.height,
        }


def delta(current: pl.DataFrame, previous: pl.DataFrame) -> Delta:
    """What changed between the previous run's fingerprints and this run's."""
    joined = current.join(previous, on=KEYS, how="left", suffix="_previous")
    new = joined.filter(pl.col("fingerprint_previous").is_null()).select(KEYS)
    changed = joined.filter(
        pl.col("fingerprint_previous").is_not_null()
        & (pl.col("fingerprint") != pl.col("fingerprint_previous"))
    ).select(KEYS)
    removed = previous.join(current, on=KEYS, how="anti").select(KEYS)
    return Delta(new=new, changed=changed, removed=removed, total=current.height)


def schedule(training: dict[str, Any]) -> dict[str, Any]:
    """training.json's ``incremental`` section (defaults filled in), checked."""
    chosen = DEFAULT_SCHEDULE | training.get("incremental", {})
    every, share = chosen["relink_every_runs"], chosen["relink_when_new_share_above"]
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ValueError(
            "training.json incremental.relink_every_runs must be a whole number of runs "
            f"(0: never on a schedule), got {every!r}"
        )
    if not isinstance(share, int | float) or not 0 < share <= 1:
        raise ValueError(
            "training.json incremental.relink_when_new_share_above must be a share in (0, 1], "
            f"got {share!r}"
        )
    return chosen


def read_state(out: Path) -> dict[str, Any] | None:
    path = out / STATE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a full link rewrites it


def write_state(
    out: Path, fingerprints: pl.DataFrame, state: dict[str, Any], *, full: bool
) -> None:
    if full:
        write_parquet(fingerprints, out / FINGERPRINTS_AT_FULL)
    write_parquet(fingerprints, out / FINGERPRINTS)
    write_text(json.dumps(state, indent=2, sort_keys=True), out / STATE)


def _with_flags(engine: LinkageBackend, flagged: pl.DataFrame) -> None:
    """Rebuild records_<source> with column linkage_new: 1 for the records in ``flagged``."""
    engine.register_frame("linkage_flagged", flagged.select(KEYS))
    for source in RECORD_TABLES:
        table = f"records_{source}"
        others = [c for c in engine.columns(table) if c != NEW_FLAG]
        engine.create_table(
            table,
            f"SELECT {', '.join(f'r.{c}' for c in others)}, "
            f"CASE WHEN f.record_token IS NULL THEN 0 ELSE 1 END AS {NEW_FLAG} "
            f"FROM {table} r LEFT JOIN linkage_flagged f "
            "ON f.source = r.source AND f.record_token = r.record_token",
        )


def _restricted(settings: dict[str, Any], condition: str) -> dict[str, Any]:
    """The model's settings with ``condition`` added to every prediction blocking rule."""
    out = copy.deepcopy(settings)
    out.pop("linker_uid", None)  # a fresh Linker: its cached tables are its own
    rules = []
    for rule in out["blocking_rules_to_generate_predictions"]:
        if isinstance(rule, str):
            rules.append(f"({rule}) AND ({condition})")
        else:
            rules.append(rule | {"blocking_rule": f"({rule['blocking_rule']}) AND ({condition})"})
    out["blocking_rules_to_generate_predictions"] = rules
    return out


def _predict(
    engine: LinkageBackend, model: LinkageModel, condition: str
) -> tuple[str, dict[str, Any] | None]:
    tables = {f"records_{s}": s for s in RECORD_TABLES}
    linker = engine.linker(tables, _restricted(model.settings, condition))
    blocking = copy.deepcopy(getattr(engine, "prediction_blocking", None))
    predictions = linker.inference.predict(threshold_match_probability=model.predict_threshold)
    return predictions.physical_name, blocking


class _Components:
    """Union-find over string nodes; a component is labelled by its smallest node."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def add(self, node: str) -> None:
        self.parent.setdefault(node, node)

    def root(self, node: str) -> str:
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def union(self, a: str, b: str) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            lead, other = min(ra, rb), max(ra, rb)
            self.parent[other] = lead

    def labels(self) -> dict[str, str]:
        return {node: self.root(node) for node in self.parent}


def incremental_clusters(
    engine: LinkageBackend,
    model: LinkageModel,
    previous: pl.DataFrame,
    change: Delta,
) -> tuple[pl.DataFrame, dict[str, Any], Any]:
    """Clusters of every current record: the previous persons plus the new edges.

    ``previous`` is the previous record_person. Returns (source, record_token,
    cluster_id), the figures for the summary, and the NHS-number split's figures.
    """
    started = time.perf_counter()
    scored = change.to_score
    current = pl.concat(
        [engine.frame(f"SELECT source, record_token FROM records_{s}") for s in RECORD_TABLES]
    )
    # Unchanged records keep their person; new and changed ones are placed by their edges.
    kept = (
        previous.join(current, on=KEYS, how="semi")
        .join(scored, on=KEYS, how="anti")
        .select(*KEYS, "person_id")
    )
    _with_flags(engine, scored)
    condition = f'l."{NEW_FLAG}" = 1 OR r."{NEW_FLAG}" = 1'
    predictions, blocking = _predict(engine, model, condition)
    threshold = float(model.cluster_threshold)
    edges = engine.frame(
        f"SELECT source_l, record_token_l, source_r, record_token_r FROM {predictions} "
        f"WHERE match_probability >= {threshold}"
    )
    t_scored = time.perf_counter()

    person_of = {(s, t): p for s, t, p in kept.iter_rows()}

    def node(source: str, token: str) -> str:
        person = person_of.get((source, token))
        return f"p\x1f{person}" if person is not None else f"r\x1f{source}\x1f{token}"

    graph = _Components()
    for source, token in scored.iter_rows():
        graph.add(node(source, token))
    for source_l, token_l, source_r, token_r in edges.iter_rows():
        a, b = node(source_l, token_l), node(source_r, token_r)
        graph.add(a)
        graph.add(b)
        graph.union(a, b)
    labels = graph.labels()
    persons_per_component: dict[str, int] = {}
    for member, label in labels.items():
        if member.startswith("p\x1f"):
            persons_per_component[label] = persons_per_component.get(label, 0) + 1
    merges = {label: n for label, n in persons_per_component.items() if n > 1}

    label_frame = pl.DataFrame(
        {"node": list(labels), "cluster_id": [f"c\x1f{v}" for v in labels.values()]},
        schema={"node": pl.String, "cluster_id": pl.String},
    )
    old = (
        kept.with_columns(node=pl.concat_str(pl.lit("p\x1f"), "person_id"))
        .join(label_frame, on="node", how="left")
        .with_columns(pl.coalesce("cluster_id", "node").alias("cluster_id"))
        .select(*KEYS, "cluster_id")
    )
    fresh = (
        scored.with_columns(
            node=pl.concat_str(pl.lit("r\x1f"), "source", pl.lit("\x1f"), "record_token")
        )
        .join(label_frame, on="node", how="left")
        .select(*KEYS, "cluster_id")
    )
    clusters = pl.concat([old, fresh])

    split: dict[str, Any] | None = None
    if model.split_on_distinct_nhs_numbers:
        touched = clusters.filter(pl.col("cluster_id").str.starts_with("c\x1f"))
        clusters, split = _split_touched(engine, model, clusters, touched)

    figures = {
        "records_scored": scored.height,
        "pairs_scored": None if blocking is None else blocking.get("pairs_to_score"),
        "pairs_scored_estimated_from_record_share": (
            None if blocking is None else blocking.get("estimated_from_record_share")
        ),
        "new_edges_at_cluster_threshold": edges.height,
        "previous_persons_touched": sum(persons_per_component.values()),
        "merges": len(merges),
        "persons_merged_into_others": sum(n - 1 for n in merges.values()),
        "seconds_score": round(t_scored - started, 1),
        "seconds_cluster": round(time.perf_counter() - t_scored, 1),
    }
    return clusters.sort(KEYS), figures, split


def _split_touched(
    engine: LinkageBackend, model: LinkageModel, clusters: pl.DataFrame, touched: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The NHS-number split on the clusters new edges touched; the rest are left alone."""
    from joinedup.linkage.nhs_number_split import _conflicted_records, split_on_nhs_numbers

    _conflicted_records(engine, touched)
    conflicted = engine.frame("SELECT source, record_token FROM split_records")
    if conflicted.is_empty():
        return clusters, {
            "clusters_split": 0,
            "records_in_split_clusters": 0,
            "clusters_made": 0,
            "seconds": 0.0,
        }
    # Pairs within those clusters, old and new alike, scored with whole-data frequencies.
    _with_flags(engine, conflicted)
    predictions, _ = _predict(engine, model, f'l."{NEW_FLAG}" = 1 AND r."{NEW_FLAG}" = 1')
    split_touched, figures = split_on_nhs_numbers(
        engine, predictions, touched, model.cluster_threshold
    )
    rest = clusters.join(touched, on=KEYS, how="anti")
    return pl.concat([rest, split_touched]), figures


def drift(incremental: pl.DataFrame, full: pl.DataFrame) -> dict[str, Any]:
    """How far the incremental result is from the full one on the same records.

    Both are (source, record_token, person_id) after assign_person_ids against the same
    previous record_person: pairwise precision/recall/F1 treat the full link as truth;
    the share differing counts records whose person_id is not the same in both.
    """
    both = incremental.join(full, on=KEYS, suffix="_full")
    figures = pairwise(both, "person_id", "person_id_full")
    differs = both.filter(pl.col("person_id") != pl.col("person_id_full")).height
    return {
        "records_compared": both.height,
        "precision": figures["precision"],
        "recall": figures["recall"],
        "f1": figures["f1"],
        "pairs_incremental": figures["predicted_pairs"],
        "pairs_full": figures["true_pairs"],
        "records_with_other_person_share": round(differs / max(1, both.height), 5),
    }
