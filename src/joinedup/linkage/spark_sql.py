"""The linkage model's SQL in Spark's dialect.

``linkage/settings.json`` and ``training.json`` are written once, in DuckDB SQL,
and stay the one definition of the model: comparisons, levels, Dice thresholds,
blocking rules. For the Spark backend every SQL string in them is transpiled
with sqlglot (DuckDB's ``"quoted"`` identifiers become Spark's backticks).

The one construct the dialects do not share is the Bloom filter. DuckDB holds
it as a ``BIT`` string, and the Dice levels count the bits two filters share
with ``bit_count(a & b)``. Spark has no bit strings, so there a filter is an
array of :data:`BLOOM_WORDS` signed 64-bit words (most significant first) and
``bit_count(a & b)`` becomes the sum of the word-wise popcounts. Nothing else
in a condition changes, so each Dice level keeps its threshold from
settings.json; ``tests/test_linkage_spark.py`` computes Dice for the same pairs
in both engines and requires them to be equal.
"""

from __future__ import annotations

import copy
from typing import Any

import sqlglot
from sqlglot import exp

from joinedup.deidentify.encodings import BLOOM_BITS

WORD_BITS = 64
BLOOM_WORDS = BLOOM_BITS // WORD_BITS


def bloom_words_sql(column: str) -> str:
    """Spark SQL turning a '0'/'1' Bloom filter string into its array of 64-bit words.

    ``conv(..., 2, -10)`` reads each 64-character slice as a signed number, so a
    word with its top bit set becomes a negative BIGINT rather than overflowing.
    """
    words = ", ".join(
        f"CAST(conv(substring({column}, {i * WORD_BITS + 1}, {WORD_BITS}), 2, -10) AS BIGINT)"
        for i in range(BLOOM_WORDS)
    )
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE array({words}) END"


def bloom_bits_sql(column: str) -> str:
    """Spark SQL: the number of bits set in a '0'/'1' Bloom filter string."""
    return f"length(replace({column}, '0', ''))"


def _and_popcount(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    left, right = a.sql(dialect="spark"), b.sql(dialect="spark")
    terms = " + ".join(f"bit_count({left}[{i}] & {right}[{i}])" for i in range(BLOOM_WORDS))
    return exp.Paren(this=sqlglot.parse_one(terms, read="spark"))


def _rewrite_bit_count_of_and(node: exp.Expression) -> exp.Expression:
    if (
        isinstance(node, exp.Func)
        and node.name.lower() == "bit_count"
        and len(node.expressions) == 1
        and isinstance(node.expressions[0], exp.BitwiseAnd)
    ):
        both = node.expressions[0]
        return _and_popcount(both.this, both.expression)
    return node


def to_spark(sql: str) -> str:
    """One condition or blocking rule of the model, from DuckDB SQL to Spark SQL."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.ParseError as exc:
        raise ValueError(f"linkage model SQL is not valid DuckDB SQL: {sql!r}: {exc}") from None
    return tree.transform(_rewrite_bit_count_of_and).sql(dialect="spark")


def _is_else(level: dict[str, Any]) -> bool:
    return str(level.get("sql_condition", "")).strip().upper() == "ELSE"


def spark_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A Splink settings dictionary (DuckDB SQL) with every SQL string in Spark SQL."""
    out = copy.deepcopy(settings)
    out.pop("sql_dialect", None)  # saved models name their dialect; Splink takes the backend's
    rules = []
    for rule in out["blocking_rules_to_generate_predictions"]:
        if isinstance(rule, str):
            rules.append(to_spark(rule))
        else:
            rules.append(
                {**rule, "blocking_rule": to_spark(rule["blocking_rule"]), "sql_dialect": "spark"}
            )
    out["blocking_rules_to_generate_predictions"] = rules
    for comparison in out["comparisons"]:
        for level in comparison["comparison_levels"]:
            if not _is_else(level):
                level["sql_condition"] = to_spark(level["sql_condition"])
    return out


def spark_training(training: dict[str, Any]) -> dict[str, Any]:
    """training.json with its deterministic and EM blocking rules in Spark SQL."""
    out = copy.deepcopy(training)
    prior = out["prior"]
    prior["deterministic_rules"] = [to_spark(r) for r in prior["deterministic_rules"]]
    out["em_blocking_rules"] = [to_spark(r) for r in out["em_blocking_rules"]]
    return out


def duckdb_model(trained: dict[str, Any], model_settings: dict[str, Any]) -> dict[str, Any]:
    """A model trained on Spark, written back in the SQL of the model it was made from.

    Splink keeps comparisons, levels and blocking rules in the order it was given
    them, so each translated string is replaced by its original by position; the
    trained m and u probabilities and the prior are kept. The saved model.json
    is then the same whichever backend trained it, and reusable by either.
    """
    out = copy.deepcopy(trained)
    rules = model_settings["blocking_rules_to_generate_predictions"]
    comparisons = model_settings["comparisons"]
    if len(out["blocking_rules_to_generate_predictions"]) != len(rules) or len(
        out["comparisons"]
    ) != len(comparisons):
        raise ValueError("the trained model does not have the model's comparisons and rules")
    out["sql_dialect"] = "duckdb"
    for i, original in enumerate(rules):
        text = original if isinstance(original, str) else original["blocking_rule"]
        trained_rule = out["blocking_rules_to_generate_predictions"][i]
        if isinstance(trained_rule, dict):
            trained_rule.update(blocking_rule=text, sql_dialect="duckdb")
        else:
            out["blocking_rules_to_generate_predictions"][i] = text
    for trained_comparison, comparison in zip(out["comparisons"], comparisons, strict=True):
        levels = comparison["comparison_levels"]
        trained_levels = trained_comparison["comparison_levels"]
        if len(levels) != len(trained_levels):
            raise ValueError(
                f"the trained comparison {trained_comparison.get('output_column_name')!r} "
                "does not have the model's levels"
            )
        for trained_level, level in zip(trained_levels, levels, strict=True):
            trained_level["sql_condition"] = level["sql_condition"]
    return out
