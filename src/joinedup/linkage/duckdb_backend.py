"""Linkage on an in-memory DuckDB (the default backend): one machine, spilling to disk."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from splink import DuckDBAPI, Linker
from splink.blocking_analysis import count_comparisons_from_blocking_rules

from joinedup.catalogue import RECORD_TABLES, SPILL
from joinedup.linkage.inputs import load_opted_out, load_records
from joinedup.linkage.model import bound_prediction_blocking
from joinedup.privacy.permissions import make_private_dirs
from joinedup.settings import Settings

# Pairs Splink may make to count how many each prediction rule adds (a few seconds).
SAMPLED_PAIRS = 500_000


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
        self.max_pairs_per_rule = settings.linkage_max_pairs_per_rule
        # Set by the linker over every source's records: each prediction rule's pairs.
        self.prediction_blocking: dict[str, Any] | None = None

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
        records = set(tables) == {f"records_{s}" for s in RECORD_TABLES}
        if records:
            settings, rules = bound_prediction_blocking(
                self, settings, list(tables), self.max_pairs_per_rule
            )
        inputs = [db.register(table, dataset_display_name=name) for table, name in tables.items()]
        if records:
            self.prediction_blocking = self._pairs_to_score(inputs, settings, rules)
        return Linker(inputs, copy.deepcopy(settings), log_level=logging.WARNING)

    def _pairs_to_score(
        self, inputs: list[Any], settings: dict[str, Any], rules: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The rules' counts, with the pairs each kept rule adds to those before it.

        Splink makes the pairs to count them; beyond SAMPLED_PAIRS it makes them for a
        sample of records on each side and scales up (an estimate, and says so).
        """
        kept = settings["blocking_rules_to_generate_predictions"]
        total = sum(r["pairs"] for r in rules if r["kept"])
        share = 1.0 if total <= SAMPLED_PAIRS else (SAMPLED_PAIRS / total) ** 0.5
        counted = count_comparisons_from_blocking_rules(
            inputs,
            blocking_rules=kept,
            link_type=settings["link_type"],
            unique_id_column_name=settings["unique_id_column_name"],
            source_dataset_column_name=settings["source_dataset_column_name"],
            record_sample_proportion=share,
        )
        added = iter(c["marginal_comparison_count"] for c in counted)
        for rule in rules:
            rule["new_pairs"] = next(added) if rule["kept"] else 0
        return {
            "max_pairs_per_rule": self.max_pairs_per_rule,
            "pairs_to_score": sum(r["new_pairs"] for r in rules),
            "estimated_from_record_share": None if share == 1.0 else round(share, 4),
            "rules": rules,
        }

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
