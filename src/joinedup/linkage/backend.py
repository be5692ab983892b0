"""The engine Splink runs on: DuckDB on one machine (the default) or Spark.

``link`` speaks to an engine only through :class:`LinkageBackend`: it loads the
pseudonymised records into tables named ``records_<source>`` and ``opted_out``,
builds Linkers on them, runs a little SQL written to be valid in both dialects,
and reads small results back as Polars frames. The model always enters and
leaves in its own (DuckDB) SQL; a backend translates it for its engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl
from splink import Linker

from joinedup.catalogue import RECORD_TABLES
from joinedup.settings import Settings

BackendName = Literal["duckdb", "spark"]


def numbered_records_sql() -> str:
    """Every source's records as (source, record_token, nhs_number_token), in both dialects."""
    return " UNION ALL ".join(
        f"SELECT source, record_token, nhs_number_token FROM records_{s}" for s in RECORD_TABLES
    )


class LinkageError(RuntimeError):
    """Linkage could not run; the message says why and what to do."""


class LinkageBackend(Protocol):
    name: str
    u_chunks: int | None  # chunks Splink's u estimation runs in (None: Splink's default)

    def load_records(self) -> dict[str, int]:
        """Tables ``records_<source>`` in the shape the model compares; rows per source."""

    def load_opted_out(self) -> int:
        """Table ``opted_out``: the restricted encodings of opted-out people."""

    def linker(self, tables: dict[str, str], settings: dict[str, Any]) -> Linker:
        """A Linker over ``{table: dataset display name}``; ``settings`` in the model's SQL."""

    def training(self, training: dict[str, Any]) -> dict[str, Any]:
        """training.json with its rules in this engine's SQL."""

    def model_sql(self, trained: dict[str, Any], model_settings: dict[str, Any]) -> dict[str, Any]:
        """A model trained here, in the SQL of ``model_settings`` (the model's own)."""

    def create_table(self, name: str, select_sql: str) -> None: ...

    def register_frame(self, name: str, frame: pl.DataFrame) -> None: ...

    def columns(self, table: str) -> list[str]: ...

    def count(self, table: str) -> int: ...

    def frame(self, sql: str) -> pl.DataFrame:
        """The result of a query as a Polars frame (on Spark: collected to the driver)."""

    def close(self) -> None: ...


@contextlib.contextmanager
def open_backend(
    name: BackendName, data_dir: Path, settings: Settings | None = None
) -> Iterator[LinkageBackend]:
    """The named engine, closed (a Spark session stopped) when the block ends."""
    settings = settings or Settings()
    backend: LinkageBackend
    if name == "duckdb":
        from joinedup.linkage.duckdb_backend import DuckDBBackend

        backend = DuckDBBackend(data_dir, settings)
    elif name == "spark":
        from joinedup.linkage.spark_backend import SparkBackend

        backend = SparkBackend(data_dir, settings)
    else:
        raise LinkageError(
            f"unknown linkage backend {name!r}: set JOINEDUP_LINKAGE_BACKEND to duckdb or spark"
        )
    try:
        yield backend
    finally:
        backend.close()
