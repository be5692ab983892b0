"""Every rate the synthetic generator uses, named and documented in one place.

The identifier-noise rates are what make linkage hard in the way real extracts
are; tests measure the written files against them, so a change here shows up
there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceNoise:
    """Identifier defects in one source's records (probabilities per source record)."""

    nhs_blank: float  # NHS number left blank
    nhs_invalid: float  # NHS number with one digit wrong (fails modulus 11)
    name_typo: float  # per name field: one character substituted, dropped, added or swapped
    nickname: float  # given name recorded as a nickname where one exists
    old_surname: float  # person with a changed surname recorded under the previous one
    dob_swap: float  # day and month swapped (only where day <= 12 and day != month)
    dob_typo: float  # one component of the date of birth wrong
    stale_postcode: float  # mover recorded at the previous address
    postcode_format: float  # postcode lower-case or without its space (fixable)
    postcode_malformed: float  # postcode truncated beyond repair
    sex_missing: float  # sex blank or 0 (not known)
    duplicate_id: float  # the same person under a second local id at one organisation


@dataclass(frozen=True)
class PopulationParams:
    twin: float = 0.015  # share of people who are the second of a twin pair
    mover: float = 0.08  # moved house within the last year
    mover_changes_practice: float = 0.3  # of movers, re-registered at another practice
    surname_change: float = 0.04  # adults whose family name changed (e.g. marriage)
    hyphenated: float = 0.02  # double-barrelled surnames, recorded variously
    common_surname_share: float = 0.2  # people with one of the commonest surnames
    national_opt_out: float = 0.05  # national data opt-out
    type1_objection: float = 0.02  # GP type 1 objection registered
    type1_withdrawn: float = 0.25  # of those, later withdrawn (so not opted out)
    other_practice: float = 0.1  # registered at a practice outside their home area
    other_provider: float = 0.15  # hospital activity at a provider other than the local one


@dataclass(frozen=True)
class ActivityParams:
    """Care activity per person per year, before age, deprivation and condition factors."""

    ae_rate: float = 0.30
    direct_emergency_rate: float = 0.03
    elective_rate: float = 0.06
    readmit_after_emergency: float = 0.09  # 30-day emergency readmission, base
    readmit_after_elective: float = 0.03
    readmit_via_ae: float = 0.7
    died_in_hospital: float = 0.45  # share of deaths during an emergency admission
    sc_after_discharge_65: float = 0.10  # social care request after a discharge, age 65-79
    sc_after_discharge_80: float = 0.20  # age 80+
    sc_after_care_home_discharge: float = 0.6  # discharged to a care home or LA residential
    sc_community_65: float = 0.02  # community requests per year, 65+
    sc_community_80: float = 0.06
    sc_existing_service_65: float = 0.03  # services that started before the extract period
    consultations_per_year: tuple[float, ...] = (5.0, 2.0, 3.0, 4.0, 6.0, 9.0)


GP_NOISE = SourceNoise(
    nhs_blank=0.002, nhs_invalid=0.002, name_typo=0.005, nickname=0.01, old_surname=0.1,
    dob_swap=0.001, dob_typo=0.002, stale_postcode=0.0, postcode_format=0.01,
    postcode_malformed=0.001, sex_missing=0.002, duplicate_id=0.005,
)  # fmt: skip
HOSPITAL_NOISE = SourceNoise(
    nhs_blank=0.02, nhs_invalid=0.005, name_typo=0.03, nickname=0.05, old_surname=0.5,
    dob_swap=0.005, dob_typo=0.01, stale_postcode=0.5, postcode_format=0.03,
    postcode_malformed=0.003, sex_missing=0.005, duplicate_id=0.01,
)  # fmt: skip
SOCIAL_CARE_NOISE = SourceNoise(
    nhs_blank=0.40, nhs_invalid=0.005, name_typo=0.04, nickname=0.10, old_surname=0.5,
    dob_swap=0.01, dob_typo=0.015, stale_postcode=0.5, postcode_format=0.05,
    postcode_malformed=0.005, sex_missing=0.01, duplicate_id=0.01,
)  # fmt: skip


@dataclass(frozen=True)
class SynthParams:
    population: PopulationParams = field(default_factory=PopulationParams)
    activity: ActivityParams = field(default_factory=ActivityParams)
    noise: dict[str, SourceNoise] = field(
        default_factory=lambda: {
            "gp": GP_NOISE,
            "hospital": HOSPITAL_NOISE,
            "social_care": SOCIAL_CARE_NOISE,
        }
    )
    people_per_lsoa: int = 1600
    people_per_practice: int = 8000
    postcodes_per_lsoa: int = 40


# `--noise harsh`: keying errors at several times the standard rates, and social care
# untraced (no NHS numbers at all), so linkage is scored on data it was not tuned on.
HARSH_NOISE = {
    "gp": SourceNoise(
        nhs_blank=0.05, nhs_invalid=0.01, name_typo=0.05, nickname=0.05, old_surname=0.3,
        dob_swap=0.02, dob_typo=0.05, stale_postcode=0.3, postcode_format=0.05,
        postcode_malformed=0.02, sex_missing=0.05, duplicate_id=0.01,
    ),
    "hospital": SourceNoise(
        nhs_blank=0.2, nhs_invalid=0.02, name_typo=0.12, nickname=0.1, old_surname=0.6,
        dob_swap=0.03, dob_typo=0.08, stale_postcode=0.7, postcode_format=0.1,
        postcode_malformed=0.03, sex_missing=0.05, duplicate_id=0.02,
    ),
    "social_care": SourceNoise(
        nhs_blank=1.0, nhs_invalid=0.0, name_typo=0.15, nickname=0.15, old_surname=0.6,
        dob_swap=0.04, dob_typo=0.1, stale_postcode=0.7, postcode_format=0.1,
        postcode_malformed=0.04, sex_missing=0.05, duplicate_id=0.02,
    ),
}  # fmt: skip
NOISE_PROFILES = ("standard", "harsh")


def params_for(noise: str = "standard") -> SynthParams:
    """The generator's parameters for a noise profile (``standard`` is the default)."""
    if noise == "standard":
        return SynthParams()
    if noise == "harsh":
        return SynthParams(noise=dict(HARSH_NOISE))
    raise ValueError(f"unknown noise profile {noise!r}: use one of {', '.join(NOISE_PROFILES)}")
