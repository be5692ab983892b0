"""Load the pseudonymised record-grain tables into DuckDB in the shape the model compares.

The date-of-birth and postcode encodings are stored sealed (see
:mod:`joinedup.deidentify.encodings`): :func:`write_linkage_inputs` unseals them,
with the key, into owner-only copies under ``DATA/.tmp/linkage/inputs/``, which
the engines load and :func:`remove_linkage_inputs` deletes when linkage ends. It
first checks that every table was written under this run's key (the key
fingerprint in each file's metadata), so outputs of two keys are never mixed.

Bloom filters arrive as '0'/'1' strings; they are cast once to DuckDB BIT and
their bit counts precomputed, so each pairwise Dice is a single AND and
popcount rather than two casts per comparison.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl

from joinedup.atomic import atomic_path
from joinedup.catalogue import (
    RECORD_TABLES,
    RESTRICTED_OPTED_OUT_ENCODINGS,
    SPILL,
    pseudonymised_path,
)
from joinedup.deidentify.encodings import (
    KEY_FINGERPRINT_METADATA,
    LINKAGE_ENCODINGS,
    SEALED_COLUMNS,
    Encoder,
)
from joinedup.privacy.permissions import make_private_dirs

# Where linkage keeps the unsealed copies of its inputs, under the data directory.
LINKAGE_INPUTS = f"{SPILL.path}/linkage/inputs"
OPTED_OUT_INPUT = "opted_out"


class KeyMismatchError(RuntimeError):
    """An input was written under another pseudonymisation key than this run's."""


def key_fingerprint_of(path: Path) -> str | None:
    """The key fingerprint a pseudonymise stage wrote into ``path``'s metadata, if any."""
    return pl.read_parquet_metadata(path).get(KEY_FINGERPRINT_METADATA)


def check_key(path: Path, fingerprint: str) -> None:
    """Refuse ``path`` unless it was written under the key whose fingerprint is given."""
    found = key_fingerprint_of(path)
    if found != fingerprint:
        made = f"under key fingerprint {found}" if found else "with no key fingerprint"
        raise KeyMismatchError(
            f"{path} was written {made}, but this run's key has fingerprint {fingerprint}: "
            "outputs of two keys cannot be linked together. Run pseudonymise again with "
            "this run's key (or use the key that wrote it)."
        )


def _linkage_sources(data_dir: Path) -> dict[str, Path]:
    sources = {s: pseudonymised_path(data_dir, s, t) for s, t in RECORD_TABLES.items()}
    restricted = Path(data_dir) / RESTRICTED_OPTED_OUT_ENCODINGS
    if restricted.exists():
        sources[OPTED_OUT_INPUT] = restricted
    return sources


def linkage_input_path(data_dir: Path, name: str) -> Path:
    """The unsealed copy of one linkage input (a source, or ``opted_out``)."""
    return Path(data_dir) / LINKAGE_INPUTS / f"{name}.parquet"


def write_linkage_inputs(data_dir: Path, key: bytes) -> dict[str, Path]:
    """Unseal every linkage input into the owner-only scratch space; returns their paths.

    Only the columns linkage compares are kept. Refuses (KeyMismatchError) any input
    written under another key, and (FileNotFoundError) a missing record table.
    """
    data_dir = Path(data_dir)
    encoder = Encoder(key)
    make_private_dirs(SPILL.under(data_dir), data_dir / LINKAGE_INPUTS)
    written = {}
    columns = ["source", "record_token", *LINKAGE_ENCODINGS]
    for name, path in _linkage_sources(data_dir).items():
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run pseudonymisation before linkage")
        check_key(path, encoder.fingerprint)
        frame = encoder.unseal(pl.read_parquet(path, columns=columns))
        target = linkage_input_path(data_dir, name)
        with atomic_path(target) as tmp:
            frame.write_parquet(tmp, compression="zstd", statistics=False)
        written[name] = target
    return written


def remove_linkage_inputs(data_dir: Path) -> None:
    """Delete the unsealed copies: they exist only while linkage runs."""
    shutil.rmtree(Path(data_dir) / LINKAGE_INPUTS, ignore_errors=True)


TOKEN_COLUMNS = (
    "nhs_number_token",
    "given_name_token",
    "family_name_token",
    "given_name_soundex_token",
    "family_name_soundex_token",
    *SEALED_COLUMNS,  # the date of birth's, then the postcode's
)
BLOOM_COLUMNS = ("given_name_bloom", "family_name_bloom")


def _select_sql(path: Path) -> str:
    blooms = []
    for field in ("given_name", "family_name"):
        bit = f"CAST({field}_bloom AS BIT)"
        blooms += [f"{bit} AS {field}_bloom", f"bit_count({bit}) AS {field}_bloom_bits"]
    return (
        f"SELECT source, record_token, {', '.join(TOKEN_COLUMNS)}, {', '.join(blooms)}, "
        "CASE WHEN sex IN ('1', '2') THEN sex END AS sex "
        f"FROM read_parquet('{path.as_posix()}')"
    )


def load_records(con: duckdb.DuckDBPyConnection, data_dir: Path) -> dict[str, int]:
    """Create one table per source (``records_<source>``); returns row counts."""
    counts = {}
    for source in RECORD_TABLES:
        path = linkage_input_path(data_dir, source)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found: linkage reads the unsealed copies "
                "write_linkage_inputs makes (run pseudonymise, then link)"
            )
        con.execute(f"CREATE OR REPLACE TABLE records_{source} AS {_select_sql(path)}")
        counts[source] = con.execute(f"SELECT count(*) FROM records_{source}").fetchall()[0][0]
    return counts


def load_opted_out(con: duckdb.DuckDBPyConnection, data_dir: Path) -> int:
    """The restricted encodings of opted-out people, as table ``opted_out``."""
    path = linkage_input_path(data_dir, OPTED_OUT_INPUT)
    if not path.exists():
        con.execute("CREATE OR REPLACE TABLE opted_out AS SELECT * FROM records_gp LIMIT 0")
        return 0
    sql = _select_sql(path).replace("SELECT source,", "SELECT 'opted_out' AS source,", 1)
    con.execute(f"CREATE OR REPLACE TABLE opted_out AS {sql}")
    return con.execute("SELECT count(*) FROM opted_out").fetchall()[0][0]
