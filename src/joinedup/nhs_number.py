"""NHS number check digit (modulus 11), scalar and vectorised."""

from __future__ import annotations

import numpy as np
import polars as pl

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None when no valid number exists (remainder 10)."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    digit = 11 - total % 11
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def is_valid(nhs_number: str | None) -> bool:
    if nhs_number is None or len(nhs_number) != 10 or not nhs_number.isdigit():
        return False
    return check_digit(nhs_number[:9]) == int(nhs_number[9])


def check_digits_np(bases: np.ndarray) -> np.ndarray:
    """Check digits for an array of 9-digit integers; -1 where no valid number exists."""
    total = np.zeros(bases.shape, dtype=np.int64)
    rest = bases.astype(np.int64)
    for w in reversed(_WEIGHTS):  # least significant digit has weight 2
        total += (rest % 10) * w
        rest //= 10
    digit = 11 - total % 11
    digit = np.where(digit == 11, 0, digit)
    return np.where(digit == 10, -1, digit)


def is_valid_expr(col: pl.Expr) -> pl.Expr:
    """Polars expression: True where the string column is a valid NHS number."""
    digits = [col.str.slice(i, 1).cast(pl.Int64, strict=False) for i in range(10)]
    total = sum(d * w for d, w in zip(digits[:9], _WEIGHTS, strict=True))
    expected = 11 - total % 11
    expected = pl.when(expected == 11).then(0).otherwise(expected)
    return (
        col.str.contains(r"^\d{10}$").fill_null(False)
        & (expected != 10).fill_null(False)
        & (expected == digits[9]).fill_null(False)
    )
