"""The privacy scan finds landing identifiers in any output format, and stays quiet otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from ingest_fixtures import baseline_rows, gp_id, run_all, write_landing

from joinedup.privacy.scan import SPILL_DIR, PrivacyLeakError, assert_clean, scan


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scan")
    rows = baseline_rows()
    # A date of birth that is also an admission date, and a given name that is a common word.
    rows["hospital/apc_episodes"][0]["admission_date"] = "1990-02-14"  # Carol's date of birth
    rows["gp/patients"][0]["given_name"] = "May"
    write_landing(out, rows)
    run_all(out)
    return out


def findings(data_dir: Path, *targets: Path) -> set[tuple[str, str, str]]:
    found = scan(data_dir / "landing", list(targets))
    return {(Path(f).name, c, v) for f, c, _, v in found.iter_rows()}


def test_clean_outputs_have_no_findings(data_dir: Path) -> None:
    targets = [data_dir / "pseudonymised", data_dir / "restricted", data_dir / "ledger.csv"]
    assert scan(data_dir / "landing", targets).is_empty()
    assert_clean(data_dir / "landing", targets)


def test_finds_identifiers_in_every_format(data_dir: Path, tmp_path: Path) -> None:
    pl.DataFrame({"id": [1, 2], "notes": ["seen by Dr X; Mrs Whitaker ok", None]}).write_parquet(
        tmp_path / "a.parquet"
    )
    pl.DataFrame({"dob": ["25/12/1933"], "ref": [gp_id("alice")]}).write_csv(tmp_path / "b.csv")
    (tmp_path / "c.json").write_text(json.dumps({"rows": [{"born": 19751123}]}))
    (tmp_path / "d.html").write_text(
        "<script>function okafor(a){return a}</script><td>NHS 400 000 0039</td>"
        "<td>Okafor-Smith</td>"
    )
    con = duckdb.connect(str(tmp_path / "e.duckdb"))
    # Values are scanned in their own type: a date of birth as a DATE, a TIMESTAMP
    # (its time is no identifier) or a number written YYYYMMDD is still one.
    con.execute(
        "CREATE TABLE people AS SELECT 'ls61aa' AS home, DATE '1962-07-30' AS born, "
        "TIMESTAMP '1962-07-30 08:15:00' AS born_at, 19751123::BIGINT AS born_int, "
        "TRUE AS flag, 7::SMALLINT AS visits"
    )
    con.close()
    assert findings(data_dir, tmp_path) == {
        ("a.parquet", "notes", "whitaker"),
        ("b.csv", "dob", "1933-12-25"),
        ("b.csv", "ref", gp_id("alice")),
        ("c.json", "(text)", "1975-11-23"),
        ("d.html", "(html)", "4000000039"),  # anywhere in the page
        ("d.html", "(text)", "4000000039"),  # in its visible text
        ("d.html", "(text)", "okafor"),
        ("d.html", "(text)", "smith"),
        ("e.duckdb", "main.people.home", "LS61AA"),
        ("e.duckdb", "main.people.born", "1962-07-30"),
        ("e.duckdb", "main.people.born_at", "1962-07-30"),
        ("e.duckdb", "main.people.born_int", "1975-11-23"),
    }


def test_quiet_on_ambiguous_values_and_token_lookalikes(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text(
        "<p>May admissions</p><p>Admitted 1990-02-14</p>"  # common word; also an admission date
        "<p>token a1980b05c01deadbeef 9fed0dada4000000004 and 0101100110011001</p>"
        "<p>Al and Jo</p>"  # too short to be a name match
    )
    assert findings(data_dir, tmp_path) == set()


def test_assert_clean_reports_counts_not_values(data_dir: Path, tmp_path: Path) -> None:
    leak = tmp_path / "pseudonymised" / "leak.parquet"
    leak.parent.mkdir()
    pl.DataFrame({"surname": ["Whitaker", "Pemberton"]}).write_parquet(leak)
    with pytest.raises(PrivacyLeakError) as err:
        assert_clean(data_dir / "landing", [tmp_path / "pseudonymised"])
    assert "leak.parquet [surname]: 2 name value(s)" in str(err.value)
    assert "Whitaker" not in str(err.value)


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where analytics.duckdb is published: a folder of its own (JOINEDUP_PUBLISHED_DIR)."""
    folder = tmp_path / "published"
    folder.mkdir()
    monkeypatch.setenv("JOINEDUP_PUBLISHED_DIR", str(folder))
    return folder / "analytics.duckdb"


