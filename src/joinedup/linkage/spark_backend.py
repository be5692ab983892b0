"""Linkage on Spark (``JOINEDUP_LINKAGE_BACKEND=spark``): the same model on Splink's SparkAPI.

Local mode (``local[2]``) by default; ``JOINEDUP_SPARK_MASTER`` points it at a
cluster and ``JOINEDUP_SPARK_DATA_URL`` says where the cluster's executors find
the data directory (shared filesystem, HDFS or object storage). Spark reads the
pseudonymised parquet itself; only the results linkage needs in Python (one row
per record: its cluster) come back to this process, through Arrow, and are
written by the same code as on DuckDB, so ``record_person`` does not depend on
the engine.

Needs the ``spark`` extra (pyspark) and Java (17 is what is tested).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl
from splink import Linker

from joinedup.catalogue import RECORD_TABLES, SPILL
from joinedup.linkage.backend import LinkageError
from joinedup.linkage.inputs import LINKAGE_INPUTS, OPTED_OUT_INPUT, TOKEN_COLUMNS
from joinedup.linkage.spark_sql import (
    bloom_bits_sql,
    bloom_words_sql,
    duckdb_model,
    spark_settings,
    spark_training,
)
from joinedup.privacy.permissions import make_private_dirs
from joinedup.settings import Settings

BLOOM_COLUMNS = ("given_name_bloom", "family_name_bloom")
# Log lines Splink's Spark backend triggers on every run, none of them actionable:
# its checkpoint folders start with "__" (which Spark's file listing calls hidden,
# though it reads them), its plans are longer than Spark likes to print, and its
# widest expressions exceed Java's method size, so Spark compiles them, fails and
# falls back to interpreting them (with a full stack trace each time).
QUIET_LOGGERS = {
    "org.apache.spark.sql.execution.datasources.DataSource": "ERROR",
    "org.apache.spark.sql.catalyst.util.SparkStringUtils": "ERROR",
    "org.apache.spark.sql.execution.WholeStageCodegenExec": "ERROR",
    "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator": "FATAL",
}


def _first_line(exc: BaseException) -> str:
    """The gist of an error; for one from the JVM, the Java exception rather than py4j's."""
    java = getattr(exc, "java_exception", None)
    text = (str(java.toString()) if java is not None else str(exc)).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).rstrip(".")


def check_available() -> None:
    """Raise a LinkageError saying what to install when pyspark or Java is missing."""
    if importlib.util.find_spec("pyspark") is None:
        raise LinkageError(
            "the Spark linkage backend needs pyspark, which is not installed: install the "
            "spark extra (`uv sync --extra spark`, or `pip install 'joinedup[spark]'`), or "
            "set JOINEDUP_LINKAGE_BACKEND=duckdb"
        )
    home = os.environ.get("JAVA_HOME")
    if home:
        if not (Path(home) / "bin" / "java").exists():
            raise LinkageError(
                f"JAVA_HOME={home} has no bin/java: point JAVA_HOME at a Java 17 "
                "installation, or unset it to use the `java` on PATH"
            )
    elif shutil.which("java") is None:
        raise LinkageError(
            "the Spark linkage backend needs Java (17) and no `java` is on PATH: install one "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )


def _quiet(spark, loggers: dict[str, str]) -> None:
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    for name, level in loggers.items():
        log4j.core.config.Configurator.setLevel(name, log4j.Level.toLevel(level))


def _loopback_master(master: str) -> bool:
    """A standalone master on this machine's loopback, as ``make spark-cluster`` starts."""
    host = urlsplit(master).hostname if master.startswith("spark://") else None
    return host in ("127.0.0.1", "localhost", "::1")


