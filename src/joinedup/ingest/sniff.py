"""Whole-file checks on a landing file, before its header is parsed or any row is read.

A landing file is whatever a transfer left in the folder, so it is checked as
bytes first. Each check below rejects the *whole* file (a
:class:`~joinedup.ingest.errors.RejectedFileError` naming the file and what to
do) rather than quarantining rows, because none of these files has rows whose
count would mean anything in the ledger:

========================================  ===========================================
what arrives                              what happens
========================================  ===========================================
a name with a control, format or          rejected (:class:`UnsafeFileError`): it would
separator character, or a backslash       forge log lines, break CSV outputs, or be a
                                          path on Windows; names are shown escaped
a symbolic link, or a file whose real     rejected (:class:`UnsafeFileError`): a run
path is outside ``DATA/landing``          reads nothing outside the data directory
0 bytes, or a blank first line            rejected (:class:`EmptyFileError`): a
                                          delivery with no rows is still a header
gzip, ZIP/xlsx, xls, PDF, UTF-16/32       rejected (:class:`NotCsvTextError`) with
                                          how to turn it into a CSV; gzip is not
                                          unpacked, so no file can expand without limit
a NUL byte anywhere                       rejected (:class:`NotCsvTextError`, found by
                                          csv_shape.py): binary, or a corrupted transfer
a first line over ``MAX_HEADER_BYTES``,   rejected (:class:`NotCsvTextError`): not a
not UTF-8, or split by bare CRs           header the contract can be checked against
========================================  ===========================================

Non-UTF-8 bytes *after* the header are a row matter (read.py): the record
structure (commas, quotes, newlines are ASCII) is intact, so the rows are
counted and only the affected ones quarantined.

Quarantine and other outputs are named after the table, never after a landing
file, so no output path is derived from a delivered name.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from joinedup.catalogue import LANDING
from joinedup.ingest.errors import (
    EmptyFileError,
    NotCsvTextError,
    UnsafeFileError,
)

# Longest first line accepted as a header: the widest contract header is ~250 bytes.
MAX_HEADER_BYTES = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"

# Leading bytes of formats suppliers send by mistake, what they are and what to do.
SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (
        b"\x1f\x8b",
        "is gzip-compressed (it starts with the bytes 1f 8b), not CSV text",
        "Decompress it (gunzip -c FILE > FILE.csv) into landing/ and remove the compressed "
        "copy; compressed files are not unpacked by the pipeline.",
    ),
    (
        b"PK\x03\x04",
        "is a ZIP archive (an Excel .xlsx workbook is one), not CSV text",
        "Export the sheet as 'CSV UTF-8' or unzip the archive.",
    ),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "is an Excel 97-2003 workbook (.xls), not CSV text",
        "Export the sheet as 'CSV UTF-8'.",
    ),
    (b"%PDF-", "is a PDF document, not CSV text", "Ask for the extract as CSV."),
    (
        b"\xff\xfe",
        "is UTF-16 (or UTF-32) text, not UTF-8",
        "Save it as 'CSV UTF-8' (in Excel: Save As > CSV UTF-8).",
    ),
    (
        b"\xfe\xff",
        "is UTF-16 text, not UTF-8",
        "Save it as 'CSV UTF-8' (in Excel: Save As > CSV UTF-8).",
    ),
)

# Characters a delivered file name may not hold: C0/C1 controls and DEL (Cc), format
# characters such as right-to-left overrides that disguise a name (Cf), line and
# paragraph separators (Zl, Zp), and bytes that are not valid in the file system's
# encoding (Python hands them over as lone surrogates, Cs).
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def shown(name: str) -> str:
    """A file name as it may appear in a message or log line: unsafe characters escaped."""
    out = []
    for ch in name:
        if unicodedata.category(ch) in UNSAFE_CATEGORIES:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def check_location(data_dir: Path, path: Path, name: str) -> None:
    """Reject a file whose name is unsafe to carry around or that lives outside landing/."""
    base = Path(path).name
    unsafe = sorted({shown(ch) for ch in base if unicodedata.category(ch) in UNSAFE_CATEGORIES})
    if unsafe:
        raise UnsafeFileError(
            shown(name),
            f"the file name holds control or invisible character(s) ({', '.join(unsafe)}), "
            "which would corrupt logs, the ledger and quarantine. Rename the file to letters, "
            "digits, '-', '_' and '.'.",
        )
    if "\\" in base:
        raise UnsafeFileError(
            shown(name),
            "the file name holds a backslash, which is a folder separator on Windows (a name "
            "such as '..\\..\\x.csv' is a path there). Rename the file without backslashes.",
        )
    if Path(path).is_symlink():
        raise UnsafeFileError(
            shown(name),
            "is a symbolic link, not a delivered file; the pipeline reads only regular files "
            "inside the landing folder. Copy the file itself into the landing folder.",
        )
    landing = LANDING.under(data_dir).resolve()
    if not Path(path).resolve().is_relative_to(landing):
        raise UnsafeFileError(
            shown(name),
            f"resolves to a path outside {landing} (a linked folder?); the pipeline reads "
            "only files inside the landing folder. Copy the file into it.",
        )


def read_header_line(path: Path, name: str, expected: tuple[str, ...]) -> str:
    """The first line as text (BOM and line ending removed); reject files that are not CSV.

    Reads at most ``MAX_HEADER_BYTES`` (plus a few bytes): a multi-gigabyte file
    with no newline must not be loaded whole just to find its header.
    """
    with open(path, "rb") as fh:
        first = fh.readline(MAX_HEADER_BYTES + 1)
    if not first:
        raise EmptyFileError(name, "the file is empty (0 bytes)", expected)
    for magic, what, todo in SIGNATURES:
        if first.startswith(magic):
            raise NotCsvTextError(name, f"{what}. {todo}")
    nul = first.find(b"\x00")
    if nul >= 0:
        raise NotCsvTextError(
            name,
            f"holds a NUL byte in its first line (byte {nul}): binary data, not CSV text. "
            "Check the transfer (it may be corrupted) or the file type.",
        )
    if len(first) > MAX_HEADER_BYTES and not first.endswith(b"\n"):
        raise NotCsvTextError(
            name,
            f"its first line is longer than {MAX_HEADER_BYTES:,} bytes, so it is not a header "
            "row of column names. Check the file type and line endings.",
        )
    line = first.removeprefix(UTF8_BOM).removesuffix(b"\n").removesuffix(b"\r")
    if b"\r" in line:
        raise NotCsvTextError(
            name,
            "its lines end with a bare carriage return (CR, classic Mac OS), which the CSV "
            "reader does not split rows on. Re-save it with LF or CRLF line endings.",
        )
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotCsvTextError(
            name,
            f"its header row is not UTF-8 text (byte {exc.start}: 0x{line[exc.start]:02x}); "
            "the file is in another character set or not text at all. Save it as 'CSV UTF-8'.",
        ) from None
    if not text.strip():
        raise EmptyFileError(name, "the first line is blank", expected)
    return text
