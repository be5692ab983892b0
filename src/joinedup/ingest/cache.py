"""Ingest's per-delivery cache: a landing file already checked is not read or checked again.

Reading and checking a file row by row (read.py, ``validate.check_rows``) depends
only on the file's bytes, its name (``source_file`` is in every row), the table,
its layout, the latest plausible date of birth, and the code and contracts that
do the checking. The result is kept per delivery in
``landing/_validated/_cache/<source>/<table>/<key>.parquet``, ``key`` being a
SHA-256 of all of those, so a change to any of them is a miss and the file is
read again: a corrected file, a renamed one, a new release of the code.

What spans rows (superseded submissions, duplicate keys: ``validate.resolve_rows``)
is never cached: it runs on every run over the stacked rows of all files, so a
run that reuses every file still resolves exactly as a full rebuild does.

The entries hold the delivered values (the quarantine shows them), so they live
in the validated zone, owner-only like the rest of it, and only for as long as
their file is a current delivery: entries of files no longer in landing, or
replaced by a later delivery of their month, are removed by the ingest that
notices. ``JOINEDUP_FULL_REBUILD=1`` ignores every entry (each file is read and
checked again, and the entries rewritten).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path

import polars as pl

from joinedup.atomic import write_json, write_parquet
from joinedup.catalogue import ingest_cache_dir
from joinedup.contracts import Table
from joinedup.ingest.layouts import mappings_dir
from joinedup.ingest.read import LandingFile
from joinedup.ingest.redelivery import Profile

log = logging.getLogger(__name__)

SUFFIX = ".parquet"  # the checked rows of a current delivery
PROFILE = ".json"  # its Profile (row count, months, organisations): no row of it


@cache
def _code_fingerprint() -> str:
    """SHA-256 of the code and shipped files that reading and checking a row depend on."""
    package = Path(str(resources.files("joinedup")))
    parts = [
        *sorted((package / "ingest").glob("*.py")),
        package / "contracts.py",
        package / "nhs_number.py",
        *sorted((package / "layouts").glob("*.yaml")),
    ]
    digest = hashlib.sha256()
    for path in parts:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint() -> str:
    """What a cached check depends on besides its file: the code, layouts and local mappings."""
    digest = hashlib.sha256(_code_fingerprint().encode())
    folder = mappings_dir()
    if folder is not None:  # local mappings change how a supplier's file is read
        for path in sorted(folder.glob("*.yaml")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class IngestCache:
    """The cache entries of one table; ``enabled=False`` (a full rebuild) never reads one."""

    def __init__(self, data_dir: Path, table: Table, *, enabled: bool = True) -> None:
        self.folder = ingest_cache_dir(data_dir, table)
        self.table = table
        self.enabled = enabled
        self.code = fingerprint()
        self.used: set[str] = set()

    def key(self, file: LandingFile, sha256: str, born_by: date) -> str:
        layout = "" if file.layout is None else f"{file.layout.name}@{file.layout.revision}"
        fields = [self.code, self.table.qualified_name, file.name, sha256, layout]
        return hashlib.sha256("\0".join([*fields, born_by.isoformat()]).encode()).hexdigest()

    def get(self, key: str) -> pl.DataFrame | None:
        path = self.folder / f"{key}{SUFFIX}"
        if not self.enabled or not path.is_file():
            return None
        try:
            return pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:  # damaged: read the file again
            log.warning("ingest cache entry %s unreadable (%s): reading its file again", path, exc)
            return None

    def put(self, key: str, checked: pl.DataFrame, profile: Profile) -> None:
        write_parquet(checked, self.folder / f"{key}{SUFFIX}")
        write_json(profile.to_json(), self.folder / f"{key}{PROFILE}")

    def profile(self, key: str) -> Profile | None:
        path = self.folder / f"{key}{PROFILE}"
        if not self.enabled or not path.is_file():
            return None
        try:
            return Profile.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ingest cache entry %s unreadable (%s): reading its file again", path, exc)
            return None

    def prune(self, rows: set[str], profiles: set[str]) -> list[str]:
        """Keep the rows of ``rows`` and the profiles of ``profiles``; remove every other entry.

        ``rows``: the files loaded now. A file replaced by a later delivery keeps only
        its profile, while it stays in landing, so that later runs need not read it to
        find it replaced; a file gone from landing keeps nothing.
        """
        if not self.folder.is_dir():
            return []
        removed = []
        for entry in sorted(self.folder.iterdir()):
            key, suffix = entry.name.split(".", 1)[0], "." + entry.name.split(".", 1)[-1]
            keep = (suffix == SUFFIX and key in rows) or (suffix == PROFILE and key in profiles)
            if not keep and entry.is_file() and not entry.name.startswith("."):
                entry.unlink(missing_ok=True)
                removed.append(entry.name)
        return removed
