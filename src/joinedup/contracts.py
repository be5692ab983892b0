"""The landing-zone data contracts of docs/contracts.md, as code.

One definition per landing table. The synthetic generator writes files from
these definitions, ingest validates against them, and the docs and tests read
them. Change a contract only on purpose, and then here, in docs/contracts.md and in
the tests at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """How a column's text is interpreted and validated at ingest."""

    TEXT = "text"  # free text, trimmed
    CODE = "code"  # one of a closed set of codes
    NHS_NUMBER = "nhs_number"  # 10 digits, modulus-11 check digit
    POSTCODE = "postcode"  # UK postcode, normalised to upper case with one space
    DATE = "date"  # YYYY-MM-DD
    DATETIME = "datetime"  # ISO 8601
    INT = "int"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind = Kind.TEXT
    # A blank value makes the row unusable (it is quarantined).
    required: bool = False
    # Closed code set; a value outside it is quarantined when it decides meaning.
    codes: frozenset[str] | None = None
    # A raw personal identifier: it never leaves the landing zone.
    identifier: bool = False
    # A defective identifier is nulled and flagged rather than quarantining the row.
    nullable_if_defective: bool = False
    description: str = ""
    # Carried by the national layouts (joinedup.layouts), absent from the generic one:
    # a generic file need not have it, and the column is then blank.
    optional: bool = False


@dataclass(frozen=True)
class Table:
    source: str
    name: str
    columns: tuple[Column, ...]
    # Columns that identify one row; a second row with the same key is quarantined.
    key: tuple[str, ...] = ()
    # (organisation column, local id column) of the source record a row belongs to.
    record: tuple[str, str] | None = None
    description: str = ""
    # Every column a generic (joinedup layout) file must carry, in order: the optional
    # national columns are not among them.
    column_names: tuple[str, ...] = field(init=False)
    # Every column ingest validates and loads, optional ones included.
    all_column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns if not c.optional)
        object.__setattr__(self, "column_names", names)
        object.__setattr__(self, "all_column_names", tuple(c.name for c in self.columns))

    @property
    def qualified_name(self) -> str:
        return f"{self.source}/{self.name}"

    @property
    def folder(self) -> str:
        """Folder under the data dir's landing/ where its files are delivered."""
        from joinedup.catalogue import LANDING  # the catalogue imports these contracts

        return f"{LANDING.path}/{self.source}"

    @property
    def file_glob(self) -> str:
        return f"{self.name}*.csv"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified_name} has no column {name!r}")

    @property
    def identifier_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.identifier)


# --- code sets (NHS data dictionary where one exists) ------------------------

SEX_CODES = frozenset({"0", "1", "2", "9"})

ADMISSION_METHOD_ELECTIVE = frozenset({"11", "12", "13"})
ADMISSION_METHOD_EMERGENCY = frozenset({"21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D"})
ADMISSION_METHOD_OTHER = frozenset({"31", "32", "81", "82", "83", "99"})
ADMISSION_METHOD_CODES = (
    ADMISSION_METHOD_ELECTIVE | ADMISSION_METHOD_EMERGENCY | ADMISSION_METHOD_OTHER
)

ADMISSION_SOURCE_CODES = frozenset(
    {"19", "29", "39", "40", "49", "51", "52", "53", "54", "65", "66", "79", "85", "87", "88",
     "98", "99"}
)  # fmt: skip

DISCHARGE_DESTINATION_CODES = frozenset(
    {"19", "29", "30", "37", "38", "48", "49", "50", "51", "52", "53", "54", "65", "66", "79",
     "84", "85", "87", "88", "98", "99"}
)  # fmt: skip

AE_DISPOSAL_CODES = frozenset({"admitted", "discharged", "referred", "transferred", "left", "died"})

SOCIAL_CARE_EVENT_TYPES = frozenset({"request", "assessment", "service"})

SOCIAL_CARE_SERVICE_TYPES = frozenset(
    {
        "Residential care",
        "Nursing care",
        "Home care",
        "Reablement",
        "Direct payment",
        "Day care",
        "Equipment and adaptations",
        "Short term residential",
    }
)

SOCIAL_CARE_ROUTES = frozenset(
    {"Discharge from hospital", "Community", "Diversion from hospital", "Self-funder"}
)

# GP type 1 objection (dissent from secondary use of GP identifiable data) and
# its withdrawal; the latest-dated of the two wins.
SNOMED_TYPE1_OBJECTION = "827241000000103"
SNOMED_TYPE1_WITHDRAWN = "827261000000102"


# --- shared column definitions -----------------------------------------------


