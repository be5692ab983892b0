"""Normalise raw text per the contract and split rows into loaded and quarantined.

Two kinds of defect, treated differently on purpose (docs/contracts.md, row rules):

* A row that cannot be used at all is quarantined with a reason: a blank
  required value (no local id, an event with no date), a value of a typed
  column that does not parse (a garbled ``discharge_date`` must not silently
  read as "still in hospital"), an unknown code where the code decides meaning,
  a duplicate key, bytes that are not UTF-8, more or fewer fields than the
  header, a value over 4 KiB (field counts and lengths come from read.py).
* A row whose *identifier* is defective (invalid NHS number, malformed
  postcode, implausible date of birth, unknown sex code) is kept: the field is
  nulled and ``<column>_status`` (``valid`` / ``blank`` / ``invalid``) says why,
  because linkage can still place the person on the other identifiers.

Reasons are ``kind:column`` codes joined with ``"; "`` so every problem of a
row is visible at once: ``missing:<col>``, ``invalid_date:<col>``,
``invalid_datetime:<col>``, ``invalid_int:<col>``, ``unknown_code:<col>``,
``invalid_nhs_number:<col>``, ``invalid_postcode:<col>``, ``invalid_utf8``,
``too_many_fields``, ``too_few_fields``, ``field_too_long:<col>``, ``duplicate_key``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from joinedup.contracts import Column, Kind, Table
from joinedup.ingest.layouts import IDENTITY, SUBMITTED
from joinedup.ingest.read import FILE, LINE, READ_PROBLEMS, REPLACEMENT_CHAR
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


def squash_postcode(expr: pl.Expr) -> pl.Expr:
    """Upper case without any whitespace: the form postcodes are validated in."""
    return expr.str.to_uppercase().str.replace_all(r"\s+", "")


def format_postcode(squashed: pl.Expr) -> pl.Expr:
    """One space before the inward code; None where it is not a UK postcode."""
    outward = squashed.str.slice(0, squashed.str.len_chars() - 3)
    formatted = pl.concat_str(outward, pl.lit(" "), squashed.str.slice(-3))
    return pl.when(squashed.str.contains(POSTCODE_RE)).then(formatted).otherwise(None)


def normalise_postcode(expr: pl.Expr) -> pl.Expr:
    """Upper case, one space before the inward code; None where it is not a UK postcode."""
    return format_postcode(squash_postcode(expr))


def normalise_nhs_number(expr: pl.Expr) -> pl.Expr:
    """Digits only (spaces/hyphens as in '943 476 5919' dropped); None unless modulus-11 valid."""
    digits = expr.str.replace_all(r"[\s-]", "")
    return pl.when(is_valid_expr(digits)).then(digits).otherwise(None)


def _parse_date(text: pl.Expr) -> pl.Expr:
    shaped = text.str.contains(DATE_RE).fill_null(False)
    return pl.when(shaped).then(text.str.to_date("%Y-%m-%d", strict=False)).otherwise(None)


def _parse_datetime(parts: pl.Expr) -> pl.Expr:
    """ISO 8601, as the groups of ``DATETIME_RE``, to a naive UTC datetime (offset applied)."""
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


def _t(name: str) -> pl.Expr:
    """The trimmed text of a column (materialised in the first step of :func:`split_rows`)."""
    return pl.col(f"__t_{name}")


def _p(name: str) -> pl.Expr:
    """A column's prepared intermediate (digits, regex groups), materialised in step two."""
    return pl.col(f"__p_{name}")


def _v(name: str) -> pl.Expr:
    """A column's normalised, typed value (null when blank or defective), from step three."""
    return pl.col(f"__v_{name}")


@dataclass(frozen=True)
class _ColumnRule:
    """How one column is checked, as expressions over materialised intermediate columns.

    The steps are materialised one after another (trim -> prepare -> value ->
    reason/status) because Polars does not share a sub-expression used many
    times in an eager select: the ten digit slices of the modulus-11 check would
    otherwise each re-run trimming and clean-up, 15x slower on a million rows.
    """

    prepare: pl.Expr | None  # from __t_: an intermediate used more than once
    value: pl.Expr  # from __t_/__p_: the normalised value
    kind: str | None  # reason kind when a non-blank value is defective; None: free text


