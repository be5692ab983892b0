"""The national layouts as real feeds arrive: HES APC and ECDS monthly, CLD quarterly.

The generator builds care activity once, in joinedup's own (generic) terms; this
module rewrites it into the national dataset layouts of ``joinedup/layouts/`` and
cuts it into the deliveries an ICB actually receives:

* ``hospital/hes_apc_<YYYYMM>.csv``: every month a refresh of the financial year to
  date, as of the month's last day. A spell still in hospital on that day has no
  discharge yet and its later episodes are not there; the next month's file brings
  them (and replaces the earlier file: ``revises: year_to_date``).
* ``hospital/ecds_<YYYYMM>.csv``: each month's attendances (``revises: month``).
* ``social_care/cld_<YYYY>q<n>.csv``: a CLD Release 1 submission per quarter complete
  within the months delivered (a quarter's file is written only once its last month
  is), holding the quarter's requests and assessments and every service open in
  it; the first is also the council's initial load of its earlier history. A service
  still open at the quarter's end is sent without an end date, and sent again (closed,
  or still open) by every later submission until it ends: the latest submission's
  version wins at ingest (``revises: latest_submission``).

Every file is cut at its own last day from activity simulated once over the
generator's fixed horizon, so a file never depends on how many months are written
(generate.py). Hospital feeds carry no names (as HES and ECDS do not); CLD carries them, as many
council extracts do. Everything the national layouts hold beyond the generic one
(episode dates, secondary diagnoses, the Discharge Ready Date, ECDS SNOMED CT codes,
CLD service components, delivery mechanisms and outcomes) is drawn from its own
random stream, so the generic layout's files stay byte-identical to what they were.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from joinedup.catalogue import LANDING

# HES APC: the positions written (a delivery may stop short of 20 and 24: see hes_apc.yaml).
DIAGNOSIS_POSITIONS = 12
PROCEDURE_POSITIONS = 4
HES_APC_HEADER: tuple[str, ...] = (
    "procode3", "lopatid", "newnhsno", "dob", "sex", "homeadd", "susspellid", "epikey",
    "epiorder", "epistart", "epiend", "admidate", "disdate", "admimeth", "admisorc", "disdest",
    "dismeth", "classpat", "mainspef",
    *(f"diag_4_{n:02d}" for n in range(1, DIAGNOSIS_POSITIONS + 1)),
    *(f"opertn_4_{n:02d}" for n in range(1, PROCEDURE_POSITIONS + 1)),
    "disreadydate",
)  # fmt: skip
ECDS_HEADER: tuple[str, ...] = (
    "provider_code", "local_patient_id", "nhs_number", "date_of_birth", "sex", "postcode",
    "ec_ident", "ec_arrival_date", "ec_arrival_time", "ec_departure_date", "ec_departure_time",
    "ec_department_type", "ec_arrival_mode_snomed_ct", "ec_chief_complaint_snomed_ct",
    "ec_acuity_snomed_ct", "ec_discharge_status_snomed_ct", "discharge_destination_snomed_ct",
    "ec_diagnosis_01",
)  # fmt: skip
CLD_HEADER: tuple[str, ...] = (
    "la_code", "reporting_period_start_date", "reporting_period_end_date", "client_type",
    "la_person_unique_identifier", "nhs_number", "given_name", "family_name", "date_of_birth",
    "gender", "postcode", "date_of_death", "primary_support_reason", "event_type",
    "event_reference", "event_start_date", "event_end_date", "request_route_of_access",
    "assessment_type", "service_type", "service_component", "delivery_mechanism", "event_outcome",
    "accommodation_status",
)  # fmt: skip

# Comorbidities coded in the secondary positions, weighted; more of them with age.
SECONDARY_ICD10: tuple[tuple[str, float], ...] = (
    ("I10X", 10), ("E119", 6), ("J449", 4), ("I489", 4), ("N183", 3), ("I509", 3),
    ("F03X", 2), ("E785", 5), ("M199", 3), ("Z867", 2), ("R296", 2), ("Z915", 2),
    ("E039", 3), ("F329", 3), ("Z921", 2), ("K219", 3),
)  # fmt: skip

# ECDS: SNOMED CT concepts from the ECDS reference sets (as in docs/contracts.md).
_ARRIVAL_MODES = ("1048031000000100", "1048071000000103")  # ambulance; own transport
_CHIEF_COMPLAINTS = ("29857009", "21522001", "267036007", "422400008", "161891005")
_ACUITY = ("1064891000000107", "1064901000000108", "1064911000000105", "1077241000000103")
_TREATMENT_COMPLETED = "182992009"
# (discharge status, discharge destination) of each generic disposal.
_ECDS_DISPOSAL: dict[str, tuple[str, str]] = {
    "admitted": (_TREATMENT_COMPLETED, "306706006"),
    "discharged": (_TREATMENT_COMPLETED, "306689006"),
    "referred": (_TREATMENT_COMPLETED, "1066341000000100"),
    "transferred": (_TREATMENT_COMPLETED, "19712007"),
    "left": ("1066321000000107", ""),
    "died": ("75004002", ""),
}

# CLD Release 1: the generic service types and routes in CLD's own code lists.
_CLD_SERVICE: dict[str, tuple[str, str]] = {  # service type, service component
    "Nursing care": ("Long Term Support: Nursing Care", "Nursing Care: Permanent"),
    "Residential care": ("Long Term Support: Residential Care", "Residential Care: Permanent"),
    "Home care": ("Long Term Support: Community", "Home Care"),
    "Direct payment": ("Long Term Support: Community", "Home Care"),
    "Day care": ("Long Term Support: Community", "Day Care"),
    "Reablement": ("Short Term Support: ST-Max", "Short Term Support: ST-Max"),
    "Equipment and adaptations": (
        "Short Term Support: Ongoing Low Level",
        "Equipment & Adaptations",
    ),
    "Short term residential": (
        "Short Term Support: Other Short Term",
        "Short Term Residential Care",
    ),
}
_CLD_ROUTE = {
    "Discharge from hospital": "Discharge from Hospital",
    "Diversion from hospital": "Diversion from Hospital Services",
    "Community": "Community / Other route",
    "Self-funder": "Self-Funder with Depleted Funds",
}
_CLD_EVENT_TYPE = {"request": "Request", "assessment": "Assessment", "service": "Service"}
_CLD_GENDER = {"1": "Male", "2": "Female", "9": "Other", "0": "Unknown"}
_SUPPORT_REASONS = (
    "Physical Support: Personal Care Support",
    "Physical Support: Access & Mobility Only",
    "Support with Memory & Cognition",
    "Learning Disability Support",
    "Mental Health Support",
    "Social Support: Support for Social Isolation/Other",
)

# CLD accommodation status codes (the list NHS England's ASCOF 2E code groups), weighted
# roughly as councils record them; most people supported at home are settled.
_ACCOMMODATION: tuple[tuple[str, float], ...] = (
    ("Owner occupier or shared ownership scheme", 34),
    ("Tenant", 18),
    ("Tenant - private landlord", 6),
    ("Settled mainstream housing with family / friends", 18),
    ("Supported accommodation / supported lodgings / supported group home", 6),
    ("Sheltered housing / extra care housing / other sheltered housing", 6),
    ("Shared Lives scheme", 1),
    ("Staying with family / friends as a short-term guest", 2),
    ("Placed in temporary accommodation by the council (inc. homelessness resettlement)", 1),
    ("Other temporary accommodation", 1),
    ("Unknown", 7),
)
# A long-term residential or nursing service records where the person then lives.
_ACCOMMODATION_IN_CARE = {
    "Nursing care": "Registered nursing home",
    "Residential care": "Registered care home",
}


@dataclass(frozen=True)
class Delivery:
    """One file of a national feed: its landing path, header and the period it covers."""

    key: str
    path: str  # under the data dir
    header: tuple[str, ...]
    start: date  # first day covered
    end: date  # last day covered: the cut-off of what the file can know
    # The first CLD submission is also the council's initial load: every earlier event.
    since: date | None = None


def _month_end(d: date) -> date:
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def _months(window: tuple[date, date]) -> list[date]:
    out, d = [], window[0]
    while d <= window[1]:
        out.append(d)
        d = _month_end(d) + timedelta(days=1)
    return out


def _financial_year_start(d: date) -> date:
    return date(d.year if d.month >= 4 else d.year - 1, 4, 1)


def gp_event_deliveries(window: tuple[date, date], table_path: str, header: tuple[str, ...]):
    """GP events month by month; the first month's file also holds the earlier history."""
    return [
        Delivery(
            f"gp/events/{m:%Y%m}",
            f"{table_path}_{m:%Y%m}.csv",
            header,
            m,
            _month_end(m),
            since=date(1900, 1, 1) if i == 0 else None,
        )
        for i, m in enumerate(_months(window))
    ]


