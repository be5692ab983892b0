"""One typed settings object for the whole pipeline.

Values come from environment variables prefixed ``JOINEDUP_`` (or a ``.env``
file for local runs). The pseudonymisation key is a secret: it is held as a
``SecretStr`` so that printing or logging settings never shows it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The key used by `make run` and the tests. It protects nothing: synthetic data only.
DEMO_KEY = "joinedup-DEMO-KEY-synthetic-data-only-do-not-use-with-real-data"


class MissingKeyError(RuntimeError):
    """No pseudonymisation key was configured."""


class RunConfigError(ValueError):
    """A DAG run was given (or deployed with) a data directory it may not use.

    Here, not in joinedup.orchestration, which tests reload (that would make a second class).
    """


def read_key_file(path: Path) -> str:
    """The key held in ``path``, refused unless it is a regular file only its owner can read."""
    where = f"JOINEDUP_PSEUDONYMISATION_KEY_FILE {path}"
    try:
        # Non-blocking, so a FIFO named by mistake is refused instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise MissingKeyError(f"cannot read {where}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MissingKeyError(
                f"{where} is not a regular file: point it at a file that holds only the key."
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise MissingKeyError(
                f"{where} is open to other users (mode {mode:04o}): the key file must be "
                f"readable by its owner only. Run `chmod 600 {path}` and start again."
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read().decode("utf-8").strip()
    finally:
        os.close(fd)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOINEDUP_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # The default of every CLI command's data directory option, as of dbt's and the dashboard's.
    # The DAGs' tasks accept only an absolute one, set (joinedup.orchestration.deployed_data_dir).
    data_dir: Path = Field(
        Path("data"),
        description="root of landing/ and every output; for Airflow, an absolute path set in "
        "every Airflow process's environment",
    )
    pseudonymisation_key: SecretStr | None = Field(
        None, description="secret for keyed tokens and encodings; never logged"
    )
    pseudonymisation_key_file: Path | None = Field(
        None, description="file holding the key, as an alternative to the variable"
    )
    linkage_backend: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="engine Splink runs on: duckdb (one machine) or spark (the spark extra, Java)",
    )
    # Spark backend only; docs/linkage.md "Scale-out" says how to point it at a cluster.
    spark_master: str = Field(
        "local[2]", description="Spark master URL: local[N], spark://host:7077, yarn, k8s://..."
    )
    spark_driver_memory: str = Field("2g", description="memory of the Spark driver (this process)")
    spark_shuffle_partitions: int = Field(
        8, ge=1, description="spark.sql.shuffle.partitions: small for local mode, ~2-3 per core"
    )
    spark_data_url: str | None = Field(
        None,
        description="the data directory as Spark's executors read it (s3a://bucket/prefix, "
        "hdfs://..., file:///shared/data); default: the local data directory",
    )
    spark_checkpoint_dir: str | None = Field(
        None,
        description="where Splink checkpoints Spark intermediates (on a cluster: shared "
        "storage); default DATA/.tmp/spark/checkpoints",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description='further Spark properties as JSON, e.g. {"spark.executor.memory": "8g"}',
    )
    # DuckDB spills to disk beyond this. 8 GB because the dbt build shares one DuckDB across
    # its threads: at 1M people x 12 months the commissioning aggregates (grouping sets with
    # count distinct and median, which spill poorly) ran out of memory under 4 GB.
    # Linkage, the dbt build (through profiles.yml) and publish open DuckDB with it.
    duckdb_memory_limit: str = "8GB"
    # A prediction blocking rule whose pairs explode (a common token, a mistyped rule) would
    # score them all; at 1M people the model's largest rule makes 5.5 million.
    linkage_max_pairs_per_rule: int = Field(
        50_000_000,
        ge=1,
        description="record pairs one prediction blocking rule may generate; a rule above it "
        "is left out of the run with a warning (linked/summary.json lists each rule's count)",
    )
    published_dir: Path | None = Field(
        None,
        description="folder analytics.duckdb and commissioning/ are published to (default: the "
        "data directory); "
        "a deployment mounts its commissioning/ folder, and only that, read-only into the "
        "dashboard",
    )
    # Who may read the person-level analytics.duckdb besides the pipeline's account: 0440
    # with this group, else 0400 (never readable by others).
    analysts_group: str | None = Field(
        None,
        description="group (name or numeric id) that may read analytics.duckdb; unset: "
        "the pipeline's account alone",
    )
    # Smallest count shown in any published aggregate (OpenSAFELY-style rule).
    suppression_threshold: int = Field(8, ge=1)
    # Re-identification risk report (joinedup.privacy), run at the end of every run.
    privacy_min_k: int = Field(
        5, ge=2, description="smallest equivalence class of people the report accepts (k)"
    )
    # warn by default: person-level marts of any real population hold unique people (see
    # docs/privacy.md); they are protected by access control, not by k.
    privacy_on_low_k: Literal["warn", "fail"] = Field(
        "warn", description="when the demographics in dim_person have k below privacy_min_k"
    )
    # fail by default: secondary suppression (joinedup.privacy.secondary_suppression) leaves no
    # withheld cell that subtraction recovers exactly; cells it only narrows are a warning.
    privacy_on_recoverable: Literal["warn", "fail"] = Field(
        "fail",
        description="when a suppressed aggregate cell is recovered exactly by differencing",
    )
    # Data minimisation: opted-out people's identifiers (landing/_opted_out/) and encodings
    # (restricted/) serve only the run that wrote them and re-runs of its stages.
    opted_out_retention_days: int = Field(
        30,
        ge=0,
        description="days a file of landing/_opted_out/ or restricted/ is kept after it was "
        "written; the finalise task removes older ones and lists them in the run record "
        "(0: at the end of every run)",
    )
    # Incremental runs (issue 23): what earlier runs computed is reused unless this is set.
    full_rebuild: bool = Field(
        False,
        description="ignore the caches of earlier runs (ingest's per-delivery checks, "
        "pseudonymise's earlier rows, the warehouse the last build left for the incremental "
        "event facts) and compute everything again; the caches are rewritten",
    )
    # dbt unit tests check the models' SQL on rows written in their YAML, not the data: the
    # same result on every build of one project, and the slowest nodes of a build (issue 23).
    dbt_unit_tests: bool = Field(
        False,
        description="run the dbt project's unit tests in every warehouse build; unset: a "
        "build runs seeds, models and data tests (the unit tests run in the test suite and "
        "in a hand-run `dbt build`)",
    )
    # Local variants of the national layouts (joinedup.ingest.layouts), kept in version control.
    mappings_dir: Path | None = Field(
        None,
        description="folder of mapping files (*.yaml) describing suppliers' local variants of "
        "the national layouts; unset: the shipped layouts only",
    )
    coarsen_birth: Literal["month", "age_band"] = Field(
        "month", description="analysts' marts: month-year of birth, or the age band alone"
    )
    coarsen_area: Literal["lsoa", "la"] = Field(
        "lsoa", description="analysts' marts: LSOA and IMD decile, or LA and IMD quintile alone"
    )

    def key(self) -> bytes:
        """The pseudonymisation key as bytes, or a clear error naming how to set it.

        An empty variable counts as unset. Setting both the key and a key file is an
        error rather than a choice, so a stale or demo key in the environment can never
        silently win over the file a deployment mounted.
        """
        variable = self.pseudonymisation_key
        value = variable.get_secret_value() if variable is not None else ""
        key_file = self.pseudonymisation_key_file
        if key_file is not None and str(key_file) in ("", "."):
            key_file = None  # an empty JOINEDUP_PSEUDONYMISATION_KEY_FILE= is unset too
        if value and key_file is not None:
            raise MissingKeyError(
                "both JOINEDUP_PSEUDONYMISATION_KEY and JOINEDUP_PSEUDONYMISATION_KEY_FILE "
                f"are set ({key_file}): set only one. For a real key, unset "
                "JOINEDUP_PSEUDONYMISATION_KEY and keep the key file."
            )
        if not value and key_file is not None:
            value = read_key_file(key_file)
        if len(value) < 16:
            raise MissingKeyError(
                "no pseudonymisation key: set JOINEDUP_PSEUDONYMISATION_KEY (at least 16 "
                "characters) or JOINEDUP_PSEUDONYMISATION_KEY_FILE. For synthetic demo data "
                "only, `make run` uses the demo key."
            )
        return value.encode("utf-8")


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a call (dbt's), then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
