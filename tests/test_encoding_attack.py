"""The attacks of issue 24.3 on ``pseudonymised/``, run as an attacker without the key would.

Someone who can read ``pseudonymised/`` but has no key sees, per record, the linkage
encodings beside ``birth_month`` and ``lsoa_code``. Before sealing, equal values
across records decoded: where A's day/month-swap token equals B's date-of-birth
token, A's day of birth is B's birth month; a postcode sector token, labelled by
the LSOAs beside it (sector = LSOA through the public postcode lookup), labels every
other record that carries it. Each attack is run twice on a real synthetic
population through the real stages: on the files as written (sealed), where it must
recover nothing beyond chance, and on the same files unsealed with the key (the old
design), where it must work, so the test would fail if sealing stopped sealing.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from joinedup.catalogue import RECORD_TABLES, cleared_path, pseudonymised_path, validated_path
from joinedup.contracts import DEMOGRAPHIC_TABLES, POSTCODES
from joinedup.deidentify import pseudonymise, remove_opt_outs
from joinedup.deidentify.encodings import SEALED_COLUMNS, Encoder
from joinedup.ingest import ingest_source
from joinedup.ingest.records import source_records
from joinedup.linkage.inputs import TOKEN_COLUMNS
from joinedup.settings import DEMO_KEY
from joinedup.synth import generate

KEY = DEMO_KEY.encode()  # the generator's data: the one place the demo key is allowed
# Enough people that, unsealed, most swap tokens find a partner with the swapped date.
PEOPLE = 12_000
pytestmark = pytest.mark.slow  # a module population of 12,000 people (about a minute)
RUN = "attack-run"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("attack")
    generate(out, people=PEOPLE, seed=24)
    for source in ("gp", "hospital", "social_care", "opt_outs", "reference"):
        ingest_source(out, source, RUN)
    remove_opt_outs(out, RUN)
    pseudonymise(out, KEY, RUN)
    return out


def stored(data_dir: Path) -> pl.DataFrame:
    """Every record-grain row of pseudonymised/, as the attacker reads it (no key)."""
    frames = [
        pl.read_parquet(
            pseudonymised_path(data_dir, s, t),
            columns=["source", "record_token", *TOKEN_COLUMNS, "birth_month", "lsoa_code"],
        )
        for s, t in RECORD_TABLES.items()
    ]
    return pl.concat(frames)


def true_days(data_dir: Path) -> pl.DataFrame:
    """(record_token, day): each record's recorded day of birth, to score the attack."""
    frames = []
    for source, tables in DEMOGRAPHIC_TABLES.items():
        rows = {t.name: pl.read_parquet(cleared_path(data_dir, t)) for t in tables}
        frames.append(source_records(source, rows))
    records = pl.concat(frames, how="diagonal_relaxed")
    messages = records.select(pl.concat_str(["source", "org_code", "local_id"], separator="|"))
    return records.select(
        record_token=Encoder(KEY).record_tokens(messages.to_series()),
        day=pl.col("date_of_birth").dt.day(),
    ).drop_nulls()


def swap_attack(rows: pl.DataFrame) -> pl.DataFrame:
    """(record_token, guessed_day): A's day is the month of a B whose date token is A's swap."""
    partners = rows.select(
        pl.col("date_of_birth_token").alias("date_of_birth_swap_token"),
        partner_month=pl.col("birth_month").str.slice(5, 2).cast(pl.Int32),
    ).unique()
    return (
        rows.drop_nulls("date_of_birth_swap_token")
        .join(partners, on="date_of_birth_swap_token")
        .group_by("record_token")
        .agg(guessed_day=pl.col("partner_month").mode().first())
    )


def sector_attack(rows: pl.DataFrame, lookup: pl.DataFrame) -> pl.DataFrame:
    """(record_token, guessed, true): a record's sector from the LSOAs of the *other* records
    sharing its sector token (its own LSOA left out: that much needs no token)."""
    lsoa_sector = (
        lookup.select(
            "lsoa_code",
            sector=pl.col("postcode").str.slice(0, pl.col("postcode").str.len_chars() - 2),
        )
        .group_by("lsoa_code")
        .agg(pl.col("sector").mode().first())
    )
    labelled = rows.drop_nulls(["postcode_sector_token", "lsoa_code"]).join(
        lsoa_sector, on="lsoa_code"
    )
    votes = labelled.group_by("postcode_sector_token", "sector").len("votes")
    guesses = (
        labelled.select("record_token", "postcode_sector_token", own=pl.col("sector"))
        .join(votes, on="postcode_sector_token")
        # Leave the record's own vote out.
        .with_columns(votes=pl.col("votes") - (pl.col("sector") == pl.col("own")).cast(pl.UInt32))
        .filter(pl.col("votes") > 0)
        .sort("votes", descending=True)
        .group_by("record_token", maintain_order=True)
        .agg(pl.col("sector").first().alias("guessed"), pl.col("own").first().alias("true"))
    )
    return guesses


def chance_bound(guesses: int, p: float) -> float:
    """The most a guesser right with probability ``p`` gets right, plus four standard errors."""
    return guesses * p + 4 * (guesses * p * (1 - p)) ** 0.5 + 1


def test_day_of_birth_attack_recovers_no_more_than_chance(data_dir: Path) -> None:
    rows = stored(data_dir)
    truth = true_days(data_dir)
    sealed = swap_attack(rows).join(truth, on="record_token")
    right = sealed.filter(pl.col("guessed_day") == pl.col("day")).height
    # Guessing one of 12 days blind is right 1 time in 12.
    assert right <= chance_bound(sealed.height, 1 / 12), (right, sealed.height)
    # The same attack on the old, unsealed encodings decodes most days of 1-12.
    unsealed = swap_attack(Encoder(KEY).unseal(rows)).join(truth, on="record_token")
    right_unsealed = unsealed.filter(pl.col("guessed_day") == pl.col("day")).height
    eligible = truth.filter(pl.col("day") <= 12).height
    assert right_unsealed > 0.3 * eligible, (right_unsealed, eligible)


def test_postcode_sector_attack_recovers_nothing_from_other_records(data_dir: Path) -> None:
    rows = stored(data_dir)
    lookup = pl.read_parquet(validated_path(data_dir, POSTCODES))
    assert sector_attack(rows, lookup).is_empty()
    unsealed = sector_attack(Encoder(KEY).unseal(rows), lookup)
    right = unsealed.filter(pl.col("guessed") == pl.col("true")).height
    assert right > 0.9 * rows.height, (right, rows.height)


def test_no_sealed_value_equals_any_other_stored_token(data_dir: Path) -> None:
    """Every equality attack needs two equal stored values; sealed columns give none."""
    rows = stored(data_dir)
    values = pl.concat(
        [rows.select(pl.col(c).alias("v"), column=pl.lit(c)).drop_nulls() for c in TOKEN_COLUMNS]
    )
    sealed = values.filter(pl.col("column").is_in(SEALED_COLUMNS))
    # No two sealed values are equal, in one column or across two ...
    assert sealed["v"].n_unique() == sealed.height
    # ... and none equals a value of a column left unsealed (NHS number, names).
    assert sealed.join(values.filter(~pl.col("column").is_in(SEALED_COLUMNS)), on="v").is_empty()
    # Unsealed (the old design), dates and postcodes repeat: the check can fail.
    plain = Encoder(KEY).unseal(rows)
    district = plain["postcode_district_token"].drop_nulls()
    assert district.n_unique() < district.len() / 10
