"""Atomic file writes: write to a temporary name beside the target, then rename.

A killed task therefore never leaves a half-written file under its final name.

CSV files get one more guard, because people open them in a spreadsheet: a text
cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
formula there (CSV injection; ``=cmd|' /C calc'!A0`` runs a program in older
Excel), so :func:`write_csv` prefixes such cells with ``'`` as OWASP advises.
Only text columns are touched (an integer column's ``-1`` is a number, not
text), and a text cell that is a plain number (``-1``, ``+44``, ``-2.5e3``) is
left alone: a spreadsheet reads it as that number, never as a formula. A cell
that already starts with ``'`` gets another, which makes the escape
reversible: :func:`read_csv` removes exactly one leading ``'``, so files the
pipeline reads back (the ledger, the volume baseline) round-trip to the values
that were written. Every CSV output goes through these two functions; Parquet
and DuckDB files hold values as they are.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from joinedup.privacy.permissions import make_private_dirs, make_private_file, private_zone


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target`` in one rename."""
    target = Path(target)
    zone = private_zone(target)
    if zone is None or zone == target.absolute():
        # No zone, or a zone that is one file (the ledger): its folder is not the zone's.
        target.parent.mkdir(parents=True, exist_ok=True)
    else:
        make_private_dirs(zone, target.parent)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    remove_stale_temporaries(target.parent, only_for=target.name)
    try:
        yield tmp
        if zone is not None:
            # The 0700 folders keep others out while it is written; the file itself is
            # tightened here because writers create it with the umask's mode.
            make_private_file(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


# ".<final name>.tmp-<pid>", maybe with a suffix a library adds (DuckDB's ".wal").
_TEMPORARY = re.compile(r"^\.(?P<final>.+)\.tmp-(?P<pid>\d+)(?:\..*)?$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: Path, *, only_for: str | None = None) -> list[Path]:
    """Delete temporaries that killed writers left in ``folder`` (``only_for``: one target's).

    A process killed mid-write never reaches its cleanup, so its ``.<name>.tmp-<pid>``
    stays (hidden, never under the final name, but taking space, and a DuckDB file
    of that name would be reopened rather than rewritten). A temporary is stale when
    its pid is this process's (one writer per target in a process) or no longer runs
    on this machine; another live process's is a concurrent writer and is kept.
    Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        found = _TEMPORARY.match(entry.name)
        if not found or (only_for is not None and found["final"] != only_for):
            continue
        pid = int(found["pid"])
        if pid != os.getpid() and _running(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def write_parquet(
    frame: pl.DataFrame, target: Path, metadata: dict[str, str] | None = None
) -> Path:
    # Statistics off and one row group per file keep output byte-identical across runs.
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp, compression="zstd", statistics=False, metadata=metadata)
    return target


# A spreadsheet evaluates a cell starting with one of these; ' is escaped too (reversibility).
FORMULA_START = r"^[=+\-@\t\r']"
PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def escape_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells a spreadsheet would run as a formula, prefixed with ``'`` (see module doc)."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START) & ~pl.col(c).str.contains(PLAIN_NUMBER))
        .then(pl.concat_str(pl.lit("'"), pl.col(c)))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def unescape_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """The inverse of :func:`escape_formulas`: one leading ``'`` removed from text cells."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(c).str.starts_with("'"))
        .then(pl.col(c).str.slice(1))
        .otherwise(pl.col(c))
        .alias(c)
        for c in text
    )


def write_csv(frame: pl.DataFrame, target: Path) -> Path:
    """Write a CSV a person may open in a spreadsheet, formula-like text cells escaped."""
    with atomic_path(target) as tmp:
        escape_formulas(frame).write_csv(tmp)
    return target


def read_csv(source: Path, **options: Any) -> pl.DataFrame:
    """Read a CSV written by :func:`write_csv` back to the values that were written.

    ``options`` go to ``polars.read_csv``; columns read as text are unescaped.
    """
    return unescape_formulas(pl.read_csv(source, **options))


def write_text(text: str, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def write_json(value: Any, target: Path) -> Path:
    """``value`` as indented JSON with a final newline (readable in a diff), atomically."""
    return write_text(json.dumps(value, indent=2, default=str) + "\n", target)
