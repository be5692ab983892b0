"""The generator's national-layout deliveries carry exactly the activity of its generic layout.

One population written both ways, each landed through the real ingest (layouts, year-to-date
refreshes, CLD resubmissions): the loaded episodes, attendances and social care events are the
same, so everything tested of the activity model in test_synth holds for the national feeds.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from joinedup import contracts as c
from joinedup.catalogue import quarantine_path, validated_path
from joinedup.ingest import ingest_source
from joinedup.ingest.ledger import read_ledger
from joinedup.synth import generate

PEOPLE = 3000
TODAY = date(2026, 6, 1)


def _landed(out: Path, layout: str, months: int = 12) -> Path:
    generate(out, PEOPLE, seed=19, layout=layout, months=months)
    for source in ("hospital", "social_care"):
        ingest_source(out, source, "run-1", today=TODAY)
    return out


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _landed(tmp_path_factory.mktemp("national"), "national")


@pytest.fixture(scope="module")
def generic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _landed(tmp_path_factory.mktemp("generic"), "generic")


def _loaded(data_dir: Path, table: c.Table, columns: list[str]) -> pl.DataFrame:
    return pl.read_parquet(validated_path(data_dir, table), columns=columns).sort(columns)


def test_the_feeds_arrive_as_an_icb_receives_them(national: Path) -> None:
    landing = national / "landing"
    hes = sorted(p.name for p in (landing / "hospital").glob("hes_apc_*.csv"))
    ecds = sorted(p.name for p in (landing / "hospital").glob("ecds_*.csv"))
    cld = sorted(p.name for p in (landing / "social_care").glob("cld_*.csv"))
    assert hes[0] == "hes_apc_202504.csv" and len(hes) == 12
    assert ecds[-1] == "ecds_202603.csv" and len(ecds) == 12
    assert cld == [f"cld_2025q{q}.csv" for q in (1, 2, 3, 4)]
    assert not (landing / "hospital" / "apc_episodes.csv").exists()
    # Each HES month refreshes the year to date, so a month's file grows ...
    sizes = [pl.read_csv(landing / "hospital" / n, infer_schema=False).height for n in hes]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    # ... and the latest replaces every earlier one, whose rows are not loaded again.
    ledger = read_ledger(national).filter(pl.col("table") == "apc_episodes")
    replaced = ledger.filter(pl.col("status") == "replaced")
    assert replaced.height == 11
    assert set(replaced["replaced_by"].to_list()) <= {f"landing/hospital/{n}" for n in hes}


def test_an_early_month_shows_spells_still_in_hospital_then_discharged(national: Path) -> None:
    hospital = national / "landing" / "hospital"
    read = lambda n: pl.read_csv(hospital / n, infer_schema=False)  # noqa: E731
    key = ["procode3", "susspellid", "epiorder"]
    early, final = read("hes_apc_202506.csv"), read("hes_apc_202603.csv")
    both = early.join(final, on=key, suffix="_final")
    # Open on 30 June (no discharge yet), discharged by the year's last delivery.
    later = both.filter(pl.col("disdate").is_null() & pl.col("disdate_final").is_not_null())
    assert later.height > 0
    assert (later["disdate_final"] > "2025-06-30").all()
    assert early.filter(pl.col("admidate") > "2025-06-30").height == 0


def test_hospital_feeds_carry_no_names_and_cld_resends_open_services(national: Path) -> None:
    hes = pl.read_csv(national / "landing/hospital/hes_apc_202603.csv", infer_schema=False)
    assert not {"given_name", "family_name"} & set(hes.columns)
    assert hes["disreadydate"].drop_nulls().len() > 0
    assert hes["diag_4_02"].drop_nulls().len() > 0
    q = {
        n: pl.read_csv(national / f"landing/social_care/cld_2025q{n}.csv", infer_schema=False)
        for n in (1, 4)
    }
    ident = ["la_person_unique_identifier", "event_type", "event_start_date", "service_type"]
    resent = q[1].filter(pl.col("event_type") == "Service").join(q[4], on=ident, suffix="_q4")
    # A service open at the end of June is sent again, closed or still open, in Q4.
    assert resent.filter(pl.col("event_end_date").is_null()).height > 0
    superseded = read_ledger(national).filter(pl.col("table") == "events")
    assert superseded["rows_quarantined"].sum() > 0


def test_national_deliveries_load_the_same_episodes_as_the_generic_layout(
    national: Path, generic: Path
) -> None:
    columns = [
        "provider_code", "hospital_patient_id", "nhs_number", "date_of_birth", "sex", "postcode",
        "spell_id", "episode_number", "admission_date", "discharge_date", "admission_method",
        "admission_source", "discharge_destination", "primary_diagnosis", "primary_procedure",
    ]  # fmt: skip
    n, g = (_loaded(d, c.APC_EPISODES, columns) for d in (national, generic))
    assert n.height > 500
    assert n.equals(g)
    extra = pl.read_parquet(validated_path(national, c.APC_EPISODES))
    assert extra["discharge_ready_date"].drop_nulls().len() > 0
    assert (extra["given_name"].is_null() | (extra["given_name"] == "")).all()


def test_national_deliveries_load_the_same_attendances_as_the_generic_layout(
    national: Path, generic: Path
) -> None:
    columns = [
        "provider_code", "hospital_patient_id", "nhs_number", "attendance_id",
        "arrival_datetime", "departure_datetime", "disposal",
    ]  # fmt: skip
    n, g = (_loaded(d, c.AE_ATTENDANCES, columns) for d in (national, generic))
    assert n.height > 500
    # ECDS gives the arrival to the minute.
    g = g.with_columns(pl.col("arrival_datetime").dt.truncate("1m"))
    assert n.equals(g)


def test_cld_submissions_load_the_same_social_care_as_the_generic_layout(
    national: Path, generic: Path
) -> None:
    columns = [
        "la_code", "la_person_id", "event_type", "event_start_date", "event_end_date",
        "route_of_access",
    ]  # fmt: skip
    n, g = (_loaded(d, c.SOCIAL_CARE_EVENTS, columns) for d in (national, generic))
    assert n.height > 50
    assert n.equals(g)
    clients = ["la_code", "la_person_id", "nhs_number", "given_name", "date_of_birth", "postcode"]
    assert _loaded(national, c.SOCIAL_CARE_CLIENTS, clients).equals(
        _loaded(generic, c.SOCIAL_CARE_CLIENTS, clients)
    )


def test_a_spell_open_when_the_financial_year_ends_is_closed_by_the_next_years_refresh(
    tmp_path: Path,
) -> None:
    """Fifteen months: 2025-26's last refresh has spells still in hospital on 31 March,
    which 2026-27's refreshes send again (admitted the year before) with their discharge."""
    n, g = _landed(tmp_path / "n", "national", 15), _landed(tmp_path / "g", "generic", 15)
    columns = ["provider_code", "spell_id", "episode_number", "admission_date", "discharge_date"]
    national, generic = (_loaded(d, c.APC_EPISODES, columns) for d in (n, g))
    assert national.equals(generic)
    march = pl.read_csv(n / "landing/hospital/hes_apc_202603.csv", infer_schema=False)
    june = pl.read_csv(n / "landing/hospital/hes_apc_202606.csv", infer_schema=False)
    carried = june.filter(pl.col("admidate") < "2026-04-01")
    assert carried.height > 0 and march.join(carried, on=["susspellid", "epiorder"]).height > 0
    superseded = pl.read_parquet(quarantine_path(n, c.APC_EPISODES))
    assert superseded.height > 0
    assert superseded["reason"].str.starts_with("superseded_by:landing/hospital/hes_apc_2026").all()
