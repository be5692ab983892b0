"""Linkage accuracy side by side on one synthetic population.

* joinedup: Splink on keyed encodings (what the pipeline wrote to linked/);
* plaintext Splink: the same population's cleared identifiers (inside the
  landing zone: benchmark only), Splink's own string comparisons (Jaro-Winkler,
  date-of-birth and postcode comparisons), comparable blocking and training,
  clustered at the same threshold;
* NHS number only: records with the same valid number are one person;
* exact rule: same given name, family name, date of birth and postcode.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl
from stages import KEY

from joinedup.catalogue import PERSON_SOURCES, RECORD_PERSON, cleared_path
from joinedup.contracts import DEMOGRAPHIC_TABLES
from joinedup.deidentify.encodings import Encoder
from joinedup.ingest.records import source_records
from joinedup.linkage.evaluate import evaluate, pairwise
from joinedup.linkage.model import load_model
from joinedup.truth import truth_records


def plaintext_records(data_dir: Path) -> pl.DataFrame:
    tables = {}
    frames = []
    for source in PERSON_SOURCES:
        tables = {
            t.name: pl.read_parquet(cleared_path(data_dir, t)) for t in DEMOGRAPHIC_TABLES[source]
        }
        frames.append(source_records(source, tables))
    records = pl.concat(frames, how="diagonal_relaxed")
    messages = records.select(pl.concat_str(["source", "org_code", "local_id"], separator="|"))
    token = Encoder(KEY).record_tokens(messages.to_series())
    return records.with_columns(record_token=token).select(
        "source", "record_token", "nhs_number", "given_name", "family_name",
        "date_of_birth", "postcode", "sex",
    )  # fmt: skip


def plaintext_splink(records: pl.DataFrame) -> pl.DataFrame:
    import splink.comparison_library as cl
    from splink import block_on

    comparisons = [
        cl.ExactMatch("nhs_number"),
        cl.JaroWinklerAtThresholds("given_name", [0.92, 0.8]).configure(
            term_frequency_adjustments=True
        ),
        cl.JaroWinklerAtThresholds("family_name", [0.92, 0.8]).configure(
            term_frequency_adjustments=True
        ),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=False),
        cl.PostcodeComparison("postcode"),
        cl.ExactMatch("sex"),
    ]
    rules = [
        block_on("nhs_number"),
        block_on("date_of_birth", "substr(family_name, 1, 2)"),
        block_on("date_of_birth", "substr(given_name, 1, 2)"),
        block_on("date_of_birth", "substr(postcode, 1, 3)"),
        block_on("given_name", "family_name", "year(date_of_birth)"),
        block_on("postcode", "substr(given_name, 1, 2)"),
    ]
    return plaintext_clusters(records, comparisons, rules, rules[3])


def plaintext_clusters(
    records: pl.DataFrame, comparisons: list[Any], rules: list[Any], date_and_area: Any
) -> pl.DataFrame:
    """Plaintext Splink over ``records`` (one dataset per source) with these comparisons
    and prediction rules, trained, predicted and clustered as :func:`train_and_cluster`."""
    import duckdb
    from splink import DuckDBAPI, Linker, SettingsCreator

    con = duckdb.connect()
    sources = records["source"].unique().sort().to_list()
    for source in sources:
        frame = records.filter(pl.col("source") == source).to_arrow()  # noqa: F841
        con.execute(f"CREATE TABLE plain_{source} AS SELECT * FROM frame")
    db = DuckDBAPI(con)
    settings = SettingsCreator(
        link_type="link_and_dedupe",
        unique_id_column_name="record_token",
        source_dataset_column_name="source",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
    )
    linker = Linker(
        [db.register(f"plain_{s}", dataset_display_name=s) for s in sources],
        settings,
        log_level=logging.WARNING,
    )
    return train_and_cluster(linker, con, date_and_area)


def train_and_cluster(linker: Any, con: Any, date_and_area: Any) -> pl.DataFrame:
    """A plaintext linker trained as joinedup trains (training.json), predicted, clustered.

    The prior and the first EM session on the NHS number, the second on ``date_and_area``
    (date of birth and an area of the postcode); thresholds from training.json.
    """
    from splink import block_on

    model = load_model()
    t = model.training
    linker.training.estimate_probability_two_random_records_match(
        [block_on("nhs_number")], recall=t["prior"]["recall"]
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=t["u"]["max_pairs"], seed=t["u"]["seed"]
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("nhs_number"))
    linker.training.estimate_parameters_using_expectation_maximisation(date_and_area)
    pred = linker.inference.predict(threshold_match_probability=model.predict_threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=model.cluster_threshold
    )
    # DuckDB 2 gives a RecordBatchReader; read it into a table (schema kept when empty).
    return pl.from_arrow(
        con.sql(
            f"SELECT source, record_token, CAST(cluster_id AS VARCHAR) AS cluster_id "
            f"FROM {clusters.physical_name}"
        )
        .arrow()
        .read_all()
    )


def compare(data_dir: Path) -> dict[str, Any]:
    data_dir = Path(data_dir)
    ours = evaluate(data_dir, KEY)
    truth = truth_records(data_dir, KEY).filter(~pl.col("opted_out"))
    plain = plaintext_records(data_dir).join(truth, on=["source", "record_token"], how="inner")
    # Score every method on the same records: those joinedup linked.
    linked = pl.read_parquet(data_dir / RECORD_PERSON)
    plain = plain.join(linked.select("source", "record_token"), on=["source", "record_token"])
    splink_plain = plaintext_splink(plain.drop("person_key", "opted_out")).join(
        plain.select("source", "record_token", "person_key"), on=["source", "record_token"]
    )
    exact_key = pl.concat_str(
        ["given_name", "family_name", pl.col("date_of_birth").cast(pl.String), "postcode"],
        separator="|",
    )
    exact = plain.with_columns(group=pl.coalesce(exact_key, pl.col("record_token")))
    no_nhs = plain.filter(pl.col("nhs_number").is_null())["record_token"]
    splink_no_nhs = _recall_without_nhs(splink_plain, no_nhs, "cluster_id")
    return {
        "records": plain.height,
        "joinedup": ours["joinedup"] | {"recall_no_nhs": ours["recall_records_without_nhs_number"]},
        "plaintext_splink": pairwise(splink_plain, "cluster_id") | {"recall_no_nhs": splink_no_nhs},
        "nhs_number_only": ours["nhs_number_only"],
        "exact_name_dob_postcode": pairwise(exact, "group")
        | {"recall_no_nhs": _recall_without_nhs(exact, no_nhs, "group")},
    }


def _recall_without_nhs(frame: pl.DataFrame, tokens: pl.Series, group: str) -> float:
    """Of true pairs involving a record with no NHS number, the share put together."""
    x = frame.filter(pl.col("record_token").is_in(tokens.implode()))
    pairs = frame.join(x.select("record_token", "person_key", group), on="person_key", suffix="_x")
    pairs = pairs.filter(pl.col("record_token") != pl.col("record_token_x"))
    return round((pairs[group] == pairs[f"{group}_x"]).mean() or 0.0, 5) if pairs.height else 1.0
