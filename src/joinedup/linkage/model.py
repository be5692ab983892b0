"""The linkage model as data: load, validate and fingerprint ``linkage/*.json``."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joinedup.catalogue import LINKAGE_MODEL_DIR, LINKED, RUNS

log = logging.getLogger(__name__)

# The repository's linkage/ folder (the package is installed from the repository).
DEFAULT_MODEL_DIR = LINKAGE_MODEL_DIR


@dataclass(frozen=True)
class LinkageModel:
    settings: dict[str, Any]  # a Splink settings dictionary (possibly with trained m/u)
    training: dict[str, Any]
    trained: bool  # True when settings already hold trained parameters (no training needed)

    @property
    def cluster_threshold(self) -> float:
        return float(self.training["thresholds"]["cluster_match_probability"])

    @property
    def opt_out_threshold(self) -> float:
        return float(self.training["thresholds"]["opt_out_match_probability"])

    @property
    def predict_threshold(self) -> float:
        return float(self.training["thresholds"]["predict_match_probability"])

    @property
    def split_on_distinct_nhs_numbers(self) -> bool:
        """Whether clusters holding two valid NHS numbers are split (nhs_number_split.py)."""
        return bool(self.training.get("clustering", {}).get("split_on_distinct_nhs_numbers"))

    def fingerprint(self) -> str:
        """SHA-256 of the model definition, recorded with every run's provenance."""
        canonical = json.dumps([self.settings, self.training], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


class UntrustedModelError(ValueError):
    """A trained model file the pipeline did not write (or that changed since it did)."""


def check_trained_model(data_dir: Path, value: str | Path) -> Path:
    """``value`` as a model file a run of this data directory wrote, else UntrustedModelError.

    A model's conditions are SQL that linkage executes, so only a file this pipeline
    wrote is accepted: it must lie in ``DATA/linked/`` (after following links; a relative
    path is taken from the data directory) and its SHA-256 must be in a run record under
    ``DATA/runs/`` (see joinedup.provenance). Any other file is refused before linkage.
    """
    from joinedup.provenance import runs_that_wrote, sha256_file

    linked = LINKED.under(Path(data_dir)).resolve()
    path = (Path(data_dir) / value).resolve()
    if not path.is_relative_to(linked):
        raise UntrustedModelError(
            f"trained model {str(value)!r} is not in {linked}: only a model a run of this "
            f"data directory wrote there (e.g. {linked / 'model.json'}) can be reused"
        )
    if not path.is_file():
        raise UntrustedModelError(f"trained model {path} does not exist (or is not a file)")
    digest = sha256_file(path)
    if not runs_that_wrote(data_dir, digest):
        raise UntrustedModelError(
            f"trained model {path} (SHA-256 {digest[:12]}...) is in no run record under "
            f"{RUNS.under(Path(data_dir))}: it was changed after its run or not written by "
            "this pipeline; use a model.json a finished run wrote, or train a new one "
            "(leave trained_model blank)"
        )
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"linkage model file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None


def load_model(
    model_dir: Path = DEFAULT_MODEL_DIR, trained_model: Path | None = None
) -> LinkageModel:
    """The model to run: the repository's definition, or a previously trained model file.

    ``trained_model`` is a Splink model JSON written by an earlier run
    (``DATA/linked/model.json``); it replaces settings.json and skips training,
    while thresholds still come from training.json.
    """
    training = _read(Path(model_dir) / "training.json")
    if trained_model is not None:
        settings = _read(Path(trained_model))
        trained = True
    else:
        settings = _read(Path(model_dir) / "settings.json")
        trained = False
    for key in ("comparisons", "blocking_rules_to_generate_predictions", "unique_id_column_name"):
        if key not in settings:
            raise ValueError(f"linkage settings lack {key!r}: is this a Splink settings file?")
    for key in (
        "cluster_match_probability",
        "opt_out_match_probability",
        "predict_match_probability",
    ):
        value = training.get("thresholds", {}).get(key)
        if not isinstance(value, int | float) or not 0 < value < 1:
            raise ValueError(f"training.json thresholds.{key} must be a probability, got {value!r}")
    return LinkageModel(settings=settings, training=training, trained=trained)


def _rule_text(rule: str | dict[str, Any]) -> str:
    return rule if isinstance(rule, str) else rule["blocking_rule"]


def rule_pairs(backend: Any, rule: str | dict[str, Any], tables: list[str]) -> int:
    """Record pairs one blocking rule generates over ``tables`` (link and dedupe), counted.

    Counted from block sizes, never by making the pairs, so an exploding rule costs no
    more than one that is not: per key, records on the left times records on the right,
    less each record paired with itself, halved (Splink makes each pair once; a rule
    comparing different columns, such as the swapped date with the date, makes half of
    them, and its mirror rule the other half). Conditions other than equalities
    (Splink's filter conditions) are not applied, so this is an upper bound for them.
    """
    from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator

    keys = to_blocking_rule_creator(rule).get_blocking_rule("duckdb")._equi_join_conditions
    union = " UNION ALL ".join(f"SELECT * FROM {t}" for t in tables)
    if not keys:
        n = int(backend.frame(f"SELECT count(*) AS n FROM ({union})")["n"][0])
        return n * (n - 1) // 2

    def side(which: int) -> str:
        cols = ", ".join(f"{k[which]} AS k{i}" for i, k in enumerate(keys))
        present = " AND ".join(f"{k[which]} IS NOT NULL" for k in keys)
        return f"SELECT {cols}, count(*) AS n FROM ({union}) WHERE {present} GROUP BY ALL"

    using = ", ".join(f"k{i}" for i in range(len(keys)))
    itself = " AND ".join(f"{left} = {right}" for left, right in keys)
    frame = backend.frame(
        f"SELECT (SELECT CAST(coalesce(sum(l.n * r.n), 0) AS BIGINT) "
        f"FROM ({side(0)}) l JOIN ({side(1)}) r USING ({using})) AS ordered, "
        f"(SELECT count(*) FROM ({union}) WHERE {itself}) AS itself"
    )
    return int((frame["ordered"][0] - frame["itself"][0]) // 2)


def bound_prediction_blocking(
    backend: Any, settings: dict[str, Any], tables: list[str], max_pairs: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``settings`` without the prediction rules that generate more than ``max_pairs`` pairs.

    Returns the settings to predict with and, per rule in the model's order, its pair
    count and whether it was kept. A rule above the cap (JOINEDUP_LINKAGE_MAX_PAIRS_PER_RULE)
    is left out with a warning: the others still find the pairs it was for, except those
    only it would compare. With no rule left there is nothing to predict, and LinkageError
    says which rules to change.
    """
    from joinedup.linkage.backend import LinkageError

    rules = settings["blocking_rules_to_generate_predictions"]
    report = []
    for rule in rules:
        pairs = rule_pairs(backend, rule, tables)
        report.append({"rule": _rule_text(rule), "pairs": pairs, "kept": pairs <= max_pairs})
    kept = [rule for rule, row in zip(rules, report, strict=True) if row["kept"]]
    for row in report:
        if not row["kept"]:
            log.warning(
                "prediction blocking rule left out: it would generate %s record pairs, more "
                "than JOINEDUP_LINKAGE_MAX_PAIRS_PER_RULE (%s): %s",
                f"{row['pairs']:,}",
                f"{max_pairs:,}",
                row["rule"],
            )
    if not kept:
        raise LinkageError(
            f"every prediction blocking rule of the linkage model generates more than "
            f"{max_pairs:,} record pairs (JOINEDUP_LINKAGE_MAX_PAIRS_PER_RULE): "
            + "; ".join(f"{r['rule']} ({r['pairs']:,})" for r in report)
            + ". Make the rules in linkage/settings.json more selective (add a token to each), "
            "or raise the cap if the machine can score that many pairs."
        )
    bounded = dict(settings)
    bounded["blocking_rules_to_generate_predictions"] = kept
    return bounded, report
