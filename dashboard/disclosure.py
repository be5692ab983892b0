"""How figures are shown so that none can identify anyone.

The marts are already disclosure-controlled by dbt (macro ``suppress_small_numbers``):
a count from 1 to 7 is null with a ``<count>_suppressed`` flag, every other count is
rounded to the nearest 5 (the threshold and the base are the published file's own,
``_joinedup_marts``: :func:`use_rule`). This module holds the dashboard's side of the
same rule:

* one formatter for every count on screen, so a withheld count always reads
  ``suppressed (<8)`` and never as a number;
* :func:`publish_count`, the same rule in Python for the few figures that do not come
  from a mart (the ledger and the linkage summary);
* Wilson intervals and funnel limits, computed from published (rounded) counts only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from joinedup.privacy import rules
from joinedup.settings import Settings

# Marks a figure added up from several published cells of which some were suppressed.
PARTIAL_MARK = "†"
NOT_APPLICABLE = "—"
Z_95 = 1.959964
Z_998 = 3.090232


@dataclass(frozen=True)
class Rule:
    """The disclosure rule's two numbers: counts from 1 to threshold-1 withheld, the rest
    rounded to the nearest multiple of rounding_base."""

    threshold: int
    rounding_base: int


@cache
def project_rule() -> Rule:
    """The rule as configured here: JOINEDUP_SUPPRESSION_THRESHOLD (the setting dbt gets)
    and the dbt var rounding_base (dbt_project.yml)."""
    return Rule(Settings().suppression_threshold, rules.rounding_base())


_in_force: Rule | None = None


def use_rule(rule: Rule | None) -> None:
    """Show figures under ``rule``: the published file's (its catalogue's ``rule``), so the
    labels and the coverage page's figures follow the rule the marts were built with.
    None: the project's rule."""
    global _in_force
    _in_force = rule


def rule() -> Rule:
    return _in_force or project_rule()


def threshold() -> int:
    """The smallest count shown."""
    return rule().threshold


def rounding_base() -> int:
    """What shown counts are rounded to a multiple of."""
    return rule().rounding_base


def suppressed_label() -> str:
    return f"suppressed (<{threshold()})"


def publish_count(n: int | None) -> tuple[int | None, bool]:
    """The published form of a true count: ``(None, True)`` for 1 to threshold-1, else rounded.

    Rounds half away from zero, as DuckDB's ``round`` does in the dbt macro, so the
    ledger and the marts agree on a count that ends in 2.5.
    """
    if n is None:
        return None, False
    if 1 <= n < threshold():
        return None, True
    base = rounding_base()
    return math.floor(n / base + 0.5) * base, False


def format_count(value: int | float | None, suppressed: bool) -> str:
    """Text for a published count: the only way a count reaches the screen.

    ``suppressed`` says whether any cell behind the figure was withheld. With nothing
    published beside it (or only zeros) the figure could be 1-7, so it reads as withheld,
    never as 0; with published cells beside it, their sum is a lower bound and is marked.
    """
    if suppressed and not value:
        return suppressed_label()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_APPLICABLE
    text = f"{int(value):,}"
    return f"{text} {PARTIAL_MARK}" if suppressed else text


def format_rate(pct: float | None, withheld: bool) -> str:
    if withheld:
        return suppressed_label()
    if pct is None or math.isnan(pct):
        return NOT_APPLICABLE
    return f"{pct:.1f}%"


def wilson_interval(successes: float, trials: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion, as percentages (0-100)."""
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def funnel_limits(p0_pct: float, trials: float, z: float) -> tuple[float, float]:
    """Control limits of a funnel plot around ``p0_pct`` for a unit with ``trials`` cases.

    Normal approximation to the binomial, clipped to 0-100; adequate at the sizes a
    commissioner compares (tens of discharges and up).
    """
    if trials <= 0:
        return math.nan, math.nan
    p0 = p0_pct / 100
    half = z * math.sqrt(p0 * (1 - p0) / trials)
    return 100 * max(0.0, p0 - half), 100 * min(1.0, p0 + half)