def _session(data_dir: Path, settings: Settings):
    """A Spark session for this run: quiet, its scratch space under DATA/.tmp/spark."""
    from pyspark.sql import SparkSession

    scratch = SPILL.under(Path(data_dir).resolve()) / "spark"
    make_private_dirs(SPILL.under(Path(data_dir).resolve()), scratch / "tmp")
    local = settings.spark_master.startswith("local")
    if local or _loopback_master(settings.spark_master):
        # Bind to loopback: no network exposure, and no warning when the host name
        # resolves to 127.0.0.1. Executors of a master on loopback (make spark-cluster)
        # must reach the driver there too.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = {
        "spark.app.name": "joinedup-linkage",
        "spark.master": settings.spark_master,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.warehouse.dir": (scratch / "warehouse").as_uri(),
        # The driver's temporary files (and in local mode every shuffle file) stay
        # in the data directory, next to DuckDB's spill files, not in /tmp.
        "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={scratch / 'tmp'}",
    }
    if local:
        conf["spark.ui.enabled"] = "false"
    # Splink hands Spark small Python lists (trained parameters); the Python workers the
    # executors start to read them must be this Python version with pyspark, not whatever
    # `python3` is on PATH. On a cluster whose machines install it elsewhere, set
    # PYSPARK_PYTHON or spark.pyspark.python in JOINEDUP_SPARK_CONF.
    conf["spark.pyspark.python"] = os.environ.get("PYSPARK_PYTHON") or sys.executable
    conf.update(settings.spark_conf)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    context = spark.sparkContext._jsc.sc()
    # A standalone master that never answers ends the application after three 20-second
    # attempts, yet getOrCreate returns (the context stops in another thread, later) and
    # the first query fails with an empty py4j error. Such an application never got an
    # id from the master, only Spark's placeholder "spark-application-<ms>".
    try:
        rejected = context.isStopped() or (
            settings.spark_master.startswith("spark://")
            and str(context.applicationId()).startswith("spark-application-")
        )
    except Exception:  # py4j: the context stopped while we asked about it
        # ("Cannot call methods on a stopped SparkContext"): the master has ended it.
        rejected = True
    if rejected:
        with contextlib.suppress(Exception):
            stop_spark(spark)
        raise RuntimeError(NOT_ACCEPTED)
    spark.sparkContext.setLogLevel("WARN")
    _quiet(spark, QUIET_LOGGERS)
    # Splink's Spark backend breaks long query lineages by writing parquet here.
    checkpoints = settings.spark_checkpoint_dir or (scratch / "checkpoints").as_uri()
    spark.sparkContext.setCheckpointDir(checkpoints)
    return spark


NOT_ACCEPTED = (
    "the master did not accept the application (the log above says why, e.g. "
    "'All masters are unresponsive')"
)


