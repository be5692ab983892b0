"""Linkage on Splink's Spark backend (local mode) against the DuckDB backend.

The Bloom-filter Dice levels are written once, in DuckDB SQL; Spark runs a
translation (``joinedup.linkage.spark_sql``). The first test loads the same
encodings into both engines through each backend's own loading code and
requires, for every pair, the same count of shared bits, the same Dice and the
same decision at every Dice level. The second links one synthetic population
with both backends and compares them with the generator's truth.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import sqlglot
from ingest_fixtures import KEY, run_all
from sqlglot import exp
from typer.testing import CliRunner

from joinedup import pipeline
from joinedup.catalogue import RECORD_TABLES, pseudonymised_path
from joinedup.cli import app
from joinedup.deidentify.encodings import ENCODING_SCHEMA, Encoder, dice, normalise_name_expr
from joinedup.linkage import link, load_model
from joinedup.linkage.backend import open_backend
from joinedup.linkage.evaluate import evaluate
from joinedup.linkage.inputs import linkage_input_path
from joinedup.linkage.spark_sql import to_spark
from joinedup.settings import DEMO_KEY
from joinedup.synth import generate

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _small_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    # A few thousand records: two shuffle partitions, not the eight meant for 100k people.
    monkeypatch.setenv("JOINEDUP_SPARK_SHUFFLE_PARTITIONS", "2")
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)


PEOPLE = 1000
SEED = 21

# Names with the variation the generator makes: nicknames, typos, double-barrelled
# and changed surnames, accents, and unrelated names that share a few bigrams.
NAMES = [
    "William", "Bill", "Willam", "Wiliam", "Liam", "Elizabeth", "Elisabeth", "Beth", "Liz",
    "Catherine", "Katherine", "Kathryn", "Cathy", "Jonathan", "Johnathan", "John", "Jon",
    "Smith", "Smyth", "Smith-Jones", "Jones", "Jones-Smith", "Joness", "Okafor", "Okafur",
    "O'Connor", "Oconnor", "Connor", "Zoë", "Zoe", "Chloe", "Pemberton", "Pembleton",
    "Whitaker", "Whittaker", "Marsden", "Marsdon", "Oduya", "Odoya", "Al", "Alan", "Allan",
    "Ann", "Anne", "Anna", "Hannah", "Georgina", "Georgia", "Gina", "Evelyn", "Eveline",
]  # fmt: skip


def _dice_parts(condition: str) -> tuple[str, str]:
    """The Dice value and the shared-bit count inside a Dice level's condition."""
    tree = sqlglot.parse_one(condition, read="duckdb")
    threshold = tree.find(exp.GTE)
    shared = next(f for f in tree.find_all(exp.Func) if f.name.lower() == "bit_count")
    return threshold.this.sql(dialect="duckdb"), shared.sql(dialect="duckdb")


def _dice_levels() -> list[tuple[str, str]]:
    model = load_model()
    return [
        (comparison["output_column_name"], level["sql_condition"])
        for comparison in model.settings["comparisons"]
        for level in comparison["comparison_levels"]
        if "bit_count" in level["sql_condition"]
    ]


def _write_name_records(data_dir: Path) -> pl.DataFrame:
    """Every pseudonymised record table holds the names' encodings (other tokens null)."""
    names = pl.Series(NAMES)
    given = pl.select(normalise_name_expr(pl.lit(names))).to_series()
    family = given.reverse()  # a second, different filter per record
    encoder = Encoder(KEY)
    records = pl.DataFrame(
        {
            "source": "gp",
            "record_token": [f"r{i:03d}" for i in range(len(NAMES))],
            "given_name_bloom": encoder.blooms(given),
            "family_name_bloom": encoder.blooms(family),
        }
    ).with_columns(
        pl.lit(None, dtype).alias(c)
        for c, dtype in ENCODING_SCHEMA.items()
        if c not in ("given_name_bloom", "family_name_bloom")
    )
    for source, table in RECORD_TABLES.items():
        path = pseudonymised_path(data_dir, source, table)
        path.parent.mkdir(parents=True, exist_ok=True)
        records.with_columns(source=pl.lit(source)).write_parquet(path)
        # What the engines read: the unsealed copies link() makes (these are unsealed).
        unsealed = linkage_input_path(data_dir, source)
        unsealed.parent.mkdir(parents=True, exist_ok=True)
        records.with_columns(source=pl.lit(source)).write_parquet(unsealed)
    return records


