"""Access separation on one machine (issue 13, point 5).

* identifiable and record-level zones are owner-only (folders 0700, files 0600) whatever
  the umask of the process that writes them;
* a key file that other users can read, or that is not a regular file, is refused;
* two publications, each for its audience (issue 24, point 1): commissioning.duckdb holds
  aggregates only, for everyone (0444); analytics.duckdb the person-level marts, readable
  by the JOINEDUP_ANALYSTS_GROUP (0440) or else by the pipeline's account alone (0400),
  never by others;
* the dashboard opens commissioning.duckdb, read-only, and nothing else: a write through
  its connection fails, and a folder holding only that file answers every question;
* publishing can go to a folder of its own (JOINEDUP_PUBLISHED_DIR), whose commissioning/
  folder is what the Docker deployment mounts into the dashboard.

The logs of a full run are scanned for identifiers and the key in test_pipeline_run.py
(it shares that module's run); the compose file is checked in test_docker_files.py.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from ingest_fixtures import run_all, write_landing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dashboard package

from dashboard import data as dashboard_data
from joinedup import catalogue, pipeline, warehouse
from joinedup.atomic import write_text
from joinedup.privacy import permissions
from joinedup.settings import DEMO_KEY, MissingKeyError, Settings

MARTS = ("mart_pathway_flows", "mart_readmissions", "mart_discharge_to_social_care")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Umask 000: every file and folder would be world-readable unless made otherwise."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- owner-only zones ----------------------------------------------------------------------


def test_zones_are_owner_only_whatever_the_umask(
    tmp_path: Path, permissive_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY", DEMO_KEY)
    write_landing(tmp_path)
    assert mode(tmp_path / "landing") == 0o777  # as a careless delivery left it
    pipeline.check_ready(tmp_path)
    run_all(tmp_path)

    assert mode(tmp_path / "landing") == 0o700
    zones = [tmp_path / z for z in permissions.PRIVATE_ZONES if (tmp_path / z).exists()]
    names = {z.relative_to(tmp_path).as_posix() for z in zones}
    assert {
        "landing/_validated",
        "landing/_cleared",
        "landing/_opted_out",
        "quarantine",
        "restricted",
        "pseudonymised",
        ".tmp",
    } <= names
    files = 0
    for zone in zones:
        if zone.is_file():  # a zone that is one file (ledger.csv) is owner-only as a file
            assert mode(zone) == 0o600, zone
            continue
        assert mode(zone) == 0o700, zone
        for path in zone.rglob("*"):
            expected = 0o700 if path.is_dir() else 0o600
            assert mode(path) == expected, f"{path}: {mode(path):o}"
            files += path.is_file()
    assert files >= 20
    assert mode(tmp_path / "restricted" / "opted_out_encodings.parquet") == 0o600
    # The ledger holds unsuppressed counts per file and reason: owner-only too.
    assert mode(tmp_path / "ledger.csv") == 0o600


def test_every_identifiable_or_record_level_path_is_in_a_private_zone(tmp_path: Path) -> None:
    from joinedup import catalogue as paths

    (tmp_path / "landing").mkdir()
    for relative in (
        paths.VALIDATED.path,
        paths.CLEARED.path,
        paths.OPTED_OUT_RECORDS,
        paths.OPTED_OUT_REASONS,
        paths.QUARANTINE.path,
        paths.PSEUDONYMISED.path,
        paths.RESTRICTED_OPTED_OUT_ENCODINGS,
        paths.LINKAGE_OPTED_OUT_RECORDS,
        paths.LINKAGE_OPTED_OUT_APPLIED,
    ):
        assert permissions.private_zone(tmp_path / relative / "x") is not None, relative


def test_a_data_dir_written_before_the_rule_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    old = tmp_path / "quarantine" / "gp"
    old.mkdir(parents=True)
    (tmp_path / "quarantine").chmod(0o755)
    old.chmod(0o755)
    stale = old / "patients.parquet"
    stale.write_bytes(b"old")
    stale.chmod(0o644)

    changed = permissions.secure_data_dir(tmp_path)
    assert "quarantine" in changed
    assert mode(tmp_path / "quarantine") == 0o700  # nobody else can reach the stale file
    # The next write there tightens every folder on the way and the file itself.
    write_text("new", stale)
    assert (mode(old), mode(stale)) == (0o700, 0o600)


def test_a_zone_is_recognised_only_inside_a_data_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "notes" / "quarantine" / "todo.txt"
    assert permissions.private_zone(elsewhere) is None
    (tmp_path / "data" / "landing").mkdir(parents=True)
    inside = tmp_path / "data" / "quarantine" / "gp" / "events.parquet"
    assert permissions.private_zone(inside) == tmp_path / "data" / "quarantine"
    validated = tmp_path / "data" / "landing" / "_validated" / "gp" / "x.parquet"
    assert permissions.private_zone(validated) == tmp_path / "data" / "landing" / "_validated"
    # Landing deliveries and the published marts are not zones the pipeline owns.
    assert permissions.private_zone(tmp_path / "data" / "landing" / "gp" / "x.csv") is None
    assert permissions.private_zone(tmp_path / "data" / catalogue.PUBLISHED.path) is None
    assert permissions.private_zone(tmp_path / "data" / catalogue.COMMISSIONING.path) is None


# --- the key file ----------------------------------------------------------------------------


def _key_from(path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.delenv("JOINEDUP_PSEUDONYMISATION_KEY", raising=False)
    monkeypatch.setenv("JOINEDUP_PSEUDONYMISATION_KEY_FILE", str(path))
    return Settings(_env_file=None).key()


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_file_others_can_use_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_mode: int
) -> None:
    key_file = tmp_path / "joinedup.key"
    key_file.write_text(DEMO_KEY + "\n")
    key_file.chmod(file_mode)
    with pytest.raises(MissingKeyError) as refused:
        _key_from(key_file, monkeypatch)
    message = str(refused.value)
    assert str(key_file) in message and f"{file_mode:04o}" in message
    assert f"chmod 600 {key_file}" in message
    assert DEMO_KEY not in message

    key_file.chmod(0o600)
    assert _key_from(key_file, monkeypatch) == DEMO_KEY.encode()
    key_file.chmod(0o400)
    assert _key_from(key_file, monkeypatch) == DEMO_KEY.encode()


def test_a_key_path_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    for path in (folder, fifo):  # a FIFO must be refused, not waited on
        with pytest.raises(MissingKeyError, match="not a regular file"):
            _key_from(path, monkeypatch)
    with pytest.raises(MissingKeyError, match="cannot read"):
        _key_from(tmp_path / "missing.key", monkeypatch)


def test_joinedup_run_refuses_a_readable_key_file_without_a_traceback(tmp_path: Path) -> None:
    key_file = tmp_path / "joinedup.key"
    key_file.write_text(DEMO_KEY)
    key_file.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "JOINEDUP_"))}
    env["JOINEDUP_PSEUDONYMISATION_KEY_FILE"] = str(key_file)
    done = subprocess.run(
        [sys.executable, "-m", "joinedup.cli", "run", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"chmod 600 {key_file}" in done.stderr and "0644" in done.stderr
    assert "Traceback" not in done.stderr
    assert DEMO_KEY not in done.stdout + done.stderr
    assert not (tmp_path / "data" / "landing").exists()  # stopped before any work


# --- what analysts and the dashboard get ----------------------------------------------------


def _tables(path: Path) -> dict[str, set[str]]:
    """Table -> its columns, in the main schema of a published file."""
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select table_name, column_name from duckdb_columns() "
            "where database_name = current_database() and schema_name = 'main' and not internal"
        ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


@pytest.mark.slow  # the session's published population: a minute to build
def test_each_publication_holds_what_its_audience_may_read(published_population: Path) -> None:
    d = published_population
    commissioning = warehouse.commissioning_path(d)
    analytics = warehouse.analytics_path(d)
    assert commissioning == (d / catalogue.COMMISSIONING.path).resolve()
    # Aggregates only for everyone: no person_id, no dim_/fct_ table, nothing but the
    # marts, their description and the run stamp.
    tables = _tables(commissioning)
    assert set(MARTS) <= set(tables)
    assert {t for t in tables if not t.startswith("mart_")} == {"_joinedup_marts", "_joinedup_run"}
    assert not [t for t, columns in tables.items() if "person_id" in columns]
    assert mode(commissioning) == 0o444
    # The person-level marts for analysts alone: never readable by others.
    tables = _tables(analytics)
    assert {"dim_person", "fct_hospital_spells", "fct_care_events"} <= set(tables)
    assert not [t for t in tables if t.startswith("mart_") or t == "_joinedup_marts"]
    assert mode(analytics) == 0o400  # no JOINEDUP_ANALYSTS_GROUP in the tests' environment
    assert not mode(analytics) & (stat.S_IROTH | stat.S_IWOTH)
    # Coarsened by default: the month of death, not the date.
    assert "date_of_death" not in tables["dim_person"] and "death_month" in tables["dim_person"]
    with duckdb.connect(str(analytics), read_only=True) as con:
        months = con.execute(
            "select count(*), count(*) filter (where regexp_full_match(death_month, "
            "'[0-9]{4}-[0-9]{2}')) from dim_person where is_deceased"
        ).fetchall()[0]
    assert months[0] > 0 and months[0] == months[1]


@pytest.mark.slow  # the session's published population: a minute to build
def test_analytics_is_readable_by_the_analysts_group_and_not_by_others(
    published_population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import grp

    data_dir = tmp_path / "data"
    shutil.copytree(published_population, data_dir, symlinks=True)
    # The current user's primary group: the one group a test may give a file to.
    gid = os.getgid()
    for group in (grp.getgrgid(gid).gr_name, str(gid)):  # by name and by number
        monkeypatch.setenv("JOINEDUP_ANALYSTS_GROUP", group)
        published = warehouse.publish_analytics(data_dir, "run-2")
        analytics = published["analytics"]
        assert mode(analytics) == 0o440, group
        assert analytics.stat().st_gid == gid
        assert mode(published["commissioning"]) == 0o444

    # A group that does not exist is refused before anything is staged or published.
    before = analytics.read_bytes()
    monkeypatch.setenv("JOINEDUP_ANALYSTS_GROUP", "no-such-group-joinedup")
    with pytest.raises(warehouse.WarehouseError, match=r"no-such-group-joinedup.*no such group"):
        warehouse.publish_analytics(data_dir, "run-3")
    assert analytics.read_bytes() == before and mode(analytics) == 0o440
    assert not any(p.exists() for p in warehouse.candidate_paths(data_dir).values())

    monkeypatch.delenv("JOINEDUP_ANALYSTS_GROUP")
    assert mode(warehouse.publish_analytics(data_dir, "run-3")["analytics"]) == 0o400


@pytest.mark.slow  # the session's published population: a minute to build
def test_a_person_level_mart_named_as_a_commissioner_mart_is_not_published(
    published_population: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(published_population, data_dir, symlinks=True)
    before = {p: path.read_bytes() for p, path in warehouse.publication_paths(data_dir).items()}
    warehouse_file = data_dir / catalogue.WAREHOUSE.path
    warehouse_file.chmod(0o600)
    with duckdb.connect(str(warehouse_file)) as con:
        con.execute("create table marts.mart_people as select person_id from marts.dim_person")
    with pytest.raises(warehouse.WarehouseError, match="mart_people has a person_id column"):
        warehouse.publish_analytics(data_dir, "run-2")
    after = {p: path.read_bytes() for p, path in warehouse.publication_paths(data_dir).items()}
    assert after == before


@pytest.mark.slow  # the session's published population: a minute to build
def test_the_run_leaves_only_the_published_marts_to_analysts(published_population: Path) -> None:
    d = published_population
    assert mode(d / catalogue.COMMISSIONING.path) == 0o444
    assert mode(d / catalogue.PUBLISHED.path) == 0o400
    # The warehouse holds record tokens in staging and intermediate: data engineers only.
    assert mode(d / "warehouse.duckdb") == 0o600
    for zone in ("landing/_validated", "quarantine", "restricted", "pseudonymised", "linked"):
        assert mode(d / zone) == 0o700, zone


@pytest.mark.slow  # the session's published population: a minute to build
def test_the_dashboard_connection_is_read_only(published_population: Path) -> None:
    path = dashboard_data.commissioning_path(published_population)
    before = path.read_bytes()
    with dashboard_data.connect(path) as con:
        assert con.execute("select count(*) from mart_readmissions").fetchall()[0][0] > 0
        for statement in (
            "create table leak (x integer)",
            "delete from mart_readmissions",
            "update mart_pathway_flows set transitions = 1",
            "drop table mart_readmissions",
        ):
            with pytest.raises(duckdb.Error, match="read-only"):
                con.execute(statement)
    assert path.read_bytes() == before


def _every_question(data_dir: Path) -> int:
    """Ask the data layer every mart and breakdown the published file holds."""
    cat = dashboard_data.catalogue(data_dir)
    asked = 0
    for mart, breakdowns in cat.breakdowns.items():
        for breakdown in breakdowns:
            rows = dashboard_data.load_slice(data_dir, mart, breakdown)
            asked += rows.height > 0
        plan, result = dashboard_data.query(data_dir, cat, mart, dashboard_data.Filters())
        assert plan is not None and result.height > 0, mart
    return asked


@pytest.mark.slow  # the session's published population: a minute to build
def test_the_dashboard_opens_commissioning_duckdb_and_nothing_else(
    published_population: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a real run directory, every database the data layer opens is the commissioners' file."""
    opened: list[tuple[str, bool]] = []
    real_connect = duckdb.connect

    def recording_connect(database: str = ":memory:", read_only: bool = False, **kw):
        opened.append((str(database), read_only))
        return real_connect(database, read_only=read_only, **kw)

    # Records the calls and passes them on unchanged: the queries run on real DuckDB.
    monkeypatch.setattr(dashboard_data.duckdb, "connect", recording_connect)
    dashboard_data.st.cache_data.clear()
    assert _every_question(published_population) > 0
    commissioning = str(published_population / catalogue.COMMISSIONING.path)
    assert opened and set(opened) == {(commissioning, True)}


