"""The linked gate: the record -> person map linkage wrote, before the warehouse is built on it.

What it checks, and why:

* ``linked.record_person``: one person id per surviving source record, from the person
  sources only, with exactly the columns linkage writes;
* ``linked.formats``: record tokens and person ids are in their formats
  (:mod:`joinedup.quality.formats`), so no identifier can pass as one;
* ``linked.coverage``: every pseudonymised record was linked or removed for opt-out (a
  missing one drops the person's care from every figure), and enough of each source
  links to another source (near none: tokens made with different keys, a broken
  blocking rule);
* ``linked.persons``: cluster sizes - a cluster of dozens of records is different people
  joined by over-linking.

When the gate runs is the DAG's to say (``dags/joinedup_link_and_build.py``, task
``quality_gates_inputs``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl

from joinedup.catalogue import (
    LINKAGE_OPTED_OUT_RECORDS,
    PERSON_SOURCES,
    RECORD_PERSON,
    RECORD_TABLES,
    pseudonymised_path,
)
from joinedup.quality.batches import GateBatches, require
from joinedup.quality.formats import PERSON_ID, TOKEN, FormatScan, formats_suite
from joinedup.quality.rules import (
    CRITICAL,
    WARNING,
    Suite,
    banded,
    between,
    exact_columns,
    expect,
    in_set,
    not_empty,
    not_null,
    unique,
)

# Cluster sizes: a person has a few records (moves of practice, several hospitals); a
# cluster of dozens is records of different people joined by over-linking.
CLUSTER_SIZE_CRITICAL = 15
CLUSTER_SIZE_WARNING = 6
# Share of a source's records linked to a record of another source. Near 0, the sources
# did not link at all (e.g. tokens made with different keys).
CROSS_SOURCE_SHARE_CRITICAL = (0.05, 1.0)
CROSS_SOURCE_SHARE_WARNING = (0.2, 1.0)

LINKED_FORMATS: dict[str, dict[str, str]] = {
    "record_person": {"record_token": TOKEN, "person_id": PERSON_ID},
}


# --- suites -------------------------------------------------------------------------------------


def suites() -> list[Suite]:
    return [
        Suite(
            "linked.record_person",
            "linked",
            f"{RECORD_PERSON}: every surviving source record and its person.",
            [
                exact_columns(["source", "record_token", "person_id"]),
                not_empty(),
                in_set("source", PERSON_SOURCES, CRITICAL, "person sources only"),
                not_null("record_token", "every row is a source record"),
                unique(["source", "record_token"], "each record has exactly one person_id"),
                not_null("person_id", "each record has exactly one person_id"),
            ],
        ),
        formats_suite("linked", LINKED_FORMATS),
        Suite(
            "linked.coverage",
            "linked",
            "Per source: records pseudonymised, linked, removed for opt-out (matched to an "
            "opted-out person's encodings), missing and unknown, and the share of linked "
            "records whose person also has a record in another source.",
            [
                between(
                    "records_missing",
                    0,
                    0,
                    CRITICAL,
                    "every pseudonymised record is linked or removed for opt-out; a missing "
                    "one drops the person's care from every figure",
                ),
                between(
                    "records_unknown",
                    0,
                    0,
                    CRITICAL,
                    "record_person names only records that were pseudonymised in this run",
                ),
                *banded(
                    "linked_across_sources_share",
                    CROSS_SOURCE_SHARE_CRITICAL,
                    "almost no cross-source links means the sources did not link (tokens "
                    "from different keys, a broken blocking rule)",
                    CROSS_SOURCE_SHARE_WARNING,
                    "fewer cross-source links than usual: review the linkage charts",
                ),
            ],
            index_columns=["source", "records_pseudonymised", "records_linked"],
        ),
        Suite(
            "linked.persons",
            "linked",
            "One row per person: how many records (cluster size) from how many sources.",
            [
                not_empty(),
                expect(
                    "ExpectColumnMaxToBeBetween",
                    CRITICAL,
                    "a cluster this large is different people joined by over-linking",
                    column="records",
                    min_value=1,
                    max_value=CLUSTER_SIZE_CRITICAL,
                ),
                between(
                    "records",
                    1,
                    CLUSTER_SIZE_WARNING,
                    WARNING,
                    "more than a handful of records for one person is rare; review the "
                    "largest clusters in the linkage charts",
                    mostly=0.999,
                ),
                expect(
                    "ExpectColumnMeanToBeBetween",
                    WARNING,
                    "records per person: near 1, linkage found little; far above, it over-linked",
                    column="records",
                    min_value=1.0,
                    max_value=3.0,
                ),
                between(
                    "sources", 1, 3, CRITICAL, "a person has records from one to three sources"
                ),
            ],
        ),
    ]


# --- batches ------------------------------------------------------------------------------------


def _record_person_path(data_dir: Path) -> Path:
    return require(Path(data_dir) / RECORD_PERSON, "linkage")


def record_person(data_dir: Path) -> pl.DataFrame:
    """Linkage's record -> person map (the marts gate reconciles with it too)."""
    return pl.read_parquet(_record_person_path(data_dir))


