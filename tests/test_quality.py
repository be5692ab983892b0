"""Great Expectations quality gates, run for real on a small synthetic population.

One module-scoped population goes through the real stages (ingest, opt-outs,
pseudonymise, Splink linkage, dbt build); every gate must pass on it. Each
seeded defect is made on a copy of that data directory and must fail the
right gate with a message naming the suite, the expectation and sample values,
never a raw identifier. No mocks: every verdict is a real GX validation.

GX runs on pandas batches, not on its SQL datasource, so the GX 11579 DuckDB
workaround is not needed and not pinned here (see joinedup/quality/project.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

from joinedup import linkage
from joinedup.atomic import write_parquet
from joinedup.ingest import ingest_source
from joinedup.privacy.scan import assert_clean
from joinedup.quality import (
    ZONES,
    BatchError,
    QualityGateError,
    build_data_docs,
    data_docs_index,
    frames,
    run_gates,
)
from joinedup.quality.gates import _sample
from joinedup.quality.landing import VOLUMES
from joinedup.quality.linked import persons
from joinedup.quality.marts import commissioner_marts
from joinedup.quality.project import (
    EXPECTATIONS_DIR_ENV,
    expectations_dir,
    forget_contexts,
    open_context,
    reused_context,
)
from joinedup.quality.suites import all_suites, result_format
from joinedup.settings import DEMO_KEY
from joinedup.synth import generate
from joinedup.warehouse import build_warehouse

sys.path.insert(0, str(Path(__file__).parent))
from ingest_fixtures import TODAY, run_all

pytestmark = pytest.mark.slow

KEY = DEMO_KEY.encode()
RUN = "run-1"


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("quality") / "data"
    # The generic layout: the landing-gate tests below edit its one file per table.
    generate(data, people=1000, seed=7, layout="generic")
    run_all(data, RUN, KEY)
    linkage.link(data, RUN, KEY, charts=False)
    build_warehouse(data)
    return data


@pytest.fixture(scope="module")
def gated(population: Path) -> dict[str, dict]:
    """Every zone's gate on the clean population, in pipeline order."""
    return {zone: run_gates(population, zone, RUN) for zone in ZONES}


@pytest.fixture
def copy(population: Path, gated: dict, tmp_path: Path) -> Path:
    """A private copy of the gated data directory for one defect."""
    target = tmp_path / "data"
    shutil.copytree(
        population, target, ignore=shutil.ignore_patterns("docs", "validations", "dbt", "truth")
    )
    for db in target.glob("*.duckdb"):
        db.chmod(0o644)
    return target


def _fails(data: Path, zone: str, run_id: str = RUN) -> str:
    with pytest.raises(QualityGateError) as caught:
        run_gates(data, zone, run_id)
    assert caught.value.summary["passed"] is False
    return str(caught.value)


def _marts_gate_fails_after(copy: Path, sql: str) -> str:
    """Seed a defect into the copied warehouse's marts; the marts gate's failure message."""
    with duckdb.connect(str(copy / "warehouse.duckdb")) as con:
        con.execute(sql)
    return _fails(copy, "marts")


# --- clean data ---------------------------------------------------------------------------------


def test_every_gate_passes_on_clean_synthetic_data(gated: dict[str, dict]) -> None:
    for zone, summary in gated.items():
        assert summary["passed"], summary["critical"]
        assert summary["critical"] == []
        # Warnings are reported, never fatal (the synthetic population has a few real ones,
        # e.g. a deregistration dated before its registration).
        assert all(" - " in w for w in summary["warnings"])
        names = {s.name for s in all_suites() if s.zone == zone}
        assert set(summary["suites"]) == names
        assert all(s["evaluated"] > 0 for s in summary["suites"].values())


def test_landing_gate_keeps_the_delivery_as_the_next_baseline(
    population: Path, gated: dict
) -> None:
    volumes = pl.read_csv(population / "quality" / VOLUMES)
    assert set(volumes["run_id"]) == {RUN}
    apc = volumes.filter(pl.col("table") == "apc_episodes")
    assert apc.height >= 2 and (apc["rows"] > 0).all()


