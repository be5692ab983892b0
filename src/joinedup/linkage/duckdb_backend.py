"""Linkage on an in-memory DuckDB (the default backend): one machine, spilling to disk."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from splink import DuckDBAPI, Linker

from joinedup.catalogue import SPILL
from joinedup.linkage.inputs import load_opted_out, load_records
from joinedup.privacy.permissions import make_private_dirs
from joinedup.settings import Settings


class DuckDBBackend:
    name = "duckdb"
    u_chunks: int | None = None  # Splink's default

    def __init__(self, data_dir: Path, settings: Settings) -> None:
        self.data_dir = Path(data_dir)
        spill = SPILL.under(self.data_dir) / "linkage"
        # Spill files hold pseudonymised rows: owner-only even when no stage made .tmp first.
        make_private_dirs(SPILL.under(self.data_dir), spill)
        # Beyond its memory limit DuckDB spills to the data directory.
        self.con = duckdb.connect(
            config={
                "memory_limit": settings.duckdb_memory_limit,
                "temp_directory": str(spill),
                "preserve_insertion_order": False,
            }
        )
        self.locked = False

    def load_records(self) -> dict[str, int]:
        return load_records(self.con, self.data_dir)

    def load_opted_out(self) -> int:
        return load_opted_out(self.con, self.data_dir)

    def lock_down(self) -> None:
        """No file, network or extension access and no setting changes from here on.

        A model's comparison conditions are SQL that Splink runs on this connection; once
        the inputs are loaded nothing it runs needs the file system (spilling to the temp
        directory is DuckDB's own and still works), so a crafted condition cannot read a
        file such as /proc/self/environ into a result or an error message, nor undo this.
        """
        if not self.locked:
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
            self.locked = True

    def linker(self, tables: dict[str, str], settings: dict[str, Any]) -> Linker:
        # Every input is loaded before the first Linker: the model's SQL runs locked down.
        self.lock_down()
        db = DuckDBAPI(self.con)
        inputs = [db.register(table, dataset_display_name=name) for table, name in tables.items()]
        return Linker(inputs, copy.deepcopy(settings), log_level=logging.WARNING)

    def training(self, training: dict[str, Any]) -> dict[str, Any]:
        return training

    def model_sql(self, trained: dict[str, Any], model_settings: dict[str, Any]) -> dict[str, Any]:
        return trained

    def create_table(self, name: str, select_sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {select_sql}")

    def register_frame(self, name: str, frame: pl.DataFrame) -> None:
        self.con.register(name, frame)

    def columns(self, table: str) -> list[str]:
        return self.con.table(table).columns

    def count(self, table: str) -> int:
        return self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]

    def frame(self, sql: str) -> pl.DataFrame:
        # DuckDB 2 returns a RecordBatchReader; an empty result has no batches, which
        # pl.from_arrow rejects, so read it into a table (which keeps the schema) first.
        return pl.from_arrow(self.con.sql(sql).arrow().read_all())

    def close(self) -> None:
        self.con.close()
