"""The record structure of a landing CSV, found from its bytes: fields per row, NUL bytes, quotes.

Why a separate pass: Polars' CSV reader, given a schema, pads a row with too
few fields with empty strings, so ``a,b`` and ``a,b,`` read the same and a
short row's values may sit under the wrong columns unnoticed. Counting the
separators of each record here tells them apart, exactly, for every row.

How: RFC 4180 quoting in vectorised form. A byte is inside a quoted value when
an odd number of ``"`` precede it (an escaped ``""`` toggles twice, so it
changes nothing); commas and newlines outside quotes are field and record
separators. Only the positions of quotes, commas and newlines are kept, a
chunk at a time with the parity carried from chunk to chunk, so memory stays
at a few times ``CHUNK_BYTES`` whatever the file size.

Only rows whose field count differs from the header's are kept (with their
counts), so a well-formed file of any length costs a few bytes here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from joinedup.ingest.errors import MalformedCsvError, NotCsvTextError

CHUNK_BYTES = 8 * 1024 * 1024
QUOTE, COMMA, LF, CR = ord('"'), ord(","), ord("\n"), ord("\r")
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, eq=False)
class RecordShape:
    """Data records of a file (header excluded, blank lines included, as Polars reads them)."""

    records: int
    header_fields: int
    # 0-based data record numbers whose field count differs from the header's, and their counts.
    odd_records: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    odd_fields: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def fields_per_record(self) -> np.ndarray:
        """Field count of every data record, in file order."""
        counts = np.full(self.records, self.header_fields, dtype=np.int32)
        counts[self.odd_records] = self.odd_fields
        return counts


def scan_records(path: Path, name: str) -> RecordShape:
    """Count the fields of every record of ``path``; reject NUL bytes and misplaced quotes.

    ``name`` is the file as shown in messages. The first record is the header;
    the counts of the others are compared with it.
    """
    inside = 0  # 1 when the chunk starts inside a quoted value
    line = 1  # physical line number at the start of the chunk
    offset = 0
    open_commas = 0  # separators of the record still open at the end of the previous chunk
    pending = False  # bytes after the last record end (a last line without a newline)
    done = 0  # records completed, header included
    header_fields = 0
    opened_at = 0  # line of the quote that opened a value still open
    previous = LF  # the byte before the chunk: the file starts as if after a line
    odd: list[tuple[np.ndarray, np.ndarray]] = []
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            nul = chunk.find(b"\x00")
            if nul >= 0:
                at_line = line + chunk.count(b"\n", 0, nul)
                raise NotCsvTextError(
                    name,
                    f"holds a NUL byte at line {at_line} (byte {offset + nul:,}): binary data, "
                    "not CSV text, or a transfer corrupted part-way. Ask for the file to be sent "
                    "again.",
                )
            data = np.frombuffer(chunk, dtype=np.uint8)
            quotes = np.flatnonzero(data == QUOTE)
            opening = ((np.arange(quotes.size) + inside) & 1) == 0
            stray = _first_stray_quote(data, quotes, opening, previous, bom=offset == 0)
            if stray >= 0:
                at_line = line + chunk.count(b"\n", 0, stray)
                raise MalformedCsvError(
                    name,
                    f'line {at_line}: a " character in the middle of a value, or text right '
                    "after a closing quote. A value holding a quote must be quoted as a whole "
                    'with the quote doubled ("O""Brien"); the CSV reader cannot tell where that '
                    "row ends. Ask the supplier to fix the quoting.",
                )
            newlines = np.flatnonzero(data == LF)
            quoted_before = np.searchsorted(quotes, newlines) + inside
            ends = newlines[(quoted_before & 1) == 0]
            commas = _unquoted_commas_per_record(data, quotes, opening, ends, inside)
            commas[0] += open_commas
            if ends.size:
                fields = commas[:-1] + 1
                if done == 0:
                    header_fields = int(fields[0])
                first = 1 if done == 0 else 0  # the header is not a data record
                wrong = np.flatnonzero(fields[first:] != header_fields) + first
                if wrong.size:
                    odd.append((wrong + done - 1, fields[wrong]))
                done += ends.size
                pending = int(ends[-1]) < len(chunk) - 1
            else:
                pending = True
            open_commas = int(commas[-1])
            inside = (inside + quotes.size) & 1
            if inside:
                opens = quotes[opening]
                opens = opens[(opens == 0) | (data[opens - 1] != QUOTE)]  # not an escaped ""
                if opens.size:
                    opened_at = line + chunk.count(b"\n", 0, int(opens[-1]))
            previous = chunk[-1]
            line += newlines.size
            offset += len(chunk)
    if inside:
        raise MalformedCsvError(
            name,
            f"a quoted value that starts at or before line {opened_at} never closes (an odd "
            'number of " characters), so where its rows end cannot be known. Ask the supplier '
            'to quote values containing " as CSV requires (each " inside doubled).',
        )
    if pending:  # the last line has no newline: still a record
        fields = open_commas + 1
        if done == 0:
            header_fields = fields
        elif fields != header_fields:
            odd.append((np.array([done - 1]), np.array([fields])))
        done += 1
    return RecordShape(
        records=max(done - 1, 0),
        header_fields=header_fields,
        odd_records=np.concatenate([o[0] for o in odd]) if odd else np.empty(0, np.int64),
        odd_fields=np.concatenate([o[1] for o in odd]) if odd else np.empty(0, np.int64),
    )


def _unquoted_commas_per_record(
    data: np.ndarray, quotes: np.ndarray, opening: np.ndarray, ends: np.ndarray, inside: int
) -> np.ndarray:
    """Separating commas of each record ending in the chunk, then of the one left open.

    All commas between two record ends, less those inside the quoted spans that
    lie between them: work in proportion to quotes and rows, not bytes.
    """
    commas = np.flatnonzero(data == COMMA)
    per_record = np.diff(np.searchsorted(commas, ends), prepend=0, append=commas.size)
    starts = quotes[opening]
    stops = quotes[~opening]
    if inside:  # a value opened in an earlier chunk runs from this chunk's start
        starts = np.concatenate([[0], starts])
    if starts.size > stops.size:  # ... and one may run past its end
        stops = np.concatenate([stops, [data.size]])
    quoted = np.searchsorted(commas, stops) - np.searchsorted(commas, starts)
    record = np.searchsorted(ends, starts)
    return per_record - np.bincount(record, weights=quoted, minlength=ends.size + 1).astype(
        np.int64
    )


def _first_stray_quote(
    data: np.ndarray, quotes: np.ndarray, opening: np.ndarray, previous: int, *, bom: bool
) -> int:
    """Offset of the first quote that RFC 4180 does not allow, or -1.

    A quote may open a value only at its start (after a comma, a line end, the
    file start or the other quote of an escaped pair) and may close it only
    before a comma, a line end or another quote. A close in the last byte of a
    chunk is not checked (its next byte is in the next chunk).
    """
    if quotes.size == 0:
        return -1
    before = np.where(quotes > 0, data[quotes - 1], previous)
    if bom and data[:3].tobytes() == UTF8_BOM:
        before[quotes == 3] = LF
    last = quotes == data.size - 1
    after = np.where(last, COMMA, data[np.minimum(quotes + 1, data.size - 1)])
    bad_open = opening & (before != COMMA) & (before != LF) & (before != QUOTE)
    bad_close = ~opening & (after != COMMA) & (after != LF) & (after != CR) & (after != QUOTE)
    found = np.flatnonzero(bad_open | bad_close)
    return int(quotes[found[0]]) if found.size else -1