def test_data_docs_show_every_suite_and_results_stay_out_of_the_repo(
    population: Path, gated: dict
) -> None:
    index = build_data_docs(population)
    assert index == population / "quality" / "docs" / "index.html"
    assert Path(gated["marts"]["docs"]) == index
    html = index.read_text()
    for suite in all_suites():
        assert suite.name in html, suite.name
        assert (index.parent / "expectations" / f"{suite.name.replace('.', '/')}.html").exists()
    assert list((population / "quality" / "validations").rglob("*.json"))
    assert not (expectations_dir() / "uncommitted").exists()


def test_the_docs_stage_renders_the_data_docs_again_only_when_there_is_no_index(
    population: Path, gated: dict
) -> None:
    index = population / "quality" / "docs" / "index.html"
    assert Path(gated["marts"]["docs"]) == index
    made = index.stat().st_mtime_ns
    # The gates rendered their pages and the index: nothing is rendered again.
    assert data_docs_index(population) == index
    assert index.stat().st_mtime_ns == made
    index.unlink()
    assert data_docs_index(population) == index
    html = index.read_text()
    for suite in all_suites():
        assert suite.name in html, suite.name


def test_quality_outputs_hold_no_landing_identifier(population: Path, gated: dict) -> None:
    assert_clean(population / "landing", [population / "quality"])


def test_committed_project_is_what_suites_py_writes(tmp_path: Path) -> None:
    """The committed GX files and suites.py say the same thing (ids aside)."""
    with open_context(tmp_path) as context:
        _compare_project(context)


def _compare_project(context: object) -> None:
    for spec in all_suites():
        committed = context.suites.get(spec.name)
        assert committed.meta["zone"] == spec.zone
        assert _configs(committed.expectations) == _configs(spec.expectations), spec.name
        checkpoint = context.checkpoints.get(spec.name)
        assert [v.name for v in checkpoint.validation_definitions] == [spec.name]
        assert checkpoint.result_format == result_format(spec)
    assert {s.name for s in context.suites.all()} == {s.name for s in all_suites()}


def _configs(expectations: list) -> list[tuple]:
    return sorted(
        (e.expectation_type, repr(sorted(e.configuration.kwargs.items())), str(e.severity), e.notes)
        for e in expectations
    )


def test_marts_suites_cover_every_disclosure_controlled_count() -> None:
    marts = commissioner_marts()
    assert set(marts) == {
        "mart_pathway_flows",
        "mart_readmissions",
        "mart_discharge_to_social_care",
        "mart_bcf_metrics",
        "mart_acsc_admissions",
        "mart_still_at_home_91_days",
        "mart_readmissions_30_day",
        "mart_ascof",
    }
    for name, spec in marts.items():
        suite = next(s for s in all_suites() if s.name == f"marts.{name}")
        guarded = {
            e.column for e in suite.expectations if e.expectation_type.endswith("not_be_in_set")
        }
        assert spec.counts and guarded == set(spec.counts)


# --- seeded defects -----------------------------------------------------------------------------


def test_a_published_count_of_3_fails_the_marts_gate_before_publishing(copy: Path) -> None:
    message = _marts_gate_fails_after(
        copy,
        "update marts.mart_readmissions set emergency_readmissions = 3, "
        "emergency_readmissions_suppressed = false "
        "where breakdown = 'month' and activity_month = "
        "(select min(activity_month) from marts.mart_readmissions)",
    )
    assert "marts.mart_readmissions: expect_column_values_to_not_be_in_set" in message
    assert "(emergency_readmissions)" in message
    assert "emergency_readmissions=3" in message  # the failing cell, by its dimensions
    assert "breakdown=month" in message
    assert "Data Docs:" in message


def test_a_duplicated_token_fails_the_pseudonymised_gate(copy: Path) -> None:
    path = copy / "pseudonymised" / "gp" / "patients.parquet"
    frame = pl.read_parquet(path)
    write_parquet(pl.concat([frame, frame.head(1)]), path)
    token = frame["record_token"][0]
    message = _fails(copy, "pseudonymised")
    assert "pseudonymised.gp.patients: expect_column_values_to_be_unique(record_token)" in message
    assert f"{token[:8]}…" in message
    assert token not in message  # tokens are shortened in messages


