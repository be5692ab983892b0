"""Normalise raw text per the contract and split rows into loaded and quarantined.

Two kinds of defect, treated differently on purpose (CONTRACTS.md, row rules):

* A row that cannot be used at all is quarantined with a reason: a blank
  required value (no local id, an event with no date), a value of a typed
  column that does not parse (a garbled ``discharge_date`` must not silently
  read as "still in hospital"), an unknown code where the code decides meaning,
  a duplicate key, bytes that are not UTF-8, more fields than the header.
* A row whose *identifier* is defective (invalid NHS number, malformed
  postcode, implausible date of birth, unknown sex code) is kept: the field is
  nulled and ``<column>_status`` (``valid`` / ``blank`` / ``invalid``) says why,
  because linkage can still place the person on the other identifiers.

Reasons are ``kind:column`` codes joined with ``"; "`` so every problem of a
row is visible at once: ``missing:<col>``, ``invalid_date:<col>``,
``invalid_datetime:<col>``, ``invalid_int:<col>``, ``unknown_code:<col>``,
``invalid_nhs_number:<col>``, ``invalid_postcode:<col>``, ``invalid_utf8``,
``too_many_fields``, ``duplicate_key``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from joinedup.contracts import Column, Kind, Table
from joinedup.ingest.read import EXTRA, FILE, LINE, REPLACEMENT_CHAR
from joinedup.nhs_number import is_valid_expr

# The earliest date of birth accepted; earlier ones are typing errors, not people.
EARLIEST_BIRTH = date(1900, 1, 1)

POSTCODE_RE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"  # without the space
DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
DATETIME_RE = r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
INT_RE = r"^[+-]?\d+$"

VALID, BLANK, INVALID = "valid", "blank", "invalid"
REASON = "reason"


def status_column(name: str) -> str:
    return f"{name}_status"


def _trimmed(name: str) -> pl.Expr:
    """Trimmed text with blanks as null (internal runs of whitespace collapse to one space)."""
    text = pl.col(name).str.strip_chars().str.replace_all(r"\s+", " ")
    return pl.when(text == "").then(None).otherwise(text)


def normalise_postcode(expr: pl.Expr) -> pl.Expr:
    """Upper case, one space before the inward code; None where it is not a UK postcode."""
    squashed = expr.str.to_uppercase().str.replace_all(r"\s+", "")
    formatted = pl.concat_str(squashed.str.slice(0, squashed.str.len_chars() - 3), pl.lit(" "))
    formatted = pl.concat_str(formatted, squashed.str.slice(-3))
    return pl.when(squashed.str.contains(POSTCODE_RE)).then(formatted).otherwise(None)


def normalise_nhs_number(expr: pl.Expr) -> pl.Expr:
    """Digits only (spaces/hyphens as in '943 476 5919' dropped); None unless modulus-11 valid."""
    digits = expr.str.replace_all(r"[\s-]", "")
    return pl.when(is_valid_expr(digits)).then(digits).otherwise(None)


def _parse_date(text: pl.Expr) -> pl.Expr:
    shaped = text.str.contains(DATE_RE).fill_null(False)
    return pl.when(shaped).then(text.str.to_date("%Y-%m-%d", strict=False)).otherwise(None)


def _parse_datetime(text: pl.Expr) -> pl.Expr:
    """ISO 8601 to a naive UTC datetime (an offset, if given, is applied)."""
    parts = text.str.extract_groups(DATETIME_RE)
    seconds = parts.struct.field("3").fill_null(":00")
    canonical = pl.concat_str(
        parts.struct.field("1"), pl.lit("T"), parts.struct.field("2"), seconds
    )
    local = canonical.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    tz = parts.struct.field("4").str.replace(":", "", literal=True)
    sign = pl.when(tz.str.starts_with("-")).then(-1).otherwise(1)
    minutes = (
        tz.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
        + tz.str.slice(3, 2).cast(pl.Int64, strict=False)
    ) * sign
    offset = pl.when(tz.is_null() | (tz == "Z")).then(0).otherwise(minutes)
    return local - pl.duration(minutes=offset)


def _code_lookup(codes: frozenset[str]) -> dict[str, str]:
    """Case-insensitive match to the canonical code ('2a' -> '2A', 'Home Care' -> 'Home care')."""
    return {c.lower(): c for c in sorted(codes)}


@dataclass(frozen=True)
class _ColumnRule:
    value: pl.Expr  # the normalised, typed value (null when blank or defective)
    reason: pl.Expr | None  # a reason string when the row must be quarantined, else null
    status: pl.Expr | None  # valid/blank/invalid for identifiers kept with a flag


def _rule(col: Column, today: date) -> _ColumnRule:
    name = col.name
    text = _trimmed(name)
    blank = text.is_null()
    missing = pl.when(blank).then(pl.lit(f"missing:{name}")) if col.required else None

    if col.kind is Kind.NHS_NUMBER:
        parsed = normalise_nhs_number(text)
        kind = "invalid_nhs_number"
    elif col.kind is Kind.POSTCODE:
        parsed = normalise_postcode(text)
        kind = "invalid_postcode"
    elif col.kind is Kind.DATE:
        parsed = _parse_date(text)
        if col.nullable_if_defective:  # a date of birth: plausible range too
            in_range = (parsed >= EARLIEST_BIRTH) & (parsed <= today)
            parsed = pl.when(in_range).then(parsed).otherwise(None)
        kind = "invalid_date"
    elif col.kind is Kind.DATETIME:
        parsed = _parse_datetime(text)
        kind = "invalid_datetime"
    elif col.kind is Kind.INT:
        parsed = (
            pl.when(text.str.contains(INT_RE))
            .then(text.cast(pl.Int64, strict=False))
            .otherwise(None)
        )
        kind = "invalid_int"
    elif col.kind is Kind.CODE:
        assert col.codes is not None, f"{name}: a CODE column needs its code set"
        parsed = text.str.to_lowercase().replace_strict(
            _code_lookup(col.codes), default=None, return_dtype=pl.String
        )
        kind = "unknown_code"
    else:
        return _ColumnRule(value=text, reason=missing, status=None)

    defective = ~blank & parsed.is_null()
    if col.nullable_if_defective:
        status = pl.when(blank).then(pl.lit(BLANK)).when(defective).then(pl.lit(INVALID))
        return _ColumnRule(value=parsed, reason=None, status=status.otherwise(pl.lit(VALID)))
    bad = pl.when(defective).then(pl.lit(f"{kind}:{name}"))
    if missing is not None:
        bad = (
            pl.when(blank)
            .then(pl.lit(f"missing:{name}"))
            .when(defective)
            .then(pl.lit(f"{kind}:{name}"))
        )
    return _ColumnRule(value=parsed, reason=bad, status=None)


@dataclass(frozen=True)
class Split:
    loaded: pl.DataFrame  # normalised, typed, with <col>_status flags, source_file, source_line
    quarantined: pl.DataFrame  # source_file as file, source_line as line, reason, raw text values


def validated_schema(table: Table) -> list[str]:
    """Column order of a validated table: contract order, each flag right after its column."""
    cols: list[str] = [FILE, LINE]
    for c in table.columns:
        cols.append(c.name)
        if c.nullable_if_defective:
            cols.append(status_column(c.name))
    return cols


def split_rows(raw: pl.DataFrame, table: Table, today: date | None = None) -> Split:
    """Apply the contract to raw text rows (in file, line order) and split them.

    Duplicate keys are resolved after the other checks, among usable rows only,
    keeping the first in file-name then line order: a broken row must not claim
    a key, and the earliest delivery wins so adding a later file never changes
    which row of an earlier one was loaded.
    """
    today = today or date.today()
    rules = {c.name: _rule(c, today) for c in table.columns}
    utf8 = pl.any_horizontal(
        pl.col(table.column_names).str.contains(REPLACEMENT_CHAR, literal=True)
    )
    reasons = [
        pl.when(utf8).then(pl.lit("invalid_utf8")),
        pl.when(pl.col(EXTRA) != "").then(pl.lit("too_many_fields")),
        *(r.reason for r in rules.values() if r.reason is not None),
    ]
    checked = raw.with_row_index("__row__").with_columns(
        pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias(REASON),
        *(r.value.alias(f"__v_{n}") for n, r in rules.items()),
        *(r.status.alias(f"__s_{n}") for n, r in rules.items() if r.status is not None),
    )
    checked = checked.with_columns(
        pl.when(pl.col(REASON) == "").then(None).otherwise(pl.col(REASON)).alias(REASON)
    )
    usable = checked.filter(pl.col(REASON).is_null())
    if table.key:
        first = pl.struct([f"__v_{k}" for k in table.key]).is_first_distinct()
        usable = usable.with_columns(
            pl.when(first).then(None).otherwise(pl.lit("duplicate_key")).alias(REASON)
        )
    rejected = pl.concat(
        [checked.filter(pl.col(REASON).is_not_null()), usable.filter(pl.col(REASON).is_not_null())]
    ).sort("__row__")
    loaded = usable.filter(pl.col(REASON).is_null())

    loaded_cols: list[pl.Expr] = [pl.col(FILE), pl.col(LINE)]
    for c in table.columns:
        loaded_cols.append(pl.col(f"__v_{c.name}").alias(c.name))
        if c.nullable_if_defective:
            loaded_cols.append(pl.col(f"__s_{c.name}").alias(status_column(c.name)))
    quarantined = rejected.select(
        pl.col(FILE).alias("file"),
        pl.col(LINE).alias("line"),
        pl.col(REASON).alias("reason"),
        *[pl.col(c) for c in table.column_names],
    )
    return Split(loaded=loaded.select(loaded_cols), quarantined=quarantined)
