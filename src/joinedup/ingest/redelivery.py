"""Re-deliveries: the same file twice is loaded once; a corrected month replaces the old one.

Every run takes in all of landing (unchanged files from the cache, ingest/cache.py),
so "loaded once" is decided among the files that sit in a table's folder now, in
*delivery order*: when the pipeline
first saw each file as it is (``first_seen_at`` in the ledger, carried from run
to run by file name and SHA-256), then file name for files first seen together.

* **Duplicate**: a file whose SHA-256 equals an earlier file's, under any name,
  is not read: ``status = duplicate``, ``duplicate_of`` names the earlier file.
  (Header-only files are exempt: two empty months are two deliveries.)
* **Replaced**: a file that delivers a month is replaced by a later file of the
  same table for the same month covering at least the same organisations; its
  rows are not read, ``status = replaced`` with ``replaced_by``, and the new
  file's ``replaces`` names it. The month comes from the file name when it holds
  one (``events_2025-04.csv``, ``events_202504.csv``, ``events_2025_04_v2.csv``;
  a full date such as ``_2025-04-30`` names a daily delivery, which has no month),
  else from the data when every date in the table's activity column falls in one
  month. Organisations are the org codes in the file's rows. A later file that
  covers only some of the earlier file's organisations replaces nothing (a
  warning says so): it cannot be told apart from a supplement, and replacing
  would drop the other organisations' rows.
* **Corrected in place**: a file whose name was delivered before with other
  content is loaded as it is now; ``replaces`` names the file itself (the earlier
  content's checksum is in the earlier run's ledger rows).

Files without a month (a snapshot such as ``patients.csv``, or dates spanning
months) are only ever de-duplicated; overlapping rows then resolve by duplicate
key as before (validate.py). A month must therefore be delivered as one file per
table and organisation set: a second file for the same month is a correction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from joinedup.contracts import Table
from joinedup.ingest.ledger import DUPLICATE, LOADED, REPLACED
from joinedup.ingest.read import LandingFile
from joinedup.provenance import sha256_file

log = logging.getLogger(__name__)

# The activity date of a table's rows: a file whose dates all fall in one month delivers it.
PERIOD_COLUMNS: dict[str, str] = {
    "gp/events": "event_date",
    "hospital/apc_episodes": "admission_date",
    "hospital/ae_attendances": "arrival_datetime",
    "social_care/events": "event_start_date",
}
# A year and month standing alone in a file name, not followed by a day.
NAME_PERIOD = re.compile(
    r"(?<![A-Za-z0-9])((?:19|20|21)\d{2})[-_]?(0[1-9]|1[0-2])(?![A-Za-z0-9]|[-_]\d)"
)
# A full date in a file name: a daily (or ad hoc) delivery, never a month's.
NAME_DAY = re.compile(
    r"(?<![A-Za-z0-9])(?:19|20|21)\d{2}[-_]?(?:0[1-9]|1[0-2])[-_]?(?:0[1-9]|[12]\d|3[01])"
    r"(?![A-Za-z0-9])"
)
DATA_MONTH = r"^(\d{4}-(?:0[1-9]|1[0-2]))-\d{2}"


@dataclass(frozen=True)
class Profile:
    """What deciding duplicates and replacements needs of a file, besides its checksum."""

    file_rows: int
    period: str | None
    months: frozenset[str]
    organisations: frozenset[str]

    @classmethod
    def of(cls, file: LandingFile, rows: pl.DataFrame, table: Table) -> Profile:
        period, months = coverage(file, rows, table)
        return cls(rows.height, period, months, organisations(rows, table))

    def to_json(self) -> dict:
        return {
            "file_rows": self.file_rows,
            "period": self.period,
            "months": sorted(self.months),
            "organisations": sorted(self.organisations),
        }

    @classmethod
    def from_json(cls, data: dict) -> Profile:
        return cls(
            int(data["file_rows"]),
            data["period"],
            frozenset(data["months"]),
            frozenset(data["organisations"]),
        )


@dataclass
class Delivery:
    """One landing file of a table and what becomes of it in this run."""

    file: LandingFile
    sha256: str
    size_bytes: int
    first_seen_run: str
    first_seen_at: str
    rows: pl.DataFrame | None = None  # raw rows; None for a duplicate (never read)
    file_rows: int = 0
    period: str | None = None
    # The months the file delivers: its period's, or for a year-to-date refresh every
    # month its rows fall in. A later file covering them all replaces this one.
    months: frozenset[str] = frozenset()
    organisations: frozenset[str] = frozenset()
    status: str = LOADED
    duplicate_of: str | None = None
    replaced_by: str | None = None
    replaces: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.file.name


def _name_rest(path: Path, table: Table) -> str:
    """The part of a file name after the table's own name (``events_2025-04`` -> ``_2025-04``)."""
    return path.stem[len(table.name) :] if path.stem.startswith(table.name) else path.stem