def _add_table(database: Path, sql: str) -> None:
    with duckdb.connect(str(database)) as con:
        con.execute(sql)


def test_the_privacy_gate_scans_the_published_marts_wherever_they_are_published(
    data_dir: Path, published: Path
) -> None:
    from joinedup.pipeline import privacy_gate

    assert "analytics.duckdb" not in privacy_gate(data_dir)["scanned"]
    _add_table(published, "CREATE TABLE leak AS SELECT 'Mrs Whitaker' AS note")
    with pytest.raises(PrivacyLeakError, match=r"analytics\.duckdb"):
        privacy_gate(data_dir)


def test_a_published_file_a_finished_run_recorded_is_not_rescanned_until_it_changes(
    data_dir: Path, published: Path
) -> None:
    from joinedup.pipeline import finalise, privacy_gate

    _add_table(published, "CREATE TABLE mart AS SELECT 'E06000901' AS la_code, 12 AS people")
    assert "analytics.duckdb" in privacy_gate(data_dir)["scanned"]
    # The run that published it finishes: its record lists the file's checksum.
    finalise(data_dir, "run-1", {"published": {"analytics": str(published)}})
    gate = privacy_gate(data_dir)
    assert "analytics.duckdb" not in gate["scanned"]
    assert gate["not_rescanned"] == {"analytics.duckdb": "unchanged since run run-1"}
    # Changed since (by hand, or by a run that never finished): scanned again, leak found.
    _add_table(published, "CREATE TABLE leak AS SELECT 'Mrs Whitaker' AS note")
    with pytest.raises(PrivacyLeakError, match=r"analytics\.duckdb"):
        privacy_gate(data_dir)


def test_the_scan_is_bounded_by_the_duckdb_memory_limit_and_leaves_no_spill(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOINEDUP_DUCKDB_MEMORY_LIMIT", "1KB")
    with pytest.raises(duckdb.OutOfMemoryException):
        scan(data_dir / "landing", [data_dir / "pseudonymised"])
    assert not (data_dir / "landing" / SPILL_DIR).exists()


def test_identifiers_in_national_layout_files_are_found(tmp_path: Path) -> None:
    """HES APC, ECDS and CLD files hold identifiers under their own column names (newnhsno,
    lopatid, homeadd, la_person_unique_identifier ...): the scan reads them by their layout."""
    national = Path(__file__).parent / "fixtures" / "layouts" / "national"
    data = tmp_path / "data"
    for name in ("hes_apc_2025-06.csv", "ecds_2025-06.csv", "cld_2025q2.csv"):
        folder = data / "landing" / ("social_care" if name.startswith("cld") else "hospital")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes((national / name).read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    pl.DataFrame(
        {
            "a": ["9434765013"],  # P0002's NHS number: in the HES file only (newnhsno)
            "c": ["TS6 6FF"],  # LA-0002's postcode: in the CLD file only
            "d": ["1935-09-09"],  # P0005's date of birth (ECDS)
            "e": ["2025-06-21"],  # an event date, no identifier
            "f": ["182992009"],  # a SNOMED CT code, no identifier
        }
    ).write_parquet(out / "leak.parquet")
    assert findings(data, out) == {
        ("leak.parquet", "a", "9434765013"),
        ("leak.parquet", "c", "TS66FF"),
        ("leak.parquet", "d", "1935-09-09"),
    }


def test_a_date_of_birth_in_the_future_is_no_identifier(tmp_path: Path) -> None:
    """A mistyped year puts a birth after today: ingest nulls it, and the scan must not
    then flag every run timestamp of that day (or later) in the outputs."""
    from datetime import date, timedelta

    later = (date.today() + timedelta(days=30)).isoformat()
    rows = baseline_rows()
    rows["gp/patients"][0]["date_of_birth"] = later
    rows["gp/patients"][2]["date_of_birth"] = date.today().isoformat()
    write_landing(tmp_path / "data", rows)
    out = tmp_path / "out"
    out.mkdir()
    past = rows["gp/patients"][1]["date_of_birth"]
    stamps = [f"{later}T10:14:36Z", f"{date.today().isoformat()}T09:00:00Z"]
    pl.DataFrame({"recorded_at": stamps, "born": [past, past]}).write_csv(out / "a.csv")
    assert findings(tmp_path / "data", out) == {("a.csv", "born", past)}
