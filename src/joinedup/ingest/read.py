"""Read landing CSV files exactly as delivered: every value as text, with file and line.

Why everything is read as text first: type inference would silently turn a
bad value into null (or an NHS number into an integer that loses its leading
zero), and the quarantine must show a person the value the supplier sent.

Decisions, documented in CONTRACTS.md terms:

* Header: names are matched after trimming, lower-casing and dropping a UTF-8
  byte-order mark, so Excel exports work. Every contract column must be
  present; a file missing any is rejected whole (:class:`MissingColumnsError`).
  Columns may come in any order; extra columns are ignored with a warning.
* Non-UTF-8 bytes: the file is decoded lossily (each bad byte becomes U+FFFD)
  and every row with a replacement character in a contract column is
  quarantined with reason ``invalid_utf8`` and its file and line. One bad byte
  in a million-row delivery should not stop a run, and the row's file and line
  tell the supplier exactly what to fix; a file encoded in another character set
  shows up as many such rows.
* A row with more fields than the header is quarantined (``too_many_fields``):
  its values cannot be trusted to be in the right columns. A row with fewer
  fields is read with the missing trailing fields empty (the CSV reader cannot
  tell that apart from trailing empty fields); blank required values then
  quarantine it.
* Blank lines (every field empty) are not rows: they are skipped and not counted.
* ``line`` is the physical line number where the row starts (header = line 1),
  counting newlines inside quoted values, so an editor jumps straight to it.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from joinedup.contracts import Table
from joinedup.ingest.errors import IngestError, MalformedHeaderError, MissingColumnsError
from joinedup.ingest.paths import landing_files, relative

log = logging.getLogger(__name__)

EXTRA = "__extra_fields__"  # catches fields beyond the header on ragged rows
FILE = "source_file"
LINE = "source_line"
REPLACEMENT_CHAR = "\ufffd"


@dataclass(frozen=True)
class LandingFile:
    """One delivery file whose header satisfies the contract."""

    path: Path
    name: str  # relative to the data dir, as written to the ledger and quarantine
    header: tuple[str, ...]  # normalised names, in file order
    extra_columns: tuple[str, ...]


def _normalise_name(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


def check_header(data_dir: Path, table: Table, path: Path) -> LandingFile:
    """Read one file's header and hold it against the contract; raise if columns are missing."""
    name = relative(data_dir, path)
    with open(path, "rb") as fh:
        first = fh.readline()
    text = first.decode("utf-8", errors="replace").rstrip("\r\n")
    raw = next(csv.reader([text]), []) if text.strip() else []
    header = tuple(_normalise_name(h) or f"__unnamed_{i}__" for i, h in enumerate(raw))
    missing = [c for c in table.column_names if c not in header]
    if missing:
        raise MissingColumnsError(name, missing, table.column_names)
    seen: set[str] = set()
    dupes = sorted({h for h in header if h in seen or seen.add(h)})
    if dupes:
        raise MalformedHeaderError(
            f"{name}: column(s) {', '.join(dupes)} appear more than once in the header; "
            "the file was rejected. Ask the supplier to re-deliver it with one column per name."
        )
    extra = tuple(h for h in header if h not in table.column_names)
    if extra:
        log.warning("%s: ignoring extra column(s) not in the contract: %s", name, ", ".join(extra))
    return LandingFile(path=path, name=name, header=header, extra_columns=extra)


def check_headers(data_dir: Path, table: Table) -> list[LandingFile]:
    """Every delivery file of a table, headers checked before any row is read.

    Checking all headers first means a rejected file stops the run before any
    output of this source has been touched.
    """
    return [check_header(data_dir, table, p) for p in landing_files(data_dir, table)]


def read_file(file: LandingFile, table: Table) -> pl.DataFrame:
    """All rows of one file as text (empty fields as ""), plus ``source_file``/``source_line``."""
    started = time.perf_counter()
    schema = {h: pl.String for h in file.header} | {EXTRA: pl.String}
    try:
        frame = pl.read_csv(
            file.path,
            has_header=False,
            skip_rows=1,
            schema=schema,
            missing_columns="insert",
            truncate_ragged_lines=True,
            empty_string_is_null=False,
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise IngestError(
            f"{file.name}: cannot be parsed as CSV ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}). Check quoting near the reported position, "
            "ask the supplier to re-deliver, or move the file out of landing/, then re-run."
        ) from None
    everything = [*file.header, EXTRA]
    frame = frame.with_columns(pl.col(everything).fill_null(""))
    newlines = pl.sum_horizontal(pl.col(everything).str.count_matches("\n", literal=True))
    span = newlines.cast(pl.Int64) + 1
    blank = pl.all_horizontal(pl.col(everything) == "")
    out = (
        frame.with_columns(((span.cum_sum() - span) + 2).alias(LINE), blank.alias("__blank__"))
        .filter(~pl.col("__blank__"))
        .select(
            pl.lit(file.name).alias(FILE),
            pl.col(LINE),
            *table.column_names,
            pl.col(EXTRA),
        )
    )
    log.info(
        "read %s: %d rows (%d blank lines skipped) in %.2fs",
        file.name,
        out.height,
        frame.height - out.height,
        time.perf_counter() - started,
    )
    return out


def empty_raw(table: Table) -> pl.DataFrame:
    """The raw frame of a table with no rows (no files, or header-only files)."""
    return pl.DataFrame(
        schema={FILE: pl.String, LINE: pl.Int64}
        | {c: pl.String for c in table.column_names}
        | {EXTRA: pl.String}
    )


def read_table(data_dir: Path, table: Table, files: list[LandingFile]) -> pl.DataFrame:
    """Every file of a table, stacked in file-name order (the order duplicate keys resolve in)."""
    frames = [read_file(f, table) for f in files]
    if not frames:
        return empty_raw(table)
    return pl.concat([empty_raw(table), *frames], how="vertical")