def period_from_name(path: Path, table: Table) -> str | None:
    """``YYYY-MM`` when the part of the name after the table's own name holds exactly one."""
    found = {f"{y}-{m}" for y, m in NAME_PERIOD.findall(_name_rest(path, table))}
    return found.pop() if len(found) == 1 else None


def period_of(path: Path, rows: pl.DataFrame, table: Table) -> str | None:
    """The month a file delivers: from its name, else (unless it names a day) from its data."""
    named = period_from_name(path, table)
    if named is not None or NAME_DAY.search(_name_rest(path, table)):
        return named
    return period_from_data(rows, table)


def period_from_data(rows: pl.DataFrame, table: Table) -> str | None:
    """``YYYY-MM`` when every dated row of the file falls in that month."""
    column = PERIOD_COLUMNS.get(table.qualified_name)
    if column is None or rows.is_empty():
        return None
    months = (
        rows.select(pl.col(column).str.strip_chars().str.extract(DATA_MONTH, 1))
        .drop_nulls()
        .unique()
    )
    return months.item() if months.height == 1 else None


def months_from_data(rows: pl.DataFrame, table: Table) -> frozenset[str]:
    """Every ``YYYY-MM`` the table's activity dates fall in."""
    column = PERIOD_COLUMNS.get(table.qualified_name)
    if column is None or rows.is_empty():
        return frozenset()
    found = rows.select(pl.col(column).str.strip_chars().str.extract(DATA_MONTH, 1)).to_series()
    return frozenset(m for m in found.drop_nulls().unique().to_list())


def coverage(file: LandingFile, rows: pl.DataFrame, table: Table) -> tuple[str | None, frozenset]:
    """(period for the ledger, months covered) of one file, by its layout's revision rule.

    Generic and ``month`` files deliver one month (from the name, else the data);
    ``year_to_date`` files every month their rows fall in (the ledger shows the range);
    ``latest_submission`` and ``snapshot`` files no month: their rows supersede row by row.
    """
    revises = "month" if file.layout is None else file.layout.revises
    if revises == "year_to_date":
        months = months_from_data(rows, table)
        return (f"{min(months)}..{max(months)}" if months else None), months
    if revises != "month":
        return None, frozenset()
    period = period_of(file.path, rows, table)
    return period, frozenset() if period is None else frozenset({period})


def organisations(rows: pl.DataFrame, table: Table) -> frozenset[str]:
    if table.record is None or rows.is_empty():
        return frozenset()
    codes = rows.select(pl.col(table.record[0]).str.strip_chars()).to_series()
    return frozenset(c for c in codes.unique().to_list() if c)


