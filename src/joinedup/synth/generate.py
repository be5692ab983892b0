"""``joinedup synth``: write a synthetic landing zone and its linkage truth.

People are generated in fixed-size chunks, each from its own seeded random
stream, and appended to the landing CSVs, so memory stays flat however many
people are asked for and the same arguments always give byte-identical files.
Files are written under temporary names and renamed when complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from joinedup import contracts as c
from joinedup.synth.activity import Activity, build_activity
from joinedup.synth.national import NationalChunk, deliveries
from joinedup.synth.params import SynthParams
from joinedup.synth.population import Geography, build_geography, build_people, nhs_number_pool
from joinedup.synth.records import assign_records, noisy_demographics

log = logging.getLogger(__name__)

CHUNK_SIZE = 50_000
MAX_PEOPLE = 8_000_000
TRUTH_COLUMNS = ("source", "org_code", "local_id", "person_key", "opted_out")
# national: hospital and social care feeds in the national dataset layouts (HES APC, ECDS,
# CLD) as they arrive, monthly and quarterly; generic: joinedup's own layout, one file each.
LAYOUTS = ("national", "generic")
# Tables the national layouts deliver; the GP extract stays in the generic layout.
_NATIONAL_TABLES = frozenset(
    {c.APC_EPISODES, c.AE_ATTENDANCES, c.SOCIAL_CARE_CLIENTS, c.SOCIAL_CARE_EVENTS}
)
_DATE_FMT = "%Y-%m-%d"
_DATETIME_FMT = "%Y-%m-%dT%H:%M:%S"


class SynthError(ValueError):
    """Arguments the generator cannot work with; the message says what to change."""


@dataclass(frozen=True)
class SynthSummary:
    people: int
    seed: int
    window: tuple[date, date]
    rows: dict[str, int]
    seconds: float


def _window(start: str, months: int) -> tuple[date, date]:
    try:
        y, m = (int(x) for x in start.split("-"))
        first = date(y, m, 1)
    except ValueError:
        raise SynthError(f"--start must be YYYY-MM, got {start!r}") from None
    if not 1 <= months <= 120:
        raise SynthError(f"--months must be between 1 and 120, got {months}")
    ey, em = divmod(m - 1 + months, 12)
    return first, date(y + ey, em + 1, 1) - timedelta(days=1)


class _LandingWriter:
    """Appends chunks to every landing CSV, headers first, renamed into place on close."""

    def __init__(self, out: Path):
        self.out = out
        self.files: dict[str, tuple[Path, Path, IO[bytes]]] = {}
        self.rows: dict[str, int] = {}

    def _open(self, key: str, final: Path, header: tuple[str, ...]) -> IO[bytes]:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp")
        fh = tmp.open("wb")
        fh.write((",".join(header) + "\n").encode())
        self.files[key] = (tmp, final, fh)
        self.rows[key] = 0
        return fh

    def open_all(self, national: list | None = None) -> None:
        for t in c.TABLES.values():
            if national is None or t not in _NATIONAL_TABLES:
                self._open(t.qualified_name, self.out / t.folder / f"{t.name}.csv", t.column_names)
        for d in national or ():
            self._open(d.key, self.out / d.path, d.header)
        self._open("truth/records", self.out / "truth" / "records.csv", TRUTH_COLUMNS)

    def write(self, key: str, frame: pl.DataFrame, columns: tuple[str, ...]) -> None:
        fh = self.files[key][2]
        # Blank values are written as empty fields, never as quoted empty strings.
        frame = frame.select(columns).with_columns(pl.col(pl.String).replace("", None))
        frame.write_csv(
            fh, include_header=False, date_format=_DATE_FMT, datetime_format=_DATETIME_FMT
        )
        self.rows[key] += frame.height

    def close(self) -> None:
        for tmp, final, fh in self.files.values():
            fh.close()
            os.replace(tmp, final)

    def abort(self) -> None:
        for tmp, _final, fh in self.files.values():
            fh.close()
            tmp.unlink(missing_ok=True)


def _codes(idx: pl.Expr, codes: tuple[str, ...]) -> pl.Expr:
    return idx.replace_strict(list(range(len(codes))), list(codes), return_dtype=pl.String)


def _truth(records: pl.DataFrame, people: pl.DataFrame, source: str, org: pl.Expr) -> pl.DataFrame:
    return records.join(
        people.select("person_idx", "person_key", "opted_out"),
        on="person_idx",
        maintain_order="left",
    ).select(
        pl.lit(source).alias("source"),
        org.alias("org_code"),
        "local_id",
        "person_key",
        "opted_out",
    )


def _gp(rng, people, act: Activity, geo: Geography, window, params, chunk):
    start = np.datetime64(window[0], "D")
    # Registrations: the current practice, and the previous one for people who moved practice.
    current = people.select("person_idx", "practice_idx").with_columns(old=pl.lit(False))
    previous = (
        people.filter(pl.col("old_practice_idx") >= 0)
        .select("person_idx", pl.col("old_practice_idx").alias("practice_idx"))
        .with_columns(old=pl.lit(True))
    )
    regs = pl.concat([current, previous])
    ev = act.gp_events.with_columns(old=pl.lit(None, pl.Boolean))
    rows, records = assign_records(
        rng, pl.concat([regs, ev], how="diagonal_relaxed"), "practice_idx",
        params.noise["gp"].duplicate_id, "G", chunk,
    )  # fmt: skip
    flags = (
        rows.filter(pl.col("old").is_not_null())
        .group_by("person_idx", "practice_idx", maintain_order=True)
        .agg(pl.col("old").first())
    )
    records = records.join(
        flags, on=["person_idx", "practice_idx"], how="left", maintain_order="left"
    ).with_columns(pl.col("old").fill_null(False))
    recp = records.join(people, on="person_idx", how="left", suffix="_p", maintain_order="left")
    demo = noisy_demographics(rng, recp, params.noise["gp"], recp["old"].to_numpy())
    dob = recp["date_of_birth"].to_numpy()
    earliest = np.maximum(dob, start - 7300)
    reg = earliest + (rng.random(recp.height) * ((start - earliest).astype(int) + 1)).astype(int)
    move = recp["move_date"].to_numpy()
    old = recp["old"].to_numpy()
    moved = recp["old_practice_idx"].to_numpy() >= 0
    reg = np.where(moved & ~old, move, np.where(old, np.minimum(reg, move - 1), reg))
    dereg = np.where(old, move, recp["death_date"].to_numpy())
    patients = pl.concat(
        [recp.select("local_id", "practice_idx"), demo], how="horizontal"
    ).with_columns(
        practice_code=_codes(pl.col("practice_idx"), geo.practice_codes),
        gp_patient_id=pl.col("local_id"),
        registration_date=pl.Series(reg),
        deregistration_date=pl.Series(dereg),
    )
    events = rows.filter(pl.col("old").is_null()).with_columns(
        practice_code=_codes(pl.col("practice_idx"), geo.practice_codes),
        gp_patient_id=pl.col("local_id"),
    )
    truth = _truth(records, people, "gp", _codes(pl.col("practice_idx"), geo.practice_codes))
    return (
        patients.sort("practice_code", "gp_patient_id"),
        events.sort("practice_code", "gp_patient_id", "event_date", "snomed_code"),
        truth,
    )


def _hospital(rng, people, act: Activity, geo: Geography, params, chunk):
    noise = params.noise["hospital"]
    spells = act.spells.with_columns(
        spell_no=pl.int_range(pl.len()), row_date=pl.col("admission_date")
    )
    ae = act.ae.with_columns(
        att_no=pl.int_range(pl.len()), row_date=pl.col("arrival").cast(pl.Date)
    )
    both = pl.concat(
        [spells.select("person_idx", "provider_idx"), ae.select("person_idx", "provider_idx")]
    )
    rows, records = assign_records(rng, both, "provider_idx", noise.duplicate_id, "H", chunk)
    # assign_records keeps row order: the first rows are the spells, the rest attendances.
    local = rows["local_id"]
    spells = spells.with_columns(local_id=local.head(spells.height))
    ae = ae.with_columns(local_id=local.tail(ae.height))
    recp = records.join(people, on="person_idx", how="left", maintain_order="left")
    mover = recp["old_postcode"].is_not_null().to_numpy()
    stale = mover & (rng.random(recp.height) < noise.stale_postcode)
    demo = pl.concat(
        [records.select("local_id"), noisy_demographics(rng, recp, noise, stale)], how="horizontal"
    ).with_columns(stale=pl.Series(stale))
    moves = people.select("person_idx", "move_date", "old_postcode")

    def with_demographics(frame: pl.DataFrame) -> pl.DataFrame:
        # A row dated before a move carries the address the person had then.
        frame = frame.join(demo, on="local_id", how="left", maintain_order="left").join(
            moves, on="person_idx", how="left", maintain_order="left"
        )
        before_move = pl.col("move_date").is_not_null() & (pl.col("row_date") < pl.col("move_date"))
        return frame.with_columns(
            postcode=pl.when(before_move & ~pl.col("stale"))
            .then(pl.col("old_postcode"))
            .otherwise(pl.col("postcode")),
            provider_code=_codes(pl.col("provider_idx"), geo.provider_codes),
            hospital_patient_id=pl.col("local_id"),
        )

    spells = with_demographics(spells).with_columns(
        spell_id=pl.format(
            "SP{}{}", pl.lit(f"{chunk:03d}"), pl.col("spell_no").cast(pl.String).str.zfill(7)
        )
    )
    episodes = spells.with_columns(
        episode_number=pl.int_ranges(1, pl.col("n_episodes").cast(pl.Int64) + 1)
    ).explode("episode_number")
    last = pl.col("episode_number") == pl.col("n_episodes")
    episodes = episodes.with_columns(
        discharge_date=pl.when(last).then(pl.col("discharge_date")),
        discharge_destination=pl.when(last).then(pl.col("discharge_destination")),
    )
    ae = with_demographics(ae).with_columns(
        attendance_id=pl.format(
            "AE{}{}", pl.lit(f"{chunk:03d}"), pl.col("att_no").cast(pl.String).str.zfill(7)
        ),
        arrival_datetime=pl.col("arrival"),
        departure_datetime=pl.col("departure"),
    )
    truth = _truth(records, people, "hospital", _codes(pl.col("provider_idx"), geo.provider_codes))
    return (
        episodes.sort("provider_code", "spell_id", "episode_number"),
        ae.sort("provider_code", "attendance_id"),
        truth,
    )


def _social_care(rng, people, act: Activity, geo: Geography, params, chunk):
    noise = params.noise["social_care"]
    rows, records = assign_records(rng, act.social_care, "la_idx", noise.duplicate_id, "C", chunk)
    recp = records.join(people, on="person_idx", how="left", suffix="_p", maintain_order="left")
    stale = recp["old_postcode"].is_not_null().to_numpy() & (
        rng.random(recp.height) < noise.stale_postcode
    )
    clients = pl.concat(
        [records.select("local_id", "la_idx"), noisy_demographics(rng, recp, noise, stale)],
        how="horizontal",
    ).with_columns(
        la_code=_codes(pl.col("la_idx"), geo.la_codes),
        la_person_id=pl.col("local_id"),
        death_date=recp["death_date"],  # CLD sends it; the generic layout does not
    )
    events = rows.with_columns(
        la_code=_codes(pl.col("la_idx"), geo.la_codes), la_person_id=pl.col("local_id")
    ).unique(subset=list(c.SOCIAL_CARE_EVENTS.key), keep="first", maintain_order=True)
    truth = _truth(records, people, "social_care", _codes(pl.col("la_idx"), geo.la_codes))
    return (
        clients.sort("la_code", "la_person_id"),
        events.sort("la_code", "la_person_id", "event_start_date", "event_type"),
        truth,
    )


def generate(
    out: Path,
    people: int,
    seed: int,
    start: str = "2025-04",
    months: int = 12,
    params: SynthParams | None = None,
    progress: Callable[[int], None] | None = None,
    layout: str = "national",
) -> SynthSummary:
    """Write ``out/landing/...`` per docs/contracts.md and ``out/truth/records.csv``.

    ``layout`` is ``national`` (HES APC, ECDS and CLD deliveries: synth/national.py) or
    ``generic`` (joinedup's own layout, one file per table).
    """
    if layout not in LAYOUTS:
        raise SynthError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if people < 2:
        raise SynthError(f"--people must be at least 2, got {people}")
    if people > MAX_PEOPLE:
        raise SynthError(f"--people must be at most {MAX_PEOPLE:,}, got {people:,}")
    window = _window(start, months)
    params = params or SynthParams()
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".joinedup-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SynthError(f"cannot write to {out}: {exc.strerror}") from None
    for sub in ("landing", "truth"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)

    t0 = time.perf_counter()
    geo = build_geography(people, seed, params)
    extra = people // 20  # the national list also holds people living elsewhere
    pool = nhs_number_pool(people + extra, seed)
    writer = _LandingWriter(out)
    national = deliveries(window) if layout == "national" else None
    writer.open_all(national)
    try:
        writer.write("reference/postcodes", geo.postcode_lookup(), c.POSTCODES.column_names)
        outsiders = pl.DataFrame({"nhs_number": pool[people:].astype(str)})
        for chunk, first in enumerate(range(0, people, CHUNK_SIZE)):
            n = min(CHUNK_SIZE, people - first)
            ppl = build_people(chunk, first, n, seed, geo, pool, window, params)
            act = build_activity(ppl, seed, chunk, window, params)
            rng = np.random.default_rng([seed, chunk, 11])
            patients, gp_events, gp_truth = _gp(rng, ppl, act, geo, window, params, chunk)
            apc, ae, h_truth = _hospital(rng, ppl, act, geo, params, chunk)
            clients, sc_events, sc_truth = _social_care(rng, ppl, act, geo, params, chunk)
            frames = {
                c.GP_PATIENTS: patients,
                c.GP_EVENTS: gp_events,
                c.APC_EPISODES: apc,
                c.AE_ATTENDANCES: ae,
                c.SOCIAL_CARE_CLIENTS: clients,
                c.SOCIAL_CARE_EVENTS: sc_events,
            }
            if national is not None:
                # Its own stream: the generic layout's files stay as they were.
                feeds = NationalChunk.build(
                    np.random.default_rng([seed, chunk, 23]), apc, ae, clients, sc_events
                )
                for d in national:
                    writer.write(d.key, feeds.rows(d), d.header)
                frames = {t: f for t, f in frames.items() if t not in _NATIONAL_TABLES}
            for t, frame in frames.items():
                writer.write(t.qualified_name, frame, t.column_names)
            opt = ppl.filter("national_opt_out").select("nhs_number")
            writer.write("opt_outs/national_data_opt_out", opt, ("nhs_number",))
            for truth in (gp_truth, h_truth, sc_truth):
                writer.write("truth/records", truth, TRUTH_COLUMNS)
            if progress:
                progress(n)
        writer.write("opt_outs/national_data_opt_out", outsiders, ("nhs_number",))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    summary = SynthSummary(people, seed, window, dict(writer.rows), time.perf_counter() - t0)
    log.info(
        "synthetic population of %d people written to %s in %.1fs", people, out, summary.seconds
    )
    return summary