@pytest.mark.slow  # the session's published population: a minute to build
def test_a_folder_holding_only_commissioning_duckdb_answers_every_question(
    published_population: Path, tmp_path: Path
) -> None:
    """What the Docker dashboard sees: one read-only file, and nothing is written beside it."""
    published = tmp_path / "published"
    folder = (published / catalogue.COMMISSIONING.path).parent
    folder.mkdir(parents=True)
    shutil.copy2(published_population / catalogue.COMMISSIONING.path, folder)
    name = Path(catalogue.COMMISSIONING.path).name
    (folder / name).chmod(0o444)
    folder.chmod(0o555)
    try:
        dashboard_data.st.cache_data.clear()
        assert _every_question(published) > 0
        # No write-ahead log, lock or temp file: it works on a read-only mount.
        assert sorted(p.name for p in folder.iterdir()) == [name]
    finally:
        folder.chmod(0o755)


@pytest.mark.slow  # the session's published population: a minute to build
def test_publish_goes_to_the_published_dir_when_one_is_set(
    published_population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = tmp_path / "published"
    monkeypatch.setenv("JOINEDUP_PUBLISHED_DIR", str(published))
    data_dir = tmp_path / "data"
    shutil.copytree(published_population, data_dir, symlinks=True)
    in_data_dir = {
        z.path: (data_dir / z.path).stat().st_mtime_ns for z in catalogue.PUBLICATIONS.values()
    }

    targets = warehouse.publish_analytics(data_dir)
    assert targets == {
        "analytics": published.resolve() / catalogue.PUBLISHED.path,
        "commissioning": published.resolve() / catalogue.COMMISSIONING.path,
    }
    assert sorted(p.relative_to(published).as_posix() for p in published.rglob("*")) == sorted(
        [catalogue.PUBLISHED.path, catalogue.COMMISSIONING.path, "commissioning"]
    )
    assert mode(targets["commissioning"]) == 0o444 and mode(targets["analytics"]) == 0o400
    with dashboard_data.connect(targets["commissioning"]) as con:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    assert set(MARTS) <= tables
    for path, mtime in in_data_dir.items():
        assert (data_dir / path).stat().st_mtime_ns == mtime