def _first_seen(history: pl.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """(file, sha256) -> (first_seen_at, first_seen_run): when that file, as it is, arrived."""
    seen = (
        history.filter(pl.col("sha256").is_not_null() & pl.col("first_seen_at").is_not_null())
        .sort("first_seen_at", "first_seen_run")
        .unique(["file", "sha256"], keep="first", maintain_order=True)
    )
    return {
        (r["file"], r["sha256"]): (r["first_seen_at"], r["first_seen_run"])
        for r in seen.iter_rows(named=True)
    }


def _earlier_contents(history: pl.DataFrame) -> dict[str, set[str]]:
    """file name -> every checksum it was delivered with before."""
    known = history.filter(pl.col("sha256").is_not_null()).select("file", "sha256").unique()
    out: dict[str, set[str]] = {}
    for name, sha in known.iter_rows():
        out.setdefault(name, set()).add(sha)
    return out


def resolve(
    table: Table,
    files: list[LandingFile],
    history: pl.DataFrame,
    run_id: str,
    seen_now: str,
    read: Callable[[Delivery], pl.DataFrame],
    known: Callable[[Delivery], Profile | None] | None = None,
) -> list[Delivery]:
    """Decide, for every file of a table, whether it is loaded, a duplicate or replaced.

    ``history`` is the whole ledger (every run), ``seen_now`` the time recorded as
    first seen for content never seen before, ``read`` reads one delivery's rows (its
    raw text columns at least: ingest passes the checked rows, ingest/cache.py).
    ``known``, if given, returns what an earlier run found in a delivery
    (:class:`Profile`) or None: those files are read only if they are loaded, not
    to learn that a later file replaces them. Returns the deliveries in
    file-name order (the order rows are stacked in).
    """
    first_seen = _first_seen(history)
    earlier = _earlier_contents(history)
    deliveries = []
    for f in files:
        sha = sha256_file(f.path)
        at, first_run = first_seen.get((f.name, sha), (seen_now, run_id))
        deliveries.append(Delivery(f, sha, f.path.stat().st_size, first_run, at))
    in_order = sorted(deliveries, key=lambda d: (d.first_seen_at, d.name))

    originals: dict[str, Delivery] = {}
    for d in in_order:
        original = originals.get(d.sha256)
        if original is None or original.file_rows == 0:
            profile = None if known is None else known(d)
            if profile is None:
                d.rows = read(d)
                profile = Profile.of(d.file, d.rows, table)
            d.file_rows, d.period = profile.file_rows, profile.period
            d.months, d.organisations = profile.months, profile.organisations
            originals.setdefault(d.sha256, d)
        else:
            d.status, d.duplicate_of, d.file_rows = DUPLICATE, original.name, original.file_rows
            log.warning(
                "%s: same content (sha256 %s) as %s: not loaded again",
                d.name,
                d.sha256[:12],
                original.name,
            )
        if d.first_seen_run == run_id and earlier.get(d.name, {d.sha256}) - {d.sha256}:
            d.replaces.append(d.name)
            log.warning(
                "%s: delivered again with new content; the earlier content is replaced", d.name
            )

    _replace_months(table, [d for d in in_order if d.status == LOADED])
    for d in deliveries:
        if d.status == LOADED and d.rows is None:  # profiled from an earlier run, still loaded
            d.rows = read(d)
    return deliveries


def _replace_months(table: Table, in_order: list[Delivery]) -> None:
    """A later file replaces earlier ones whose months it covers, for no fewer organisations.

    A month's file covers its month; a year-to-date refresh every month it holds.
    """
    for i, later in enumerate(in_order):
        if not later.months:
            continue
        for earlier in in_order[:i]:
            if earlier.status != LOADED or not earlier.months or not earlier.months <= later.months:
                continue
            if earlier.organisations <= later.organisations:
                earlier.status, earlier.replaced_by = REPLACED, later.name
                later.replaces.append(earlier.name)
                log.warning(
                    "%s: replaced by %s (a later delivery for %s %s)",
                    earlier.name,
                    later.name,
                    table.qualified_name,
                    later.period,
                )
            elif earlier.organisations & later.organisations:
                log.warning(
                    "%s and %s both deliver %s %s for organisation(s) %s, but the later one "
                    "lacks %s: both are loaded and duplicate keys keep the earlier rows. If "
                    "the later file is a correction, re-deliver the whole month in one file.",
                    earlier.name,
                    later.name,
                    table.qualified_name,
                    later.period,
                    ", ".join(sorted(earlier.organisations & later.organisations)),
                    ", ".join(sorted(earlier.organisations - later.organisations)),
                )
    for d in in_order:
        if d.status == REPLACED:
            d.rows = None  # the superseded rows go no further
