"""Read landing CSV files exactly as delivered: every value as text, with file and line.

Why everything is read as text first: type inference would silently turn a
bad value into null (or an NHS number into an integer that loses its leading
zero), and the quarantine must show a person the value the supplier sent.

Decisions, documented in docs/contracts.md terms (whole-file rejections in sniff.py):

* Header: names are matched after trimming, lower-casing and dropping a UTF-8
  byte-order mark, so Excel exports work. Every contract column must be
  present; a file missing any is rejected whole (:class:`MissingColumnsError`).
  Columns may come in any order; extra columns are ignored with a warning.
  Before the header is parsed, the file itself is checked (sniff.py: name,
  location, empty, compressed or binary) and its record structure scanned
  (csv_shape.py: NUL bytes, quotes that never close or sit inside a value),
  so a file rejected whole stops the run before any output is touched.
* Line endings: LF and CRLF; a value in quotes may span lines (it is one value).
* Non-UTF-8 bytes after the header: the file is decoded lossily (each bad byte
  becomes U+FFFD) and every row with a replacement character in a contract
  column is quarantined with reason ``invalid_utf8`` and its file and line. One
  bad byte in a million-row delivery should not stop a run, and the row's file
  and line tell the supplier exactly what to fix; a file encoded in another
  character set shows up as many such rows.
* A row with more fields than the header (``too_many_fields``) or fewer
  (``too_few_fields``) is quarantined: its values cannot be trusted to be in
  the right columns. Counts come from csv_shape.py, because the CSV reader pads
  a short row with empty values and cannot tell ``a,b`` from ``a,b,``.
* A value longer than ``MAX_FIELD_BYTES`` quarantines its row
  (``field_too_long:<column>``) and is cut to that length right here.
* Blank lines (every field empty) are not rows: they are skipped and not counted.
* ``line`` is the physical line number where the row starts (header = line 1),
  counting newlines inside quoted values, so an editor jumps straight to it.
"""

from __future__ import annotations

import csv
import fnmatch
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from joinedup.catalogue import landing_files, relative
from joinedup.contracts import TABLES, Table
from joinedup.ingest.csv_shape import RecordShape, scan_records
from joinedup.ingest.errors import (
    LayoutFileError,
    MalformedCsvError,
    MalformedHeaderError,
    MissingColumnsError,
)
from joinedup.ingest.layouts import (
    IDENTITY,
    SUBMITTED,
    Layout,
    layouts_for,
    missing_columns,
    read_columns,
    translate,
)
from joinedup.ingest.sniff import check_location, read_header_line

log = logging.getLogger(__name__)

EXTRA = "__extra_fields__"  # catches fields beyond the header on ragged rows
FILE = "source_file"
LINE = "source_line"
# Reasons found while reading ("; "-joined): too_many_fields, too_few_fields,
# field_too_long:<column>; null for a row that reads cleanly.
READ_PROBLEMS = "__read_problems__"
# Longest value accepted in any contract column, in UTF-8 bytes. The longest real
# values (names, service types) are tens of bytes; 4 KiB leaves room for any
# plausible one while keeping a multi-megabyte value out of every later stage.
MAX_FIELD_BYTES = 4096
REPLACEMENT_CHAR = "\ufffd"


@dataclass(frozen=True)
class LandingFile:
    """One delivery file whose header satisfies the contract."""

    path: Path
    name: str  # relative to the data dir, as written to the ledger and quarantine
    header: tuple[str, ...]  # normalised names, in file order
    extra_columns: tuple[str, ...]
    shape: RecordShape | None = None  # from the header check; scanned on read if absent
    layout: Layout | None = None  # a national layout or local mapping; None: the generic one


