"""Monthly deliveries (issue 23): ``--months N`` writes the first N months of one population.

Every month file of months 1..N-1 is byte-identical to the one ``--months N-1`` writes, so a
test or a benchmark can deliver one month at a time; the snapshots (the GP list, the generic
layout's one file per table) are as at month N; a CLD quarter appears once it is complete; a
spell open at a month's end is open in that month's file and closed in a later one; and
month-by-month deliveries land through the real ingest to the current GP list.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from joinedup import contracts as c
from joinedup.catalogue import validated_path
from joinedup.cli import app
from joinedup.ingest import ingest_source
from joinedup.ingest.ledger import read_ledger
from joinedup.synth import generate
from joinedup.synth.generate import HORIZON_MONTHS

PEOPLE = 1500
SEED = 5
TODAY = date(2026, 6, 1)
# Not month files: snapshots as at the last month delivered, which change with N.
SNAPSHOTS = {
    "national": {"landing/gp/patients.csv"},
    "generic": {
        "landing/gp/patients.csv",
        "landing/hospital/apc_episodes.csv",
        "landing/hospital/ae_attendances.csv",
        "landing/social_care/clients.csv",
        "landing/social_care/events.csv",
    },
}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "landing").rglob("*.csv"))
    }


@pytest.mark.parametrize("layout", ["national", "generic"])
@pytest.mark.parametrize("n", [4, 7])
def test_month_files_are_byte_identical_whatever_the_number_of_months(
    tmp_path: Path, layout: str, n: int
) -> None:
    generate(tmp_path / "short", PEOPLE, SEED, months=n - 1, layout=layout)
    generate(tmp_path / "long", PEOPLE, SEED, months=n, layout=layout)
    short, long = _files(tmp_path / "short"), _files(tmp_path / "long")
    month_files = set(short) - SNAPSHOTS[layout]
    assert len([m for m in month_files if "events_" in m]) == n - 1
    for name in sorted(month_files):
        assert short[name] == long[name], f"{name} differs between --months {n - 1} and {n}"
    # The longer run adds month N's files and nothing else; its snapshots moved on.
    last = f"{date(2025, 4 + n - 1, 1) if n <= 9 else date(2026, n - 9, 1):%Y%m}"
    added = set(long) - set(short)
    assert f"landing/gp/events_{last}.csv" in added
    assert all(last in a or "cld_" in a for a in added), added
    assert short["landing/gp/patients.csv"] != long["landing/gp/patients.csv"]


def test_a_cld_quarter_is_written_only_once_complete(tmp_path: Path) -> None:
    found = {}
    for n in (2, 3, 5, 6):
        generate(tmp_path / str(n), PEOPLE, SEED, months=n)
        found[n] = sorted(p.name for p in (tmp_path / str(n)).glob("landing/social_care/*.csv"))
    assert found[2] == []
    assert found[3] == found[5] == ["cld_2025q1.csv"]
    assert found[6] == ["cld_2025q1.csv", "cld_2025q2.csv"]
    # The truth holds only delivered records: no social care record before a quarter lands.
    truth = pl.read_csv(tmp_path / "2" / "truth" / "records.csv", infer_schema=False)
    assert truth.filter(pl.col("source") == "social_care").height == 0
    assert truth.filter(pl.col("source") == "gp").height > PEOPLE * 0.9


def test_a_spell_open_at_a_months_end_is_open_in_its_file_and_closed_later(
    tmp_path: Path,
) -> None:
    generate(tmp_path / "national", PEOPLE, SEED, months=6)
    hospital = tmp_path / "national" / "landing" / "hospital"
    read = lambda m: pl.read_csv(hospital / f"hes_apc_2025{m:02d}.csv", infer_schema=False)  # noqa: E731
    spell = ["procode3", "susspellid"]
    may, june = read(5), read(6)
    open_may = may.group_by(spell).agg(pl.col("disdate").is_null().all().alias("open"))
    closed_june = june.group_by(spell).agg(pl.col("disdate").is_not_null().any().alias("closed"))
    later = open_may.filter("open").join(closed_june.filter("closed"), on=spell)
    assert later.height > 0
    key = later.row(0, named=True)
    one = lambda f: f.filter(  # noqa: E731
        (pl.col("procode3") == key["procode3"]) & (pl.col("susspellid") == key["susspellid"])
    )
    assert one(may)["disdate"].null_count() == one(may).height
    discharged = one(june)["disdate"].drop_nulls().str.to_date()
    assert discharged.min() > date(2025, 5, 31)
    # The generic layout's one file, as at its last month, knows the same.
    generate(tmp_path / "g2", PEOPLE, SEED, months=2, layout="generic")
    generate(tmp_path / "g6", PEOPLE, SEED, months=6, layout="generic")
    apc = lambda n: pl.read_csv(  # noqa: E731
        tmp_path / n / "landing" / "hospital" / "apc_episodes.csv", infer_schema=False
    )
    spells = ["provider_code", "spell_id"]
    open2 = apc("g2").group_by(spells).agg(pl.col("discharge_date").is_null().all().alias("o"))
    shut6 = apc("g6").group_by(spells).agg(pl.col("discharge_date").drop_nulls().min().alias("d"))
    both = open2.filter("o").join(shut6.filter(pl.col("d").is_not_null()), on=spells)
    assert both.height > 0 and (both["d"].str.to_date() > date(2025, 5, 31)).all()


def test_month_by_month_deliveries_land_to_the_current_gp_list(tmp_path: Path) -> None:
    """Deliver month 1, ingest; add month 2's files (and the new GP list), ingest again."""
    data = tmp_path / "data"
    for n in (1, 2, 3):
        src = tmp_path / f"m{n}"
        generate(src, PEOPLE, SEED, months=n)
        for f in (src / "landing").rglob("*.csv"):
            dest = data / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists() or dest.read_bytes() != f.read_bytes():
                shutil.copyfile(f, dest)
        for source in ("gp", "hospital"):
            ingest_source(data, source, f"run-{n}", today=TODAY)
    ledger = read_ledger(data).filter(pl.col("run_id") == "run-3")
    gp = ledger.filter(pl.col("table") == "events")
    gp = gp.filter(pl.col("file").str.starts_with("landing/gp/"))
    assert gp.height == 3 and (gp["status"] == "loaded").all()
    apc = ledger.filter(pl.col("table") == "apc_episodes")
    assert sorted(apc["status"].to_list()) == ["loaded", "replaced", "replaced"]
    # The GP list loaded is month 3's, deregistrations included, not month 1's first rows.
    loaded = pl.read_parquet(validated_path(data, c.GP_PATIENTS))
    latest = pl.read_csv(tmp_path / "m3" / "landing" / "gp" / "patients.csv", infer_schema=False)
    assert loaded.height == latest.height
    dereg = loaded["deregistration_date"].drop_nulls()
    assert dereg.len() == latest["deregistration_date"].drop_nulls().len() > 0
    events = pl.read_parquet(validated_path(data, c.GP_EVENTS))
    assert events["event_date"].max() <= date(2025, 6, 30)
    assert events["event_date"].min() < date(2025, 4, 1)  # the initial extract's history


def test_the_horizon_is_the_limit_with_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["synth", "--people", "100", "--months", str(HORIZON_MONTHS + 1), "--out", str(tmp_path)],
    )
    assert result.exit_code != 0
    assert f"between 1 and {HORIZON_MONTHS}" in result.output
