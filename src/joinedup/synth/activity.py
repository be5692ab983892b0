"""Care activity for a chunk of people: the pathways commissioners want to see.

GP consultations and long-term conditions; A&E attendances, some admitted;
elective and emergency admissions as multi-episode spells; emergency
readmissions within 30 days (more likely for older and deprived people);
discharges to care homes; social care requests, assessments and services,
many routed "Discharge from hospital" days to weeks after a discharge; deaths.

Output is at person grain (``person_idx`` plus organisation index); records.py
turns it into source records with local ids and noisy identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from joinedup.contracts import SNOMED_TYPE1_OBJECTION, SNOMED_TYPE1_WITHDRAWN
from joinedup.synth import reference as ref
from joinedup.synth.params import SynthParams


@dataclass(frozen=True)
class Activity:
    gp_events: pl.DataFrame  # person_idx, practice_idx, event_date, snomed_code
    ae: pl.DataFrame  # person_idx, provider_idx, arrival, departure, disposal
    spells: pl.DataFrame  # person_idx, provider_idx, admission/discharge, codes, n_episodes
    social_care: pl.DataFrame  # person_idx, la_idx, event_type, service_type, route, start, end


def _weighted(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    codes = np.array([c for c, _ in table])
    w = np.array([w for _, w in table], dtype=float)
    return rng.choice(len(codes), size=n, p=w / w.sum()), codes


def _age_factor(age: np.ndarray, by_band: tuple[float, ...]) -> np.ndarray:
    """Per-person value from six age bands: 0-4, 5-19, 20-44, 45-64, 65-79, 80+."""
    band = np.searchsorted(np.array([5, 20, 45, 65, 80]), age, side="right")
    return np.array(by_band)[band]


def _deprivation_factor(imd: np.ndarray) -> np.ndarray:
    """1.35 in the most deprived decile falling to 0.8 in the least deprived."""
    return 1.35 - 0.061 * (imd - 1)


def _events_per_person(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    """Repeat each person index by a Poisson count."""
    counts = rng.poisson(rate)
    return np.repeat(np.arange(len(rate)), counts)


class _Builder:
    def __init__(
        self, people: pl.DataFrame, seed: int, chunk: int, window: tuple[date, date], p: SynthParams
    ):
        self.rng = np.random.default_rng([seed, chunk, 7])
        self.p = p.activity
        self.people = people
        self.start, self.end = (np.datetime64(d, "D") for d in window)
        self.days = int((self.end - self.start).astype(int)) + 1
        self.years = self.days / 365.25
        self.age = people["age"].to_numpy()
        self.imd = people["imd_decile"].to_numpy()
        self.ltc = people["ltc_mask"].to_numpy()
        self.n_ltc = np.array([bin(int(x)).count("1") for x in range(128)])[self.ltc]
        self.death = people["death_date"].to_numpy()
        self.dob = people["date_of_birth"].to_numpy()
        self.provider = people["provider_idx"].to_numpy()
        self.n_provider = int(self.provider.max()) + 1 if len(self.provider) else 1

    # -- helpers ------------------------------------------------------------
    def _alive_on(self, who: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Born by ``day`` (babies born in the horizon) and not yet dead."""
        d = self.death[who]
        return (day >= self.dob[who]) & (np.isnat(d) | (day <= d))

    def _random_day(self, n: int) -> np.ndarray:
        return self.start + self.rng.integers(0, self.days, n)

    def _provider_for(self, who: np.ndarray) -> np.ndarray:
        other = self.rng.random(len(who)) < 0.15
        return np.where(other, self.rng.integers(0, self.n_provider, len(who)), self.provider[who])

    # -- GP -----------------------------------------------------------------
    def gp_events(self) -> pl.DataFrame:
        rng, ppl = self.rng, self.people
        rate = _age_factor(self.age, self.p.consultations_per_year) * self.years
        rate = rate * (1 + 0.25 * self.n_ltc)
        who = _events_per_person(rng, rate)
        day = self._random_day(len(who))
        # Codes as positions in one table until the end: numpy strings are slow to convert.
        table = list(
            dict.fromkeys(
                [
                    *ref.SNOMED_CONSULTATIONS[:4],
                    *(c for c, _b, _e in ref.SNOMED_LONG_TERM_CONDITIONS),
                    SNOMED_TYPE1_OBJECTION,
                    SNOMED_TYPE1_WITHDRAWN,
                ]
            )
        )
        pos = {c: i for i, c in enumerate(table)}
        codes = rng.integers(0, 4, len(who)).astype(np.int16)
        keep = self._alive_on(who, day)
        parts = [(who[keep], day[keep], codes[keep])]

        # Each long-term condition is coded once, on a date in the last ten years.
        dob = ppl["date_of_birth"].to_numpy()
        for bit, (code, _b, _e) in enumerate(ref.SNOMED_LONG_TERM_CONDITIONS):
            w = np.where((self.ltc >> bit) & 1)[0]
            first = np.maximum(dob[w], self.start - 3650)
            span = (self.start - first).astype(int) + 1
            d = np.maximum(first + (rng.random(len(w)) * span).astype(int), dob[w])
            parts.append((w, d, np.full(len(w), pos[code], np.int16)))

        for col, code in (
            ("type1_date", SNOMED_TYPE1_OBJECTION),
            ("type1_withdrawn_date", SNOMED_TYPE1_WITHDRAWN),
        ):
            d = ppl[col].to_numpy()
            w = np.where(~np.isnat(d))[0]
            parts.append((w, d[w], np.full(len(w), pos[code], np.int16)))

        who = np.concatenate([x[0] for x in parts])
        day = np.concatenate([x[1] for x in parts])
        code = np.concatenate([x[2] for x in parts])
        # Events before a move to another practice belong to the old practice's record.
        move = ppl["move_date"].to_numpy()[who]
        old = ppl["old_practice_idx"].to_numpy()[who]
        practice = np.where((old >= 0) & (day < move), old, ppl["practice_idx"].to_numpy()[who])
        events = pl.DataFrame(
            {"person_idx": who, "practice_idx": practice, "event_date": day, "code": code}
        ).unique(
            subset=["person_idx", "practice_idx", "event_date", "code"],
            keep="first",
            maintain_order=True,
        )
        return events.with_columns(
            snomed_code=pl.Series(table, dtype=pl.String).gather(events["code"])
        ).drop("code")

    # -- hospital -------------------------------------------------------------
    def _ae_rows(self, who: np.ndarray, arrival_day: np.ndarray, admitted: np.ndarray | None):
        rng = self.rng
        n = len(who)
        arrival = arrival_day.astype("datetime64[ms]") + rng.integers(0, 86400, n) * 1000
        hours = np.clip(rng.lognormal(np.log(3.5), 0.6, n), 0.3, 48)
        departure = arrival + (hours * 3_600_000).astype("timedelta64[ms]")
        if admitted is None:
            age = self.age[who]
            p_admit = np.clip(0.12 + 0.005 * np.maximum(age - 40, 0), 0, 0.55)
            admitted = rng.random(n) < p_admit
        other = rng.choice(
            np.array(["discharged", "referred", "transferred", "left", "died"]),
            size=n,
            p=[0.76, 0.12, 0.035, 0.08, 0.005],
        )
        disposal = np.where(admitted, "admitted", other)
        return arrival, departure, disposal

    def hospital(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        rng, p = self.rng, self.p
        dep = _deprivation_factor(self.imd)
        ae_rate = p.ae_rate * _age_factor(self.age, (1.7, 1.0, 1.0, 1.1, 1.4, 2.6)) * dep
        ae_rate = ae_rate * (1 + 0.3 * self.n_ltc) * self.years
        who = _events_per_person(rng, ae_rate)
        day = self._random_day(len(who))
        keep = self._alive_on(who, day)
        who, day = who[keep], day[keep]
        arrival, departure, disposal = self._ae_rows(who, day, None)
        prov = self._provider_for(who)
        ae = [(who, prov, arrival, departure, disposal)]

        # Emergency spells: admitted from A&E, plus direct (GP-referred etc.) admissions.
        # Admitted on the day they leave A&E, which may be after midnight (and after death).
        adm = disposal == "admitted"
        adm[adm] = self._alive_on(who[adm], departure[adm].astype("datetime64[D]"))
        e_who = who[adm]
        e_prov = prov[adm]
        e_day = departure[adm].astype("datetime64[D]")
        e_method = np.full(len(e_who), "21")
        d_rate = p.direct_emergency_rate * _age_factor(self.age, (1, 0.5, 0.7, 1, 2, 3.5)) * dep
        d_who = _events_per_person(rng, d_rate * self.years)
        d_day = self._random_day(len(d_who))
        keep = self._alive_on(d_who, d_day)
        d_who, d_day = d_who[keep], d_day[keep]
        d_method = rng.choice(np.array(["22", "23", "24", "28", "2A", "2B"]), size=len(d_who))

        # Terminal admissions: people who die in hospital are admitted shortly before death.
        dih = self.people["died_in_hospital"].to_numpy()
        t_who = np.where(dih)[0]
        t_los = rng.integers(1, 15, len(t_who))
        t_day = np.maximum(np.maximum(self.death[t_who] - t_los, self.start), self.dob[t_who])

        el_rate = p.elective_rate * _age_factor(self.age, (0.3, 0.3, 0.6, 1.3, 2.5, 2.5))
        l_who = _events_per_person(rng, el_rate * self.years)
        l_day = self._random_day(len(l_who))
        keep = self._alive_on(l_who, l_day)
        l_who, l_day = l_who[keep], l_day[keep]

        spells = [
            self._spells(e_who, e_prov, e_day, e_method, emergency=True),
            self._spells(d_who, self._provider_for(d_who), d_day, d_method, emergency=True),
            self._spells(t_who, self.provider[t_who], t_day, np.full(len(t_who), "21"), True),
            self._spells(
                l_who,
                self._provider_for(l_who),
                l_day,
                rng.choice(np.array(["11", "12", "13"]), size=len(l_who), p=[0.7, 0.25, 0.05]),
                emergency=False,
            ),
        ]
        # The terminal admissions came through A&E too.
        t_arr, t_dep, _ = self._ae_rows(t_who, t_day, np.ones(len(t_who), bool))
        ae.append((t_who, self.provider[t_who], t_arr, t_dep, np.full(len(t_who), "admitted")))

        # Readmissions: two rounds, so a readmission can itself be followed by one.
        frontier = pl.concat(spells)
        for _ in range(2):
            re = self._readmissions(frontier)
            if re is None:
                break
            frontier, via_ae = re
            spells.append(frontier)
            w = via_ae["person_idx"].to_numpy()
            a_arr, a_dep, _ = self._ae_rows(
                w, via_ae["admission_date"].to_numpy(), np.ones(len(w), bool)
            )
            ae.append(
                (w, via_ae["provider_idx"].to_numpy(), a_arr, a_dep, np.full(len(w), "admitted"))
            )

        ae_df = pl.DataFrame(
            {
                "person_idx": np.concatenate([a[0] for a in ae]),
                "provider_idx": np.concatenate([a[1] for a in ae]),
                "arrival": np.concatenate([a[2] for a in ae]),
                "departure": np.concatenate([a[3] for a in ae]),
                "disposal": np.concatenate([a[4] for a in ae]),
            }
        )
        return ae_df, pl.concat(spells)

    def _spells(
        self,
        who: np.ndarray,
        prov: np.ndarray,
        adm: np.ndarray,
        method: np.ndarray,
        emergency: bool,
    ) -> pl.DataFrame:
        rng = self.rng
        n = len(who)
        age = self.age[who]
        if emergency:
            median = np.where(age >= 80, 6.0, np.where(age >= 65, 4.0, 2.0))
            los = np.round(rng.lognormal(np.log(median), 0.8)).astype(int)
            diag_i, diag_codes = _weighted(rng, ref.ICD10_EMERGENCY, n)
            diagnosis = diag_codes[diag_i]
            procedure = np.full(n, "")
            n_episodes = rng.choice(np.array([1, 2, 3]), size=n, p=[0.8, 0.15, 0.05])
        else:
            los = np.where(rng.random(n) < 0.6, 0, rng.integers(1, 6, n))
            diag_i, diag_codes = _weighted(rng, ref.ICD10_ELECTIVE, n)
            diagnosis = diag_codes[diag_i]
            procedure = np.array(ref.OPCS4_ELECTIVE)[diag_i]
            n_episodes = np.where(rng.random(n) < 0.95, 1, 2)
        discharge = adm + los
        death = self.death[who]
        dies_here = ~np.isnat(death) & (death <= discharge)
        discharge = np.where(dies_here, np.maximum(death, adm), discharge)
        r = rng.random(n)
        alive_dest = np.select(
            [
                (age >= 80) & (r < 0.07),
                (age >= 65) & (r < 0.09),
                r < 0.11,
                r < 0.13,
                r < 0.14,
            ],
            ["54", "65", "51", "29", "66"],
            "19",
        )
        destination = np.where(dies_here, "79", alive_dest)
        source = np.where(rng.random(n) < 0.05, "51", np.where(rng.random(n) < 0.03, "54", "19"))
        return pl.DataFrame(
            {
                "person_idx": who,
                "provider_idx": prov,
                "admission_date": adm,
                "discharge_date": discharge,
                "admission_method": method,
                "admission_source": source,
                "discharge_destination": destination,
                "primary_diagnosis": diagnosis,
                "primary_procedure": procedure,
                "n_episodes": n_episodes.astype(np.int8),
                "emergency": np.full(n, emergency),
            }
        )

    def _readmissions(self, index: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        rng, p = self.rng, self.p
        live = index.filter(pl.col("discharge_destination") != "79")
        who = live["person_idx"].to_numpy()
        if len(who) == 0:
            return None
        age, imd = self.age[who], self.imd[who]
        base = np.where(
            live["emergency"].to_numpy(), p.readmit_after_emergency, p.readmit_after_elective
        )
        prob = base * np.select([age >= 80, age >= 65], [1.8, 1.4], 1.0) * _deprivation_factor(imd)
        hit = rng.random(len(who)) < prob
        day = live["discharge_date"].to_numpy()[hit] + rng.integers(1, 31, hit.sum())
        w = who[hit]
        prov = live["provider_idx"].to_numpy()[hit]
        keep = self._alive_on(w, day) & (day <= self.end)
        w, day, prov = w[keep], day[keep], prov[keep]
        via_ae = rng.random(len(w)) < p.readmit_via_ae
        method = np.where(via_ae, "21", "22")
        re = self._spells(w, prov, day, method, emergency=True)
        return re, re.filter(pl.Series(via_ae))

    # -- social care ----------------------------------------------------------
    def social_care(self, spells: pl.DataFrame) -> pl.DataFrame:
        rng, p = self.rng, self.p
        la = self.people["la_idx"].to_numpy()
        out = []

        # After a hospital discharge (alive), mostly older people.
        alive = spells.filter(pl.col("discharge_destination") != "79")
        who = alive["person_idx"].to_numpy()
        dest = alive["discharge_destination"].to_numpy()
        age = self.age[who]
        prob = np.select(
            [age >= 80, age >= 65, age >= 18],
            [p.sc_after_discharge_80, p.sc_after_discharge_65, 0.01],
            0,
        )
        care_home = np.isin(dest, ["54", "65", "66"])
        prob = np.where(care_home, np.maximum(prob, p.sc_after_care_home_discharge), prob)
        hit = rng.random(len(who)) < prob
        w, dest = who[hit], dest[hit]
        # Days to weeks after discharge: most within a week, a tail to six weeks.
        lag = np.where(
            rng.random(len(w)) < 0.7, rng.integers(0, 8, len(w)), rng.integers(8, 43, len(w))
        )
        req = alive["discharge_date"].to_numpy()[hit] + lag
        service = np.where(
            np.isin(dest, ["54"]),
            "Nursing care",
            np.where(
                np.isin(dest, ["65", "66"]),
                "Residential care",
                rng.choice(
                    np.array(
                        [
                            "Reablement",
                            "Home care",
                            "Equipment and adaptations",
                            "Short term residential",
                        ]
                    ),
                    size=len(w),
                    p=[0.5, 0.35, 0.1, 0.05],
                ),
            ),
        )
        # Discharge to assess: reablement is arranged before the person leaves and starts
        # within days (ASCOF 2B counts it from discharge), not weeks later.
        quick = service == "Reablement"
        req = np.where(quick, alive["discharge_date"].to_numpy()[hit] + lag % 3, req)
        out.append(self._sc_episode(w, req, "Discharge from hospital", service, 0.9, 0.75, quick))

        # Community requests, and services that began before the extract period.
        c_rate = np.select(
            [self.age >= 80, self.age >= 65, self.age >= 18],
            [p.sc_community_80, p.sc_community_65, 0.004],
            0,
        )
        cw = _events_per_person(rng, c_rate * self.years)
        c_service = rng.choice(
            np.array(["Home care", "Day care", "Direct payment", "Equipment and adaptations"]),
            size=len(cw),
        )
        out.append(
            self._sc_episode(cw, self._random_day(len(cw)), "Community", c_service, 0.7, 0.5)
        )
        ex_p = np.select(
            [self.age >= 80, self.age >= 65],
            [p.sc_existing_service_65 * 3, p.sc_existing_service_65],
            0,
        )
        ew = np.where(rng.random(len(self.age)) < ex_p)[0]
        e_start = self.start - rng.integers(30, 1500, len(ew))
        e_service = rng.choice(
            np.array(["Home care", "Residential care", "Nursing care", "Direct payment"]),
            size=len(ew),
        )
        out.append(self._sc_episode(ew, e_start, "Community", e_service, 1.0, 1.0))

        sc = pl.concat(out)
        who = sc["person_idx"].to_numpy()
        start = sc["event_start_date"].to_numpy()
        keep = self._alive_on(who, start) & (start <= self.end)
        sc = sc.filter(pl.Series(keep))
        # Services end at death, and an end date after the extract is not yet known.
        death = pl.Series(self.death).gather(sc["person_idx"])
        end_col = pl.col("event_end_date")
        sc = sc.with_columns(
            pl.when(
                death.is_not_null()
                & (end_col.is_null() | (end_col > death))
                & (pl.col("event_type") == "service")
            )
            .then(death)
            .otherwise(end_col)
            .alias("event_end_date")
        ).with_columns(
            pl.when(pl.col("event_end_date") > pl.lit(self.end.astype(date)))
            .then(None)
            .otherwise(pl.col("event_end_date"))
            .alias("event_end_date")
        )
        return sc.with_columns(la_idx=pl.Series(la).gather(sc["person_idx"])).unique(
            subset=["person_idx", "event_type", "event_start_date", "service_type"],
            keep="first",
            maintain_order=True,
        )

    def _sc_episode(
        self,
        who: np.ndarray,
        request: np.ndarray,
        route: str,
        service: np.ndarray,
        p_assess: float,
        p_service: float,
        quick: np.ndarray | None = None,
    ) -> pl.DataFrame:
        """request -> assessment -> service, each step happening for a share of people.

        ``quick`` rows (discharge to assess) are assessed and served within two days each.
        """
        rng = self.rng
        n = len(who)
        quick = np.zeros(n, bool) if quick is None else quick
        assessed = rng.random(n) < p_assess
        wait = rng.integers(2, 22, n)
        assess_day = request + np.where(quick, (wait - 2) % 3, wait)
        served = assessed & (rng.random(n) < p_service)
        wait = rng.integers(1, 41, n)
        service_day = assess_day + np.where(quick, (wait - 1) % 3, wait)
        length = np.where(service == "Reablement", 42, rng.integers(14, 400, n))
        ends = rng.random(n) < np.where(service == "Reablement", 0.95, 0.3)
        service_end = np.where(ends, service_day + length, np.datetime64("NaT", "D"))
        nat = np.full(n, np.datetime64("NaT", "D"))
        frames = []
        for mask, etype, day, end, stype in (
            (np.ones(n, bool), "request", request, nat, np.full(n, None)),
            (assessed, "assessment", assess_day, nat, np.full(n, None)),
            (served, "service", service_day, service_end, service),
        ):
            frames.append(
                pl.DataFrame(
                    {
                        "person_idx": who[mask],
                        "event_type": np.full(mask.sum(), etype),
                        "service_type": pl.Series(stype[mask].tolist(), dtype=pl.String),
                        "route_of_access": np.full(mask.sum(), route),
                        "event_start_date": day[mask],
                        "event_end_date": end[mask],
                    }
                )
            )
        return pl.concat(frames)


def build_activity(
    people: pl.DataFrame, seed: int, chunk: int, window: tuple[date, date], params: SynthParams
) -> Activity:
    """All care activity of one chunk of people, at person grain."""
    b = _Builder(people, seed, chunk, window, params)
    gp = b.gp_events()
    ae, spells = b.hospital()
    # Spells still open at the end of the extract have no discharge yet.
    end = pl.lit(b.end.astype(date))
    spells = spells.filter(pl.col("admission_date") <= end).with_columns(
        open_=pl.col("discharge_date") > end
    )
    sc = b.social_care(spells.filter(~pl.col("open_")))
    spells = spells.with_columns(
        discharge_date=pl.when(pl.col("open_")).then(None).otherwise(pl.col("discharge_date")),
        discharge_destination=pl.when(pl.col("open_"))
        .then(None)
        .otherwise(pl.col("discharge_destination")),
    ).drop("open_")
    ae = ae.filter(pl.col("arrival").cast(pl.Date) <= end)
    # The builder works on positions within the chunk; callers want the global person_idx.
    first = people["person_idx"][0] if people.height else 0
    gp, ae, spells, sc = (
        f.with_columns(pl.col("person_idx") + first) for f in (gp, ae, spells, sc)
    )
    return Activity(gp_events=gp, ae=ae, spells=spells, social_care=sc)
