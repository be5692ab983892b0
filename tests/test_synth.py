"""The synthetic generator: contracts, determinism, truth, noise rates and pathways."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from joinedup import contracts as c
from joinedup.cli import app
from joinedup.nhs_number import is_valid, is_valid_expr
from joinedup.synth import generate
from joinedup.synth.params import HOSPITAL_NOISE, SOCIAL_CARE_NOISE, SynthParams
from joinedup.synth.records import noisy_demographics
from joinedup.synth.reference import COMMON_SURNAMES

PEOPLE = 20_000


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The activity model, read in the generic layout (one file per table); the national
    # layouts' deliveries of the same activity: tests/test_synth_national.py.
    out = tmp_path_factory.mktemp("synth")
    generate(out, PEOPLE, seed=11, layout="generic")
    return out


def read(out: Path, table: c.Table) -> pl.DataFrame:
    """Every file of the table (GP events come month by month) stacked in name order."""
    files = sorted((out / table.folder).glob(table.file_glob))
    assert files, f"no {table.qualified_name} files"
    return pl.concat([pl.read_csv(f, infer_schema=False) for f in files])


def truth(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / "truth" / "records.csv", infer_schema=False)


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("a", "b"):
        result = runner.invoke(
            app, ["synth", "--people", "2000", "--seed", "7", "--out", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.csv"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.csv"))
    # GP's list and 12 event months, opt-outs, postcodes, truth; 12 HES APC and 12 ECDS
    # months, 4 CLD quarters.
    assert files_a == files_b and len(files_a) == 1 + 12 + 3 + 12 + 12 + 4
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    generate(tmp_path / "c", 2000, seed=8)
    assert (tmp_path / "c/landing/gp/patients.csv").read_bytes() != (
        tmp_path / "a/landing/gp/patients.csv"
    ).read_bytes()


def test_every_header_matches_its_contract(population: Path) -> None:
    for table in c.TABLES.values():
        files = sorted((population / table.folder).glob(table.file_glob))
        assert files, table.qualified_name
        for f in files:
            with f.open(newline="") as fh:
                assert tuple(next(csv.reader(fh))) == table.column_names, f


def test_every_source_record_is_in_truth_exactly_once(population: Path) -> None:
    t = truth(population)
    assert t.select("source", "org_code", "local_id").is_duplicated().sum() == 0
    written = []
    for source, tables in c.DEMOGRAPHIC_TABLES.items():
        for table in tables:
            org, local = table.record
            written.append(
                read(population, table).select(
                    pl.lit(source).alias("source"),
                    pl.col(org).alias("org_code"),
                    pl.col(local).alias("local_id"),
                )
            )
    records = pl.concat(written).unique()
    joined = records.join(t, on=["source", "org_code", "local_id"], how="full", coalesce=True)
    assert joined["person_key"].null_count() == 0, "a written record is missing from truth"
    assert joined.height == t.height == records.height
    # Event tables only refer to records whose demographics were delivered.
    for table, parent in (
        (c.GP_EVENTS, c.GP_PATIENTS),
        (c.SOCIAL_CARE_EVENTS, c.SOCIAL_CARE_CLIENTS),
    ):
        ev = read(population, table).select(parent.record).unique()
        assert ev.join(read(population, parent), on=list(parent.record), how="anti").height == 0


def test_nhs_number_defects_match_their_rates(population: Path) -> None:
    for table, noise in (
        (c.SOCIAL_CARE_CLIENTS, SOCIAL_CARE_NOISE),
        (c.APC_EPISODES, HOSPITAL_NOISE),
    ):
        recs = read(population, table).unique(subset=list(table.record), keep="first")
        blank = recs["nhs_number"].is_null().mean()
        assert abs(blank - noise.nhs_blank) < max(0.05, noise.nhs_blank * 0.5), (table, blank)
        present = recs.filter(pl.col("nhs_number").is_not_null())
        invalid = 1 - present.select(is_valid_expr(pl.col("nhs_number"))).to_series().mean()
        assert invalid < noise.nhs_invalid * 4 + 0.01, (table, invalid)
    gp = read(population, c.GP_PATIENTS).filter(pl.col("nhs_number").is_not_null())
    valid = gp.select(is_valid_expr(pl.col("nhs_number"))).to_series()
    # Every delivered number is in the never-issued 99 range, and almost all are valid.
    assert gp["nhs_number"].str.starts_with("99").all()
    assert 0.99 < valid.mean() < 1.0
    for number in gp.filter(valid)["nhs_number"].head(200):
        assert is_valid(number)


def test_identifier_noise_rates_follow_params() -> None:
    """The noise function applied to clean identifiers defects them at the stated rates."""
    n = 40_000
    rng = np.random.default_rng(5)
    clean = pl.DataFrame(
        {
            "nhs_number": ["9990000018"] * n,
            "given_name": ["WILLIAM"] * n,
            "family_name": ["ASHFORD"] * n,
            "old_family_name": ["BRADLEY"] * (n // 2) + [None] * (n // 2),
            "date_of_birth": pl.Series(["1950-03-07"] * n).str.to_date(),
            "sex": [1] * n,
            "postcode": ["JA1 0AB"] * n,
            "old_postcode": ["JA2 1QF"] * n,
        }
    )
    noise = SOCIAL_CARE_NOISE
    out = noisy_demographics(rng, clean, noise, np.zeros(n, bool))

    def rate(expr: pl.Expr) -> float:
        return out.select(expr.mean()).item()

    def near(observed: float, expected: float) -> bool:
        return abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 0.002

    assert near(rate(pl.col("nhs_number").is_null()), noise.nhs_blank)
    assert near(rate(pl.col("given_name").is_in(["BILL", "WILL", "BILLY"])), noise.nickname)
    # Typos land on names that were not nicknamed.
    typo = pl.col("given_name").is_in(["WILLIAM", "BILL", "WILL", "BILLY"]).not_()
    assert near(rate(typo), noise.name_typo * (1 - noise.nickname))
    assert near(
        rate(pl.col("family_name") == "BRADLEY"), noise.old_surname / 2 * (1 - noise.name_typo)
    )
    assert near(
        rate(pl.col("date_of_birth") == "1950-07-03"), noise.dob_swap * (1 - noise.dob_typo)
    )
    assert near(rate(pl.col("sex").is_null() | (pl.col("sex") == "0")), noise.sex_missing)
    assert near(rate(pl.col("postcode").str.len_chars() < 6), noise.postcode_malformed)


def test_population_realism(population: Path) -> None:
    gp = read(population, c.GP_PATIENTS).with_columns(
        pl.col("date_of_birth").str.to_date(strict=False)
    )
    t = truth(population).filter(pl.col("source") == "gp")
    gp = gp.join(t, left_on=["practice_code", "gp_patient_id"], right_on=["org_code", "local_id"])
    # Common surnames at realistic frequencies.
    smith = (gp["family_name"] == "SMITH").mean()
    expected_smith = COMMON_SURNAMES["SMITH"] / sum(COMMON_SURNAMES.values()) * 0.2
    assert abs(smith - expected_smith) < 0.004
    # Twins: different people sharing family name, date of birth and postcode.
    twins = (
        gp.group_by("family_name", "date_of_birth", "postcode")
        .agg(pl.col("person_key").n_unique().alias("people"))
        .filter(pl.col("people") > 1)
    )
    assert twins.height > PEOPLE * SynthParams().population.twin * 0.5
    # The same person under two ids at one practice.
    dup = t.group_by("org_code", "person_key").len().filter(pl.col("len") > 1)
    assert dup.height > 0
    # About one practice per 8,000 people; several local authorities and providers.
    assert gp["practice_code"].n_unique() == round(PEOPLE / 8000)
    sc = read(population, c.SOCIAL_CARE_CLIENTS)
    assert sc["la_code"].n_unique() >= 2


def test_opted_out_people_are_in_truth_and_on_the_list_or_coded(population: Path) -> None:
    t = truth(population)
    listed = set(read(population, c.NATIONAL_DATA_OPT_OUT)["nhs_number"])
    ev = read(population, c.GP_EVENTS).filter(
        pl.col("snomed_code").is_in([c.SNOMED_TYPE1_OBJECTION, c.SNOMED_TYPE1_WITHDRAWN])
    )
    latest = (
        ev.sort("event_date")
        .group_by("practice_code", "gp_patient_id")
        .agg(pl.col("snomed_code").last())
    )
    objecting = latest.filter(pl.col("snomed_code") == c.SNOMED_TYPE1_OBJECTION)
    numbers = []
    for table in (c.GP_PATIENTS, c.APC_EPISODES, c.AE_ATTENDANCES, c.SOCIAL_CARE_CLIENTS):
        org, local = table.record
        numbers.append(
            read(population, table).select(
                pl.col(org).alias("org_code"), pl.col(local).alias("local_id"), "nhs_number"
            )
        )
    rec = pl.concat(numbers).unique().join(t, on=["org_code", "local_id"])
    by_person = rec.group_by("person_key").agg(
        pl.col("nhs_number").is_in(list(listed)).any().alias("listed"),
        pl.col("opted_out").first() == "true",
    )
    gp_objectors = (
        t.join(
            objecting, left_on=["org_code", "local_id"], right_on=["practice_code", "gp_patient_id"]
        )
        .select("person_key")
        .unique()
        .with_columns(objects=pl.lit(True))
    )
    by_person = by_person.join(gp_objectors, on="person_key", how="left").with_columns(
        pl.col("objects").fill_null(False)
    )
    opted = by_person.filter("opted_out")
    assert 0.05 < opted.height / by_person.height < 0.09
    explained = (opted["listed"] | opted["objects"]).mean()
    assert explained > 0.99, explained
    # Nobody who did not opt out is on the list or carries a live objection.
    not_opted = by_person.filter(~pl.col("opted_out"))
    assert not (not_opted["listed"] | not_opted["objects"]).any()
    # Some objections were withdrawn, and those people are not opted out.
    assert (latest["snomed_code"] == c.SNOMED_TYPE1_WITHDRAWN).sum() > 0


def _hospital_person_spells(population: Path) -> pl.DataFrame:
    apc = read(population, c.APC_EPISODES)
    t = truth(population).filter(pl.col("source") == "hospital")
    spells = (
        apc.group_by("provider_code", "hospital_patient_id", "spell_id")
        .agg(
            pl.col("admission_date").first().str.to_date(),
            pl.col("discharge_date").drop_nulls().first().str.to_date(),
            pl.col("admission_method").first(),
            pl.col("discharge_destination").drop_nulls().first(),
        )
        .join(
            t, left_on=["provider_code", "hospital_patient_id"], right_on=["org_code", "local_id"]
        )
    )
    return spells.sort("person_key", "admission_date")


def test_emergency_readmissions_within_30_days_exist(population: Path) -> None:
    s = _hospital_person_spells(population).with_columns(
        next_adm=pl.col("admission_date").shift(-1).over("person_key"),
        next_method=pl.col("admission_method").shift(-1).over("person_key"),
    )
    discharged = s.filter(
        pl.col("discharge_date").is_not_null() & (pl.col("discharge_destination") != "79")
    )
    readmit = discharged.filter(
        ((pl.col("next_adm") - pl.col("discharge_date")).dt.total_days().is_between(0, 30))
        & pl.col("next_method").str.starts_with("2")
    )
    rate = readmit.height / discharged.height
    assert 0.04 < rate < 0.25, rate


def test_discharge_to_social_care_pathways_exist(population: Path) -> None:
    spells = _hospital_person_spells(population).filter(pl.col("discharge_date").is_not_null())
    sc = read(population, c.SOCIAL_CARE_EVENTS).filter(
        (pl.col("event_type") == "request")
        & (pl.col("route_of_access") == "Discharge from hospital")
    )
    t = truth(population).filter(pl.col("source") == "social_care")
    sc = sc.join(
        t, left_on=["la_code", "la_person_id"], right_on=["org_code", "local_id"]
    ).with_columns(pl.col("event_start_date").str.to_date())
    assert sc.height > 20
    paired = sc.join(spells.select("person_key", "discharge_date"), on="person_key").filter(
        (pl.col("event_start_date") - pl.col("discharge_date")).dt.total_days().is_between(0, 42)
    )
    assert paired.select("la_person_id", "event_start_date").n_unique() / sc.height > 0.9
    services = read(population, c.SOCIAL_CARE_EVENTS).filter(pl.col("event_type") == "service")
    assert services["service_type"].null_count() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--people", "-5"], "--people must be at least 2"),
        (["--people", "10", "--out", "/proc/joinedup-cannot-write"], "cannot write to"),
        (["--people", "10", "--start", "2025-13"], "--start must be YYYY-MM"),
        (["--people", "10", "--layout", "hl7"], "--layout must be one of national, generic"),
    ],
)
def test_bad_arguments_give_one_line_error(tmp_path: Path, args: list[str], message: str) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path)]
    result = CliRunner().invoke(app, ["synth", *args])
    assert result.exit_code == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in result.output


def test_no_spell_ends_before_it_starts(population: Path) -> None:
    apc = read(population, c.APC_EPISODES).with_columns(
        pl.col("admission_date").str.to_date(), pl.col("discharge_date").str.to_date()
    )
    assert apc.filter(pl.col("discharge_date") < pl.col("admission_date")).height == 0
