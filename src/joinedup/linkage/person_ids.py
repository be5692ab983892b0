"""Stable person ids: a new run's clusters inherit the ids of the previous run's persons.

Rules (deterministic, so a re-run of the same data gives the same ids):

1. For every (new cluster, previous person_id) pair, count the records they share.
2. Take pairs in order of most shared records (ties: smaller previous id first, then
   smaller cluster key) and give the previous id to the cluster if neither the id
   nor the cluster is already taken. So when a person splits, the largest part keeps
   the id; when persons merge, the merged cluster keeps the id it shares most with.
3. Every other cluster gets a fresh id. Ids that lost out in a merge are retired: the
   register of issued ids (``person_ids.parquet``) makes sure no id is ever issued to
   anyone else.

A person_id is a keyed hash of the cluster's smallest record token (re-hashed if it
collides with an issued id): it carries no information about the person.

Crash safety: ``link`` writes ``record_person.parquet`` before the register, and every
id in the previous ``record_person`` counts as issued whether or not the register
lists it. So a run killed between the two writes leaves a register that is behind,
never ahead: the re-run inherits the ids the killed run wrote (same clusters, same
ids) and the register catches up. (A register ahead of ``record_person`` would hold
ids issued to clusters that the re-run then has to re-hash: different ids from an
uninterrupted run.)
"""

from __future__ import annotations

import hmac

import polars as pl

from joinedup.deidentify.encodings import derive_key


def _fresh_id(key: bytes, seed: str, taken: set[str]) -> str:
    counter = 0
    while True:
        message = seed if counter == 0 else f"{seed}|{counter}"
        candidate = hmac.digest(key, message.encode(), "sha256").hex()[:16]
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        counter += 1


def assign_person_ids(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None,
    issued: set[str],
    key: bytes,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """clusters: source, record_token, cluster_id -> (source, record_token, person_id), stats.

    ``issued`` is the set of every person_id handed out so far; it is updated, also
    with every id of ``previous`` (see the module docstring: crash safety).
    """
    if previous is not None:
        issued.update(previous["person_id"].drop_nulls().to_list())
    cluster_key = clusters.group_by("cluster_id").agg(
        pl.col("record_token").min().alias("cluster_key"), pl.len().alias("size")
    )
    mapping: dict[str, str] = {}
    if previous is not None and previous.height:
        shared = (
            clusters.join(previous, on=["source", "record_token"], how="inner")
            .group_by("cluster_id", "person_id")
            .agg(pl.len().alias("shared"))
            .join(cluster_key, on="cluster_id")
            .sort(["shared", "person_id", "cluster_key"], descending=[True, False, False])
        )
        used: set[str] = set()
        for cluster_id, person_id in shared.select("cluster_id", "person_id").iter_rows():
            if cluster_id not in mapping and person_id not in used:
                mapping[cluster_id] = person_id
                used.add(person_id)
    id_key = derive_key(key, "person_id")
    taken = set(issued) | set(mapping.values())
    fresh = 0
    ids = []
    for cluster_id, seed in (
        cluster_key.sort("cluster_key").select("cluster_id", "cluster_key").iter_rows()
    ):
        if cluster_id not in mapping:
            mapping[cluster_id] = _fresh_id(id_key, seed, taken)
            fresh += 1
        ids.append((cluster_id, mapping[cluster_id]))
    issued.update(taken)
    table = pl.DataFrame(
        ids,
        schema={"cluster_id": clusters["cluster_id"].dtype, "person_id": pl.String},
        orient="row",
    )
    out = clusters.join(table, on="cluster_id").select("source", "record_token", "person_id")
    kept = len(ids) - fresh
    return out.sort("source", "record_token"), {
        "persons": len(ids),
        "ids_kept": kept,
        "ids_new": fresh,
    }
