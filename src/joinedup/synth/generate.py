"""``joinedup synth``: write a synthetic landing zone and its linkage truth.

People are generated in fixed-size chunks, each from its own seeded random
stream, and appended to the landing CSVs, so memory stays flat however many
people are asked for and the same arguments always give byte-identical files.
Files are written under temporary names and renamed when complete.

Monthly deliveries. The population and its care are simulated once over a fixed
horizon of ``HORIZON_MONTHS`` months from ``--start``, whatever ``--months`` is;
``--months N`` then writes the files of the first N months, each cut at its own
last day: a month's file holds what was known at the end of that month (spells
and services still open then are open in it, deaths, moves and registrations are
as at that day). No draw depends on N, so every *month file* of months 1..N-1 is
byte-identical to the one ``--months N-1`` writes, and a test or a benchmark can
deliver one month at a time. The month files are:

* ``gp/events_<YYYYMM>.csv`` (both layouts): the GP events dated in the month; the
  first month's file is also the initial extract of every earlier event;
* national layout: ``hospital/hes_apc_<YYYYMM>.csv``, ``hospital/ecds_<YYYYMM>.csv``
  and, once a quarter is complete within the N months, ``social_care/cld_<YYYY>q<n>.csv``
  (national.py);
* ``opt_outs/national_data_opt_out.csv`` and ``reference/postcodes.csv``, which do
  not change over the horizon (the opt-out list is the same at every month end).

The files that are *not* month files are snapshots as at month N and change with
N: ``gp/patients.csv``, the registered list as at the last month's end (every
registration begun by then, a deregistration or death only if it had happened;
delivered again each month under the same name, the ingest loads the latest
content as a correction in place, so ``joinedup run`` sees the current list);
in the generic layout the hospital and social care tables, one file each as at
month N; and ``truth/records.csv``, which holds exactly the source records the
landing files deliver.
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
from joinedup.synth.national import NationalChunk, deliveries, gp_event_deliveries
from joinedup.synth.params import SynthParams
from joinedup.synth.population import Geography, build_geography, build_people, nhs_number_pool
from joinedup.synth.records import assign_records, noisy_demographics

log = logging.getLogger(__name__)

CHUNK_SIZE = 50_000
# Months simulated from --start, whatever --months asks for; --months may not exceed it.
HORIZON_MONTHS = 60
MAX_PEOPLE = 8_000_000
TRUTH_COLUMNS = ("source", "org_code", "local_id", "person_key", "opted_out")
# national: hospital and social care feeds in the national dataset layouts (HES APC, ECDS,
# CLD) as they arrive, monthly and quarterly; generic: joinedup's own layout, one file each.
LAYOUTS = ("national", "generic")
# Tables the national layouts deliver; the GP extract stays in the generic layout.
_NATIONAL_TABLES = frozenset(
    {c.APC_EPISODES, c.AE_ATTENDANCES, c.SOCIAL_CARE_CLIENTS, c.SOCIAL_CARE_EVENTS}
)
# Written month by month in both layouts (gp/events_<YYYYMM>.csv), never as one file.
_MONTHLY_TABLES = frozenset({c.GP_EVENTS})
# The source and local-id column of each national feed's rows, for the truth.
_DELIVERED_ID = {
    "hes_apc": ("hospital", "lopatid"),
    "ecds": ("hospital", "local_patient_id"),
    "cld": ("social_care", "la_person_unique_identifier"),
}
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


def _month_end(first: date, months: int) -> date:
    """The last day of the ``months``-th month from ``first``."""
    ey, em = divmod(first.month - 1 + months, 12)
    return date(first.year + ey, em + 1, 1) - timedelta(days=1)


def _window(start: str, months: int) -> tuple[date, date]:
    """(first day, last day of month ``months``): what the deliveries cover."""
    try:
        y, m = (int(x) for x in start.split("-"))
        first = date(y, m, 1)
    except ValueError:
        raise SynthError(f"--start must be YYYY-MM, got {start!r}") from None
    if not 1 <= months <= HORIZON_MONTHS:
        raise SynthError(
            f"--months must be between 1 and {HORIZON_MONTHS} (the generator simulates "
            f"{HORIZON_MONTHS} months from --start and writes the first N), got {months}"
        )
    return first, _month_end(first, months)


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

    def open_all(self, national: list | None, monthly: list) -> None:
        for t in c.TABLES.values():
            if t in _MONTHLY_TABLES or (national is not None and t in _NATIONAL_TABLES):
                continue
            self._open(t.qualified_name, self.out / t.folder / f"{t.name}.csv", t.column_names)
        for d in [*monthly, *(national or ())]:
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
    # A type 1 objection and its withdrawal are on one record, or the person would look
    # opted out on the other.
    type1 = [c.SNOMED_TYPE1_OBJECTION, c.SNOMED_TYPE1_WITHDRAWN]
    ev = act.gp_events.with_columns(
        old=pl.lit(None, pl.Boolean), pin=pl.col("snomed_code").is_in(type1)
    )
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
    # A baby born after the start is registered at birth, never before it.
    reg = np.maximum(reg, dob)
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
        move_date=recp["move_date"],
    )
    # Events are coded and sorted once cut to the months delivered (_gp_events_to): cheaper.
    events = rows.filter(pl.col("old").is_null()).select(
        "practice_idx", "local_id", "event_date", "snomed_code"
    )
    truth = _truth(records, people, "gp", _codes(pl.col("practice_idx"), geo.practice_codes))
    return patients.sort("practice_code", "gp_patient_id"), events, truth


def _gp_events_to(events: pl.DataFrame, cutoff: date, geo: Geography) -> pl.DataFrame:
    """The GP events dated by ``cutoff``, in delivery order."""
    return (
        events.filter(pl.col("event_date") <= pl.lit(cutoff))
        .with_columns(
            practice_code=_codes(pl.col("practice_idx"), geo.practice_codes),
            gp_patient_id=pl.col("local_id"),
        )
        .sort("practice_code", "gp_patient_id", "event_date", "snomed_code")
    )


def _gp_list_as_of(patients: pl.DataFrame, cutoff: date) -> pl.DataFrame:
    """The registered list a practice sends on ``cutoff``: who had registered by then."""
    day = pl.lit(cutoff)
    return patients.filter(pl.col("registration_date") <= day).with_columns(
        deregistration_date=pl.when(pl.col("deregistration_date") <= day).then(
            pl.col("deregistration_date")
        ),
        postcode=_postcode_as_of(day),
    )


def _postcode_as_of(day: pl.Expr) -> pl.Expr:
    """A record's postcode as its source knew it on ``day``: before a later move, the old one."""
    return (
        pl.when(pl.col("move_date") > day)
        .then(pl.col("postcode_before_move"))
        .otherwise(pl.col("postcode"))
    )


