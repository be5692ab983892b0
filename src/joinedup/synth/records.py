"""Turn true people and their activity into what each source would hold.

A source record is one person at one organisation under one local id. Each
source records a person's identifiers with its own typical defects (see
params.SourceNoise): blank or mistyped NHS numbers, typos and nicknames,
former surnames, swapped day and month, stale postcodes, and the same person
registered twice.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from joinedup.synth import reference as ref
from joinedup.synth.params import SourceNoise

_NICKNAMES = {**ref.MALE_NAMES, **ref.FEMALE_NAMES}
_KEYBOARD_NEIGHBOURS = {
    c: n
    for row in ("QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM")
    for i, c in enumerate(row)
    for n in [row[max(0, i - 1) : i] + row[i + 1 : i + 2]]
}


def _typo(rng: np.random.Generator, s: str) -> str:
    """One keyboard slip: substitute a neighbour, drop, double or swap a character."""
    if len(s) < 3:
        return s + s[-1:]
    i = int(rng.integers(1, len(s)))
    kind = int(rng.integers(0, 4))
    if kind == 0 and s[i] in _KEYBOARD_NEIGHBOURS:
        nb = _KEYBOARD_NEIGHBOURS[s[i]]
        return s[:i] + nb[int(rng.integers(0, len(nb)))] + s[i + 1 :]
    if kind == 1:
        return s[:i] + s[i + 1 :]
    if kind == 2:
        return s[:i] + s[i] + s[i:]
    if i < len(s) - 1:
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    return s[:i] + s[i + 1 :]


def _apply(values: np.ndarray, mask: np.ndarray, fn) -> np.ndarray:
    out = values.copy()
    for i in np.where(mask)[0]:
        out[i] = fn(out[i])
    return out


def _present(values: np.ndarray) -> np.ndarray:
    return np.array([v is not None for v in values], dtype=bool)


def noisy_demographics(
    rng: np.random.Generator,
    people: pl.DataFrame,
    noise: SourceNoise,
    use_old_postcode: np.ndarray | None = None,
) -> pl.DataFrame:
    """Identifiers for one record per row of ``people`` (already gathered per record)."""
    n = people.height
    r = lambda: rng.random(n)  # noqa: E731 - a fresh uniform draw per defect

    nhs = people["nhs_number"].to_numpy().astype(object)
    invalid = r() < noise.nhs_invalid
    nhs = _apply(
        nhs, invalid, lambda s: s[:9] + str((int(s[9]) + 1 + int(rng.integers(0, 9))) % 10)
    )
    nhs[r() < noise.nhs_blank] = ""

    given = people["given_name"].to_numpy().astype(object)
    nick = (r() < noise.nickname) & np.array([bool(_NICKNAMES.get(g)) for g in given])
    given = _apply(given, nick, lambda g: _NICKNAMES[g][int(rng.integers(0, len(_NICKNAMES[g])))])
    given = _apply(given, r() < noise.name_typo, lambda g: _typo(rng, g))

    family = people["family_name"].to_numpy().astype(object)
    old = people["old_family_name"].to_numpy()
    use_old = (r() < noise.old_surname) & np.array([o is not None for o in old])
    family[use_old] = old[use_old]
    # Double-barrelled names are often shortened to the first part or lose the hyphen.
    hyphen = np.array(["-" in f for f in family]) & (r() < noise.old_surname * 0.6)
    family = _apply(
        family, hyphen, lambda f: f.split("-")[0] if rng.random() < 0.6 else f.replace("-", " ")
    )
    family = _apply(family, r() < noise.name_typo, lambda f: _typo(rng, f))

    dob = people["date_of_birth"].to_numpy()
    y = dob.astype("datetime64[Y]").astype(int) + 1970
    m = dob.astype("datetime64[M]").astype(int) % 12 + 1
    d = (dob - dob.astype("datetime64[M]")).astype(int) + 1
    swap = (r() < noise.dob_swap) & (d <= 12) & (d != m)
    m2, d2 = np.where(swap, d, m), np.where(swap, m, d)
    # A typo moves one component: the year by one, or the day by a few (kept valid).
    typo = r() < noise.dob_typo
    which = rng.integers(0, 2, n)
    y2 = np.where(typo & (which == 0), y + rng.choice([-1, 1], n), y)
    d2 = np.where(typo & (which == 1), np.clip(d2 + rng.choice([-3, -1, 1, 2], n), 1, 28), d2)
    dob_text = [f"{a:04d}-{b:02d}-{c:02d}" for a, b, c in zip(y2, m2, d2, strict=True)]

    # The address as recorded now, and as it was before the person moved (the same for
    # people who never move): a delivery cut before the move date shows the earlier one.
    # Both carry the same recording defects, drawn once.
    current = people["postcode"].to_numpy().astype(object)
    old_pc = people["old_postcode"].to_numpy().astype(object)
    before = np.where(_present(old_pc), old_pc, current)
    postcode = current
    if use_old_postcode is not None:
        postcode = np.where(use_old_postcode, before, current)
    fmt = r() < noise.postcode_format
    lower = rng.random(n) < 0.5
    malformed = r() < noise.postcode_malformed

    def recorded(values: np.ndarray) -> np.ndarray:
        out = values.copy()
        for i in np.where(fmt)[0]:
            out[i] = out[i].lower() if lower[i] else out[i].replace(" ", "")
        for i in np.where(malformed)[0]:
            out[i] = out[i][:-2]
        return out

    postcode, postcode_before = recorded(postcode), recorded(before)

    sex = people["sex"].cast(pl.String).to_numpy().astype(object)
    missing = r() < noise.sex_missing
    sex[missing] = np.where(rng.random(missing.sum()) < 0.5, "", "0")

    return pl.DataFrame(
        {
            "nhs_number": nhs.astype(str),
            "given_name": given.astype(str),
            "family_name": family.astype(str),
            "date_of_birth": dob_text,
            "sex": sex.astype(str),
            "postcode": postcode.astype(str),
            "postcode_before_move": postcode_before.astype(str),
        }
    ).with_columns(pl.col(pl.String).replace("", None))


def assign_records(
    rng: np.random.Generator,
    rows: pl.DataFrame,
    org_col: str,
    duplicate_rate: float,
    id_prefix: str,
    chunk: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Give every activity row a source record (person x organisation x copy).

    A share of people are registered twice at one organisation: their rows are
    split at random between the two local ids, except rows whose ``pin`` column is
    true, which all stay on the first. Returns (rows with ``local_id``,
    records with person_idx, org index, local_id).
    """
    pairs = rows.select("person_idx", org_col).unique().sort("person_idx", org_col)
    dup = rng.random(pairs.height) < duplicate_rate
    pairs = pairs.with_columns(dup=pl.Series(dup))
    rows = rows.join(pairs, on=["person_idx", org_col], how="left", maintain_order="left")
    copy = np.where(rows["dup"].to_numpy(), rng.integers(0, 2, rows.height), 0)
    if "pin" in rows.columns:
        # Rows that must stay together (an objection and its withdrawal) go on the first id.
        copy = np.where(rows["pin"].fill_null(False).to_numpy(), 0, copy)
    rows = rows.with_columns(copy=pl.Series(copy, dtype=pl.Int8)).drop("dup")
    records = (
        rows.select("person_idx", org_col, "copy").unique().sort("person_idx", org_col, "copy")
    )
    # Local ids look like a system's own numbers; they say nothing about the person.
    order = rng.permutation(records.height)
    records = records.with_columns(
        local_id=pl.Series([f"{id_prefix}{chunk:03d}{i:06d}" for i in order])
    )
    rows = rows.join(records, on=["person_idx", org_col, "copy"], how="left", maintain_order="left")
    return rows, records