def _rule(col: Column, today: date) -> _ColumnRule:
    name = col.name
    text = _t(name)
    if col.kind is Kind.NHS_NUMBER:
        digits = _p(name)
        value = pl.when(is_valid_expr(digits)).then(digits).otherwise(None)
        return _ColumnRule(text.str.replace_all(r"[\s-]", ""), value, "invalid_nhs_number")
    if col.kind is Kind.POSTCODE:
        return _ColumnRule(squash_postcode(text), format_postcode(_p(name)), "invalid_postcode")
    if col.kind is Kind.DATE:
        value = parsed = _p(name)
        if col.nullable_if_defective:  # a date of birth: plausible range too
            in_range = parsed.is_between(EARLIEST_BIRTH, today)
            value = pl.when(in_range).then(parsed).otherwise(None)
        return _ColumnRule(_parse_date(text), value, "invalid_date")
    if col.kind is Kind.DATETIME:
        return _ColumnRule(
            text.str.extract_groups(DATETIME_RE), _parse_datetime(_p(name)), "invalid_datetime"
        )
    if col.kind is Kind.INT:
        shaped = text.str.contains(INT_RE)
        value = pl.when(shaped).then(text.cast(pl.Int64, strict=False)).otherwise(None)
        return _ColumnRule(None, value, "invalid_int")
    if col.kind is Kind.CODE:
        assert col.codes is not None, f"{name}: a CODE column needs its code set"
        value = text.str.to_lowercase().replace_strict(
            _code_lookup(col.codes), default=None, return_dtype=pl.String
        )
        return _ColumnRule(None, value, "unknown_code")
    return _ColumnRule(None, text, None)


def _reason(col: Column, kind: str | None) -> pl.Expr | None:
    """A reason string where this column makes the row unusable, else null (None: never)."""
    blank = _t(col.name).is_null()
    defective = ~blank & _v(col.name).is_null()
    cases: list[tuple[pl.Expr, str]] = []
    if col.required:
        cases.append((blank, f"missing:{col.name}"))
    if kind is not None and not col.nullable_if_defective:
        cases.append((defective, f"{kind}:{col.name}"))
    if not cases:
        return None
    (first, label), *rest = cases
    reason = pl.when(first).then(pl.lit(label))
    for condition, label in rest:
        reason = reason.when(condition).then(pl.lit(label))
    return reason.otherwise(None)


def _status(col: Column) -> pl.Expr:
    """valid / blank / invalid for an identifier that is nulled rather than quarantined."""
    blank = _t(col.name).is_null()
    defective = ~blank & _v(col.name).is_null()
    return (
        pl.when(blank)
        .then(pl.lit(BLANK))
        .when(defective)
        .then(pl.lit(INVALID))
        .otherwise(pl.lit(VALID))
    )


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