def _pairs_sql(columns: dict[str, str]) -> str:
    fields = ["given_name_bloom", "given_name_bloom_bits", "family_name_bloom"]
    fields.append("family_name_bloom_bits")

    def side(s: str) -> str:
        return ", ".join(f"{f} AS {f}_{s}" for f in fields)

    values = ", ".join(f"{sql} AS {name}" for name, sql in columns.items())
    return (
        f"SELECT l.record_token AS l_id, r.record_token AS r_id, {values} FROM "
        f"(SELECT record_token, {side('l')} FROM records_gp) l CROSS JOIN "
        f"(SELECT record_token, {side('r')} FROM records_gp) r ORDER BY 1, 2"
    )


def test_dice_levels_agree_in_duckdb_and_spark_sql(tmp_path: Path) -> None:
    records = _write_name_records(tmp_path)
    levels = _dice_levels()
    assert len(levels) == 4, levels  # two Dice levels each for given and family name
    columns = {}
    for i, (_, condition) in enumerate(levels):
        value, shared = _dice_parts(condition)
        columns |= {
            f"shared_{i}": shared,
            f"dice_{i}": f"CAST({value} AS DOUBLE)",
            f"hit_{i}": f"({condition})",
        }
    spark_columns = {name: to_spark(sql) for name, sql in columns.items()}
    results = {}
    for name, sql in (("duckdb", columns), ("spark", spark_columns)):
        with open_backend(name, tmp_path) as engine:
            engine.load_records()
            results[name] = engine.frame(_pairs_sql(sql))
    duck, spark = results["duckdb"], results["spark"]
    assert duck.height == spark.height == len(NAMES) ** 2
    for i, (field, _) in enumerate(levels):
        assert duck[f"shared_{i}"].cast(pl.Int64).equals(spark[f"shared_{i}"].cast(pl.Int64))
        assert duck[f"hit_{i}"].equals(spark[f"hit_{i}"]), f"level {i} ({field}) differs"
        assert (duck[f"dice_{i}"] - spark[f"dice_{i}"]).abs().max() < 1e-12
        # Both agree with the Python definition of Dice the encodings document.
        blooms = dict(zip(records["record_token"], records[f"{field}_bloom"], strict=True))
        expected = [dice(blooms[a], blooms[b]) for a, b in duck.select("l_id", "r_id").rows()]
        assert (duck[f"dice_{i}"] - pl.Series(expected)).abs().max() < 1e-12
    # The pairs exercise every level: some pass each threshold and some fail it.
    for i in range(len(levels)):
        assert 0 < duck[f"hit_{i}"].sum() < duck.height
    off_diagonal = duck.filter(pl.col("l_id") != pl.col("r_id"))
    assert off_diagonal["hit_0"].sum() > 0, "a name variant should pass the higher Dice level"


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("spark") / "population"
    generate(data_dir, people=PEOPLE, seed=SEED)
    run_all(data_dir, "run-1")
    return data_dir


