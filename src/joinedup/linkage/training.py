"""Training chosen from the delivery: which rules the prior and the EM sessions block on.

training.json's rules lean on the NHS-number token. A delivery with no (or few) NHS
numbers, such as untraced social care, then gives Splink an empty session and training
stops. Here the pairs each NHS-number rule would generate are counted first; when there
are too few, the rules are replaced by name, date and postcode rules, and the choice and
its reason are returned so that ``linked/summary.json`` can state them.
"""

from __future__ import annotations

import copy
from typing import Any

from joinedup.catalogue import RECORD_TABLES

NHS_RULE = 'l."nhs_number_token" = r."nhs_number_token"'

# Used when the NHS-number token cannot carry training. Each needs no NHS number and
# the EM sessions between them leave every comparison unblocked in at least one.
FALLBACK_PRIOR_RULES = [
    'l."given_name_token" = r."given_name_token" AND l."family_name_token" = '
    'r."family_name_token" AND l."date_of_birth_token" = r."date_of_birth_token"',
]
FALLBACK_PRIOR_RECALL = 0.6  # exact names and date agree in most, not all, true matches
FALLBACK_EM_RULES = [
    'l."date_of_birth_token" = r."date_of_birth_token" AND '
    'l."postcode_district_token" = r."postcode_district_token"',
    'l."given_name_token" = r."given_name_token" AND l."family_name_token" = r."family_name_token"',
]

# Fewer NHS-number pairs than this give EM too little to estimate m from (an empty
# session stops Splink); above it the configured rules did better on a 2,000-person
# delivery whose hospital feed has no names (F1 0.963 with the fallback).
MIN_NHS_PAIRS = 100


def _union(columns: str) -> str:
    return " UNION ALL ".join(f"SELECT {columns} FROM records_{s}" for s in RECORD_TABLES)


def nhs_number_pairs(backend: Any) -> int:
    """Pairs of records (across all sources) that share a non-null NHS-number token."""
    sql = (
        "SELECT coalesce(sum(n * (n - 1) / 2), 0) AS pairs FROM ("
        f"SELECT count(*) AS n FROM ({_union('nhs_number_token')}) "
        "WHERE nhs_number_token IS NOT NULL GROUP BY nhs_number_token)"
    )
    return int(backend.frame(sql)["pairs"][0])


def choose_training(
    backend: Any, training: dict[str, Any], min_nhs_pairs: int = MIN_NHS_PAIRS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``training`` adapted to the loaded records, and a record of the choice and why.

    The record also carries the backend's count of the pairs each prediction blocking
    rule generates (``prediction_blocking``, see model.bound_prediction_blocking), so
    that linked/summary.json states it beside the training rules.
    """
    choice, record = _choose(backend, training, min_nhs_pairs)
    blocking = getattr(backend, "prediction_blocking", None)
    return choice, record | ({"prediction_blocking": blocking} if blocking is not None else {})


def _choose(
    backend: Any, training: dict[str, Any], min_nhs_pairs: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    pairs = nhs_number_pairs(backend)
    uses_nhs = any(NHS_RULE in rule for rule in training["prior"]["deterministic_rules"]) or any(
        NHS_RULE in rule for rule in training["em_blocking_rules"]
    )
    if not uses_nhs or pairs >= min_nhs_pairs:
        return training, {
            "rules": "configured",
            "nhs_number_pairs": pairs,
            "why": f"{pairs:,} record pairs share an NHS number (at least {min_nhs_pairs:,})",
        }
    chosen = copy.deepcopy(training)
    chosen["prior"]["deterministic_rules"] = list(FALLBACK_PRIOR_RULES)
    chosen["prior"]["recall"] = FALLBACK_PRIOR_RECALL
    kept = [rule for rule in training["em_blocking_rules"] if NHS_RULE not in rule]
    chosen["em_blocking_rules"] = kept + [r for r in FALLBACK_EM_RULES if r not in kept]
    return chosen, {
        "rules": "name_date_postcode",
        "nhs_number_pairs": pairs,
        "why": (
            f"only {pairs:,} record pairs share an NHS number (fewer than {min_nhs_pairs:,}): "
            "prior and EM blocked on names, date of birth and postcode district instead"
        ),
        "prior_rules": chosen["prior"]["deterministic_rules"],
        "em_blocking_rules": chosen["em_blocking_rules"],
    }
