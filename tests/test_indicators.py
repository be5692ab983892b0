"""The national indicator marts recomputed apart from the models.

A few hundred generated people in the national layouts (HES APC with Discharge Ready
Dates, CLD) go through the real ingest, pseudonymisation and dbt; the same measures are
then counted here with Polars from the landing files and the generator's truth (who
each record is), following the definitions as the marts' YAML states them, and compared
with the marts' unsuppressed intermediates (int_bcf_metrics_aggregated,
int_acsc_admissions_aggregated) for the total and every month, and for one segment
(Core20PLUS5) of the breakdowns every indicator gets.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from ingest_fixtures import pseudonymised_with_true_linkage

from joinedup import catalogue
from joinedup.contracts import ADMISSION_METHOD_EMERGENCY
from joinedup.synth import generate
from joinedup.warehouse import build_warehouse
from joinedup.warehouse.marts import MartColumn, MartMetadataError

PEOPLE = 600
SEED = 3
START, END = date(2025, 4, 1), date(2026, 3, 31)
# NHS Outcomes Framework 2.3.i, the chronic ambulatory care sensitive conditions, as
# 3-character ICD-10 categories, written out here apart from the seed the models use.
CHRONIC_ACSC = frozenset(
    {
        "B18",
        "D50",
        "D51",
        "D52",
        "E10",
        "E11",
        "E12",
        "E13",
        "E14",
        "F00",
        "F01",
        "F02",
        "F03",
        "G30",
        "G40",
        "G41",
        "R56",
        "O15",
        "I50",
        "I11",
        "J81",
        "I20",
        "I24",
        "I25",
        "I10",
        "I48",
        "J41",
        "J42",
        "J43",
        "J44",
        "J47",
        "J45",
        "J46",
    }
)
CARE_HOME_SERVICES = ("Long Term Support: Residential Care", "Long Term Support: Nursing Care")
TRANSFER = "51"
DIED = "79"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("indicators")
    generate(data, PEOPLE, seed=SEED)
    pseudonymised_with_true_linkage(data)
    build_warehouse(data, dbt_vars={"extract_start_date": str(START), "extract_end_date": str(END)})
    return data


def _truth(data: Path, source: str) -> pl.DataFrame:
    return pl.read_csv(data / "truth/records.csv", infer_schema=False).filter(
        (pl.col("source") == source) & (pl.col("opted_out") == "false")
    )


def _stacked(data: Path, files: str, source: str, org: str, local: str) -> pl.DataFrame:
    """Every delivery file matching ``files`` (under landing/), stacked, each row with its
    person (the truth's record of ``source`` by organisation and local id)."""
    return pl.concat(
        pl.read_csv(f, infer_schema=False) for f in sorted((data / "landing").glob(files))
    ).join(_truth(data, source), left_on=[org, local], right_on=["org_code", "local_id"])


def _age(birth_month: pl.Expr, on: pl.Expr) -> pl.Expr:
    """Completed years with the birthday on the 1st of the birth month (the warehouse
    holds no day of birth)."""
    year = birth_month.str.slice(0, 4).cast(pl.Int32)
    month = birth_month.str.slice(5, 2).cast(pl.Int32)
    return on.dt.year() - year - (on.dt.month() < month).cast(pl.Int32)


def _gp(data: Path) -> pl.DataFrame:
    """GP registrations with the person and their birth month from the current one."""
    gp = pl.read_csv(data / "landing/gp/patients.csv", infer_schema=False).join(
        _truth(data, "gp"),
        left_on=["practice_code", "gp_patient_id"],
        right_on=["org_code", "local_id"],
    )
    gp = gp.with_columns(
        pl.col("registration_date", "deregistration_date").str.to_date(),
        pl.col("date_of_birth").str.slice(0, 7).alias("birth_month"),
    )
    birth = (
        gp.filter(pl.col("birth_month").is_not_null() & (pl.col("birth_month") <= "2026-03"))
        .sort(
            pl.col("deregistration_date").is_not_null(),
            pl.col("registration_date"),
            descending=[False, True],
        )
        .group_by("person_key", maintain_order=True)
        .agg(pl.col("birth_month").first())
    )
    return gp.select("person_key", "registration_date", "deregistration_date").join(
        birth, on="person_key", how="left"
    )


def _months() -> list[date]:
    months, month = [], START
    while month <= END:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def _population(gp: pl.DataFrame, min_age: int | None = None) -> dict[date, int]:
    """People on a list on the 1st of each month (aged min_age or over that day, if given:
    everyone otherwise, a birth month not known included)."""
    counts = {}
    for month in _months():
        aged = True if min_age is None else _age(pl.col("birth_month"), pl.lit(month)) >= min_age
        counts[month] = (
            gp.filter(
                (pl.col("registration_date") <= month)
                & (
                    pl.col("deregistration_date").is_null()
                    | (pl.col("deregistration_date") > month)
                )
                & aged
            )
            .select(pl.col("person_key").n_unique())
            .item()
        )
    return counts


def _hes_apc(data: Path) -> pl.DataFrame:
    """The latest HES APC delivery (a year-to-date refresh), each row with its person."""
    latest = sorted((data / "landing/hospital").glob("hes_apc_*.csv"))[-1]
    return pl.read_csv(latest, infer_schema=False).join(
        _truth(data, "hospital"), left_on=["procode3", "lopatid"], right_on=["org_code", "local_id"]
    )


def _chained(spells: pl.DataFrame) -> pl.DataFrame:
    """Spells numbered into continuous stays (`stay`): one starting on the day the
    person's previous one ended, where that discharged to or this was admitted from
    another hospital (51), continues it."""
    spells = spells.sort("person_key", "admidate", "disdate", nulls_last=True)
    previous = pl.col("disdate").shift(1).over("person_key")
    transfer_in = (
        (pl.col("admidate") == previous)
        & (
            (pl.col("disdest").shift(1).over("person_key") == TRANSFER)
            | (pl.col("admisorc") == TRANSFER)
        )
    ).fill_null(False)
    return spells.with_columns(stay=(~transfer_in).cast(pl.Int32).cum_sum().over("person_key"))


def _stays(data: Path, birth: pl.DataFrame) -> pl.DataFrame:
    """Continuous stays from the latest HES APC delivery (a year-to-date refresh)."""
    apc = (
        _hes_apc(data)
        .with_columns(
            pl.col("epiorder").cast(pl.Int32),
            pl.col("admidate", "disdate", "disreadydate").str.to_date(),
        )
        .sort("procode3", "susspellid", "epiorder")
    )
    # The spell's admission from its first episode, its discharge from its last.
    first = ("person_key", "admidate", "admimeth", "admisorc", "diag_4_01")
    last = ("disdate", "disdest", "disreadydate")
    spells = apc.group_by("procode3", "susspellid").agg(
        *(pl.col(c).first() for c in first), *(pl.col(c).last() for c in last)
    )
    stays = (
        _chained(spells)
        .group_by("person_key", "stay")
        .agg(
            pl.col("admidate", "admimeth", "diag_4_01").first(),
            pl.col("admidate").last().alias("last_admidate"),
            pl.col("disdate", "disdest", "disreadydate").last(),
        )
    )
    return stays.join(birth, on="person_key", how="left")


def _unsuppressed(data: Path, model: str) -> pl.DataFrame:
    with duckdb.connect(str(catalogue.WAREHOUSE.under(data)), read_only=True) as con:
        return con.sql(
            f"select * from intermediate.{model} where breakdown in ('total', 'month')"
        ).pl()


def _by_month(events: pl.DataFrame, column: str) -> dict[date | None, int]:
    months = events.group_by(pl.col(column).dt.truncate("1mo").alias("month")).len()
    out: dict[date | None, int] = {m: 0 for m in _months()}
    out.update(dict(months.iter_rows()))
    out[None] = events.height
    return out


def _published(frame: pl.DataFrame, column: str) -> dict[date | None, int]:
    return dict(frame.select("activity_month", column).iter_rows())


def _in_window(column: str) -> pl.Expr:
    return pl.col(column).is_between(START, END)


def test_bcf_metrics_agree_with_a_recomputation_from_the_landing_files(data: Path) -> None:
    gp = _gp(data)
    birth = gp.select("person_key", "birth_month").unique()
    stays = _stays(data, birth)
    mart = _unsuppressed(data, "int_bcf_metrics_aggregated")

    population = _population(gp, 65)
    middle = (START + timedelta(days=(END - START).days // 2)).replace(day=1)
    expected = {**population, None: population[middle]}
    assert _published(mart, "registered_population_65_and_over") == expected
    assert population[middle] > 20

    admissions = stays.filter(
        pl.col("admimeth").is_in(list(ADMISSION_METHOD_EMERGENCY))
        & _in_window("admidate")
        & (_age(pl.col("birth_month"), pl.col("admidate")) >= 65)
    )
    assert _published(mart, "emergency_admissions_65_and_over") == _by_month(admissions, "admidate")
    assert admissions.height > 10

    discharges = stays.filter(
        pl.col("disdate").is_not_null()
        & (pl.col("disdest").fill_null("") != DIED)
        & _in_window("disdate")
        & (_age(pl.col("birth_month"), pl.col("disdate")) >= 18)
    ).with_columns(
        delay=pl.when(
            pl.col("disreadydate").is_between(pl.col("last_admidate"), pl.col("disdate"))
        ).then((pl.col("disdate") - pl.col("disreadydate")).dt.total_days())
    )
    ready = discharges.filter(pl.col("delay").is_not_null())
    delayed = ready.filter(pl.col("delay") > 0)
    assert _published(mart, "adult_discharges") == _by_month(discharges, "disdate")
    assert _published(mart, "discharges_with_ready_date") == _by_month(ready, "disdate")
    assert _published(mart, "delayed_discharges") == _by_month(delayed, "disdate")
    assert _published(mart, "discharged_on_ready_date") == _by_month(
        ready.filter(pl.col("delay") == 0), "disdate"
    )
    assert delayed.height > 5 and ready.height < discharges.height + 1
    total = mart.filter(pl.col("breakdown") == "total").row(0, named=True)
    assert total["mean_delay_days"] == pytest.approx(ready["delay"].mean(), abs=0.005)
    assert total["mean_delay_days_among_delayed"] == pytest.approx(
        delayed["delay"].mean(), abs=0.005
    )

    cld = _stacked(
        data, "social_care/cld_*.csv", "social_care", "la_code", "la_person_unique_identifier"
    )
    first_care_home = (
        cld.filter(
            (pl.col("event_type") == "Service") & pl.col("service_type").is_in(CARE_HOME_SERVICES)
        )
        .group_by("person_key")
        .agg(pl.col("event_start_date").str.to_date().min())
        .join(birth, on="person_key", how="left")
        .filter(
            _in_window("event_start_date")
            & (_age(pl.col("birth_month"), pl.col("event_start_date")) >= 65)
        )
    )
    assert _published(mart, "care_home_admissions_65_and_over") == _by_month(
        first_care_home, "event_start_date"
    )


def test_acsc_admissions_agree_with_a_recomputation_from_the_landing_files(data: Path) -> None:
    gp = _gp(data)
    stays = _stays(data, gp.select("person_key", "birth_month").unique())
    mart = _unsuppressed(data, "int_acsc_admissions_aggregated")

    population = _population(gp)
    middle = (START + timedelta(days=(END - START).days // 2)).replace(day=1)
    assert _published(mart, "registered_population") == {**population, None: population[middle]}

    acsc = stays.filter(
        pl.col("admimeth").is_in(list(ADMISSION_METHOD_EMERGENCY))
        & _in_window("admidate")
        & pl.col("diag_4_01").str.slice(0, 3).is_in(list(CHRONIC_ACSC))
    )
    assert _published(mart, "chronic_acsc_admissions") == _by_month(acsc, "admidate")
    assert acsc.height > 5


def _core20(data: Path) -> pl.DataFrame:
    """Each person's Core20PLUS5 segment from the IMD decile of their GP record's
    postcode (the current registration first, then the latest), as the lookup gives it."""

    def key(frame: pl.DataFrame) -> pl.DataFrame:
        # Ingest matches postcodes whatever their case and spacing ("jb1 1pd", "JA10AT").
        return frame.with_columns(pc=pl.col("postcode").str.to_uppercase().str.replace_all(" ", ""))

    lookup = key(pl.read_csv(data / "landing/reference/postcodes.csv", infer_schema=False))
    gp = pl.read_csv(data / "landing/gp/patients.csv", infer_schema=False).join(
        _truth(data, "gp"),
        left_on=["practice_code", "gp_patient_id"],
        right_on=["org_code", "local_id"],
    )
    return (
        key(gp)
        .join(lookup.select("pc", "imd_decile"), on="pc")
        .sort(
            pl.col("deregistration_date").is_not_null(),
            pl.col("registration_date"),
            descending=[False, True],
        )
        .group_by("person_key", maintain_order=True)
        .agg(pl.col("imd_decile").cast(pl.Int32).first())
        .select(
            "person_key",
            core20plus5=pl.when(pl.col("imd_decile") <= 2)
            .then(pl.lit("Core20"))
            .otherwise(pl.lit("not Core20")),
        )
    )


def test_a_segment_agrees_with_a_recomputation_from_the_landing_files(data: Path) -> None:
    """Chronic ACSC admissions and the registered population by Core20PLUS5 (one of the
    segments every indicator gets from macros/commissioner_breakdowns.sql)."""
    gp = _gp(data)
    core20 = _core20(data)
    middle = (START + timedelta(days=(END - START).days // 2)).replace(day=1)
    listed = (
        gp.filter(
            (pl.col("registration_date") <= middle)
            & (pl.col("deregistration_date").is_null() | (pl.col("deregistration_date") > middle))
        )
        .select("person_key")
        .unique()
    )
    stays = _stays(data, gp.select("person_key", "birth_month").unique())
    acsc = stays.filter(
        pl.col("admimeth").is_in(list(ADMISSION_METHOD_EMERGENCY))
        & _in_window("admidate")
        & pl.col("diag_4_01").str.slice(0, 3).is_in(list(CHRONIC_ACSC))
    )
    with duckdb.connect(str(catalogue.WAREHOUSE.under(data)), read_only=True) as con:
        mart = con.sql(
            "select core20plus5, registered_population, chronic_acsc_admissions "
            "from intermediate.int_acsc_admissions_aggregated where breakdown = 'core20plus5'"
        ).pl()

    def by_segment(people: pl.DataFrame) -> dict[str, int]:
        # A person whose area is not known is not in Core20.
        counts = (
            people.join(core20, on="person_key", how="left")
            .group_by(pl.col("core20plus5").fill_null("not Core20"))
            .len()
        )
        return dict(counts.iter_rows())

    published = {row[0]: row[1:] for row in mart.iter_rows()}
    population, admissions = by_segment(listed), by_segment(acsc)
    assert {k: v[0] for k, v in published.items()} == population
    assert {k: v[1] for k, v in published.items()} == {k: admissions.get(k, 0) for k in published}
    assert min(population.values()) > 50 and sum(admissions.values()) == acsc.height


def test_a_rate_per_100000_is_described_and_a_bad_unit_refused() -> None:
    rate = MartColumn.from_meta(
        "admissions_per_100000",
        {"role": "rate", "numerator": "admissions", "denominator": "people", "per": 100000},
    )
    assert rate.per == 100000 and rate.meta["per"] == 100000
    assert "per 100,000" in rate.disclosure
    with pytest.raises(MartMetadataError, match=r"admissions_per_100000: meta\.per"):
        MartColumn.from_meta(
            "admissions_per_100000",
            {"role": "rate", "numerator": "admissions", "denominator": "people", "per": 0},
            "mart_x.yml",
        )


# ASCOF 2E: CLD accommodation statuses that are living at home or with family, as NHS
# England's replication code groups them (Accommodation_Status_Group 1), written out here
# apart from the seed the models use.
SETTLED = frozenset(
    {
        "Owner occupier or shared ownership scheme",
        "Tenant",
        "Tenant - private landlord",
        "Settled mainstream housing with family / friends",
        "Supported accommodation / supported lodgings / supported group home",
        "Shared Lives scheme",
        "Approved premises for offenders released from prison or under probation supervision",
        "Sheltered housing / extra care housing / other sheltered housing",
        "Mobile accommodation for Gypsy / Roma and Traveller communities",
    }
)
LONG_TERM_SUPPORT = (*CARE_HOME_SERVICES, "Long Term Support: Community")
# NHS England's event identity: everything that says which event a row is, not its end.
CLD_EVENT_IDENTITY = (
    "la_code", "la_person_unique_identifier", "client_type", "event_type", "event_start_date",
    "request_route_of_access", "service_type", "service_component", "delivery_mechanism",
    "assessment_type",
)  # fmt: skip


def _cld_latest(data: Path) -> pl.DataFrame:
    """Every CLD submission stacked, each event's latest submitted version kept."""
    files = sorted((data / "landing/social_care").glob("cld_*.csv"))
    stacked = pl.concat(
        pl.read_csv(f, infer_schema=False).with_row_index("line") for f in files
    ).join(
        _truth(data, "social_care"),
        left_on=["la_code", "la_person_unique_identifier"],
        right_on=["org_code", "local_id"],
    )
    identity = [pl.col(c).fill_null("") for c in CLD_EVENT_IDENTITY]
    return (
        stacked.with_columns(event=pl.concat_str(identity, separator="|"))
        .sort("reporting_period_end_date", "line")
        .unique("event", keep="last")
        .with_columns(pl.col("event_start_date", "event_end_date").str.to_date())
    )


def _status(events: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """The status on the latest-starting events of each group, known over Unknown, and
    Unknown where they disagree."""
    status = pl.col("accommodation_status").fill_null("Unknown")
    latest = events.with_columns(status.alias("status"), known=status != "Unknown").filter(
        pl.col("event_start_date") == pl.col("event_start_date").max().over(by)
    )
    latest = latest.filter(pl.col("known") == pl.col("known").max().over(by))
    return latest.group_by(by).agg(
        pl.when(pl.col("status").n_unique() == 1)
        .then(pl.col("status").first())
        .otherwise(pl.lit("Unknown"))
        .alias("status")
    )


def test_ascof_agrees_with_a_recomputation_from_the_landing_files(data: Path) -> None:
    gp = _gp(data)
    birth = gp.select("person_key", "birth_month").unique()
    mart = _unsuppressed(data, "int_ascof_aggregated")
    middle = (START + timedelta(days=(END - START).days // 2)).replace(day=1)
    adults, older = _population(gp, 18), _population(gp, 65)
    younger = {m: adults[m] - older[m] for m in adults}
    assert _published(mart, "registered_population_18_to_64") == {
        **younger,
        None: younger[middle],
    }
    assert _published(mart, "registered_population_65_and_over") == {**older, None: older[middle]}

    services = _cld_latest(data).filter(
        (pl.col("event_type") == "Service") & (pl.col("client_type") == "Service User")
    )
    # 2B/2C: residential or nursing care still open after the period, none begun before it.
    open_after = services.filter(
        pl.col("service_type").is_in(CARE_HOME_SERVICES)
        & (pl.col("event_end_date").is_null() | (pl.col("event_end_date") > END))
    )
    admitted = (
        open_after.group_by("person_key")
        .agg(pl.col("event_start_date").min())
        .filter(_in_window("event_start_date"))
        .join(birth, on="person_key", how="left")
        .with_columns(age=_age(pl.col("birth_month"), pl.lit(END + timedelta(days=1))))
    )
    for column, ages in (
        ("long_term_admissions_18_to_64", pl.col("age").is_between(18, 64)),
        ("long_term_admissions_65_and_over", pl.col("age") >= 65),
    ):
        assert _published(mart, column) == _by_month(admitted.filter(ages), "event_start_date")
    assert admitted.height >= 2

    # 2E: people on long-term support each month and in the period, by their latest status.
    months = pl.DataFrame({"month": _months()}).with_columns(
        month_end=pl.col("month").dt.month_end().clip(upper_bound=END)
    )
    supported = (
        services.filter(pl.col("service_type").is_in(LONG_TERM_SUPPORT))
        .join(months, how="cross")
        .filter(
            (pl.col("event_start_date") <= pl.col("month_end"))
            & (pl.col("event_end_date").is_null() | (pl.col("event_end_date") >= pl.col("month")))
        )
    )
    by_month = _status(supported, ["person_key", "month"])
    period = _status(supported, ["person_key"])
    expected_people = {m: 0 for m in _months()} | dict(by_month.group_by("month").len().iter_rows())
    expected_people[None] = period.height
    settled = pl.col("status").is_in(list(SETTLED))
    expected_home = {m: 0 for m in _months()} | dict(
        by_month.filter(settled).group_by("month").len().iter_rows()
    )
    expected_home[None] = period.filter(settled).height
    assert _published(mart, "people_receiving_long_term_support") == expected_people
    assert _published(mart, "living_at_home_or_with_family") == expected_home
    assert 0 < expected_home[None] < expected_people[None]


# NHS Digital's 30-day emergency readmissions (compendium I02040), written out here apart
# from the seeds and models: cancer (C00-C97, D37-D48) and chemotherapy for cancer (Z51.1)
# in any diagnosis position, obstetric main specialties and maternity admission methods,
# regular day or night attenders, the ICD-10 chapters and the age bands.
READMISSION_LAST_DAY = 29
ELECTIVE = ("11", "12", "13")
OBSTETRIC_SPECIALTIES = ("501", "560")
MATERNITY_ADMISSIONS = ("31", "32")
REGULAR_ATTENDERS = ("3", "4")
CHAPTERS = (
    ("I", "A00", "B99"), ("II", "C00", "D48"), ("III", "D50", "D89"), ("IV", "E00", "E90"),
    ("V", "F00", "F99"), ("VI", "G00", "G99"), ("VII", "H00", "H59"), ("VIII", "H60", "H95"),
    ("IX", "I00", "I99"), ("X", "J00", "J99"), ("XI", "K00", "K93"), ("XII", "L00", "L99"),
    ("XIII", "M00", "M99"), ("XIV", "N00", "N99"), ("XV", "O00", "O99"), ("XVI", "P00", "P96"),
    ("XVII", "Q00", "Q99"), ("XVIII", "R00", "R99"), ("XIX", "S00", "T98"),
    ("XX", "V01", "Y98"), ("XXI", "Z00", "Z99"), ("XXII", "U00", "U85"),
)  # fmt: skip
AGE_BANDS = ((0, "0-17"), (18, "18-44"), (45, "45-64"), (65, "65-74"), (75, "75-84"), (85, "85+"))
SEXES = {"1": "Male", "2": "Female", "9": "Indeterminate"}


def _is_cancer(code: pl.Expr) -> pl.Expr:
    three = code.str.slice(0, 3)
    return (
        three.is_between(pl.lit("C00"), pl.lit("C97"))
        | three.is_between(pl.lit("D37"), pl.lit("D48"))
        | (code.str.slice(0, 4) == "Z511")
    ).fill_null(False)


def _chapter(code: pl.Expr) -> pl.Expr:
    three = code.str.slice(0, 3)
    chapter = pl.lit("unknown")
    for name, first, last in reversed(CHAPTERS):
        chapter = (
            pl.when(three.is_between(pl.lit(first), pl.lit(last)))
            .then(pl.lit(name))
            .otherwise(chapter)
        )
    return chapter


def _age_band(age: pl.Expr) -> pl.Expr:
    band = pl.lit("unknown")
    for low, name in AGE_BANDS:
        band = pl.when(age >= low).then(pl.lit(name)).otherwise(band)
    return band


def _sexes(data: Path) -> pl.DataFrame:
    """A person's sex: their GP record's (the current registration, then the latest),
    else their latest hospital record's; code 0 is not known."""
    gp = pl.read_csv(data / "landing/gp/patients.csv", infer_schema=False).join(
        _truth(data, "gp"),
        left_on=["practice_code", "gp_patient_id"],
        right_on=["org_code", "local_id"],
    )
    gp = gp.select(
        "person_key",
        pl.col("sex").alias("code"),
        rank=pl.lit(0),
        current=pl.col("deregistration_date").is_not_null(),
        recency=pl.col("registration_date"),
    )
    hes = _hes_apc(data).select(
        "person_key",
        pl.col("sex").alias("code"),
        rank=pl.lit(1),
        current=pl.lit(False),
        recency=pl.coalesce("disdate", "admidate"),
    )
    known = pl.concat([gp, hes]).filter(pl.col("code").is_in(list(SEXES)))
    return (
        known.sort(["rank", "current", "recency"], descending=[False, False, True])
        .group_by("person_key", maintain_order=True)
        .agg(pl.col("code").first())
        .select("person_key", sex=pl.col("code").replace_strict(SEXES))
    )


def _cip_spells(data: Path) -> pl.DataFrame:
    """Continuous inpatient spells from the latest HES APC delivery, with what the
    readmission indicator excludes them for."""
    apc = _hes_apc(data)
    diagnoses = [c for c in apc.columns if c.startswith("diag_4_")]
    apc = apc.with_columns(
        pl.col("epiorder").cast(pl.Int32),
        pl.col("admidate", "disdate").str.to_date(),
        cancer=pl.any_horizontal(_is_cancer(pl.col(c)) for c in diagnoses),
        obstetric=pl.col("mainspef").is_in(OBSTETRIC_SPECIALTIES)
        | pl.col("admimeth").is_in(MATERNITY_ADMISSIONS),
    ).sort("procode3", "susspellid", "epiorder")
    spells = apc.group_by("procode3", "susspellid").agg(
        *(pl.col(c).first() for c in ("person_key", "admidate", "admimeth", "admisorc")),
        pl.col("diag_4_01").first(),
        pl.col("classpat").first(),
        *(pl.col(c).last() for c in ("disdate", "disdest", "dismeth")),
        pl.col("cancer", "obstetric").any(),
    )
    return (
        _chained(spells)
        .group_by("person_key", "stay")
        .agg(
            pl.col("admidate", "admimeth", "diag_4_01", "classpat").first(),
            pl.col("disdate", "disdest", "dismeth").last(),
            pl.col("cancer", "obstetric").any(),
        )
        .sort("person_key", "stay")
    )


def test_readmissions_30_day_agree_with_a_recomputation_from_the_landing_files(
    data: Path,
) -> None:
    stays = _cip_spells(data)
    after = pl.col("admidate").shift(-1).over("person_key")
    stays = stays.with_columns(
        days_to_next=(after - pl.col("disdate")).dt.total_days(),
        next_counts=pl.col("admimeth")
        .shift(-1)
        .over("person_key")
        .is_in(list(ADMISSION_METHOD_EMERGENCY))
        & ~(pl.col("cancer") | pl.col("obstetric")).shift(-1).over("person_key"),
    )
    index = stays.filter(
        pl.col("disdate").is_between(START, END - timedelta(days=READMISSION_LAST_DAY))
        & (pl.col("disdest").fill_null("") != DIED)
        & (pl.col("dismeth").fill_null("") != "4")
        & ~pl.col("cancer")
        & ~pl.col("obstetric")
        & ~pl.col("classpat").fill_null("").is_in(REGULAR_ATTENDERS)
    ).with_columns(
        readmitted=(
            pl.col("next_counts") & pl.col("days_to_next").is_between(0, READMISSION_LAST_DAY)
        ).fill_null(False)
    )
    birth = _gp(data).select("person_key", "birth_month").unique()
    index = (
        index.join(birth, on="person_key", how="left")
        .join(_sexes(data), on="person_key", how="left")
        .with_columns(
            age_band=_age_band(_age(pl.col("birth_month"), pl.col("disdate"))),
            sex=pl.col("sex").fill_null("unknown"),
            admission_group=pl.when(pl.col("admimeth").is_in(list(ADMISSION_METHOD_EMERGENCY)))
            .then(pl.lit("emergency"))
            .when(pl.col("admimeth").is_in(ELECTIVE))
            .then(pl.lit("elective"))
            .otherwise(pl.lit("other")),
            diagnosis_group=_chapter(pl.col("diag_4_01")),
        )
    )
    # The standard: the seed's rates, and their mean over its spells for a stratum it lacks.
    rates = pl.read_csv(
        catalogue.REPO_ROOT / "seeds/reference/ref_readmission_reference_rates.csv",
        infer_schema=False,
    ).with_columns(pl.col("index_spells").cast(pl.Int64), pl.col("reference_rate").cast(pl.Float64))
    overall = (rates["reference_rate"] * rates["index_spells"]).sum() / rates["index_spells"].sum()
    strata = ["age_band", "sex", "admission_group", "diagnosis_group"]
    index = index.join(rates.select(*strata, "reference_rate"), on=strata, how="left").with_columns(
        pl.col("reference_rate").fill_null(overall)
    )
    mart = _unsuppressed(data, "int_readmissions_30_day_aggregated")

    # A month without an index spell (the last, its 30 days not over) has no row.
    months = _by_month(index, "disdate")
    assert _published(mart, "index_spells") == {m: n for m, n in months.items() if n}
    readmitted = _by_month(index.filter("readmitted"), "disdate")
    assert _published(mart, "readmissions") == {m: readmitted[m] for m in months if months[m]}
    expected = index.group_by(pl.col("disdate").dt.truncate("1mo").alias("month")).agg(
        pl.col("reference_rate").sum()
    )
    by_month = dict(expected.iter_rows()) | {None: index["reference_rate"].sum()}
    published = _published(mart, "expected_readmissions")
    assert published.keys() == by_month.keys()
    for month, value in by_month.items():
        assert published[month] == pytest.approx(value, abs=0.001), month
    total = mart.filter(pl.col("breakdown") == "total").row(0, named=True)
    assert total["standardised_ratio"] == pytest.approx(
        index["readmitted"].sum() / by_month[None], abs=0.0001
    )
    # Not vacuous: readmissions, exclusions of each kind this extract has, and transfers.
    assert index.height > 50 and 0 < index["readmitted"].sum() < index.height
    assert stays.filter(pl.col("cancer")).height > 0


REABLEMENT = "Short Term Support: ST-Max"
CARE_HOME_DESTINATIONS = ("54", "65", "85")
ECDS_DIED = "75004002"


def _cld_events(data: Path) -> pl.DataFrame:
    """CLD events, each as the latest submission that sent it has it (a later one closes a
    service an earlier one sent open), with its person."""
    cld = _stacked(
        data, "social_care/cld_*.csv", "social_care", "la_code", "la_person_unique_identifier"
    )
    return (
        cld.sort("reporting_period_end_date")
        .unique(["la_code", "la_person_unique_identifier", "event_reference"], keep="last")
        .with_columns(pl.col("event_start_date", "event_end_date").str.to_date())
    )


def test_still_at_home_91_days_agrees_with_a_recomputation_from_the_landing_files(
    data: Path,
) -> None:
    birth = _gp(data).select("person_key", "birth_month").unique()
    stays = _stays(data, birth)
    cld = _cld_events(data)
    apc = _hes_apc(data).with_columns(pl.col("admidate", "disdate").str.to_date())
    spells = apc.group_by("procode3", "susspellid").agg(
        pl.col("person_key", "admidate").first(), pl.col("disdate", "disdest").last()
    )
    ecds = _stacked(data, "hospital/ecds_*.csv", "hospital", "provider_code", "local_patient_id")
    deaths = pl.concat(
        [
            stays.filter(pl.col("disdest") == DIED).select(
                "person_key", pl.col("disdate").alias("died")
            ),
            ecds.filter(pl.col("ec_discharge_status_snomed_ct") == ECDS_DIED).select(
                "person_key", pl.col("ec_departure_date").str.to_date().alias("died")
            ),
        ]
    )

    # Older people alive at the end of a stay, with a reablement service starting on the
    # day of discharge or in the 7 days after it, and all 91 days inside the extract.
    reablement = cld.filter(pl.col("service_type") == REABLEMENT).select(
        "person_key", "event_start_date"
    )
    discharges = (
        stays.filter(
            pl.col("disdate").is_not_null()
            & (pl.col("disdest").fill_null("") != DIED)
            & (_age(pl.col("birth_month"), pl.col("disdate")) >= 65)
        )
        .with_row_index("discharge")
        .with_columns(day_91=pl.col("disdate") + timedelta(days=91))
    )
    into = (
        discharges.join(reablement, on="person_key")
        .filter(
            pl.col("event_start_date").is_between(
                pl.col("disdate"), pl.col("disdate") + timedelta(days=7)
            )
        )
        .select("discharge", "person_key", "disdate", "day_91")
        .unique("discharge")
        .filter(_in_window("disdate") & (pl.col("day_91") <= END))
    )

    def away(frame: pl.DataFrame, on_day_91: pl.Expr) -> pl.Series:
        hit = into.join(frame, on="person_key").filter(on_day_91)["discharge"]
        return into["discharge"].is_in(hit.implode())

    day_91 = pl.col("day_91")
    in_hospital = away(
        spells,
        (pl.col("admidate") > pl.col("disdate"))
        & (pl.col("admidate") <= day_91)
        & (pl.col("disdate_right").is_null() | (pl.col("disdate_right") >= day_91)),
    )
    care_home_service = away(
        cld.filter(pl.col("service_type").is_in(CARE_HOME_SERVICES)),
        (pl.col("event_start_date") <= day_91)
        & (pl.col("event_end_date").is_null() | (pl.col("event_end_date") >= day_91)),
    )
    to_care_home = away(
        spells.filter(pl.col("disdest").is_in(CARE_HOME_DESTINATIONS)),
        (pl.col("disdate_right") > pl.col("disdate")) & (pl.col("disdate_right") <= day_91),
    )
    dead = away(deaths, pl.col("died") <= day_91)
    at_home = into.filter(~(in_hospital | care_home_service | to_care_home | dead))

    mart = _unsuppressed(data, "int_still_at_home_91_days_aggregated")
    # The aggregate has a row for a month only when someone was discharged in it.
    months = {m: n for m, n in _by_month(into, "disdate").items() if n or m is None}
    assert _published(mart, "discharges_into_reablement") == months
    home = _by_month(at_home, "disdate")
    assert _published(mart, "still_at_home") == {m: home[m] for m in months}
    assert into.height >= 5, "too few discharges into reablement to test the measure"
    assert 0 < at_home.height < into.height