def _supersede(usable: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows of a layout that resubmits (CLD): per identity, the latest submission's row wins.

    Only usable rows take part, as with duplicate keys: a broken row must not displace
    a good one. Within one submission date the later row (file, then line) wins. The
    others are returned apart, with reason ``superseded_by:<file>:<line>`` naming the row
    that replaces them, so the ledger balances and the quarantine says which replaced which.
    """
    if IDENTITY not in usable.columns:
        return usable, usable.clear()
    keyed = pl.col(IDENTITY).is_not_null()
    winners = (
        usable.filter(keyed)
        .sort([IDENTITY, SUBMITTED, "__row__"], descending=[False, True, True], nulls_last=True)
        .unique(IDENTITY, keep="first", maintain_order=True)
        .select(IDENTITY, pl.col(FILE).alias("__by_file"), pl.col(LINE).alias("__by_line"))
    )
    marked = usable.join(winners, on=IDENTITY, how="left").with_columns(
        pl.when(
            keyed & ((pl.col(FILE) != pl.col("__by_file")) | (pl.col(LINE) != pl.col("__by_line")))
        )
        .then(pl.format("superseded_by:{}:{}", "__by_file", "__by_line"))
        .alias(REASON)
    )
    live = marked.filter(pl.col(REASON).is_null()).drop("__by_file", "__by_line")
    return live, marked.filter(pl.col(REASON).is_not_null()).drop("__by_file", "__by_line")


def split_rows(raw: pl.DataFrame, table: Table, today: date | None = None) -> Split:
    """Apply the contract to raw text rows (in file, line order) and split them.

    Duplicate keys are resolved after the other checks, among usable rows only,
    keeping the first in file-name then line order: a broken row must not claim
    a key, and the earliest delivery wins so adding a later file never changes
    which row of an earlier one was loaded.
    """
    return resolve_rows(check_rows(raw, table, today), table)


def check_rows(raw: pl.DataFrame, table: Table, today: date | None = None) -> pl.DataFrame:
    """The row-by-row part of :func:`split_rows`: each row checked on its own.

    Nothing here looks at another row, so the result for a file depends only on
    its rows, the contract and ``today`` (the latest plausible date of birth):
    ingest caches it per delivery (ingest/cache.py). Returns the raw text
    columns (the quarantine shows them), the normalised values (``__v_``), the
    identifier flags (``__s_``) and the row's ``reason`` (null: usable so far).
    """
    today = today or date.today()
    rules = {c.name: _rule(c, today) for c in table.columns}
    utf8 = pl.any_horizontal(
        pl.col(table.all_column_names).str.contains(REPLACEMENT_CHAR, literal=True)
    )
    reasons = [
        pl.when(utf8).then(pl.lit("invalid_utf8")),
        pl.col(READ_PROBLEMS),
    ]
    for c in table.columns:
        reason = _reason(c, rules[c.name].kind)
        if reason is not None:
            reasons.append(reason)
    checked = (
        raw.with_columns(_trimmed(n).alias(f"__t_{n}") for n in table.all_column_names)
        .with_columns(
            r.prepare.alias(f"__p_{n}") for n, r in rules.items() if r.prepare is not None
        )
        .with_columns(r.value.alias(f"__v_{n}") for n, r in rules.items())
        .with_columns(
            pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias(REASON),
            *(_status(c).alias(f"__s_{c.name}") for c in table.columns if c.nullable_if_defective),
        )
        .with_columns(pl.when(pl.col(REASON) != "").then(pl.col(REASON)).alias(REASON))
    )
    extra = [c for c in (IDENTITY, SUBMITTED) if c in raw.columns]
    return checked.select(
        FILE,
        LINE,
        *table.all_column_names,
        *extra,
        *(f"__v_{c.name}" for c in table.columns),
        *(f"__s_{c.name}" for c in table.columns if c.nullable_if_defective),
        REASON,
    )


def resolve_rows(checked: pl.DataFrame, table: Table) -> Split:
    """The part of :func:`split_rows` across rows (and files): superseded rows, duplicate keys.

    ``checked`` is :func:`check_rows`'s output for every file of the table, stacked
    in file-name then line order, as :func:`split_rows` would see them.
    """
    checked = checked.with_row_index("__row__")
    usable, superseded = _supersede(checked.filter(pl.col(REASON).is_null()))
    if table.key:
        first = pl.struct([f"__v_{k}" for k in table.key]).is_first_distinct()
        usable = usable.with_columns(
            pl.when(first).then(None).otherwise(pl.lit("duplicate_key")).alias(REASON)
        )
    rejected = pl.concat(
        [
            checked.filter(pl.col(REASON).is_not_null()),
            superseded,
            usable.filter(pl.col(REASON).is_not_null()),
        ]
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
        *[pl.col(c) for c in table.all_column_names],
    )
    return Split(loaded=loaded.select(loaded_cols), quarantined=quarantined)