def stop_spark(spark) -> None:
    """Stop the session, then the py4j gateway and the JVM it launched for this process.

    ``spark.stop()`` alone ends the Spark application but keeps the driver's JVM (and its
    memory, spark.driver.memory) alive until Python exits, for the rest of a run. The
    gateway's connections are closed here, while logging still works, instead of by
    py4j's ``__del__`` methods at interpreter exit. A later session starts a new JVM.
    """
    from pyspark import SparkContext

    spark.stop()
    with SparkContext._lock:
        gateway, SparkContext._gateway, SparkContext._jvm = SparkContext._gateway, None, None
    if gateway is None:
        return
    gateway.shutdown()
    proc = getattr(gateway, "proc", None)  # None when PYSPARK_GATEWAY_PORT named a JVM
    if proc is not None:
        # The JVM pyspark launched exits at the end of its standard input.
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SparkBackend:
    name = "spark"
    # Splink estimates u in chunks to bound memory on one machine; on Spark each
    # chunk is a separate job with a fixed cost, and Spark spreads one big job itself.
    u_chunks: int | None = 1

    def __init__(self, data_dir: Path, settings: Settings) -> None:
        check_available()
        self.data_dir = Path(data_dir)
        root = settings.spark_data_url or self.data_dir.resolve().as_uri()
        self.root = root.rstrip("/")
        try:
            self.spark = _session(self.data_dir, settings)
        except Exception as exc:  # pyspark and py4j raise several types for a JVM that fails
            problem = _first_line(exc)
            if "stopped SparkContext" in problem:
                # The master ended the application while the session was being made.
                problem = NOT_ACCEPTED
            raise LinkageError(
                f"could not start Spark (JOINEDUP_SPARK_MASTER={settings.spark_master}): "
                f"{problem}. Check that `java -version` runs Java 17 and, for a "
                "cluster, that the master URL is right and reachable"
            ) from exc

    def _hadoop_path(self, url: str):
        jvm = self.spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(url)
        return path, path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())

    def _exists(self, url: str) -> bool:
        try:
            path, fs = self._hadoop_path(url)
            return bool(fs.exists(path))
        except Exception as exc:  # py4j wraps the Java error
            raise LinkageError(
                f"Spark cannot read {url}: {_first_line(exc)}. Check JOINEDUP_SPARK_DATA_URL "
                "and that Spark has the connector for its scheme (e.g. hadoop-aws for s3a)"
            ) from exc

    def _select(self, url: str, source: str = "source") -> str:
        blooms = []
        for column in BLOOM_COLUMNS:
            blooms += [
                f"{bloom_words_sql(column)} AS {column}",
                f"{bloom_bits_sql(column)} AS {column}_bits",
            ]
        return (
            f"SELECT {source}, record_token, {', '.join(TOKEN_COLUMNS)}, {', '.join(blooms)}, "
            "CASE WHEN sex IN ('1', '2') THEN sex END AS sex "
            f"FROM parquet.`{url}`"
        )

    def load_records(self) -> dict[str, int]:
        counts = {}
        for source in RECORD_TABLES:
            # The unsealed copies link() writes (joinedup.linkage.inputs), not pseudonymised/.
            url = f"{self.root}/{LINKAGE_INPUTS}/{source}.parquet"
            if not self._exists(url):
                raise FileNotFoundError(f"{url} not found: run pseudonymisation before linkage")
            self.create_table(f"records_{source}", self._select(url))
            counts[source] = self.count(f"records_{source}")
        return counts

    def load_opted_out(self) -> int:
        url = f"{self.root}/{LINKAGE_INPUTS}/{OPTED_OUT_INPUT}.parquet"
        if not self._exists(url):
            self.create_table("opted_out", "SELECT * FROM records_gp LIMIT 0")
            return 0
        self.create_table("opted_out", self._select(url, source="'opted_out' AS source"))
        return self.count("opted_out")

    def linker(self, tables: dict[str, str], settings: dict[str, Any]) -> Linker:
        from splink import SparkAPI

        # The jar of Splink's Scala string-similarity functions is not needed: the
        # model compares keyed tokens and Bloom filters only.
        db = SparkAPI(spark_session=self.spark, register_udfs_automatically=False)
        inputs = [db.register(table, dataset_display_name=name) for table, name in tables.items()]
        return Linker(inputs, spark_settings(copy.deepcopy(settings)), log_level=logging.WARNING)

    def training(self, training: dict[str, Any]) -> dict[str, Any]:
        return spark_training(training)

    def model_sql(self, trained: dict[str, Any], model_settings: dict[str, Any]) -> dict[str, Any]:
        return duckdb_model(trained, model_settings)

    def create_table(self, name: str, select_sql: str) -> None:
        self.spark.sql(select_sql).persist().createOrReplaceTempView(name)

    def register_frame(self, name: str, frame: pl.DataFrame) -> None:
        if any(dtype != pl.String for dtype in frame.dtypes):
            raise TypeError("register_frame takes text columns only")
        schema = ", ".join(f"`{c}` STRING" for c in frame.columns)
        self.spark.createDataFrame(frame.rows(), schema=schema).createOrReplaceTempView(name)

    def columns(self, table: str) -> list[str]:
        return list(self.spark.table(table).columns)

    def count(self, table: str) -> int:
        return int(self.spark.table(table).count())

    def frame(self, sql: str) -> pl.DataFrame:
        from pyspark.sql.types import StringType

        result = self.spark.sql(sql)
        with warnings.catch_warnings():
            # pyspark 3.5 calls pandas with arguments pandas 3 deprecates; nothing to act on.
            warnings.filterwarnings("ignore", module="pyspark")
            frame = pl.from_pandas(result.toPandas())
        text = [f.name for f in result.schema.fields if isinstance(f.dataType, StringType)]
        # An empty result has no values to type its columns by; Spark's schema does.
        return frame.with_columns(pl.col(c).cast(pl.String) for c in text)

    def close(self) -> None:
        try:
            checkpoints = self.spark.sparkContext.getCheckpointDir()
            if checkpoints:
                path, fs = self._hadoop_path(checkpoints)
                fs.delete(path, True)
        finally:
            stop_spark(self.spark)
