"""The disclosure rule's two numbers as the dbt project has them, and the rule for one figure.

The threshold is a pipeline setting (``JOINEDUP_SUPPRESSION_THRESHOLD``, passed to dbt);
the rounding base is the dbt var ``rounding_base`` in ``dbt_project.yml``, read from
there so the report checks the marts against the rule they were built with.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from joinedup.catalogue import REPO_ROOT

PROJECT_DIR = REPO_ROOT


def rounding_base(project_dir: Path = PROJECT_DIR) -> int:
    path = Path(project_dir) / "dbt_project.yml"
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))["vars"]["rounding_base"]
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(
            f"cannot read vars.rounding_base from {path} ({exc}): the privacy report checks "
            "the marts against it; restore the var in dbt_project.yml."
        ) from None
    return int(value)


def publish_count(n: int | None, threshold: int, base: int) -> dict[str, Any]:
    """A figure as the marts would publish it: withheld from 1 to threshold-1, else rounded.

    Rounds half away from zero, as DuckDB's ``round`` does in the dbt macro.
    """
    if n is None:
        return {"value": None, "suppressed": False}
    if 1 <= n < threshold:
        return {"value": None, "suppressed": True}
    return {"value": int(math.floor(n / base + 0.5) * base), "suppressed": False}