@pytest.mark.xfail(
    reason="written for Spark reading pseudonymised/ from separate shared storage; since the "
    "date and postcode tokens are sealed, link() writes the unsealed inputs under the data "
    "directory's .tmp/ and a separate JOINEDUP_SPARK_DATA_URL is not supported yet (docs/"
    "linkage.md); the population's key is also not the environment's. The cluster test "
    "(tests/test_spark_cluster.py) covers Spark against DuckDB on one data directory",
    strict=False,
)
def test_spark_links_like_duckdb(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = {}
    # Spark reads its inputs from "shared storage" (here another directory, as a
    # file:// URL) and checkpoints there; its data directory has no inputs at all.
    shared = tmp_path / "shared"
    shutil.copytree(population / "pseudonymised", shared / "pseudonymised")
    shutil.copytree(population / "restricted", shared / "restricted")
    monkeypatch.setenv("JOINEDUP_SPARK_DATA_URL", shared.as_uri())
    monkeypatch.setenv("JOINEDUP_SPARK_CHECKPOINT_DIR", (shared / "checkpoints").as_uri())
    for backend in ("duckdb", "spark"):
        data_dir = tmp_path / backend
        shutil.copytree(population, data_dir)
        if backend == "spark":
            shutil.rmtree(data_dir / "pseudonymised")
            (data_dir / "restricted" / "opted_out_encodings.parquet").unlink()
        # Through the pipeline's task function: the backend comes from the environment,
        # as it does when `joinedup run --linkage-backend spark` runs the DAG.
        monkeypatch.setenv("JOINEDUP_LINKAGE_BACKEND", backend)
        summary = pipeline.link_stage(data_dir, "run-1")
        assert summary["backend"] == backend
        runs[backend] = data_dir
    assert list((shared / "checkpoints").iterdir()) == [], "Spark's checkpoints are removed"
    shutil.copytree(shared / "pseudonymised", runs["spark"] / "pseudonymised")  # to score it

    scores = {b: evaluate(d, KEY) for b, d in runs.items()}
    f1 = {b: s["joinedup"]["f1"] for b, s in scores.items()}
    print(json.dumps({b: s["joinedup"] for b, s in scores.items()}, indent=1))
    assert f1["duckdb"] >= 0.98
    assert abs(f1["spark"] - f1["duckdb"]) <= 0.002, f1
    assert scores["spark"]["opt_out"]["removed_share"] >= 0.98

    duck, spark = (pl.read_parquet(d / "linked" / "record_person.parquet") for d in runs.values())
    assert spark.schema == duck.schema
    assert spark.columns == ["source", "record_token", "person_id"]
    assert spark.select("source", "record_token").is_duplicated().sum() == 0
    assert spark["person_id"].null_count() == 0
    assert set(spark["source"]) == set(duck["source"]) == {"gp", "hospital", "social_care"}
    removed = {
        b: pl.read_parquet(d / "restricted" / "linkage_opted_out_records.parquet")
        for b, d in runs.items()
    }
    assert removed["spark"].schema == removed["duckdb"].schema

    # The model Spark trained is saved in the model's own (DuckDB) SQL: the same
    # conditions as linkage/settings.json, and DuckDB can reuse it.
    model = json.loads((runs["spark"] / "linked" / "model.json").read_text())
    original = load_model().settings
    assert [lv["sql_condition"] for c in model["comparisons"] for lv in c["comparison_levels"]] == [
        lv["sql_condition"] for c in original["comparisons"] for lv in c["comparison_levels"]
    ]
    charts = {p.name for p in (runs["spark"] / "linked" / "charts").iterdir()}
    assert {"match_weights.html", "m_u_parameters.html", "cluster_studio.html"} <= charts
    reuse = tmp_path / "reuse"
    shutil.copytree(population, reuse)
    again = link(
        reuse,
        "run-1",
        KEY,
        trained_model=runs["spark"] / "linked" / "model.json",
        charts=False,
        backend="duckdb",
    )
    assert again["trained_this_run"] is False
    assert abs(evaluate(reuse, KEY)["joinedup"]["f1"] - f1["spark"]) <= 0.002


def test_run_refuses_spark_without_java_before_doing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOINEDUP_LINKAGE_BACKEND", "duckdb")  # restored after the test
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    result = CliRunner().invoke(
        app, ["run", "--data-dir", str(tmp_path / "data"), "--linkage-backend", "spark"]
    )
    assert result.exit_code == 2
    assert "JAVA_HOME" in result.output and "Java 17" in result.output
    assert not (tmp_path / "data" / "landing").exists(), "nothing should run without Java"


# The root logger writes to a stream closed before exit, as pytest's capture file is at
# the end of a session (Airflow's logging set-up attaches such a handler to root).
_CLOSE_AND_EXIT = """
import io, logging, sys
from pathlib import Path
from pyspark import SparkContext
from joinedup.linkage.backend import open_backend

stream = io.StringIO()
logging.basicConfig(level=logging.INFO, stream=stream)
with open_backend("spark", Path(sys.argv[1])) as engine:
    assert engine.frame("SELECT 1 AS one")["one"].to_list() == [1]
    jvm = SparkContext._gateway.proc
stream.close()
print("jvm exited" if jvm.poll() is not None else "jvm still running", flush=True)
"""


def test_closing_the_backend_stops_the_jvm_and_py4j_logs_nothing_at_exit(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CLOSE_AND_EXIT, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "jvm exited"
    # py4j's connections were closed with the session, not by __del__ at interpreter exit.
    assert "Logging error" not in done.stderr, done.stderr
    assert "I/O operation on closed file" not in done.stderr, done.stderr
