"""Owner-only zones of the data directory: access separation on one machine.

The account that runs the pipeline (the data engineers) is the only one that may read
identifiable or record-level data. Its folders are created 0700 and the files in them
0600, whatever the umask of the process that writes them, so analysts and other local
users cannot even list them. That covers every zone holding record-level data,
unsuppressed counts or Airflow state (``catalogue.Zone.private``); only the publications
are readable by others.

A zone is recognised by where it sits in a data directory, the folder that holds
``landing/``: ``joinedup.atomic`` asks :func:`private_zone` for every file it writes,
so no stage has to remember the rule.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from joinedup import catalogue
from joinedup.catalogue import PRIVATE_ZONES

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

# landing/ itself belongs to whoever delivers the extracts; the pipeline tightens it
# when it is ours (secure_data_dir). The private zones are the catalogue's.
LANDING = catalogue.LANDING.path
SPILL = catalogue.SPILL.path


def _zone_parts() -> list[tuple[str, ...]]:
    return [tuple(zone.split("/")) for zone in PRIVATE_ZONES]


def private_zone(path: Path) -> Path | None:
    """The owner-only zone folder that ``path`` is in (or is), else None."""
    path = Path(path).absolute()
    candidates = (path, *path.parents)
    for parts in _zone_parts():
        for folder in candidates:
            if len(folder.parts) > len(parts) and folder.parts[-len(parts) :] == parts:
                data_dir = folder.parents[len(parts) - 1]
                if (data_dir / LANDING).is_dir():
                    return folder
    return None


def _tighten(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except PermissionError:
        owner = path.stat().st_uid
        raise PermissionError(
            f"cannot make {path} owner-only (mode {mode:o}): it belongs to uid {owner}, "
            f"not to this account (uid {os.getuid()}). Run the pipeline as the owner of "
            "the data directory, or chown it to this account."
        ) from None


def make_private_dirs(zone: Path, folder: Path) -> None:
    """Create ``folder`` inside ``zone``; the zone and every folder down to it become 0700.

    Existing folders are tightened too: a data directory may predate this rule.
    """
    zone, folder = Path(zone).absolute(), Path(folder).absolute()
    chain = [folder, *folder.parents]
    chain = list(reversed(chain[: chain.index(zone) + 1]))
    zone.parent.mkdir(parents=True, exist_ok=True)
    for d in chain:
        d.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        # mkdir's mode is filtered by the umask, and an old folder keeps its mode.
        _tighten(d, PRIVATE_DIR_MODE)


def make_private_file(path: Path) -> None:
    _tighten(Path(path), PRIVATE_FILE_MODE)


def is_owner_only(path: Path) -> bool:
    """True when neither group nor others have any access to ``path``."""
    return stat.S_IMODE(Path(path).stat().st_mode) & 0o077 == 0


def secure_data_dir(data_dir: Path) -> list[str]:
    """Tighten ``landing/`` (if ours) and every existing zone folder to 0700; create ``.tmp``.

    New files are made owner-only as they are written; this covers data directories
    written before the rule and folders made without ``joinedup.atomic`` (DuckDB's spill
    folder is made under ``.tmp``, which therefore must exist owner-only first).
    Returns the folders whose mode changed.
    """
    data_dir = Path(data_dir)
    changed: list[str] = []
    if (data_dir / LANDING).is_dir() and not (data_dir / SPILL).exists():
        make_private_dirs(data_dir / SPILL, data_dir / SPILL)
    folders = [data_dir / LANDING, *(data_dir / zone for zone in PRIVATE_ZONES)]
    for folder in folders:
        if folder.is_file():  # a zone that is one file (the ledger, the warehouse)
            if stat.S_IMODE(folder.stat().st_mode) != PRIVATE_FILE_MODE:
                _tighten(folder, PRIVATE_FILE_MODE)
                changed.append(folder.relative_to(data_dir).as_posix())
            continue
        if not folder.is_dir():
            continue
        info = folder.stat()
        if info.st_uid != os.getuid() and folder.name == LANDING:
            continue  # the delivery account's folder: its modes are its owner's business
        if stat.S_IMODE(info.st_mode) != PRIVATE_DIR_MODE:
            _tighten(folder, PRIVATE_DIR_MODE)
            changed.append(folder.relative_to(data_dir).as_posix())
    if changed:
        log.info("made owner-only (folders 0700, files 0600): %s", ", ".join(changed))
    return changed