def _national(*columns: tuple[str, Kind, str]) -> tuple[Column, ...]:
    """Columns only the national layouts deliver (optional in a generic file)."""
    return tuple(Column(name, kind, description=d, optional=True) for name, kind, d in columns)


def _demographics() -> tuple[Column, ...]:
    """The identifying columns every person-level extract carries."""
    return (
        Column(
            "nhs_number",
            Kind.NHS_NUMBER,
            identifier=True,
            nullable_if_defective=True,
            description="NHS number, 10 digits with modulus-11 check digit; often blank",
        ),
        Column("given_name", identifier=True, description="given (first) name"),
        Column("family_name", identifier=True, description="family name (surname)"),
        Column(
            "date_of_birth",
            Kind.DATE,
            identifier=True,
            nullable_if_defective=True,
            description="date of birth, YYYY-MM-DD",
        ),
        Column(
            "sex",
            Kind.CODE,
            codes=SEX_CODES,
            nullable_if_defective=True,
            description="1 male, 2 female, 9 indeterminate, 0 not known; blank allowed",
        ),
        Column(
            "postcode",
            Kind.POSTCODE,
            identifier=True,
            nullable_if_defective=True,
            description="postcode of usual address",
        ),
    )


GP_PATIENTS = Table(
    source="gp",
    name="patients",
    columns=(
        Column("practice_code", required=True, description="GP practice ODS code"),
        Column("gp_patient_id", required=True, description="practice's local patient id"),
        *_demographics(),
        Column("registration_date", Kind.DATE, description="date registered at the practice"),
        Column("deregistration_date", Kind.DATE, description="date left; blank if registered"),
    ),
    key=("practice_code", "gp_patient_id"),
    record=("practice_code", "gp_patient_id"),
    description="One row per patient registration at a GP practice.",
)  # fmt: skip

GP_EVENTS = Table(
    source="gp",
    name="events",
    columns=(
        Column("practice_code", required=True),
        Column("gp_patient_id", required=True),
        Column("event_date", Kind.DATE, required=True, description="date of the coded entry"),
        Column("snomed_code", required=True, description="SNOMED CT concept id"),
    ),
    key=("practice_code", "gp_patient_id", "event_date", "snomed_code"),
    record=("practice_code", "gp_patient_id"),
    description="Coded entries in the GP record (diagnoses, consultations, objections).",
)

APC_EPISODES = Table(
    source="hospital",
    name="apc_episodes",
    columns=(
        Column("provider_code", required=True, description="hospital provider ODS code"),
        Column("hospital_patient_id", required=True, description="provider's local patient id"),
        *_demographics(),
        Column("spell_id", required=True, description="hospital provider spell id"),
        Column("episode_number", Kind.INT, required=True, description="episode order in the spell"),
        Column("admission_date", Kind.DATE, required=True),
        Column("discharge_date", Kind.DATE, description="blank while the patient is in hospital"),
        Column("admission_method", Kind.CODE, required=True, codes=ADMISSION_METHOD_CODES),
        Column("admission_source", Kind.CODE, codes=ADMISSION_SOURCE_CODES),
        Column("discharge_destination", Kind.CODE, codes=DISCHARGE_DESTINATION_CODES),
        Column("primary_diagnosis", description="ICD-10 code"),
        Column("primary_procedure", description="OPCS-4 code; blank if none"),
        *_national(
            ("episode_start_date", Kind.DATE, "episode start date"),
            ("episode_end_date", Kind.DATE, "episode end date"),
            ("discharge_method", Kind.TEXT, "discharge method (NHS Data Dictionary)"),
            ("patient_classification", Kind.TEXT, "patient classification"),
            ("main_specialty", Kind.TEXT, "main specialty of the consultant"),
            ("secondary_diagnoses", Kind.TEXT, "ICD-10 codes in positions 2 on, '; '-joined"),
            ("secondary_procedures", Kind.TEXT, "OPCS-4 codes in positions 2 on, '; '-joined"),
            ("discharge_ready_date", Kind.DATE, "Discharge Ready Date (CDS 6-3)"),
        ),
    ),
    key=("provider_code", "spell_id", "episode_number"),
    record=("provider_code", "hospital_patient_id"),
    description="Admitted patient care: one row per consultant episode.",
)  # fmt: skip

