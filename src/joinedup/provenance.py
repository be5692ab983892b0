"""Provenance: what each run read, what made it, and what it wrote.

A run's record (the ``provenance`` block of ``DATA/runs/<run_id>.json``) holds:

* ``run_id``, ``started_at`` (when its first ingest began, kept in
  ``DATA/runs/<run_id>.started``) and ``finished_at`` (when the ledger balanced);
* the code, taken when the run started: ``git rev-parse HEAD`` and whether
  tracked files differed from it, when the package runs from a git checkout, else
  the installed package version (``version_at_finish`` if it changed mid-run);
  Python and the versions of the libraries that decide results;
* the linkage model: SHA-256 of ``linked/model.json`` (the trained model the run
  used) and of the model-as-data files under ``linkage/``;
* every input file: SHA-256, size and rows, with its re-delivery status (the same
  figures are columns of ``DATA/ledger.csv``, so they are kept with the ledger);
* every output file: path, SHA-256 and size. Any output can be traced back to its
  run by its checksum (:func:`trace`, ``joinedup trace FILE``); the two DuckDB
  files also carry a one-row ``_joinedup_run`` table naming the run that wrote them.

Never the pseudonymisation key, nor any value derived from it: nothing here reads
the settings. Parquet outputs get no run id in their metadata on purpose: they are
byte-identical for the same inputs, so a re-run can be checked by checksum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb

from joinedup import catalogue
from joinedup.catalogue import REPO_ROOT
from joinedup.privacy.permissions import make_private_dirs

log = logging.getLogger(__name__)

REPO = REPO_ROOT
RUNS = catalogue.RUNS.path
RUN_TABLE = "_joinedup_run"
MODEL = catalogue.LINKAGE_MODEL
MODEL_SPEC = ("linkage/settings.json", "linkage/training.json")
# Libraries whose version can change a result; recorded with every run.
LIBRARIES = (
    "polars",
    "duckdb",
    "splink",
    "dbt-core",
    "dbt-duckdb",
    "great-expectations",
    "apache-airflow",
    "pyarrow",
)
_CHUNK = 1 << 20


def now(timespec: str = "seconds") -> str:
    """UTC in ISO 8601, as every provenance timestamp is written."""
    return datetime.now(UTC).isoformat(timespec=timespec)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_run_name(run_id: str) -> str:
    """A run id as a file name (Airflow ids hold ':' and '+')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def run_record_path(data_dir: Path, run_id: str, suffix: str = ".json") -> Path:
    return Path(data_dir) / RUNS / f"{safe_run_name(run_id)}{suffix}"


def mark_started(data_dir: Path, run_id: str) -> str:
    """Record when a run began (its first ingest) and its code; later calls keep the first.

    Several ingest tasks of one run may start at once, so the file is created
    exclusively: whoever creates it first sets the time. The code version is taken
    here, once, so every file of the run names the same one.
    """
    path = run_record_path(data_dir, run_id, ".started")
    make_private_dirs(catalogue.RUNS.under(data_dir), path.parent)
    record = {"run_id": run_id, "started_at": now(), "code": code_version()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return started_at(data_dir, run_id) or record["started_at"]
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    return record["started_at"]


def _started(data_dir: Path, run_id: str) -> dict[str, Any]:
    path = run_record_path(data_dir, run_id, ".started")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def started_at(data_dir: Path, run_id: str) -> str | None:
    return _started(data_dir, run_id).get("started_at")


def run_code(data_dir: Path, run_id: str) -> dict[str, Any]:
    """The code version recorded when the run started (the current one if it was not)."""
    return _started(data_dir, run_id).get("code") or code_version()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """The code that ran: git commit (and dirty flag) in a checkout, else the package version."""
    try:
        package = metadata.version("joinedup")
    except metadata.PackageNotFoundError:
        package = None
    commit = _git("rev-parse", "HEAD") if (REPO / ".git").exists() else None
    dirty = None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = None if status is None else bool(status)
    if commit:
        version = commit + ("-dirty" if dirty else "")
    else:
        version = f"joinedup {package}" if package else "unknown"
    return {"version": version, "git_commit": commit, "git_dirty": dirty, "package": package}


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _file_entry(data_dir: Path, path: Path) -> dict[str, Any]:
    try:
        name = path.resolve().relative_to(data_dir.resolve()).as_posix()
    except ValueError:  # published outside the data dir (JOINEDUP_PUBLISHED_DIR)
        name = str(path.resolve())
    return {
        "path": name,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
    }


def linkage_model(data_dir: Path) -> dict[str, Any]:
    """SHA-256 of the trained model this data dir's linkage used, and of its spec files."""
    data_dir = Path(data_dir)
    model = data_dir / MODEL
    return {
        "model": _file_entry(data_dir, model) if model.exists() else None,
        "spec": {
            name: sha256_file(REPO / name) if (REPO / name).exists() else None
            for name in MODEL_SPEC
        },
    }


def output_files(data_dir: Path, extra: Iterable[Path] = ()) -> list[dict[str, Any]]:
    """Path, SHA-256 and size of every output a run writes (``extra``: ones outside DATA)."""
    data_dir = Path(data_dir)
    found = {p.resolve() for g in catalogue.RUN_OUTPUTS for p in data_dir.glob(g) if p.is_file()}
    found |= {Path(p).resolve() for p in extra if Path(p).is_file()}
    return [_file_entry(data_dir, p) for p in sorted(found) if not p.name.startswith(".")]


def input_files(ledger: Any) -> list[dict[str, Any]]:
    """Each input file of a run as the ledger records it (a Polars frame of one run's rows)."""
    keep = [
        "source",
        "table",
        "file",
        "sha256",
        "size_bytes",
        "file_rows",
        "status",
        "period",
        "duplicate_of",
        "replaced_by",
        "replaces",
        "first_seen_run",
    ]
    rows = ledger.select([c for c in keep if c in ledger.columns]).sort("file")
    return [{k: v for k, v in r.items()} for r in rows.iter_rows(named=True)]


def run_stamp(data_dir: Path, run_id: str) -> dict[str, Any]:
    """The one row of ``_joinedup_run``: which run wrote a DuckDB file, when, with what code."""
    code = run_code(data_dir, run_id)
    model = linkage_model(data_dir)["model"]
    return {
        "run_id": run_id,
        "written_at": now(),
        "started_at": started_at(data_dir, run_id),
        "code_version": code["version"],
        "git_commit": code["git_commit"],
        "git_dirty": code["git_dirty"],
        "package_version": code["package"],
        "linkage_model_sha256": model["sha256"] if model else None,
    }


def stamp_duckdb(con: duckdb.DuckDBPyConnection, stamp: dict[str, Any]) -> None:
    """(Re)write ``main._joinedup_run`` in an open DuckDB database."""
    columns = ", ".join(
        f"{name} {'boolean' if name == 'git_dirty' else 'varchar'}" for name in stamp
    )
    con.execute(f"create or replace table main.{RUN_TABLE} ({columns})")
    con.execute(
        f"insert into main.{RUN_TABLE} values ({', '.join('?' for _ in stamp)})",
        list(stamp.values()),
    )
    con.execute(
        f"comment on table main.{RUN_TABLE} is 'Provenance: the joinedup run that wrote this "
        "file, when, and with which code and linkage model (one row).'"
    )


def read_stamp(path: Path) -> dict[str, Any] | None:
    """The ``_joinedup_run`` row of a DuckDB file (opened read-only), or None without one."""
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            "select 1 from duckdb_tables() where schema_name = 'main' and table_name = ?",
            [RUN_TABLE],
        ).fetchall()
        if not found:
            return None
        cursor = con.execute(f"select * from main.{RUN_TABLE}")
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
    return dict(zip(names, row, strict=True)) if row else None