def _in_period(frame: pl.DataFrame, column: str, delivery) -> pl.DataFrame:
    day = pl.col(column)
    since = delivery.since or delivery.start
    return frame.filter((day >= pl.lit(since)) & (day <= pl.lit(delivery.end)))


def _generic_as_of(
    apc: pl.DataFrame,
    ae: pl.DataFrame,
    clients: pl.DataFrame,
    events: pl.DataFrame,
    cutoff: date,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The generic layout's one file per table, as its sources knew it on ``cutoff``."""
    day = pl.lit(cutoff)
    gone = pl.col("discharge_date") <= day
    apc = apc.filter(pl.col("admission_date") <= day).with_columns(
        discharge_date=pl.when(gone).then(pl.col("discharge_date")),
        discharge_destination=pl.when(gone).then(pl.col("discharge_destination")),
    )
    ae = ae.filter(pl.col("arrival_datetime").cast(pl.Date) <= day)
    events = events.filter(pl.col("event_start_date") <= day).with_columns(
        event_end_date=pl.when(pl.col("event_end_date") <= day).then(pl.col("event_end_date"))
    )
    known = events.select("la_code", "la_person_id").unique()
    clients = clients.join(known, on=["la_code", "la_person_id"], how="semi", maintain_order="left")
    return apc, ae, clients.with_columns(postcode=_postcode_as_of(day)), events


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
            postcode=pl.when(before_move)
            .then(pl.col("postcode_before_move"))
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
        move_date=recp["move_date"],
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
    # Simulated over the whole horizon, whatever --months is: see the module docstring.
    horizon = (window[0], _month_end(window[0], HORIZON_MONTHS))
    cutoff = window[1]
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
    gp_months = gp_event_deliveries(
        window, f"{c.GP_EVENTS.folder}/{c.GP_EVENTS.name}", c.GP_EVENTS.column_names
    )
    writer.open_all(national, gp_months)
    try:
        writer.write("reference/postcodes", geo.postcode_lookup(), c.POSTCODES.column_names)
        outsiders = pl.DataFrame({"nhs_number": pool[people:].astype(str)})
        for chunk, first in enumerate(range(0, people, CHUNK_SIZE)):
            n = min(CHUNK_SIZE, people - first)
            ppl = build_people(chunk, first, n, seed, geo, pool, horizon, params)
            act = build_activity(ppl, seed, chunk, horizon, params)
            rng = np.random.default_rng([seed, chunk, 11])
            patients, gp_events, gp_truth = _gp(rng, ppl, act, geo, horizon, params, chunk)
            apc, ae, h_truth = _hospital(rng, ppl, act, geo, params, chunk)
            clients, sc_events, sc_truth = _social_care(rng, ppl, act, geo, params, chunk)
            patients = _gp_list_as_of(patients, cutoff)
            writer.write(c.GP_PATIENTS.qualified_name, patients, c.GP_PATIENTS.column_names)
            gp_events = _gp_events_to(gp_events, cutoff, geo)
            for d in gp_months:
                writer.write(d.key, _in_period(gp_events, "event_date", d), d.header)
            delivered = {"gp": patients["local_id"]}
            if national is not None:
                # Its own stream: the generic layout's files stay as they were.
                feeds = NationalChunk.build(
                    np.random.default_rng([seed, chunk, 23]), apc, ae, clients, sc_events
                ).known_by(cutoff)
                ids: dict[str, list[pl.Series]] = {"hospital": [], "social_care": []}
                for d in national:
                    rows = feeds.rows(d)
                    writer.write(d.key, rows, d.header)
                    source, column = _DELIVERED_ID[d.key.split("/")[0]]
                    ids[source].append(rows[column])
                delivered |= {s: pl.concat(v) if v else pl.Series([], dtype=pl.String)
                              for s, v in ids.items()}  # fmt: skip
            else:
                apc, ae, clients, sc_events = _generic_as_of(apc, ae, clients, sc_events, cutoff)
                for t, frame in (
                    (c.APC_EPISODES, apc),
                    (c.AE_ATTENDANCES, ae),
                    (c.SOCIAL_CARE_CLIENTS, clients),
                    (c.SOCIAL_CARE_EVENTS, sc_events),
                ):
                    writer.write(t.qualified_name, frame, t.column_names)
                delivered |= {
                    "hospital": pl.concat([apc["local_id"], ae["local_id"]]),
                    "social_care": clients["local_id"],
                }
            opt = ppl.filter("national_opt_out").select("nhs_number")
            writer.write("opt_outs/national_data_opt_out", opt, ("nhs_number",))
            for source, truth in (
                ("gp", gp_truth),
                ("hospital", h_truth),
                ("social_care", sc_truth),
            ):
                # Only the records the landing files deliver: the truth of the N months.
                ids = delivered[source].unique().to_frame("local_id")
                truth = truth.join(ids, on="local_id", how="semi", maintain_order="left")
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