def _pseudonymised_records(data_dir: Path) -> pl.DataFrame:
    frames = [
        pl.read_parquet(
            require(pseudonymised_path(data_dir, source, table), "pseudonymise"),
            columns=["record_token"],
        ).with_columns(pl.lit(source).alias("source"))
        for source, table in RECORD_TABLES.items()
    ]
    return pl.concat(frames).select("source", "record_token")


def _removed_by_linkage(data_dir: Path) -> pl.DataFrame:
    """Records linkage removed because they matched an opted-out person (source, record_token)."""
    path = Path(data_dir) / LINKAGE_OPTED_OUT_RECORDS
    if not path.exists():
        return pl.DataFrame(schema={"source": pl.String, "record_token": pl.String})
    return pl.read_parquet(path, columns=["source", "record_token"])


def persons(record_person: pl.DataFrame) -> pl.DataFrame:
    """One row per person: records, distinct sources, and records from each source."""
    sources = list(RECORD_TABLES)
    per_source = [f"{s}_records" for s in sources]
    # Counting sources from the per-source counts spares a distinct count per person; it
    # holds only while every source is a known one (the record_person suite checks that).
    known = bool(record_person["source"].is_in(sources).fill_null(False).all())
    frame = (
        record_person.lazy()
        .with_columns(
            (pl.col("source") == s).cast(pl.UInt32).alias(c)
            for s, c in zip(sources, per_source, strict=True)
        )
        .group_by("person_id")
        .agg(
            pl.len().alias("records"),
            *([] if known else [pl.col("source").n_unique().alias("sources")]),
            *[pl.col(c).sum() for c in per_source],
        )
    )
    if known:
        frame = frame.with_columns(
            pl.sum_horizontal(pl.col(c) > 0 for c in per_source).cast(pl.UInt32).alias("sources")
        )
    return frame.select("person_id", "records", "sources", *per_source).sort("person_id").collect()


def coverage(
    data_dir: Path, linked: pl.DataFrame | None = None, people: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per source: where every pseudonymised record went, and how many link across sources.

    ``linked`` is ``record_person`` and ``people`` its :func:`persons`, when the caller has
    them already.
    """
    linked = record_person(data_dir) if linked is None else linked
    people = persons(linked) if people is None else people
    keys = ["source", "record_token"]
    pseudonymised = _pseudonymised_records(data_dir).lazy()
    removed = _removed_by_linkage(data_dir).lazy()
    links = linked.lazy().select(keys)

    def per_source(frame: pl.LazyFrame, name: str) -> pl.LazyFrame:
        return frame.group_by("source").agg(pl.len().alias(name))

    # A person's records are all across sources or none are: the share of a source's
    # linked records is its records held by people with more than one source.
    identified = people.lazy().filter(pl.col("person_id").is_not_null())
    several = pl.col("sources") > 1
    totals = (
        identified.select(
            *[pl.col(f"{s}_records").sum().alias(f"{s}:all") for s in RECORD_TABLES],
            *[
                pl.col(f"{s}_records").filter(several).sum().alias(f"{s}:across")
                for s in RECORD_TABLES
            ],
        )
        .collect()
        .row(0, named=True)
    )
    counted = pl.collect_all(
        [
            per_source(pseudonymised, "records_pseudonymised"),
            per_source(links, "records_linked"),
            per_source(removed, "records_removed_for_opt_out"),
            per_source(
                pseudonymised.join(links, on=keys, how="anti").join(removed, on=keys, how="anti"),
                "records_missing",
            ),
            per_source(links.join(pseudonymised, on=keys, how="anti"), "records_unknown"),
        ]
    )
    out = pl.DataFrame(
        {
            "source": list(RECORD_TABLES),
            "linked_across_sources_share": [
                round(totals[f"{s}:across"] / totals[f"{s}:all"], 6) if totals[f"{s}:all"] else None
                for s in RECORD_TABLES
            ],
        },
        schema={"source": pl.String, "linked_across_sources_share": pl.Float64},
    )
    for frame in counted:
        out = out.join(frame, on="source", how="left")
    counts = [c for c in out.columns if c.startswith("records_")]
    return out.select(
        "source", pl.col(counts).fill_null(0).cast(pl.Int64), "linked_across_sources_share"
    )


def batches(data_dir: Path, run_id: str) -> GateBatches:
    """record_person (out-of-format values masked), its format scan, coverage and persons.
    ``run_id`` is not needed: the zone holds one run's linkage."""
    # record_person is read once per gate; persons serve their suite and the coverage.
    linked = cache(lambda: record_person(data_dir))
    people = cache(lambda: persons(linked()))
    formats = FormatScan(lambda: {"record_person": _record_person_path(data_dir)}, LINKED_FORMATS)
    return GateBatches(
        {
            "linked.record_person": lambda: formats.masked("record_person", linked().lazy()),
            "linked.formats": formats,
            "linked.coverage": lambda: coverage(data_dir, linked(), people()),
            "linked.persons": people,
        }
    )