def deliveries(window: tuple[date, date]) -> list[Delivery]:
    """Every national-layout file a window's feeds deliver, in delivery order per feed.

    ``window`` runs from the first month's first day to the last delivered month's last.
    """
    out: list[Delivery] = []
    for m in _months(window):
        first = max(window[0], _financial_year_start(m))
        out.append(
            Delivery(
                f"hes_apc/{m:%Y%m}",
                f"{LANDING.path}/hospital/hes_apc_{m:%Y%m}.csv",
                HES_APC_HEADER,
                first,
                _month_end(m),
            )
        )
    for m in _months(window):
        out.append(
            Delivery(
                f"ecds/{m:%Y%m}",
                f"{LANDING.path}/hospital/ecds_{m:%Y%m}.csv",
                ECDS_HEADER,
                m,
                _month_end(m),
            )
        )
    months = _months(window)
    history = date(1900, 1, 1)
    # A quarter is submitted after it ends: none for a quarter still under way.
    for i in range(0, len(months) - 2, 3):
        q_start, q_end = months[i], _month_end(months[i + 2])
        quarter = (q_start.month - 4) % 12 // 3 + 1  # financial-year quarter, as CLD counts
        fy = _financial_year_start(q_start).year
        out.append(
            Delivery(
                f"cld/{fy}q{quarter}",
                f"{LANDING.path}/social_care/cld_{fy}q{quarter}.csv",
                CLD_HEADER,
                q_start,
                q_end,
                since=history if i == 0 else None,
            )
        )
    return out


