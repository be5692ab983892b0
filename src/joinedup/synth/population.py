"""Synthetic places and people: the clean truth before any source records it.

Geography (LSOAs, postcodes, practices, local authorities, providers) is built
once per population; people are built in chunks so a million of them fit in a
few GB. All draws are vectorised with NumPy from seeded generators, so the same
arguments always give the same people.

People are drawn over the generator's whole simulation horizon (generate.py),
never over the months asked for: moves and deaths happen at a time drawn from
an annual rate, so a delivery cut at any month sees the people as they were then.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from joinedup.nhs_number import check_digits_np
from joinedup.synth import reference as ref
from joinedup.synth.params import SynthParams

# NHS numbers beginning 99 are never issued to patients (999 is the test range);
# 99 rather than 999 leaves room for several million distinct valid numbers.
_NHS_TEST_BASE = 990_000_000
_NHS_TEST_SPAN = 10_000_000
_NAT = np.datetime64("NaT", "D")


@dataclass(frozen=True)
class Geography:
    lsoas: pl.DataFrame  # lsoa_idx, lsoa_code, imd_decile, la_idx, practice_idx, sector
    postcodes: pl.DataFrame  # postcode, lsoa_idx
    la_codes: tuple[str, ...]
    practice_codes: tuple[str, ...]
    provider_codes: tuple[str, ...]

    def postcode_lookup(self) -> pl.DataFrame:
        """The landing/reference/postcodes table."""
        return (
            self.postcodes.join(self.lsoas, on="lsoa_idx", maintain_order="left")
            .with_columns(
                pl.col("la_idx")
                .replace_strict(list(range(len(self.la_codes))), list(self.la_codes))
                .alias("la_code")
            )
            .select("postcode", "lsoa_code", pl.col("imd_decile").cast(pl.Int64), "la_code")
            .sort("postcode")
        )


def _first_year_end(start: date) -> date:
    return date(start.year + 1, start.month, 1) - timedelta(days=1)


def build_geography(people: int, seed: int, params: SynthParams) -> Geography:
    rng = np.random.default_rng([seed, 1_000_001])
    n_lsoa = max(4, round(people / params.people_per_lsoa))
    n_la = 2 if people < 50_000 else 3
    n_practice = max(2, round(people / params.people_per_practice))
    n_provider = 2 if people < 50_000 else 3

    la_codes = tuple(f"E06000{901 + i}" for i in range(n_la))
    practice_codes = tuple(f"J{90001 + i:05d}" for i in range(n_practice))
    provider_codes = tuple(f"R0{string.ascii_uppercase[i]}" for i in range(n_provider))

    lsoa_idx = np.arange(n_lsoa)
    # LAs and practices cover contiguous blocks of LSOAs, as catchments do.
    la_idx = lsoa_idx * n_la // n_lsoa
    practice_idx = lsoa_idx * n_practice // n_lsoa
    imd = rng.integers(1, 11, n_lsoa)
    # Two LSOAs to a postcode sector, eight to a district; one postcode area per LA.
    area = np.array([f"J{string.ascii_uppercase[i]}" for i in range(n_la)])[la_idx]
    district = lsoa_idx // 8 + 1
    sector_digit = (lsoa_idx // 2) % 10
    sectors = np.char.add(
        np.char.add(area.astype(str), district.astype(str)),
        np.char.add(" ", sector_digit.astype(str)),
    )
    lsoas = pl.DataFrame(
        {
            "lsoa_idx": lsoa_idx,
            "lsoa_code": [f"E01{900001 + i:06d}" for i in lsoa_idx],
            "imd_decile": imd.astype(np.int8),
            "la_idx": la_idx,
            "practice_idx": practice_idx,
            "sector": sectors,
        }
    )
    # Unit letters: every LSOA in a sector gets its own slice of letter pairs.
    letters = np.array(list(ref.POSTCODE_UNIT_LETTERS))
    per = params.postcodes_per_lsoa
    pairs = np.array([a + b for a in letters for b in letters])  # 400 pairs
    rows_lsoa = np.repeat(lsoa_idx, per)
    offset = (lsoa_idx % 2)[rows_lsoa] * 200
    unit = pairs[offset + np.tile(np.arange(per), n_lsoa)]
    postcodes = pl.DataFrame(
        {
            "postcode": np.char.add(np.char.add(sectors[rows_lsoa], ""), unit),
            "lsoa_idx": rows_lsoa,
        }
    )
    return Geography(lsoas, postcodes, la_codes, practice_codes, provider_codes)


def nhs_number_pool(people: int, seed: int) -> np.ndarray:
    """Distinct valid never-issued NHS numbers, one per person, in a seeded random order."""
    bases = _NHS_TEST_BASE + np.arange(_NHS_TEST_SPAN, dtype=np.int64)
    checks = check_digits_np(bases)
    valid = bases[checks >= 0] * 10 + checks[checks >= 0]
    if people > len(valid):
        raise ValueError(f"at most {len(valid):,} people can have test-range NHS numbers")
    rng = np.random.default_rng([seed, 1_000_002])
    return rng.choice(valid, size=people, replace=False)


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    lows = np.array([b[0] for b in ref.AGE_BANDS])
    highs = np.array([b[1] for b in ref.AGE_BANDS])
    w = np.array([b[2] for b in ref.AGE_BANDS])
    band = rng.choice(len(w), size=n, p=w / w.sum())
    return lows[band] + (rng.random(n) * (highs[band] - lows[band] + 1)).astype(np.int64)


def _zipf_choice(rng: np.random.Generator, names: list[str], n: int, s: float = 0.9) -> np.ndarray:
    w = 1.0 / np.arange(1, len(names) + 1) ** s
    return np.array(names)[rng.choice(len(names), size=n, p=w / w.sum())]


def _surnames(rng: np.random.Generator, n: int, common_share: float) -> np.ndarray:
    common = list(ref.COMMON_SURNAMES)
    cw = np.array(list(ref.COMMON_SURNAMES.values()), dtype=float)
    invented = [p + s for p in ref.SURNAME_PREFIXES for s in ref.SURNAME_SUFFIXES]
    out = _zipf_choice(rng, invented, n, s=0.6)
    is_common = rng.random(n) < common_share
    out[is_common] = np.array(common)[rng.choice(len(common), is_common.sum(), p=cw / cw.sum())]
    return out


def _time_to(rng: np.random.Generator, annual: np.ndarray | float, n: int) -> np.ndarray:
    """Days until an event of annual probability ``annual`` (a constant hazard)."""
    hazard = -np.log1p(-np.minimum(annual, 0.999)) / 365.25
    return np.floor(rng.exponential(1.0, n) / hazard).astype(np.int64)


def _mortality(age: np.ndarray) -> np.ndarray:
    """Annual probability of death by age (rough England life-table shape)."""
    return np.select(
        [age < 1, age < 40, age < 60, age < 70, age < 80, age < 90],
        [0.004, 0.0008, 0.004, 0.012, 0.035, 0.10],
        0.25,
    )


def build_people(
    chunk: int,
    start_idx: int,
    n: int,
    seed: int,
    geo: Geography,
    nhs_pool: np.ndarray,
    window: tuple[date, date],
    params: SynthParams,
) -> pl.DataFrame:
    """The true attributes of ``n`` people, numbered from ``start_idx``."""
    rng = np.random.default_rng([seed, chunk])
    pp = params.population
    start, end = (np.datetime64(d, "D") for d in window)
    span_days = int((end - start).astype(int)) + 1
    # Ages are as at the end of the first year, so the youngest are born during it
    # (the population is closed: no one is born later in the horizon).
    year_one = np.datetime64(_first_year_end(window[0]), "D")

    idx = np.arange(start_idx, start_idx + n)
    sex = np.where(rng.random(n) < 0.507, 2, 1).astype(np.int8)
    age = _ages(rng, n)
    dob = year_one - (age * 365.25 + rng.random(n) * 365).astype("timedelta64[D]")

    male = list(ref.MALE_NAMES)
    female = list(ref.FEMALE_NAMES)
    given = np.where(sex == 1, _zipf_choice(rng, male, n), _zipf_choice(rng, female, n))
    family = _surnames(rng, n, pp.common_surname_share)
    hyphen = rng.random(n) < pp.hyphenated
    family = np.where(
        hyphen,
        np.char.add(np.char.add(family, "-"), _surnames(rng, n, pp.common_surname_share)),
        family,
    )
    changed = (rng.random(n) < pp.surname_change) & (age >= 20)
    old_family = np.where(changed, _surnames(rng, n, pp.common_surname_share), None)

    n_lsoa = geo.lsoas.height
    lsoa = rng.integers(0, n_lsoa, n)
    pc_of = geo.postcodes["postcode"].to_numpy()
    per = params.postcodes_per_lsoa
    postcode = pc_of[lsoa * per + rng.integers(0, per, n)]

    # Twins: the second of a pair shares surname, birth date and address with the first.
    twin = np.zeros(n, dtype=bool)
    twin[1:] = rng.random(n - 1) < pp.twin
    twin[1:] &= ~twin[:-1]
    src = np.where(twin)[0] - 1
    tw = np.where(twin)[0]
    family[tw], dob[tw], lsoa[tw], postcode[tw] = family[src], dob[src], lsoa[src], postcode[src]
    old_family[tw] = old_family[src]
    age[tw] = age[src]

    # One move at most, at a time drawn from the annual rate, never before birth.
    move_in = _time_to(rng, pp.mover, n)
    mover = move_in < span_days
    old_lsoa = np.where(mover, rng.integers(0, n_lsoa, n), lsoa)
    old_postcode = np.where(mover, pc_of[old_lsoa * per + rng.integers(0, per, n)], None)
    move_date = np.where(mover, np.maximum(start + move_in, dob + 30), _NAT)

    lsoa_practice = geo.lsoas["practice_idx"].to_numpy()
    lsoa_la = geo.lsoas["la_idx"].to_numpy()
    practice = lsoa_practice[lsoa]
    elsewhere = rng.random(n) < pp.other_practice
    practice = np.where(elsewhere, rng.integers(0, len(geo.practice_codes), n), practice)
    changes_practice = mover & (rng.random(n) < pp.mover_changes_practice)
    old_practice = np.where(changes_practice, lsoa_practice[old_lsoa], -1)
    old_practice = np.where(old_practice == practice, -1, old_practice)
    la = lsoa_la[lsoa]
    n_prov = len(geo.provider_codes)
    provider = la % n_prov

    death_in = _time_to(rng, _mortality(age), n)
    dies = death_in < span_days
    death_date = np.where(dies, np.maximum(start + death_in, dob), _NAT)
    died_in_hospital = dies & (rng.random(n) < params.activity.died_in_hospital)

    national = rng.random(n) < pp.national_opt_out
    type1 = rng.random(n) < pp.type1_objection
    withdrawn = type1 & (rng.random(n) < pp.type1_withdrawn)
    # Objections and withdrawals both predate the extract, so every one is in the GP data
    # of every delivery (and no one objects before they are born).
    objected = start - rng.integers(400, 1300, n)
    type1 &= objected > dob
    withdrawn &= type1
    t1_date = np.where(type1, objected, _NAT)
    t1_withdrawn_date = np.where(withdrawn, t1_date + rng.integers(30, 390, n), _NAT)

    imd = geo.lsoas["imd_decile"].to_numpy()[lsoa]
    # Long-term conditions: prevalence rises with age and, modestly, with deprivation.
    old_share = np.clip((age - 30) / 45, 0, 1)
    dep = 1.3 - 0.06 * (imd - 1)
    ltc_mask = np.zeros(n, dtype=np.int16)
    for bit, (_code, base, elderly) in enumerate(ref.SNOMED_LONG_TERM_CONDITIONS):
        p = (base + (elderly - base) * old_share) * dep
        ltc_mask |= (rng.random(n) < p).astype(np.int16) << bit

    return pl.DataFrame(
        {
            "person_idx": idx,
            "person_key": [f"P{i:08d}" for i in idx],
            "sex": sex,
            "age": age.astype(np.int16),
            "date_of_birth": dob,
            "given_name": given,
            "family_name": family,
            "old_family_name": pl.Series(old_family.tolist(), dtype=pl.String),
            "nhs_number": nhs_pool[idx].astype(str),
            "lsoa_idx": lsoa,
            "imd_decile": imd.astype(np.int8),
            "postcode": postcode,
            "old_postcode": pl.Series(old_postcode.tolist(), dtype=pl.String),
            "move_date": move_date,
            "la_idx": la,
            "practice_idx": practice,
            "old_practice_idx": old_practice,
            "provider_idx": provider,
            "twin": twin,
            "death_date": death_date,
            "died_in_hospital": died_in_hospital,
            "national_opt_out": national,
            "type1_date": t1_date,
            "type1_withdrawn_date": t1_withdrawn_date,
            "opted_out": national | (type1 & ~withdrawn),
            "ltc_mask": ltc_mask,
        }
    )
