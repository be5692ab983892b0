"""Where each stage reads and writes, relative to the data directory.

Identifiable intermediate files stay *inside* ``landing/`` (in folders starting
with ``_`` so they never match a delivery glob such as ``patients*.csv``): only
de-identified data and the row accounting leave the landing zone.

Every zone below except the ledger is owner-only (folders 0700, files 0600): the list
is ``joinedup.permissions.PRIVATE_ZONES``, which ``joinedup.atomic`` applies on write.
"""

from __future__ import annotations

from pathlib import Path

from joinedup.contracts import Table

VALIDATED = "landing/_validated"  # rows that passed the contract (identifiable)
CLEARED = "landing/_cleared"  # validated rows minus opted-out records (identifiable)
OPTED_OUT_RECORDS = "landing/_opted_out/records.parquet"  # identifiable, for encodings only
OPTED_OUT_REASONS = "landing/_opted_out/reasons.parquet"  # identifiable: record key -> reason
QUARANTINE = "quarantine"
PSEUDONYMISED = "pseudonymised"
RESTRICTED_OPTED_OUT_ENCODINGS = "restricted/opted_out_encodings.parquet"
# Records of opted-out people found by linkage (source, record_token), written by link ...
LINKAGE_OPTED_OUT_RECORDS = "restricted/linkage_opted_out_records.parquet"
# ... and those the remove_linked_opt_outs stage has taken out of pseudonymised/.
LINKAGE_OPTED_OUT_APPLIED = "restricted/linkage_opted_out_applied.parquet"
LEDGER = "ledger.csv"


def landing_files(data_dir: Path, table: Table) -> list[Path]:
    """Every delivery file of a table, in name order (the order duplicates are resolved in)."""
    folder = Path(data_dir) / table.folder
    return sorted(p for p in folder.glob(table.file_glob) if p.is_file())


def relative(data_dir: Path, path: Path) -> str:
    """A path as recorded in the ledger and quarantine: relative to the data dir, '/'-separated."""
    try:
        return Path(path).resolve().relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def validated_path(data_dir: Path, table: Table) -> Path:
    return Path(data_dir) / VALIDATED / table.source / f"{table.name}.parquet"


def cleared_path(data_dir: Path, table: Table) -> Path:
    return Path(data_dir) / CLEARED / table.source / f"{table.name}.parquet"


def quarantine_path(data_dir: Path, table: Table) -> Path:
    return Path(data_dir) / QUARANTINE / table.source / f"{table.name}.parquet"


def pseudonymised_path(data_dir: Path, source: str, name: str) -> Path:
    return Path(data_dir) / PSEUDONYMISED / source / f"{name}.parquet"