def _pick(rng: np.random.Generator, codes: tuple[str, ...], n: int) -> pl.Series:
    return pl.Series(np.array(codes)[rng.integers(0, len(codes), n)].tolist(), dtype=pl.String)


@dataclass
class NationalChunk:
    """One chunk of people's activity in the national layouts' terms, before cutting."""

    episodes: pl.DataFrame
    attendances: pl.DataFrame
    cld: pl.DataFrame

    @classmethod
    def build(
        cls,
        rng: np.random.Generator,
        episodes: pl.DataFrame,
        ae: pl.DataFrame,
        clients: pl.DataFrame,
        events: pl.DataFrame,
    ) -> NationalChunk:
        return cls(
            _episodes(rng, episodes),
            _attendances(rng, ae),
            _cld(rng, clients, events),
        )

    def known_by(self, cutoff: date) -> NationalChunk:
        """Only what began by ``cutoff``: no delivery up to it holds anything later."""
        day = pl.lit(cutoff)
        return NationalChunk(
            self.episodes.filter(pl.col("admidate") <= day),
            self.attendances.filter(pl.col("ec_arrival_date") <= day),
            self.cld.filter(pl.col("event_start_date") <= day),
        )

    def rows(self, delivery: Delivery) -> pl.DataFrame:
        """The rows ``delivery`` holds: what was known of its period on its last day."""
        feed = delivery.key.split("/")[0]
        start, cutoff = pl.lit(delivery.start), pl.lit(delivery.end)
        if feed == "hes_apc":
            return _hes_apc_as_of(self.episodes, start, cutoff)
        if feed == "ecds":
            day = pl.col("ec_arrival_date")
            return self.attendances.filter((day >= start) & (day <= cutoff))
        return _cld_as_of(self.cld, delivery)


