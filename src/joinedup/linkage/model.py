"""The linkage model as data: load, validate and fingerprint ``linkage/*.json``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joinedup.catalogue import LINKAGE_MODEL_DIR

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

    def fingerprint(self) -> str:
        """SHA-256 of the model definition, recorded with every run's provenance."""
        canonical = json.dumps([self.settings, self.training], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


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