def test_an_identifier_column_leaked_into_pseudonymised_fails_without_showing_it(
    copy: Path,
) -> None:
    clients = copy / "pseudonymised" / "social_care" / "clients.parquet"
    landing = pl.read_parquet(copy / "landing" / "_validated" / "social_care" / "clients.parquet")
    frame = pl.read_parquet(clients)
    numbers = landing["nhs_number"].drop_nulls()
    leaked = pl.Series([numbers[i % numbers.len()] for i in range(frame.height)])
    # Once under its own name, once renamed: the column check and the value scan catch each.
    write_parquet(frame.with_columns(nhs_number=leaked, case_ref=leaked), clients)
    message = _fails(copy, "pseudonymised")
    assert "pseudonymised.social_care.clients: expect_table_columns_to_match_set" in message
    assert "pseudonymised.identifier_scan: expect_column_values_to_be_between" in message
    assert "(nhs_number_share)" in message
    assert "table=social_care/clients, column=case_ref" in message
    assert not any(n in message for n in numbers.to_list())
    assert_clean(copy / "landing", [copy / "quality"])


def test_values_out_of_format_fail_the_format_scan_with_counts_only(copy: Path) -> None:
    """A name where a Bloom filter belongs, raw NHS numbers as a spell token and as an NHS
    number token: caught over the whole table (a column of repeating values and one of
    distinct values), reported by table, column and count, never by value."""
    patients = copy / "pseudonymised" / "hospital" / "patients.parquet"
    frame = pl.read_parquet(patients)
    landing = pl.read_parquet(copy / "landing" / "_validated" / "hospital" / "apc_episodes.parquet")
    name = landing["family_name"].drop_nulls()[0]
    number = landing["nhs_number"].drop_nulls()[0]
    last = pl.int_range(pl.len()) == frame.height - 1
    write_parquet(
        frame.with_columns(
            family_name_bloom=pl.when(last).then(pl.lit(name)).otherwise("family_name_bloom"),
            nhs_number_token=pl.when(last).then(pl.lit(number)).otherwise("nhs_number_token"),
        ),
        patients,
    )
    episodes = copy / "pseudonymised" / "hospital" / "apc_episodes.parquet"
    write_parquet(pl.read_parquet(episodes).with_columns(spell_token=pl.lit(number)), episodes)
    message = _fails(copy, "pseudonymised")
    assert "pseudonymised.formats: expect_column_values_to_be_between(nonconforming)" in message
    assert "{nonconforming=1, table=hospital.patients, column=family_name_bloom}" in message
    assert "{nonconforming=1, table=hospital.patients, column=nhs_number_token}" in message
    rows = pl.read_parquet(episodes).height
    assert f"{{nonconforming={rows}, table=hospital.apc_episodes, column=spell_token}}" in message
    # The same values also break the spell key's uniqueness: that sample is withheld too.
    assert "expect_compound_columns_to_be_unique(spell_token,episode_number)" in message
    assert "spell_token=(withheld: not a token)" in message
    assert name not in message and number not in message
    assert_clean(copy / "landing", [copy / "quality"])


def test_a_malformed_person_id_fails_the_linked_format_scan(copy: Path) -> None:
    path = copy / "linked" / "record_person.parquet"
    frame = pl.read_parquet(path)
    malformed = frame.with_columns(person_id=pl.col("person_id").str.to_uppercase())
    write_parquet(malformed, path)
    # Only ids with a letter in them change case: those are the malformed ones.
    changed = malformed.filter(pl.col("person_id") != frame["person_id"]).height
    assert changed > 0
    message = _fails(copy, "linked")
    assert f"{{nonconforming={changed}, table=record_person, column=person_id}}" in message