def _episodes(rng: np.random.Generator, episodes: pl.DataFrame) -> pl.DataFrame:
    """Generic episodes (one row per episode, discharge on the last) in HES APC terms."""
    n = episodes.height
    age = (
        episodes.select(
            (
                pl.col("admission_date")
                - pl.col("date_of_birth").cast(pl.String).str.to_date("%Y-%m-%d", strict=False)
            ).dt.total_days()
            / 365.25
        )
        .to_series()
        .fill_null(50.0)
        .to_numpy()
    )
    # Comorbidities, more with age, coded in the secondary positions of each episode.
    count = np.minimum(rng.poisson(np.clip((age - 30) / 20, 0.2, 3.0)), DIAGNOSIS_POSITIONS - 1)
    codes = np.array([c for c, _ in SECONDARY_ICD10], dtype=object)
    weights = np.array([w for _, w in SECONDARY_ICD10], dtype=float)
    drawn = rng.choice(len(codes), size=(n, DIAGNOSIS_POSITIONS - 1), p=weights / weights.sum())
    secondary = [
        pl.Series(
            f"diag_4_{p + 2:02d}",
            np.where(count > p, codes[drawn[:, p]], None).tolist(),
            dtype=pl.String,
        )
        for p in range(DIAGNOSIS_POSITIONS - 1)
    ]
    # Discharge delays: most leave the day they are ready, some wait days (CDS 6-3).
    delay = pl.Series(np.where(rng.random(n) < 0.7, 0, rng.integers(1, 11, n)))
    recorded = pl.Series(rng.random(n) < 0.9)
    specialty = _pick(rng, ("300", "100", "110", "430", "320", "340"), n)
    spell = ("provider_code", "spell_id")
    discharge = pl.col("discharge_date").max().over(spell)
    los = (discharge - pl.col("admission_date")).dt.total_days().fill_null(0)
    k, total = pl.col("episode_number") - 1, pl.col("n_episodes").cast(pl.Int64)
    last = pl.col("episode_number") == total

    # The spell's days shared out across its episodes; the last ends at discharge.
    def day(share: pl.Expr) -> pl.Expr:
        return pl.col("admission_date") + pl.duration(
            days=(los * share / total).floor().cast(pl.Int64)
        )

    ready = pl.max_horizontal(
        pl.col("discharge_date") - pl.duration(days=delay), pl.col("admission_date")
    )
    return episodes.select(
        pl.col("provider_code").alias("procode3"),
        pl.col("hospital_patient_id").alias("lopatid"),
        pl.col("nhs_number").alias("newnhsno"),
        pl.col("date_of_birth").alias("dob"),
        "sex",
        pl.col("postcode").alias("homeadd"),
        pl.col("spell_id").alias("susspellid"),
        pl.format("E{}{}", pl.col("spell_id").str.slice(2), pl.col("episode_number")).alias(
            "epikey"
        ),
        pl.col("episode_number").cast(pl.String).str.zfill(2).alias("epiorder"),
        day(k).alias("epistart"),
        pl.when(last).then(discharge).otherwise(day(k + 1)).alias("epiend"),
        pl.col("admission_date").alias("admidate"),
        pl.col("discharge_date").alias("disdate"),
        pl.col("admission_method").alias("admimeth"),
        pl.col("admission_source").alias("admisorc"),
        pl.col("discharge_destination").alias("disdest"),
        pl.when(pl.col("discharge_destination") == "79")
        .then(pl.lit("4"))
        .when(pl.col("discharge_destination").is_not_null())
        .then(pl.lit("1"))
        .alias("dismeth"),
        pl.when(pl.col("admission_method").str.starts_with("1") & (los == 0))
        .then(pl.lit("2"))
        .otherwise(pl.lit("1"))
        .alias("classpat"),
        specialty.alias("mainspef"),
        pl.col("primary_diagnosis").alias("diag_4_01"),
        *secondary,
        pl.col("primary_procedure").alias("opertn_4_01"),
        *[
            pl.lit(None, pl.String).alias(f"opertn_4_{p:02d}")
            for p in range(2, PROCEDURE_POSITIONS + 1)
        ],
        pl.when(recorded & pl.col("discharge_date").is_not_null())
        .then(ready)
        .alias("disreadydate"),
    )


