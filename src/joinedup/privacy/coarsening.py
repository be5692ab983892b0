"""Coarsening of the analysts' person-level marts: which published columns each option withholds.

Coarsening here means publishing only the coarser of two columns the marts already
carry: the age band instead of the month-year of birth (and the exact ages derived from
it), the local authority and IMD quintile instead of the LSOA and IMD decile. A withheld
column stays in the mart, typed and documented, but holds only nulls, so analysts' SQL
keeps working and nothing downstream changes shape.

This table is the one definition. ``warehouse.build_warehouse`` passes it to dbt as the
var ``withheld_columns`` (the marts' columns go through the macro ``coarsened``), the
privacy report re-measures risk as if an option were on, and the data protection pack
lists the columns as coarsened.

There is no MSOA option: the postcode reference of docs/contracts.md carries LSOA, IMD
decile and LA only, and an MSOA made up from the synthetic LSOA codes would not exist
for a real extract. The local authority is the next coarser area that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# (setting, value) -> {mart: columns withheld}; the settings' defaults withhold nothing.
WITHHELD: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("coarsen_birth", "age_band"): {
        "dim_person": ("birth_month", "age"),
        # An exact age on a dated event gives the birth month back within a month or two.
        "fct_care_events": ("age_at_event",),
        "fct_hospital_spells": ("age_at_admission",),
        "fct_discharges_to_social_care": ("age_at_discharge",),
    },
    ("coarsen_area", "la"): {
        # The decile belongs to the LSOA: within one LA it narrows the LSOA down again.
        "dim_person": ("lsoa_code", "imd_decile"),
    },
}

# What an analyst still has in place of the withheld columns.
KEPT_INSTEAD: dict[tuple[str, str], str] = {
    ("coarsen_birth", "age_band"): "age_band",
    ("coarsen_area", "la"): "la_code, imd_quintile",
}

DEFAULTS: dict[str, str] = {"coarsen_birth": "month", "coarsen_area": "lsoa"}


@dataclass(frozen=True)
class Coarsening:
    """The coarsening options in effect (``JOINEDUP_COARSEN_BIRTH``, ``JOINEDUP_COARSEN_AREA``)."""

    birth: str = "month"
    area: str = "lsoa"

    @classmethod
    def from_settings(cls, settings: Any = None) -> Coarsening:
        if settings is None:
            from joinedup.settings import Settings

            settings = Settings()
        return cls(birth=settings.coarsen_birth, area=settings.coarsen_area)

    @property
    def options(self) -> dict[str, str]:
        return {"coarsen_birth": self.birth, "coarsen_area": self.area}

    def withheld(self) -> dict[str, list[str]]:
        """Mart -> columns published as nulls under these options."""
        out: dict[str, list[str]] = {}
        for option in self.options.items():
            for mart, columns in WITHHELD.get(option, {}).items():
                out.setdefault(mart, []).extend(c for c in columns if c not in out.get(mart, []))
        return out

    def dbt_vars(self) -> dict[str, Any]:
        return {"withheld_columns": self.withheld()}

    def describe(self) -> str:
        on = [f"{k}={v}" for k, v in self.options.items() if DEFAULTS[k] != v]
        return ", ".join(on) if on else "none (month-year of birth and LSOA published)"


def withheld_by(mart: str, column: str) -> tuple[str, str] | None:
    """The (setting, value) that withholds ``mart.column``, if any option does."""
    for option, marts in WITHHELD.items():
        if column in marts.get(mart, ()):
            return option
    return None


def alternatives(current: Coarsening) -> dict[str, Coarsening]:
    """The stricter option sets not yet in effect, for the report's what-if re-measurement."""
    out: dict[str, Coarsening] = {}
    birth = Coarsening("age_band", current.area)
    area = Coarsening(current.birth, "la")
    both = Coarsening("age_band", "la")
    for candidate in (birth, area, both):
        if candidate != current and candidate.describe() not in out:
            out[candidate.describe()] = candidate
    return out
