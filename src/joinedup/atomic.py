"""Atomic file writes: write to a temporary name beside the target, then rename.

A killed task therefore never leaves a half-written file under its final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from joinedup.permissions import make_private_dirs, make_private_file, private_zone


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``target`` in one rename."""
    target = Path(target)
    zone = private_zone(target)
    if zone is None:
        target.parent.mkdir(parents=True, exist_ok=True)
    else:
        make_private_dirs(zone, target.parent)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
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


def write_parquet(frame: pl.DataFrame, target: Path) -> Path:
    # Statistics off and one row group per file keep output byte-identical across runs.
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp, compression="zstd", statistics=False)
    return target


def write_csv(frame: pl.DataFrame, target: Path) -> Path:
    with atomic_path(target) as tmp:
        frame.write_csv(tmp)
    return target


def write_text(text: str, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