def key_fingerprint_of_run(data_dir: Path) -> str | None:
    """The fingerprint of the key the pseudonymised tables were made under (never the key)."""
    from joinedup.deidentify.encodings import KEY_FINGERPRINT_METADATA

    source, table = next(iter(catalogue.RECORD_TABLES.items()))
    path = catalogue.pseudonymised_path(Path(data_dir), source, table)
    if not path.exists():
        return None
    import polars as pl

    return pl.read_parquet_metadata(path).get(KEY_FINGERPRINT_METADATA)


def _records_that_wrote(data_dir: Path, sha256: str) -> Iterator[dict[str, Any]]:
    """The provenance of each run whose record lists content ``sha256`` (model or output)."""
    for record in sorted((Path(data_dir) / RUNS).glob("*.json")):
        try:
            prov = json.loads(record.read_text(encoding="utf-8")).get("provenance") or {}
        except (OSError, ValueError, AttributeError):
            continue
        model = ((prov.get("linkage") or {}).get("model") or {}).get("sha256")
        if sha256 in {model} | {e.get("sha256") for e in prov.get("outputs", [])}:
            yield prov


def key_fingerprints_of_output(data_dir: Path, sha256: str) -> set[str]:
    """The key fingerprints of the runs whose record lists content ``sha256``."""
    return {
        prov["key_fingerprint"]
        for prov in _records_that_wrote(data_dir, sha256)
        if prov.get("key_fingerprint")
    }


def run_provenance(
    data_dir: Path, run_id: str, ledger: Any, extra_outputs: Iterable[Path] = ()
) -> dict[str, Any]:
    """The ``provenance`` block of a run record; ``ledger`` is the run's ledger rows."""
    data_dir = Path(data_dir)
    code, current = run_code(data_dir, run_id), code_version()
    if current["version"] != code["version"]:
        # A deploy (or a commit) mid-run: say so rather than pick one.
        code = {**code, "version_at_finish": current["version"]}
    return {
        "run_id": run_id,
        "started_at": started_at(data_dir, run_id),
        "finished_at": now(),
        "code": code,
        "libraries": library_versions(),
        "linkage": linkage_model(data_dir),
        "key_fingerprint": key_fingerprint_of_run(data_dir),
        "inputs": input_files(ledger),
        "outputs": output_files(data_dir, extra_outputs),
    }


def trace(data_dir: Path, path: Path) -> list[dict[str, Any]]:
    """Every run whose record lists this file's content, as input or output, oldest first."""
    digest = sha256_file(path)
    found = []
    for record in sorted((Path(data_dir) / RUNS).glob("*.json")):
        try:
            prov = json.loads(record.read_text(encoding="utf-8")).get("provenance") or {}
        except (OSError, ValueError):
            continue
        for role in ("inputs", "outputs"):
            for entry in prov.get(role, []):
                if entry.get("sha256") == digest:
                    found.append(
                        {
                            "run_id": prov.get("run_id"),
                            "finished_at": prov.get("finished_at"),
                            "role": role[:-1],
                            "path": entry.get("path") or entry.get("file"),
                        }
                    )
    return sorted(found, key=lambda f: (f["finished_at"] or "", f["run_id"] or ""))


def runs_that_wrote(data_dir: Path, sha256: str) -> list[str]:
    """Run ids whose record lists content ``sha256`` as their linkage model or an output."""
    return [str(prov.get("run_id")) for prov in _records_that_wrote(data_dir, sha256)]
