"""Clusters holding two different valid NHS numbers, split so that each holds one.

Splink clusters by connected components: one pair above the threshold joins two
groups whatever else they hold. Twins, and people of one household, share a date of
birth or a postcode and a surname; in a hospital feed with no names, one record of
one twin can score above the threshold against the other twin's GP record, and the
two people become one. Their NHS numbers say otherwise: a keying error in one digit,
or two adjacent digits swapped, always fails the modulus 11 check (ingest blanks an
invalid number), so two different *valid* numbers in one cluster are two people.

Within each cluster holding more than one number, the cluster's pairs above the
threshold are taken again in order of match weight (heaviest first) and two groups
are joined only if together they hold at most one number; a record with no number
goes to the group it matches best. Clusters with one number or none are untouched,
so the cost is a few thousand pairs however large the population.

What this cannot see: a wrong number that is still valid (a tracing error; ingest
cannot catch it). Such a record is split from its person, and the count of clusters
split is in ``linked/summary.json`` (``nhs_number_split``) to watch for it. Turn it
off with ``clustering.split_on_distinct_nhs_numbers: false`` in linkage/training.json.
"""

from __future__ import annotations

import time
from typing import Any

import polars as pl

from joinedup.linkage.backend import LinkageBackend, numbered_records_sql

KEYS = ["source", "record_token"]


def _conflicted_records(backend: LinkageBackend, clusters: pl.DataFrame) -> None:
    """Table ``split_records``: every record of a cluster holding two or more numbers."""
    backend.register_frame("split_clusters", clusters)
    union = numbered_records_sql()
    backend.create_table(
        "split_records",
        f"""
        SELECT c.source, c.record_token, c.cluster_id, r.nhs_number_token
        FROM split_clusters c
        JOIN ({union}) r ON r.source = c.source AND r.record_token = c.record_token
        WHERE c.cluster_id IN (
            SELECT c2.cluster_id
            FROM split_clusters c2
            JOIN ({union}) r2 ON r2.source = c2.source AND r2.record_token = c2.record_token
            WHERE r2.nhs_number_token IS NOT NULL
            GROUP BY c2.cluster_id
            HAVING count(DISTINCT r2.nhs_number_token) > 1
        )
        """,
    )


def _groups(records: pl.DataFrame, pairs: pl.DataFrame) -> dict[tuple[str, str], str]:
    """Each record's group: pairs joined heaviest first while a group holds one number."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}
    number: dict[tuple[str, str], str | None] = {}
    for source, token, nhs in records.select(*KEYS, "nhs_number_token").iter_rows():
        parent[(source, token)] = (source, token)
        number[(source, token)] = nhs

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    ordered = pairs.sort(
        ["match_weight", "source_l", "record_token_l", "source_r", "record_token_r"],
        descending=[True, False, False, False, False],
    )
    for source_l, token_l, source_r, token_r, _ in ordered.iter_rows():
        a, b = root((source_l, token_l)), root((source_r, token_r))
        if a == b or (number[a] and number[b] and number[a] != number[b]):
            continue
        # The smaller key leads, so the labels do not depend on the order of the pairs.
        lead, other = min(a, b), max(a, b)
        parent[other] = lead
        number[lead] = number[lead] or number[other]
    return {node: "|".join(root(node)) for node in parent}


def split_on_nhs_numbers(
    backend: LinkageBackend, predictions: str, clusters: pl.DataFrame, threshold: float
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``clusters`` with every cluster holding two or more valid NHS numbers split.

    ``predictions`` is the name of Splink's scored pairs table; ``threshold`` the match
    probability the clusters were cut at. Returns the clusters and the figures for the
    linkage summary.
    """
    started = time.perf_counter()
    _conflicted_records(backend, clusters)
    records = backend.frame("SELECT * FROM split_records")
    if records.is_empty():
        none = {"clusters_split": 0, "records_in_split_clusters": 0, "clusters_made": 0}
        return clusters, none | {"seconds": round(time.perf_counter() - started, 1)}
    pairs = backend.frame(
        f"""
        SELECT p.source_l, p.record_token_l, p.source_r, p.record_token_r, p.match_weight
        FROM {predictions} p
        JOIN split_records a ON a.source = p.source_l AND a.record_token = p.record_token_l
        JOIN split_records b ON b.source = p.source_r AND b.record_token = p.record_token_r
        WHERE p.match_probability >= {float(threshold)} AND a.cluster_id = b.cluster_id
        """
    )
    groups = _groups(records, pairs)
    relabelled = records.join(
        pl.DataFrame(
            [(s, t, g) for (s, t), g in groups.items()],
            schema=[*KEYS, "group"],
            orient="row",
        ),
        on=KEYS,
    ).select(*KEYS, pl.concat_str("cluster_id", pl.lit(":"), "group").alias("split_cluster_id"))
    out = (
        clusters.join(relabelled, on=KEYS, how="left")
        .with_columns(pl.coalesce("split_cluster_id", "cluster_id").alias("cluster_id"))
        .drop("split_cluster_id")
    )
    figures = {
        "clusters_split": records["cluster_id"].n_unique(),
        "records_in_split_clusters": records.height,
        "clusters_made": relabelled["split_cluster_id"].n_unique(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return out, figures
