"""The re-identification risk report on planted analytics.duckdb files (real DuckDB, no mocks).

Each planted file holds a few people or cells made to pin one behaviour: a unique
combination the report must find, a suppressed cell that is the total minus the cells
beside it, cells that rounding keeps safe, and coarsening that merges the unique person
into a crowd. A seeded random population checks the differencing audit against the true
counts it never sees. The full pipeline run (tests/test_pipeline_run.py) checks the
stage, the run summary and the HTML on a real population.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml
from random_population import true_counts
from typer.testing import CliRunner

from joinedup import catalogue
from joinedup.privacy import differencing, kanon
from joinedup.privacy.coarsening import WITHHELD, Coarsening
from joinedup.privacy.report import PrivacyRiskError, write_privacy_report
from joinedup.settings import Settings

REPO = Path(__file__).resolve().parents[1]
ANALYTICS = catalogue.PUBLISHED.path  # the person-level marts, for analysts
COMMISSIONING = catalogue.COMMISSIONING.path  # the aggregates, for everyone

# (people, birth_month, age, lsoa_code, imd_decile); everyone else alike: 75-84, female,
# IMD quintile 2, LA E06000001, practice P1 (or a value that must come out escaped).
CROWD_A = (20, "1950-03", 75, "E01000001", 3)
CROWD_B = (20, "1950-07", 75, "E01000001", 3)
PLANTED = (1, "1949-11", 76, "E01000002", 4)  # unique on birth month and on LSOA
PRACTICE = "<b>P1</b>"


def _plant_people(con: duckdb.DuckDBPyConnection, *, coarsened: bool = False) -> None:
    con.execute(
        """
        create table dim_person (
            person_id varchar, sex varchar, sex_code varchar, birth_month varchar,
            age integer, age_band varchar, lsoa_code varchar, imd_decile integer,
            imd_quintile integer, practice_code varchar, la_code varchar, death_month varchar,
            is_deceased boolean
        )
        """
    )
    n = 0
    for people, birth_month, age, lsoa, decile in (CROWD_A, CROWD_B, PLANTED):
        for _ in range(people):
            n += 1
            con.execute(
                "insert into dim_person values (?, 'Female', '2', ?, ?, '75-84', ?, ?, 2, ?, "
                "'E06000001', null, false)",
                [
                    f"person-{n:03d}",
                    None if coarsened else birth_month,
                    None if coarsened else age,
                    None if coarsened else lsoa,
                    None if coarsened else decile,
                    PRACTICE,
                ],
            )
    # Crowd A's people are admitted on two shared days, except one on a day of their own.
    con.execute("create table fct_hospital_spells (person_id varchar, admission_date date)")
    for i in range(1, 21):
        day = date(2025, 5, 1) if i <= 10 else date(2025, 5, 2) if i < 20 else date(2025, 6, 1)
        con.execute("insert into fct_hospital_spells values (?, ?)", [f"person-{i:03d}", day])


def _plant_mart(
    con: duckdb.DuckDBPyConnection, name: str, rows: list[tuple], *, with_people: bool = False
) -> None:
    """A commissioner-style mart: breakdown, month, sex, one count (and its flag)."""
    extra = ", people bigint, people_suppressed boolean" if with_people else ""
    con.execute(
        f"create table {name} (breakdown varchar, activity_month date, sex varchar, "
        f"events bigint, events_suppressed boolean{extra}, events_rate_pct double)"
    )
    for breakdown, month, sex, events in rows:
        suppressed = events is None
        values = [breakdown, month, sex, events, suppressed]
        if with_people:
            values += [None, True]
        values.append(None)
        marks = ", ".join("?" for _ in values)
        con.execute(f"insert into {name} values ({marks})", values)


JAN = date(2025, 1, 1)
# Total 23 = 20 men + a withheld number of women: the women are 23 - 20 = 3, exactly.
RECOVERABLE = [
    ("total", None, None, 23),
    ("month", JAN, None, 23),
    ("month+sex", JAN, "Male", 20),
    ("month+sex", JAN, "Female", None),
]
# 20 = 10 men + three withheld cells: any of them can be anything from 1 to 7.
NOT_RECOVERABLE = [
    ("total", None, None, 20),
    ("month", JAN, None, 20),
    ("month+sex", JAN, "Male", 10),
    ("month+sex", JAN, "Female", None),
    ("month+sex", JAN, "Indeterminate", None),
    ("month+sex", JAN, None, None),
]
# Published as rounded to 5: 30 is 28-32, 25 is 23-27, so the women are 1 to 9: no news.
ROUNDED_SAFE = [
    ("total", None, None, 30),
    ("month", JAN, None, 30),
    ("month+sex", JAN, "Male", 25),
    ("month+sex", JAN, "Female", None),
]
# 10 (8-12) = 10 (8-12) + women: the women are at most 4, narrower than 1 to 7.
ROUNDED_NARROWED = [
    ("total", None, None, 10),
    ("month", JAN, None, 10),
    ("month+sex", JAN, "Male", 10),
    ("month+sex", JAN, "Female", None),
]


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with duckdb.connect(str(data_dir / ANALYTICS)) as con:
        _plant_people(con)
    (data_dir / COMMISSIONING).parent.mkdir()
    with duckdb.connect(str(data_dir / COMMISSIONING)) as con:
        # Published as the rule says (1-7 withheld, the rest multiples of 5).
        _plant_mart(con, "mart_narrowed", ROUNDED_NARROWED)
        _plant_mart(con, "mart_safe", ROUNDED_SAFE, with_people=True)
    return data_dir


@pytest.fixture
def unrounded(tmp_path: Path) -> Path:
    """Marts without rounding (base 1), where subtraction gives exact values."""
    path = tmp_path / "unrounded.duckdb"
    with duckdb.connect(str(path)) as con:
        _plant_mart(con, "mart_recoverable", RECOVERABLE)
        _plant_mart(con, "mart_not_recoverable", NOT_RECOVERABLE, with_people=True)
    return path


def _scenario(results: list[dict], key: str) -> dict:
    return next(r for r in results if r["key"] == key)


def test_the_planted_unique_combination_is_found(planted: Path) -> None:
    with duckdb.connect(str(planted / ANALYTICS), read_only=True) as con:
        results = kanon.measure_all(con, min_k=5)
    demographics = _scenario(results, "demographics")
    assert demographics["persons"] == 41
    assert demographics["classes"] == 3
    assert demographics["min_k"] == 1
    assert demographics["unique_persons"] == 1
    assert demographics["persons_below_min_k"] == 1
    assert demographics["records_below_min_k"] == 1
    buckets = {b["k"]: b["persons"] for b in demographics["k_distribution"]}
    assert buckets["1"] == 1 and buckets["20-49"] == 40 and sum(buckets.values()) == 41
    # The example shows the published values of the combination, and never a person_id.
    (example,) = [e for e in demographics["examples"] if e["k"] == 1]
    assert example["values"]["birth_month"] == "1949-11"
    assert example["values"]["lsoa_code"] == "E01000002"
    assert "person-" not in json.dumps(demographics)
    # Both birth month and LSOA single the planted person out: leaving either out is not enough.
    assert demographics["drivers"]["birth_month"] == demographics["drivers"]["lsoa_code"]
    assert demographics["drivers"]["birth_month"] == pytest.approx(1 / 41, abs=1e-4)


def test_a_dated_event_singles_out_someone_the_demographics_do_not(planted: Path) -> None:
    with duckdb.connect(str(planted / ANALYTICS), read_only=True) as con:
        results = kanon.measure_all(con, min_k=5)
    admission = _scenario(results, "demographics_admission")
    # 20 people with a spell: 10 and 9 share a day, the 20th was admitted alone.
    assert admission["persons"] == 20
    assert admission["unique_persons"] == 1
    assert admission["min_k"] == 1
    assert admission["median_k"] == 9.5
    care_events = _scenario(results, "demographics_care_event")
    assert care_events["measured"] is False and "fct_care_events" in care_events["reason"]


def test_coarsening_raises_the_minimum_k(planted: Path) -> None:
    with duckdb.connect(str(planted / ANALYTICS), read_only=True) as con:

        def min_k(coarsening: Coarsening) -> int:
            s = kanon.measure(con, kanon.SCENARIOS[0], min_k=5, withheld=coarsening.withheld())
            return s["min_k"]

        assert min_k(Coarsening()) == 1
        # Either option alone leaves the planted person unique: the other column still tells.
        assert min_k(Coarsening(birth="age_band")) == 1
        assert min_k(Coarsening(area="la")) == 1
        assert min_k(Coarsening(birth="age_band", area="la")) == 41


def test_the_marts_as_dbt_coarsens_them_measure_as_the_what_if_said(tmp_path: Path) -> None:
    # The columns dbt withholds are published as nulls; measuring them as they are gives the
    # figure the report's re-measurement predicted on the uncoarsened file.
    with duckdb.connect(str(tmp_path / "coarse.duckdb")) as con:
        _plant_people(con, coarsened=True)
        demographics = kanon.measure(con, kanon.SCENARIOS[0], min_k=5)
    assert demographics["min_k"] == 41 and demographics["unique_persons"] == 0


def _audit(path: Path, mart: str, *, rounding_base: int) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        (found,) = [m for m in differencing.aggregate_marts(con) if m.name == mart]
        return differencing.check_mart(con, found, threshold=8, rounding_base=rounding_base)


def test_a_differencing_attack_on_a_planted_table_is_detected(unrounded: Path) -> None:
    # Without rounding (base 1) the withheld women are exactly 23 - 20.
    result = _audit(unrounded, "mart_recoverable", rounding_base=1)
    assert result["suppressed_cells"] == 1
    assert result["recoverable_cells"] == 1
    assert result["exactly_recovered_cells"] == 1
    (example,) = result["examples"]
    assert example == {
        "breakdown": "month+sex",
        "cell": {"activity_month": "2025-01-01", "sex": "Female"},
        "count": "events",
        "possible_values": 1,
        "exact": True,
    }
    assert result["breakdowns"] == ["month", "month+sex", "total"]


def test_cells_that_cannot_be_recovered_are_not_flagged(unrounded: Path) -> None:
    result = _audit(unrounded, "mart_not_recoverable", rounding_base=1)
    assert result["suppressed_cells"] == 3
    assert result["recoverable_cells"] == 0
    # people counts distinct people, who fall in several cells: never used for subtraction.
    assert result["counts_not_additive"] == ["people"]
    assert result["counts_checked"] == ["events"]


def test_rounding_is_taken_into_account(planted: Path) -> None:
    safe = _audit(planted / COMMISSIONING, "mart_safe", rounding_base=5)
    assert safe["suppressed_cells"] == 1 and safe["recoverable_cells"] == 0
    narrowed = _audit(planted / COMMISSIONING, "mart_narrowed", rounding_base=5)
    assert narrowed["recoverable_cells"] == 1 and narrowed["exactly_recovered_cells"] == 0
    assert narrowed["examples"][0]["possible_values"] == 4  # 1 to 4


def test_a_broken_suppression_rule_is_counted(tmp_path: Path) -> None:
    path = tmp_path / ANALYTICS
    with duckdb.connect(str(path)) as con:
        _plant_mart(con, "mart_broken", [("total", None, None, 3), ("month", JAN, None, 12)])
        (mart,) = differencing.aggregate_marts(con)
        rule = differencing.check_rule(con, mart, threshold=8, rounding_base=5)
    assert rule["small_count_shown"] == 1  # a 3 is published
    assert rule["not_rounded"] == 2  # neither 3 nor 12 is a multiple of 5
    assert rule["withheld_but_shown"] == 0 and rule["flag_missing"] == 0


def _random_mart(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """Events of a random population, aggregated and suppressed as the dbt marts are."""
    true_counts(con, seed, people=400, las=["E06000001", "E06000002"])
    con.execute(
        """
        create table mart_random as
        select breakdown, activity_month, la_code, sex,
            case when events between 1 and 7 then null
                 else cast(round(events / 5.0) * 5 as bigint) end as events,
            events between 1 and 7 as events_suppressed,
            case when people between 1 and 7 then null
                 else cast(round(people / 5.0) * 5 as bigint) end as people,
            people between 1 and 7 as people_suppressed
        from true_counts
        """
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_interval_holds_the_true_count(tmp_path: Path, seed: int) -> None:
    """Soundness: what the audit infers about a withheld cell is true of the real count."""
    path = tmp_path / f"random-{seed}.duckdb"
    with duckdb.connect(str(path)) as con:
        _random_mart(con, seed)
        (mart,) = differencing.aggregate_marts(con)
        intervals = differencing.suppressed_intervals(con, mart, threshold=8, rounding_base=5)
        truth = {
            (r[0], r[1], r[2], r[3]): r[4]
            for r in con.execute(
                "select breakdown, activity_month, la_code, sex, events from true_counts"
            ).fetchall()
        }
        result = differencing.check_mart(con, mart, threshold=8, rounding_base=5)
    assert intervals, "the random population must have withheld cells"
    for cell in intervals:
        key = (cell["breakdown"], cell["activity_month"], cell["la_code"], cell["sex"])
        assert cell["low"] <= truth[key] <= cell["high"], cell
    narrowed = [c for c in intervals if c["low"] > 1 or c["high"] < 7]
    assert result["recoverable_cells"] == len(narrowed)
    assert result["inconsistent_cells"] == 0


def _settings(**overrides: object) -> Settings:
    return Settings(**overrides)


def test_the_report_writes_json_and_escaped_self_contained_html(planted: Path) -> None:
    summary = write_privacy_report(planted, run_id="r1", settings=_settings())
    privacy = planted / "privacy"
    report = json.loads((privacy / "report.json").read_text())
    page = (privacy / "report.html").read_text()
    pack_page = (privacy / "data_protection_pack.html").read_text()
    assert summary["status"] == report["status"] == "warn"
    assert summary["person_level"]["demographics"]["persons_below_min_k"] == 1
    assert summary["aggregates"]["recoverable_cells"] == 1  # mart_narrowed's women: 1 to 4
    assert summary["aggregates"]["exactly_recovered_cells"] == 0
    assert summary["aggregates"]["rule_breaches"] == 0
    # The figures are on the page.
    demographics = _scenario(report["person_level"]["scenarios"], "demographics")
    assert f'<td class="n">{demographics["persons"]}</td>' in page
    assert "1949-11" in page and "E01000002" in page
    for finding in report["findings"]:
        assert finding["severity"] in {"warn", "info", "fail"}
    # Self-contained and escaped: no script, no external resource, the planted markup inert.
    for html_page in (page, pack_page):
        assert "<script" not in html_page.lower()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html_page)
        assert "<b>P1</b>" not in html_page
    assert "&lt;b&gt;P1&lt;/b&gt;" in page
    assert "person-0" not in page and "person-0" not in (privacy / "report.json").read_text()
    # Both publications are measured and named, each with its readers.
    assert set(report["publications"]) == {"analytics", "commissioning"}
    assert set(summary["sha256"]) == {"analytics", "commissioning"}
    assert "commissioning.duckdb" in page and "analytics.duckdb" in page
    assert report["aggregates"]["person_level_tables"] == []


def test_a_person_level_table_in_the_commissioning_file_fails(planted: Path) -> None:
    with duckdb.connect(str(planted / COMMISSIONING)) as con:
        con.execute("create table dim_person as select 'person-1' as person_id")
    with pytest.raises(PrivacyRiskError, match="holds person-level table"):
        write_privacy_report(planted, run_id="r1", settings=_settings())
    report = json.loads((planted / "privacy" / "report.json").read_text())
    assert report["aggregates"]["person_level_tables"] == ["dim_person"]


def test_a_cell_recovered_exactly_fails_the_run_by_default(planted: Path) -> None:
    # A withheld month (1 to 7) with seven non-empty withheld parts: 7, and every part 1.
    sexes = ["Female", "Male", "Indeterminate", "Unknown", "A", "B", "C"]
    with duckdb.connect(str(planted / COMMISSIONING)) as con:
        _plant_mart(
            con,
            "mart_pinned",
            [("month", JAN, None, None), *(("month+sex", JAN, s, None) for s in sexes)],
        )
    with pytest.raises(PrivacyRiskError, match="mart_pinned: 8, 8 exactly"):
        write_privacy_report(planted, run_id="r1", settings=_settings())
    report = json.loads((planted / "privacy" / "report.json").read_text())
    assert report["status"] == "fail"
    relaxed = write_privacy_report(
        planted, run_id="r1", settings=_settings(privacy_on_recoverable="warn")
    )
    assert relaxed["status"] == "warn"


def test_fail_mode_fails_after_writing_the_evidence(planted: Path) -> None:
    with pytest.raises(PrivacyRiskError) as raised:
        write_privacy_report(planted, run_id="r1", settings=_settings(privacy_on_low_k="fail"))
    message = str(raised.value)
    assert "k < 5" in message and "report.html" in message and "JOINEDUP_COARSEN" in message
    # Measured where analysts read it (the CLI's default), so it is out already.
    assert "published marts break" in message and "have been published already" in message
    assert (planted / "privacy" / "report.html").exists()
    report = json.loads((planted / "privacy" / "report.json").read_text())
    assert report["status"] == "fail"
    for name, path in (("analytics", ANALYTICS), ("commissioning", COMMISSIONING)):
        publication = report["publications"][name]
        assert publication["published_as"] is None
        assert publication["sha256"] == hashlib.sha256((planted / path).read_bytes()).hexdigest()
    # With coarsening on, the planted person is in a crowd of 41: no k finding is left.
    again = write_privacy_report(
        planted,
        settings=_settings(privacy_on_low_k="fail", coarsen_birth="age_band", coarsen_area="la"),
    )
    assert again["person_level"]["demographics"]["min_k"] == 41
    assert again["status"] == "warn"  # the differencing finding remains a warning


def test_the_pack_lists_every_landing_column_and_keeps_no_identifier(planted: Path) -> None:
    from joinedup.contracts import TABLES

    write_privacy_report(planted, run_id="r1", settings=_settings())
    pack = json.loads((planted / "privacy" / "data_protection_pack.json").read_text())
    landing = pack["inventory"]["landing"]
    assert len(landing) == sum(len(t.columns) for t in TABLES.values())
    assert pack["identifiers_kept_past_landing"] == []
    # No pseudonymised zone was written here: every column is reported dropped, none kept.
    assert all(r["treatment"] == ["dropped"] for r in landing)
    published = {(r["table"], r["column"]): r for r in pack["inventory"]["published"]}
    assert published[("dim_person", "person_id")]["treatment"] == "pseudonym"
    assert published[("dim_person", "person_id")]["publication"] == "analytics"
    assert published[("mart_narrowed", "events")]["publication"] == "commissioning"
    # Both publications, each with its readers and the mode it is published with.
    assert pack["publications"]["commissioning"]["mode"] == "0444"
    assert pack["publications"]["analytics"]["mode"] == "0400"  # no analysts' group set
    assert "alone" in pack["publications"]["analytics"]["readers"]
    modes = {
        r.get("publication"): r["published_mode"] for r in pack["access"] if "publication" in r
    }
    assert modes == {"analytics": "-r--------", "commissioning": "-r--r--r--"}
    assert published[("mart_narrowed", "events")]["treatment"] == "suppressed"
    assert (
        "withheld when coarsen_birth=age_band" in published[("dim_person", "birth_month")]["note"]
    )
    assert pack["key"].keys() == {"configured", "source", "demo_key"}
    assert "not a DPIA" in pack["note"]


def test_cli_privacy_report(planted: Path, tmp_path: Path) -> None:
    from joinedup.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["privacy-report", "--data-dir", str(planted)])
    assert done.exit_code == 0, done.output
    assert "privacy report (warn" in done.output and "report.html" in done.output
    missing = runner.invoke(app, ["privacy-report", "--data-dir", str(tmp_path / "none")])
    assert missing.exit_code == 2
    assert "analytics.duckdb not found" in missing.output and "joinedup run" in missing.output
    assert "Traceback" not in missing.output


def test_every_withheld_column_is_coarsened_in_its_model_and_documented() -> None:
    """The Python definition and the dbt marts cannot drift apart."""
    for option, marts in WITHHELD.items():
        for mart, columns in marts.items():
            sql = (REPO / "models" / "marts" / "core" / f"{mart}.sql").read_text()
            doc = yaml.safe_load((REPO / "models" / "marts" / "core" / f"{mart}.yml").read_text())
            described = {c["name"]: c["description"] for c in doc["models"][0]["columns"]}
            for column in columns:
                assert f"coarsened('{column}'," in sql, (mart, column)
                assert f"as {column}," in sql, (mart, column)
                setting = f"JOINEDUP_{option[0].upper()}={option[1]}"
                assert setting in described[column], (mart, column)


def test_the_pipeline_passes_coarsening_to_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    from joinedup.warehouse.build import _dbt_vars

    monkeypatch.delenv("JOINEDUP_COARSEN_BIRTH", raising=False)
    monkeypatch.delenv("JOINEDUP_COARSEN_AREA", raising=False)
    assert _dbt_vars(None)["withheld_columns"] == {}
    monkeypatch.setenv("JOINEDUP_COARSEN_BIRTH", "age_band")
    monkeypatch.setenv("JOINEDUP_COARSEN_AREA", "la")
    withheld = _dbt_vars(None)["withheld_columns"]
    assert withheld["dim_person"] == ["birth_month", "age", "lsoa_code", "imd_decile"]
    assert withheld["fct_care_events"] == ["age_at_event"]