AE_ATTENDANCES = Table(
    source="hospital",
    name="ae_attendances",
    columns=(
        Column("provider_code", required=True),
        Column("hospital_patient_id", required=True),
        *_demographics(),
        Column("attendance_id", required=True),
        Column("arrival_datetime", Kind.DATETIME, required=True),
        Column("departure_datetime", Kind.DATETIME),
        Column("disposal", Kind.CODE, codes=AE_DISPOSAL_CODES),
        *_national(
            ("department_type", Kind.TEXT, "emergency department type (ECDS), 01 to 05"),
            ("arrival_mode_snomed", Kind.TEXT, "arrival mode, SNOMED CT (ECDS)"),
            ("chief_complaint_snomed", Kind.TEXT, "chief complaint, SNOMED CT (ECDS)"),
            ("acuity_snomed", Kind.TEXT, "acuity, SNOMED CT (ECDS)"),
            ("discharge_status_snomed", Kind.TEXT, "discharge status, SNOMED CT (ECDS)"),
            ("discharge_destination_snomed", Kind.TEXT, "discharge destination, SNOMED CT"),
            ("diagnosis_snomed", Kind.TEXT, "first diagnosis, SNOMED CT (ECDS)"),
        ),
    ),
    key=("provider_code", "attendance_id"),
    record=("provider_code", "hospital_patient_id"),
    description="Emergency department attendances: one row per attendance.",
)

SOCIAL_CARE_CLIENTS = Table(
    source="social_care",
    name="clients",
    columns=(
        Column("la_code", required=True, description="local authority ONS code"),
        Column("la_person_id", required=True, description="council's local person id"),
        *_demographics(),
    ),
    key=("la_code", "la_person_id"),
    record=("la_code", "la_person_id"),
    description="People known to adult social care: one row per client.",
)

SOCIAL_CARE_EVENTS = Table(
    source="social_care",
    name="events",
    columns=(
        Column("la_code", required=True),
        Column("la_person_id", required=True),
        Column("event_type", Kind.CODE, required=True, codes=SOCIAL_CARE_EVENT_TYPES),
        Column("service_type", Kind.CODE, codes=SOCIAL_CARE_SERVICE_TYPES),
        Column("route_of_access", Kind.CODE, codes=SOCIAL_CARE_ROUTES),
        Column("event_start_date", Kind.DATE, required=True),
        Column("event_end_date", Kind.DATE),
        *_national(
            ("client_type", Kind.TEXT, "CLD client type: Service User or Carer"),
            ("event_reference", Kind.TEXT, "the council's event reference (CLD)"),
            ("cld_service_type", Kind.TEXT, "service type as CLD codes it"),
            ("service_component", Kind.TEXT, "CLD service component"),
            ("delivery_mechanism", Kind.TEXT, "CLD delivery mechanism (e.g. Direct Payment)"),
            ("assessment_type", Kind.TEXT, "CLD assessment type"),
            ("event_outcome", Kind.TEXT, "CLD event outcome"),
            ("primary_support_reason", Kind.TEXT, "CLD primary support reason"),
            ("accommodation_status", Kind.TEXT, "CLD accommodation status (ASCOF 2E)"),
        ),
    ),
    key=("la_code", "la_person_id", "event_type", "event_start_date", "service_type"),
    record=("la_code", "la_person_id"),
    description="Client-level social care events (CLD style): requests, assessments, services.",
)

NATIONAL_DATA_OPT_OUT = Table(
    source="opt_outs",
    name="national_data_opt_out",
    columns=(Column("nhs_number", Kind.NHS_NUMBER, required=True, identifier=True),),
    key=("nhs_number",),
    description="NHS numbers of people with a national data opt-out.",
)

POSTCODES = Table(
    source="reference",
    name="postcodes",
    columns=(
        Column("postcode", Kind.POSTCODE, required=True),
        Column("lsoa_code", required=True, description="Lower layer Super Output Area"),
        Column("imd_decile", Kind.INT, required=True, description="IMD decile, 1 most deprived"),
        Column("la_code", required=True),
    ),
    key=("postcode",),
    description="Postcode to LSOA, IMD decile and local authority lookup.",
)

TABLES: dict[str, Table] = {
    t.qualified_name: t
    for t in (
        GP_PATIENTS,
        GP_EVENTS,
        APC_EPISODES,
        AE_ATTENDANCES,
        SOCIAL_CARE_CLIENTS,
        SOCIAL_CARE_EVENTS,
        NATIONAL_DATA_OPT_OUT,
        POSTCODES,
    )
}

# The table that carries each person source's demographics, per source.
DEMOGRAPHIC_TABLES: dict[str, tuple[Table, ...]] = {
    "gp": (GP_PATIENTS,),
    "hospital": (APC_EPISODES, AE_ATTENDANCES),
    "social_care": (SOCIAL_CARE_CLIENTS,),
}