def test_a_delivery_with_half_the_rows_of_the_last_fails_the_landing_gate(copy: Path) -> None:
    baseline = pl.read_csv(copy / "quality" / VOLUMES)
    landing = copy / "landing" / "hospital" / "apc_episodes.csv"
    rows = pl.read_csv(landing, infer_schema=False)
    provider = rows["provider_code"].sort()[0]
    mine = rows.filter(pl.col("provider_code") == provider)
    keep = pl.concat(
        [rows.filter(pl.col("provider_code") != provider), mine.head(mine.height // 2)]
    )
    keep.write_csv(landing)
    ingest_source(copy, "hospital", "run-2", today=TODAY)
    for source in ("gp", "social_care", "opt_outs", "reference"):
        ingest_source(copy, source, "run-2", today=TODAY)

    message = _fails(copy, "landing", "run-2")
    assert "landing.volumes: expect_column_values_to_be_between(ratio)" in message
    assert f"table=apc_episodes, org_code={provider}" in message
    assert "previous_rows=" in message
    # A failed delivery never becomes the baseline for the next one.
    assert pl.read_csv(copy / "quality" / VOLUMES).equals(baseline)


def test_a_readmission_before_its_discharge_fails_the_marts_gate(copy: Path) -> None:
    message = _marts_gate_fails_after(
        copy,
        "update marts.fct_hospital_spells r set admission_date = i.discharge_date - 3 "
        "from marts.fct_hospital_spells i "
        "where i.readmitted_within_30_days and r.spell_key = i.readmission_stay_key "
        "and i.spell_key = (select min(spell_key) from marts.fct_hospital_spells "
        "where readmitted_within_30_days)",
    )
    assert "marts.readmission_intervals: expect_column_pair_values_a_to_be_greater_than_b" in (
        message
    )


def test_marts_that_do_not_reconcile_with_the_ledger_fail(copy: Path) -> None:
    message = _marts_gate_fails_after(
        copy,
        "delete from marts.fct_care_events where event_key in "
        "(select event_key from marts.fct_care_events where event_type = 'ae_attendance' "
        "limit 4)",
    )
    assert "marts.reconciliation: expect_column_values_to_be_between(excess)" in message
    assert "check=ledger hospital/ae_attendances -> ae_attendance events" in message


def test_a_total_withheld_by_secondary_suppression_is_reconciled_before_suppression(
    copy: Path,
) -> None:
    """Secondary suppression may withhold any count, the readmissions total too (seed 19 at
    300 people: 46 index discharges withheld): the gate then reconciles the unsuppressed
    aggregate, and still fails when rows are lost on the way to it."""
    withhold = (
        "update marts.mart_readmissions set index_discharges = null, "
        "index_discharges_suppressed = true, secondary_suppression = true, "
        "readmission_rate_pct = null where breakdown = 'total'"
    )
    with duckdb.connect(str(copy / "warehouse.duckdb")) as con:
        con.execute(withhold)
        total = con.sql(
            "select index_discharges from intermediate.int_readmissions_aggregated "
            "where breakdown = 'total'"
        ).fetchall()[0][0]
    assert total > 7  # more than the primary rule withholds
    run_gates(copy, "marts", RUN)
    message = _marts_gate_fails_after(
        copy,
        "update intermediate.int_readmissions_aggregated set index_discharges = "
        "index_discharges - 1 where breakdown = 'total'",
    )
    assert "check=fct_hospital_spells index stays -> int_readmissions_aggregated" in message


def test_linkage_that_drops_records_fails_the_linked_gate(copy: Path) -> None:
    path = copy / "linked" / "record_person.parquet"
    frame = pl.read_parquet(path)
    write_parquet(frame.filter(pl.col("source") != "social_care").vstack(
        frame.filter(pl.col("source") == "social_care").tail(-5)), path)  # fmt: skip
    message = _fails(copy, "linked")
    assert "linked.coverage: expect_column_values_to_be_between(records_missing)" in message
    assert "source=social_care" in message


def test_an_event_dated_after_the_run_day_fails_the_landing_gate(copy: Path) -> None:
    """Dates reach GX as datetime64 and the suites' bounds are midnights: still by day."""
    path = copy / "landing" / "_validated" / "gp" / "events.parquet"
    frame = pl.read_parquet(path)
    future = date.today() + timedelta(days=1)
    last = pl.int_range(pl.len()) == frame.height - 1
    write_parquet(
        frame.with_columns(event_date=pl.when(last).then(future).otherwise("event_date")), path
    )
    message = _fails(copy, "landing")
    assert "landing.gp.events: expect_column_values_to_be_between(event_date)" in message
    assert f"1 of {frame.height:,} rows unexpected - e.g. {future.isoformat()} -" in message


def test_persons_count_unknown_sources_too() -> None:
    """The per-source shortcut for ``sources`` gives way to a distinct count off the list."""
    record_person = pl.DataFrame(
        {
            "source": ["gp", "hospital", "elsewhere", "gp", "gp", None],
            "record_token": list("abcdef"),
            "person_id": ["p1", "p1", "p1", "p2", "p2", "p3"],
        }
    )
    known = persons(record_person.filter(pl.col("source") != "elsewhere"))
    assert dict(zip(known["person_id"], known["sources"], strict=True)) == {"p1": 2, "p2": 1}
    every = persons(record_person)
    assert dict(zip(every["person_id"], every["sources"], strict=True)) == {
        "p1": 3,
        "p2": 1,
        "p3": 1,
    }
    assert every.filter(pl.col("person_id") == "p1")["gp_records"].item() == 1


# --- batches as GX sees them --------------------------------------------------------------------

_NOW = datetime(2026, 6, 1)
_ROWS = 40
_GX_FRAME = pl.DataFrame(
    {
        "code": (["a", "b", "a", "x", None] * 8),
        "key": [f"{i:064x}" for i in range(_ROWS - 2)] + [f"{3:064x}", None],
        "day": [date(2026, 1, 1) + timedelta(days=i) for i in range(_ROWS - 2)]
        + [date(2027, 1, 1), None],
        "later": [date(2026, 1, 2) + timedelta(days=i) for i in range(_ROWS - 1)]
        + [date(2025, 1, 1)],
        "count": [0, 3, 8, 11, None] * 8,
        "flag": [True, False, None, False] * 10,
        "unread": ["whatever"] * _ROWS,
    }
)


def _gx_cases() -> list:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column as GxColumn

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=10),
        gxe.ExpectTableRowCountToEqual(value=_ROWS),
        gxe.ExpectTableColumnsToMatchSet(column_set=list(_GX_FRAME.columns), exact_match=True),
        gxe.ExpectColumnValuesToNotBeNull(column="key"),
        gxe.ExpectColumnValuesToNotBeNull(column="code", mostly=0.5),
        gxe.ExpectColumnValuesToBeNull(column="count", row_condition=GxColumn("flag") == True),  # noqa: E712
        gxe.ExpectColumnValuesToBeInSet(column="code", value_set=["a", "b"]),
        gxe.ExpectColumnValuesToNotBeInSet(column="count", value_set=[1, 2, 3, 4, 5, 6]),
        gxe.ExpectColumnValuesToBeBetween(column="count", min_value=0, max_value=10),
        gxe.ExpectColumnValuesToBeBetween(
            column="day", min_value=datetime(1990, 1, 1), max_value=_NOW
        ),
        gxe.ExpectColumnValuesToMatchRegex(column="code", regex=r"^[ab]$"),
        gxe.ExpectColumnValuesToBeUnique(column="key"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["code", "key"]),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="later", column_B="day", or_equal=True, ignore_row_if="either_value_is_missing"
        ),
        gxe.ExpectColumnMaxToBeBetween(column="count", min_value=0, max_value=5),
        gxe.ExpectColumnMeanToBeBetween(column="count", min_value=0, max_value=1),
    ]