def _hes_apc_as_of(episodes: pl.DataFrame, start: pl.Expr, cutoff: pl.Expr) -> pl.DataFrame:
    """The financial year to date as a delivery cut off on ``cutoff`` knows it."""
    admitted = pl.col("admidate").is_between(start, cutoff)
    # A spell in hospital when the year began is the new year's too (hes_apc.yaml: supersede).
    discharged = pl.col("disdate").max().over("procode3", "susspellid")
    carried = (pl.col("admidate") < start) & (discharged.is_null() | (discharged >= start))
    known = episodes.filter((admitted | carried) & (pl.col("epistart") <= cutoff))
    gone = pl.col("disdate") <= cutoff
    discharge = ("disdate", "disdest", "dismeth", "disreadydate")
    return known.with_columns(
        pl.when(pl.col("epiend") <= cutoff).then(pl.col("epiend")).alias("epiend"),
        *[pl.when(gone).then(pl.col(c)).alias(c) for c in discharge],
    )


def _attendances(rng: np.random.Generator, ae: pl.DataFrame) -> pl.DataFrame:
    """Generic attendances in ECDS terms, the disposal as discharge status and destination."""
    n = ae.height
    status = {k: v[0] for k, v in _ECDS_DISPOSAL.items()}
    destination = {k: v[1] for k, v in _ECDS_DISPOSAL.items()}
    coded = pl.Series(rng.random(n) < 0.8)
    diagnosis = pl.when(coded).then(_pick(rng, ("195967001", "22298006", "125605004"), n))
    return ae.select(
        "provider_code",
        pl.col("hospital_patient_id").alias("local_patient_id"),
        "nhs_number",
        "date_of_birth",
        "sex",
        "postcode",
        pl.col("attendance_id").alias("ec_ident"),
        pl.col("arrival_datetime").dt.date().alias("ec_arrival_date"),
        pl.col("arrival_datetime").dt.strftime("%H:%M").alias("ec_arrival_time"),
        pl.col("departure_datetime").dt.date().alias("ec_departure_date"),
        pl.col("departure_datetime").dt.strftime("%H:%M:%S").alias("ec_departure_time"),
        pl.lit("01").alias("ec_department_type"),
        _pick(rng, _ARRIVAL_MODES, n).alias("ec_arrival_mode_snomed_ct"),
        _pick(rng, _CHIEF_COMPLAINTS, n).alias("ec_chief_complaint_snomed_ct"),
        _pick(rng, _ACUITY, n).alias("ec_acuity_snomed_ct"),
        pl.col("disposal").replace_strict(status).alias("ec_discharge_status_snomed_ct"),
        pl.col("disposal")
        .replace_strict(destination)
        .replace("", None)
        .alias("discharge_destination_snomed_ct"),
        diagnosis.alias("ec_diagnosis_01"),
    )


