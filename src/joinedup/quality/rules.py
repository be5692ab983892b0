"""What every zone's suites are made of: the :class:`Suite`, severities and expectation helpers.

Each zone's gate module (:mod:`.landing`, :mod:`.pseudonymised`, :mod:`.linked`,
:mod:`.marts`) writes its suites with these; :mod:`.suites` writes them all into the
committed GX project.

Severity is GX's own ``severity`` field: ``critical`` failures stop the run
before anything is published, ``warning`` failures are reported. ``notes`` say
why each rule exists; Data Docs show them beside the result.

Values that depend on the run - the run day, the disclosure threshold - are GX
suite parameters (``{"$PARAMETER": ...}``) filled in by :mod:`joinedup.quality.gates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CRITICAL = "critical"
WARNING = "warning"

STATUSES = ["blank", "invalid", "valid"]
EARLIEST_ACTIVITY = "1990-01-01"  # admissions, attendances, social care events
EARLIEST_RECORD = "1900-01-01"  # GP registrations and coded entries go back decades
RUN_DATE = {"$PARAMETER": "run_date"}
SMALL_COUNTS = {"$PARAMETER": "small_counts"}

# Notes shared by the landing and pseudonymised suites.
SEX_WHY = "sex codes of the NHS data dictionary; the contract nulls others, so any other is a bug"
STATUS_WHY = "identifier checks at ingest record one of these per row"
_COLUMNS_WHY = (
    "exactly the de-identified columns pseudonymise writes: any other column may carry an "
    "identifier across the line and must be reviewed before it is allowed"
)


@dataclass
class Suite:
    """One suite, its dataframe asset, validation definition and checkpoint (same name)."""

    name: str
    zone: str
    description: str
    expectations: list[Any]
    # Columns that identify a failing row in results (GX unexpected_index_column_names);
    # never identifiers, so results and Data Docs can show them.
    index_columns: list[str] = field(default_factory=list)


def expect(kind: str, severity: str, notes: str, **kwargs: Any) -> Any:
    """A GX expectation by class name, with its severity and why it exists."""
    import great_expectations.expectations as gxe

    return getattr(gxe, kind)(severity=severity, notes=notes, **kwargs)


def not_empty(severity: str = CRITICAL, why: str = "an empty delivery is not fit to use") -> Any:
    return expect("ExpectTableRowCountToBeBetween", severity, why, min_value=1)


def in_set(column: str, values: frozenset[str] | list | tuple, severity: str, why: str) -> Any:
    return expect(
        "ExpectColumnValuesToBeInSet", severity, why, column=column, value_set=sorted(values)
    )


def not_null(column: str, why: str, severity: str = CRITICAL) -> Any:
    return expect("ExpectColumnValuesToNotBeNull", severity, why, column=column)


def dates(column: str, earliest: str, severity: str = CRITICAL, why: str = "") -> Any:
    """``column`` from ``earliest`` to the run day."""
    why = why or (
        f"{column} from {earliest} to the run day: a date in the future or a century ago "
        "is a default or a broken extract, not care"
    )
    # A midnight, not a date: dates reach GX as datetime64, which it compares vectorised
    # with datetimes (and cannot compare with dates); the run day is a midnight too.
    return expect(
        "ExpectColumnValuesToBeBetween",
        severity,
        why,
        column=column,
        min_value=datetime.fromisoformat(earliest),
        max_value=RUN_DATE,
    )


def matches(column: str, regex: str, why: str, severity: str = CRITICAL, **kw: Any) -> Any:
    return expect("ExpectColumnValuesToMatchRegex", severity, why, column=column, regex=regex, **kw)


def after(later: str, earlier: str, severity: str, why: str) -> Any:
    """``later`` on or after ``earlier`` wherever both are present."""
    return expect(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        severity,
        why,
        column_A=later,
        column_B=earlier,
        or_equal=True,
        ignore_row_if="either_value_is_missing",
    )


def between(
    column: str,
    low: float | None,
    high: float | None,
    severity: str,
    why: str,
    **kwargs: Any,
) -> Any:
    """Every value of ``column`` from ``low`` to ``high`` inclusive (None: no bound)."""
    bounds = {k: v for k, v in (("min_value", low), ("max_value", high)) if v is not None}
    return expect("ExpectColumnValuesToBeBetween", severity, why, column=column, **bounds, **kwargs)


def banded(
    column: str,
    critical: tuple[float, float],
    critical_why: str,
    warning: tuple[float, float],
    warning_why: str,
) -> list[Any]:
    """Two bands on one measure: outside the wide one stops the run, the narrow one warns."""
    return [
        between(column, *critical, CRITICAL, critical_why),
        between(column, *warning, WARNING, warning_why),
    ]


def unique(columns: list[str], why: str) -> Any:
    if len(columns) == 1:
        return expect("ExpectColumnValuesToBeUnique", CRITICAL, why, column=columns[0])
    return expect("ExpectCompoundColumnsToBeUnique", CRITICAL, why, column_list=columns)


def exact_columns(columns: list[str]) -> Any:
    """Exactly these columns: past landing, another column may carry an identifier."""
    return expect(
        "ExpectTableColumnsToMatchSet", CRITICAL, _COLUMNS_WHY, column_set=columns, exact_match=True
    )
