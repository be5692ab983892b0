"""Load the pseudonymised record-grain tables into DuckDB in the shape the model compares.

Bloom filters arrive as '0'/'1' strings; they are cast once to DuckDB BIT and
their bit counts precomputed, so each pairwise Dice is a single AND and
popcount rather than two casts per comparison.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from joinedup.catalogue import RECORD_TABLES, RESTRICTED_OPTED_OUT_ENCODINGS, pseudonymised_path

TOKEN_COLUMNS = (
    "nhs_number_token",
    "given_name_token",
    "family_name_token",
    "given_name_soundex_token",
    "family_name_soundex_token",
    "date_of_birth_token",
    "date_of_birth_ym_token",
    "date_of_birth_yd_token",
    "date_of_birth_md_token",
    "date_of_birth_swap_token",
    "postcode_token",
    "postcode_sector_token",
    "postcode_district_token",
)


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
    for source, table in RECORD_TABLES.items():
        path = pseudonymised_path(data_dir, source, table)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run pseudonymisation before linkage")
        con.execute(f"CREATE OR REPLACE TABLE records_{source} AS {_select_sql(path)}")
        counts[source] = con.execute(f"SELECT count(*) FROM records_{source}").fetchall()[0][0]
    return counts


def load_opted_out(con: duckdb.DuckDBPyConnection, data_dir: Path) -> int:
    """The restricted encodings of opted-out people, as table ``opted_out``."""
    path = Path(data_dir) / RESTRICTED_OPTED_OUT_ENCODINGS
    if not path.exists():
        con.execute("CREATE OR REPLACE TABLE opted_out AS SELECT * FROM records_gp LIMIT 0")
        return 0
    sql = _select_sql(path).replace("SELECT source,", "SELECT 'opted_out' AS source,", 1)
    con.execute(f"CREATE OR REPLACE TABLE opted_out AS {sql}")
    return con.execute("SELECT count(*) FROM opted_out").fetchall()[0][0]