def _normalise_name(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


def check_header(
    data_dir: Path, table: Table, path: Path, layout: Layout | None = None
) -> LandingFile:
    """Check one file whole and hold its header against the contract; raise if it is unusable.

    ``layout``: the national layout or local mapping the file is delivered in (None:
    the generic layout, the landing table's own columns).
    """
    # Named as found (not resolved), so a link is reported under its own name.
    check_location(data_dir, path, f"{table.folder}/{Path(path).name}")
    name = relative(data_dir, path)
    expected = table.column_names if layout is None else layout.column_names
    text = read_header_line(path, name, expected)
    raw = next(csv.reader([text]), [])
    header = tuple(_normalise_name(h) or f"__unnamed_{i}__" for i, h in enumerate(raw))
    if layout is None:
        missing = [c for c in table.column_names if c not in header]
        if missing:
            raise MissingColumnsError(name, missing, table.column_names)
    else:
        missing = missing_columns(layout, header)
        if missing:
            raise LayoutFileError(name, missing, layout)
    seen: set[str] = set()
    dupes = sorted({h for h in header if h in seen or seen.add(h)})
    if dupes:
        raise MalformedHeaderError(
            name,
            f"column(s) {', '.join(dupes)} appear more than once in the header, so which "
            "value belongs to the contract cannot be known.",
        )
    shape = scan_records(path, name)
    if shape.header_fields != len(header):
        raise MalformedHeaderError(
            name,
            "the header row's quoting runs past its first line; column names cannot hold "
            "quotes or line breaks.",
        )
    known = table.all_column_names if layout is None else read_columns(layout, header)
    extra = tuple(h for h in header if h not in known)
    if extra:
        log.warning("%s: ignoring extra column(s) not in the contract: %s", name, ", ".join(extra))
    return LandingFile(
        path=path, name=name, header=header, extra_columns=extra, shape=shape, layout=layout
    )


def delivered_files(data_dir: Path, table: Table) -> list[tuple[Path, Layout | None]]:
    """Every file that feeds a table, with the layout it is in, in name order.

    A file matched by a local mapping is read with it rather than with the national
    layout it extends. A file that two layouts of different feeds (or a layout and a
    landing table's own name) would read is an error: which columns it holds cannot be
    known.
    """
    folder = Path(data_dir) / table.folder
    generic = {
        p.name
        for t in TABLES.values()
        if t.source == table.source
        for p in folder.glob(t.file_glob)
    }
    every = layouts_for(None, source=table.source)
    out: list[tuple[Path, Layout | None]] = [(p, None) for p in landing_files(data_dir, table)]
    for path in sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []:
        claims = [lay for lay in every if fnmatch.fnmatchcase(path.name, lay.files)]
        # A mapping and the layout it varies are one feed: the mapping (listed first) reads it.
        feeds = {lay.extends or lay.name for lay in claims}
        if not claims:
            continue
        if len(feeds) > 1 or path.name in generic:
            names = sorted(
                {lay.name for lay in claims} | ({"generic"} if path.name in generic else set())
            )
            raise MalformedHeaderError(
                relative(data_dir, path),
                f"its name matches more than one layout ({', '.join(names)}), so how to read "
                "it cannot be known. Rename the file, or narrow a mapping's files pattern.",
            )
        if claims[0].targets(table):
            out.append((path, claims[0]))
    return sorted(out, key=lambda item: item[0].name)


def check_headers(data_dir: Path, table: Table) -> list[LandingFile]:
    """Every delivery file of a table, headers checked before any row is read.

    Checking all headers first means a rejected file stops the run before any
    output of this source has been touched.
    """
    return [
        check_header(data_dir, table, p, layout) for p, layout in delivered_files(data_dir, table)
    ]


def read_file(file: LandingFile, table: Table) -> pl.DataFrame:
    """All rows of one file as text (empty fields as ""), plus ``source_file``/``source_line``.

    ``__read_problems__`` names what makes a row unusable before the contract is
    applied: more or fewer fields than the header, a value over ``MAX_FIELD_BYTES``.
    """
    started = time.perf_counter()
    shape = file.shape or scan_records(file.path, file.name)
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
        # Polars' message quotes the offending value (identifiable): name the column only.
        column = re.search(r"at column '([^']*)'", str(exc))
        where = f" in column {column.group(1)}" if column else ""
        raise MalformedCsvError(
            file.name,
            f"cannot be parsed as CSV{where} ({exc.__class__.__name__}); check its quoting "
            "and delimiters.",
        ) from None
    if frame.height != shape.records:
        raise MalformedCsvError(
            file.name,
            f"the CSV reader found {frame.height:,} rows where the file's quotes and line "
            f"breaks make {shape.records:,}; its quoting is inconsistent.",
        )
    everything = [*file.header, EXTRA]
    width = len(file.header)
    fields = pl.col("__fields__")
    frame = frame.with_columns(
        pl.col(everything).fill_null(""), pl.Series("__fields__", shape.fields_per_record())
    )
    newlines = pl.sum_horizontal(pl.col(everything).str.count_matches("\n", literal=True))
    span = newlines.cast(pl.Int64) + 1
    blank = pl.all_horizontal(pl.col(everything) == "")
    row_shape = (
        pl.when(fields > width)
        .then(pl.lit("too_many_fields"))
        .when(fields < width)
        .then(pl.lit("too_few_fields"))
    )
    # The columns this file delivers: the landing table's own, or its layout's.
    wanted = (
        [c for c in table.all_column_names if c in file.header]
        if file.layout is None
        else read_columns(file.layout, file.header)
    )
    too_long = [
        pl.when(pl.col(c).str.len_bytes() > MAX_FIELD_BYTES).then(pl.lit(f"field_too_long:{c}"))
        for c in wanted
    ]
    out = (
        frame.with_columns(
            ((span.cum_sum() - span) + 2).alias(LINE),
            blank.alias("__blank__"),
            pl.concat_str([row_shape, *too_long], separator="; ", ignore_nulls=True).alias(
                READ_PROBLEMS
            ),
        )
        .filter(~pl.col("__blank__"))
        # One chunk: Polars 2.1 panics (a string-view index assertion) evaluating
        # _clipped over some multi-chunk string columns.
        .rechunk()
        .select(
            pl.lit(file.name).alias(FILE),
            pl.col(LINE),
            *[_clipped(c) for c in wanted],
            pl.when(pl.col(READ_PROBLEMS) != "").then(pl.col(READ_PROBLEMS)).alias(READ_PROBLEMS),
        )
    )
    if file.layout is None:
        # A generic file may leave out the optional (national) columns: they are blank.
        absent = [c for c in table.all_column_names if c not in wanted]
        out = out.with_columns(pl.lit("").alias(c) for c in absent).select(
            FILE,
            LINE,
            *table.all_column_names,
            READ_PROBLEMS,
            pl.lit(None, dtype=pl.String).alias(IDENTITY),
            pl.lit(None, dtype=pl.String).alias(SUBMITTED),
        )
    else:
        out = translate(out, file.layout, table, READ_PROBLEMS, [FILE, LINE])
    log.info(
        "read %s: %d rows (%d blank lines skipped) in %.2fs",
        file.name,
        out.height,
        frame.height - out.height,
        time.perf_counter() - started,
    )
    return out


def _clipped(name: str) -> pl.Expr:
    """A value cut to ``MAX_FIELD_BYTES`` characters, its full size noted, if it is longer.

    Cut here, as soon as the file is read, because every later step copies the
    values a few times: a 100 MB value took 1.6 GB to validate uncut. The row is
    quarantined (``field_too_long``); the quarantine shows the start of the
    value, and file and line point to the rest.
    """
    size = pl.col(name).str.len_bytes()
    note = pl.format("… [cut: {} bytes in the file]", size)
    cut = pl.concat_str(pl.col(name).str.slice(0, MAX_FIELD_BYTES), note)
    return pl.when(size > MAX_FIELD_BYTES).then(cut).otherwise(pl.col(name)).alias(name)


def empty_raw(table: Table) -> pl.DataFrame:
    """The raw frame of a table with no rows (no files, or header-only files)."""
    return pl.DataFrame(
        schema={FILE: pl.String, LINE: pl.Int64}
        | {c: pl.String for c in table.all_column_names}
        | {READ_PROBLEMS: pl.String, IDENTITY: pl.String, SUBMITTED: pl.String}
    )


def read_table(data_dir: Path, table: Table, files: list[LandingFile]) -> pl.DataFrame:
    """Every file of a table, stacked in file-name order (the order duplicate keys resolve in)."""
    frames = [read_file(f, table) for f in files]
    if not frames:
        return empty_raw(table)
    return pl.concat([empty_raw(table), *frames], how="vertical")