def _accommodation(people: pl.Series) -> pl.Series:
    """Each person's accommodation status at home, drawn from a stream seeded by their id.

    Seeded per person (a hash of the id, not the chunk's generator) so that adding the
    column draws nothing from ``rng``: every other national output stays as it was.
    """
    seeds = np.array([zlib.crc32(p.encode()) for p in people.to_list()], dtype=np.uint64)
    # splitmix64's finaliser: crc32 values of near ids are near; this spreads them.
    with np.errstate(over="ignore"):
        z = (seeds + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    weights = np.array([w for _, w in _ACCOMMODATION], dtype=np.float64)
    cut = np.cumsum(weights) / weights.sum()
    codes = np.array([c for c, _ in _ACCOMMODATION])
    return pl.Series(codes[np.searchsorted(cut, u, side="right")].tolist(), dtype=pl.String)


def _cld(rng: np.random.Generator, clients: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Generic clients and events as CLD event rows, each with its client's details."""
    reasons = clients.select("la_code", "la_person_id").with_columns(
        primary_support_reason=_pick(rng, _SUPPORT_REASONS, clients.height)
    )
    rows = events.join(clients, on=["la_code", "la_person_id"], how="left", maintain_order="left")
    rows = rows.join(reasons, on=["la_code", "la_person_id"], how="left", maintain_order="left")
    home = pl.format("{}/{}", "la_code", "la_person_id")
    rows = rows.with_columns(_accommodation(rows.select(home).to_series()).alias("_home"))
    service = pl.col("service_type")
    kind = pl.col("event_type")
    mechanism = (
        pl.when(service == "Direct payment")
        .then(pl.lit("Direct Payment"))
        .when(kind == "service")
        .then(pl.lit("CASSR Managed Personal Budget"))
    )
    return rows.select(
        "la_code",
        pl.lit("Service User").alias("client_type"),
        pl.col("la_person_id").alias("la_person_unique_identifier"),
        "nhs_number",
        "given_name",
        "family_name",
        "date_of_birth",
        pl.col("sex").replace_strict(_CLD_GENDER, default="Unknown").alias("gender"),
        "postcode",
        pl.col("death_date").alias("date_of_death"),
        "primary_support_reason",
        kind.replace_strict(_CLD_EVENT_TYPE).alias("event_type"),
        pl.format("{}-{}", "la_person_id", pl.int_range(pl.len()).over("la_person_id")).alias(
            "event_reference"
        ),
        "event_start_date",
        "event_end_date",
        pl.col("route_of_access")
        .replace_strict(_CLD_ROUTE, default=None)
        .alias("request_route_of_access"),
        pl.when(kind == "assessment")
        .then(pl.lit("Long Term Support Assessment"))
        .alias("assessment_type"),
        service.replace_strict({k: v[0] for k, v in _CLD_SERVICE.items()}, default=None).alias(
            "service_type"
        ),
        service.replace_strict({k: v[1] for k, v in _CLD_SERVICE.items()}, default=None).alias(
            "service_component"
        ),
        mechanism.alias("delivery_mechanism"),
        pl.when(kind == "request")
        .then(pl.lit("Progress to Assessment"))
        .when(kind == "assessment")
        .then(pl.lit("Progress to Support Planning / Services"))
        .alias("_outcome"),
        pl.when(kind == "service")
        .then(service.replace_strict(_ACCOMMODATION_IN_CARE, default=None))
        .otherwise(None)
        .fill_null(pl.col("_home"))
        .alias("accommodation_status"),
        pl.col("postcode_before_move").alias("_postcode_before_move"),
        pl.col("move_date").alias("_move_date"),
    )


def _cld_as_of(cld: pl.DataFrame, delivery: Delivery) -> pl.DataFrame:
    """One quarter's submission: its requests and assessments, and every service open in it."""
    start, end = pl.lit(delivery.start), pl.lit(delivery.end)
    began = pl.col("event_start_date")
    since = pl.lit(delivery.since or delivery.start)
    service = pl.col("event_type") == "Service"
    in_quarter = (began >= since) & (began <= end)
    open_in_quarter = (
        service
        & (began <= end)
        & (pl.col("event_end_date").is_null() | (pl.col("event_end_date") >= start))
    )
    ended = pl.col("event_end_date") <= end
    return cld.filter(in_quarter | open_in_quarter).select(
        "la_code",
        start.alias("reporting_period_start_date"),
        end.alias("reporting_period_end_date"),
        *CLD_HEADER[3:10],
        # The address as the council knew it at the quarter's end.
        pl.when(pl.col("_move_date") > end)
        .then(pl.col("_postcode_before_move"))
        .otherwise(pl.col("postcode"))
        .alias("postcode"),
        pl.when(pl.col("date_of_death") <= end).then("date_of_death").alias("date_of_death"),
        *CLD_HEADER[12:16],
        pl.when(ended).then(pl.col("event_end_date")).alias("event_end_date"),
        *CLD_HEADER[17:22],
        pl.when(service & ended)
        .then(pl.lit("Service ended as planned"))
        .when(service)
        .then(pl.lit("Provision of service"))
        .otherwise(pl.col("_outcome"))
        .alias("event_outcome"),
        "accommodation_status",
    )
