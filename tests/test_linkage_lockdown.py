"""A crafted linkage model cannot read files through its SQL (issue #24, point 4).

A Splink model's comparison levels are SQL conditions the linkage runs. One that casts a
file's text to a number fails with the text in the error message, i.e. in the task log.
The DuckDB connection that runs model SQL is locked down once its inputs are loaded, so
the same model fails with a permission error that holds none of the file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from ingest_fixtures import KEY, run_all
from splink.internals.exceptions import SplinkException

from joinedup.linkage import link
from joinedup.linkage.model import DEFAULT_MODEL_DIR
from joinedup.synth import generate

CANARY = "joinedup-canary-3f9a1c-not-for-any-log"


def _reads(path: Path | str) -> str:
    """A condition that is true never, but first casts the file's whole text to an integer."""
    read = f"(SELECT COLUMNS('^content$') FROM read_text('{path}'))"
    return f"TRY_CAST('x' AS INTEGER) IS NOT NULL OR CAST({read} AS INTEGER) = 1"


def _crafted_model_dir(root: Path, target: Path | str) -> Path:
    """The repository's model with one comparison level's SQL replaced by a file read."""
    model_dir = root / "crafted-model"
    model_dir.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "training.json", model_dir / "training.json")
    settings = json.loads((DEFAULT_MODEL_DIR / "settings.json").read_text())
    levels = settings["comparisons"][0]["comparison_levels"]
    level = next(lv for lv in levels if not lv.get("is_null_level"))
    level["sql_condition"] = _reads(target)
    (model_dir / "settings.json").write_text(json.dumps(settings))
    return model_dir


@pytest.fixture(scope="module")
def pseudonymised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lockdown") / "data"
    generate(d, people=300, seed=5)
    run_all(d, "run-1")
    return d


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    f = tmp_path / "secret.txt"
    f.write_text(CANARY)
    return f


def test_the_crafted_condition_leaks_on_an_open_connection(secret_file: Path) -> None:
    """The control: without the lockdown this SQL puts the file's content in the error."""
    with duckdb.connect() as con, pytest.raises(duckdb.Error) as raised:
        con.execute(f"SELECT {_reads(secret_file)}").fetchall()
    assert CANARY in str(raised.value)
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")[0].decode(errors="replace")
    with duckdb.connect() as con, pytest.raises(duckdb.Error) as raised:
        con.execute(f"SELECT {_reads('/proc/self/environ')}").fetchall()
    assert environ and environ in str(raised.value)


@pytest.mark.parametrize("target", ["secret", "/proc/self/environ"])
def test_a_model_that_reads_a_file_fails_without_its_content(
    pseudonymised: Path,
    secret_file: Path,
    tmp_path: Path,
    target: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    path = secret_file if target == "secret" else Path(target)
    secret = CANARY if target == "secret" else _first_environ_entry()
    model_dir = _crafted_model_dir(tmp_path, path)
    before = _linked_files(pseudonymised)
    with pytest.raises((duckdb.Error, SplinkException)) as raised:  # Splink wraps DuckDB's
        link(pseudonymised, "run-crafted", KEY, model_dir=model_dir, charts=False)
    assert "file system operations are disabled by configuration" in str(raised.value)
    output = capfd.readouterr()
    for text in (str(raised.value), caplog.text, output.out, output.err):
        assert secret not in text
    assert _linked_files(pseudonymised) == before, "a failed linkage writes nothing"


def test_once_locked_access_stays_off(pseudonymised: Path, secret_file: Path) -> None:
    """No SQL a model runs after the lockdown (the first Linker) can switch access back on."""
    from joinedup.linkage.backend import open_backend
    from joinedup.settings import Settings

    with open_backend("duckdb", pseudonymised, Settings()) as engine:
        engine.lock_down()
        access = "SELECT current_setting('enable_external_access')"
        assert engine.con.execute(access).fetchall() == [(False,)]
        with pytest.raises(duckdb.Error, match="Cannot change configuration option"):
            engine.con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error, match="disabled by configuration"):
            engine.con.execute(f"SELECT * FROM read_text('{secret_file}')")


def _first_environ_entry() -> str:
    return Path("/proc/self/environ").read_bytes().split(b"\0")[0].decode(errors="replace")


def _linked_files(data_dir: Path) -> dict[str, int]:
    linked = data_dir / "linked"
    return {p.name: p.stat().st_mtime_ns for p in linked.rglob("*")} if linked.exists() else {}


assert os.path.exists("/proc/self/environ")