def _plain(frame: pl.DataFrame) -> pd.DataFrame:
    """The frame without any of frames' economies: text as objects, nullable integers."""
    columns = {}
    for name, dtype in frame.schema.items():
        values = frame[name].to_list()
        if dtype == pl.Date:
            columns[name] = pd.to_datetime(pd.Series(values))
        elif dtype.is_integer():
            columns[name] = pd.Series(values, dtype="Int64")
        elif dtype == pl.Boolean:
            columns[name] = pd.Series(values, dtype="boolean")
        else:
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def _observed(result: object) -> tuple:
    outcome = result.result or {}
    samples = outcome.get("partial_unexpected_index_list") or outcome.get("partial_unexpected_list")
    return (
        result.success,
        bool(result.exception_info and result.exception_info.get("raised_exception")),
        outcome.get("unexpected_count"),
        outcome.get("element_count"),
        _sample(outcome.get("observed_value")),
        [_sample(s) for s in samples or []],
    )


@pytest.mark.parametrize("index", [[], ["count", "code"]], ids=["values", "index-columns"])
def test_batches_cross_to_gx_without_changing_any_result(
    index: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every expectation type the suites use gives the same verdict, counts and samples on
    frames' batch (emptied, marked, categorised, datetime64, integers as floats) as on the
    plain frame, passing and failing."""
    import great_expectations as gx

    cases = _gx_cases()
    assert {e.expectation_type for e in cases} == frames.UNDERSTOOD
    used = {e.expectation_type for suite in all_suites() for e in suite.expectations}
    assert used <= frames.UNDERSTOOD, "add the new expectation type to frames and this test"

    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    source = gx.get_context(mode="ephemeral").data_sources.add_pandas("frames")
    fmt = {"result_format": "SUMMARY", "partial_unexpected_count": 10}
    if index:
        fmt["unexpected_index_column_names"] = index
    verdicts = set()
    for n, expectation in enumerate(cases):
        crossed = frames.to_pandas(_GX_FRAME.lazy(), frames.reads([expectation], index))
        observed = []
        for label, frame in (("plain", _plain(_GX_FRAME)), ("crossed", crossed)):
            asset = source.add_dataframe_asset(f"{label}-{n}")
            batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
                batch_parameters={"dataframe": frame}
            )
            observed.append(_observed(batch.validate(expectation, result_format=fmt)))
        assert observed[0] == observed[1], expectation.expectation_type
        assert not observed[0][1], observed[0]  # an exception would hide a difference
        verdicts.add(observed[0][0])
    assert verdicts == {True, False}


def test_frames_read_only_what_the_suites_read() -> None:
    frame = _GX_FRAME.lazy()
    for expectation in _gx_cases():
        reads = frames.reads([expectation])
        assert not reads.everything
        crossed = frames.to_pandas(frame, reads)
        assert list(crossed.columns) == _GX_FRAME.columns
        assert crossed["unread"].isna().all()
    not_null = frames.to_pandas(frame, frames.reads(_gx_cases()[3:4]))
    assert set(not_null["key"].dropna()) == {frames.PRESENT}
    import great_expectations.expectations as gxe

    # A type frames does not know reads every column as it is.
    unknown = frames.reads(
        [*_gx_cases(), gxe.ExpectColumnValueLengthsToEqual(column="key", value=64)]
    )
    assert unknown.everything
    assert (frames.to_pandas(frame, unknown)["unread"] == "whatever").all()


# --- errors a person can act on -----------------------------------------------------------------


def test_a_gate_before_its_stage_names_the_missing_input(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match=r"warehouse\.duckdb not found: run build_warehouse"):
        run_gates(tmp_path, "marts", RUN)
    with pytest.raises(ValueError, match="unknown zone 'warehouse'"):
        run_gates(tmp_path, "warehouse", RUN)


def _project_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(expectations_dir().rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(expectations_dir()).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# Taken when the module is collected, before any gate runs.
_PROJECT_BEFORE = _project_digest()


def test_running_gates_never_writes_into_the_committed_project(gated: dict) -> None:
    assert _project_digest() == _PROJECT_BEFORE


# --- the context a process reuses -----------------------------------------------------------


def _verdict(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "seconds"}


def _gate(data: Path, zone: str) -> dict:
    try:
        return _verdict(run_gates(data, zone, RUN))
    except QualityGateError as failed:
        return _verdict(failed.summary) | {"message": str(failed)}


def test_a_reused_context_gives_the_results_a_fresh_one_gives(copy: Path) -> None:
    with duckdb.connect(str(copy / "warehouse.duckdb")) as con:  # a failure to compare too
        con.execute(
            "update marts.mart_readmissions set emergency_readmissions = 3, "
            "emergency_readmissions_suppressed = false where breakdown = 'month'"
        )
    for zone in ("linked", "marts"):
        forget_contexts()
        fresh = _gate(copy, zone)
        with reused_context(copy) as before:
            pass
        reused = _gate(copy, zone)
        with reused_context(copy) as after:
            assert after is before  # the second run did reuse the first one's context
        assert reused == fresh, zone
    assert fresh["passed"] is False and fresh["critical"]


def test_a_changed_suite_is_not_served_from_a_stale_context(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "expectations"
    shutil.copytree(expectations_dir(), project)
    monkeypatch.setenv(EXPECTATIONS_DIR_ENV, str(project))
    assert run_gates(copy, "linked", RUN)["passed"]
    with reused_context(copy) as first:
        pass

    suite = project / "expectations" / "linked" / "persons.json"
    original = suite.read_text()
    spec = json.loads(original)
    [rows] = [
        e for e in spec["expectations"] if e["type"] == "expect_table_row_count_to_be_between"
    ]
    rows["kwargs"]["min_value"] = 10**9
    suite.write_text(json.dumps(spec))
    message = _fails(copy, "linked")
    assert "linked.persons: expect_table_row_count_to_be_between" in message
    with reused_context(copy) as second:
        assert second is not first

    suite.write_text(original)
    assert run_gates(copy, "linked", RUN)["passed"]
    # Another data directory's results are stored elsewhere: never its context either.
    other = tmp_path / "other"
    other.mkdir()
    with reused_context(copy) as here, reused_context(other) as there:
        assert here is not there
