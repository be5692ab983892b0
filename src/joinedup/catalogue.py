"""The catalogue: every zone of the data directory, the tables it holds, and who writes it.

One place for where things are. Every stage, gate, privacy scan, benchmark and test
derives its paths and table lists from here; ``tests/test_catalogue.py`` fails if a
module spells a zone's path or a list of the pseudonymised tables out for itself.

Paths are relative to the data directory (``DATA``, ``--data-dir`` or
``JOINEDUP_DATA_DIR``) and ``/``-separated. The repository's own folders (the dbt
project, the DAGs, the linkage model, the GX project) hang off :data:`REPO_ROOT`.

Each zone is written by one stage, in the order the DAG runs them (the DAG is the
only statement of that order: ``dags/joinedup_link_and_build.py``). Where a later
stage must change an earlier zone, :attr:`Zone.amended_by` names the stage and says
why; nothing else writes outside its own zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from joinedup.contracts import TABLES, Table

# The repository: the dbt project root, with dags/, linkage/, expectations/, seeds/.
REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
LINKAGE_MODEL_DIR = REPO_ROOT / "linkage"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
SEEDS_DIR = REPO_ROOT / "seeds"
DBT_PROFILES_FILE = REPO_ROOT / "profiles.yml"


@dataclass(frozen=True)
class Zone:
    """A folder or file of the data directory."""

    name: str
    path: str
    writer: str  # the DAG task (or outside party) that writes it
    holds: str
    # Owner-only (folders 0700, files 0600) whatever the umask: joinedup.atomic applies it.
    private: bool = False
    # (stage, why) for each later stage that must change this zone after its writer.
    amended_by: tuple[tuple[str, str], ...] = ()

    def under(self, data_dir: Path) -> Path:
        return Path(data_dir) / self.path


LANDING = Zone(
    "landing",
    "landing",
    "the data suppliers (outside joinedup)",
    "extracts as delivered, identifiable; belongs to whoever delivers them",
)
# What the data service sends out, written on request between runs (not by a DAG task).
OUTBOX = Zone(
    "outbox",
    "outbox",
    "joinedup opt-outs submission",
    "files to send to a party outside the data service: the NHS numbers landed, for the "
    "national data opt-out service, each with its manifest (identifiable)",
    private=True,
)
VALIDATED = Zone(
    "validated",
    "landing/_validated",
    "ingest",
    "rows that passed their contract, one parquet per landing table (identifiable)",
    private=True,
)
QUARANTINE = Zone(
    "quarantine",
    "quarantine",
    "ingest",
    "rejected rows as sent, with reason, file and line (identifiable)",
    private=True,
)
LEDGER = Zone(
    "ledger",
    "ledger.csv",
    "ingest",
    "row accounting per run and file: received = loaded + quarantined + opted out",
    # unsuppressed counts per file, source and opt-out reason
    private=True,
    amended_by=(
        ("opt_outs", "moves the opted-out rows of each file from loaded to opted out"),
        (
            "remove_linked_opt_outs",
            "moves the rows of records linkage matched to opted-out people to opted out",
        ),
        ("finalise", "checks that every file balances and marks the run finished"),
    ),
)
LEDGER_LOCK = Zone(
    "ledger_lock",
    ".ledger.lock",
    "ingest",
    "an empty file whose lock serialises ledger writers (sources ingest in parallel)",
)
CLEARED = Zone(
    "cleared",
    "landing/_cleared",
    "opt_outs",
    "validated rows minus opted-out records (identifiable)",
    private=True,
)
OPTED_OUT = Zone(
    "opted_out",
    "landing/_opted_out",
    "opt_outs",
    "removed records' demographics and reasons (identifiable; for their encodings only)",
    private=True,
)
RESTRICTED = Zone(
    "restricted",
    "restricted",
    "pseudonymise",
    "encodings of opted-out people and the records linkage matched to them; never published",
    private=True,
    amended_by=(
        ("link", "records the source records it matched to opted-out people"),
        ("remove_linked_opt_outs", "records which of them it took out of pseudonymised/"),
    ),
)
PSEUDONYMISED = Zone(
    "pseudonymised",
    "pseudonymised",
    "pseudonymise",
    "de-identified tables: keyed tokens, linkage encodings, non-identifying attributes",
    # Record-level tokens and Bloom filters: not identifying without the key, but
    # frequent-pattern attacks on Bloom filters need no key.
    private=True,
    amended_by=(
        (
            "remove_linked_opt_outs",
            "an opted-out person's records with no NHS number are only found by linkage, "
            "after pseudonymisation: they, and every event of theirs, are taken out here "
            "before anything reads the zone (the ledger counts them as opted out)",
        ),
    ),
)
LINKED = Zone(
    "linked",
    "linked",
    "link",
    "record -> person map, the trained model, its charts and summary",
    private=True,
)
SPILL = Zone(
    "spill",
    ".tmp",
    "link",
    "DuckDB and Spark spill files of linkage (pseudonymised rows)",
    private=True,
)
QUALITY = Zone(
    "quality",
    "quality",
    "quality_gate_landing",
    "Great Expectations results, volumes per delivery, and Data Docs",
    # GX results quote failing values and unsuppressed volumes
    private=True,
    amended_by=(
        ("quality_gates_inputs", "adds the pseudonymised and linked zones' results"),
        ("quality_gates_marts", "adds the marts' results"),
        ("docs", "renders Data Docs from every result"),
    ),
)
WAREHOUSE = Zone(
    "warehouse",
    "warehouse.duckdb",
    "build_warehouse",
    "the dbt warehouse: staging and intermediate models hold record tokens",
    # record tokens in staging; unsuppressed person-level facts
    private=True,
)
DBT = Zone(
    "dbt",
    "dbt",
    "build_warehouse",
    "dbt's target and logs of the last build",
    # dbt's run results and logs quote the warehouse's rows and counts
    private=True,
)
# The two publications, each for its audience, in the published folder (the data
# directory, or JOINEDUP_PUBLISHED_DIR). The commissioners' file has a folder of its own so
# that a deployment can mount that folder alone into the dashboard (a folder, not the
# file: publish renames a new file into place, and a bind-mounted file keeps the old one).
PUBLISHED = Zone(
    "published",
    "analytics.duckdb",
    "publish",
    "the person-level marts (dim_, fct_), coarsened, for analysts: 0440 to the "
    "JOINEDUP_ANALYSTS_GROUP, else 0400; never readable by others",
)
COMMISSIONING = Zone(
    "commissioning",
    "commissioning/commissioning.duckdb",
    "publish",
    "the suppressed aggregate marts (mart_) and their description, read-only for everyone "
    "(0444): the dashboard's only input",
)
PRIVACY = Zone(
    "privacy",
    "privacy",
    "privacy_report",
    "re-identification risk report and data protection pack (JSON and HTML)",
    # example classes with k < 5, with their dates
    private=True,
)
DBT_DOCS = Zone("dbt_docs", "docs/dbt", "docs", "dbt docs, self-contained")
RUNS = Zone(
    "runs",
    "runs",
    "finalise",
    "one summary per run, with its provenance",
    # unsuppressed opt-out and row counts per file and reason
    private=True,
)
AIRFLOW = Zone(
    "airflow",
    "airflow",
    "joinedup run",
    "the local Airflow home of `joinedup run`: SQLite, logs",
    # XComs (every task's summary), config and logs
    private=True,
)

ZONES: tuple[Zone, ...] = (
    LANDING,
    OUTBOX,
    VALIDATED,
    QUARANTINE,
    LEDGER,
    LEDGER_LOCK,
    CLEARED,
    OPTED_OUT,
    RESTRICTED,
    PSEUDONYMISED,
    LINKED,
    SPILL,
    QUALITY,
    WAREHOUSE,
    DBT,
    PUBLISHED,
    COMMISSIONING,
    PRIVACY,
    DBT_DOCS,
    RUNS,
    AIRFLOW,
)
PRIVATE_ZONES: tuple[str, ...] = tuple(z.path for z in ZONES if z.private)

# Files inside the zones, by the stage that writes them.
OPTED_OUT_RECORDS = f"{OPTED_OUT.path}/records.parquet"  # identifiable, for encodings only
OPTED_OUT_REASONS = f"{OPTED_OUT.path}/reasons.parquet"  # identifiable: record key -> reason
RESTRICTED_OPTED_OUT_ENCODINGS = f"{RESTRICTED.path}/opted_out_encodings.parquet"
# The national data opt-out round trip (joinedup.deidentify.ndop): each submission of the
# NHS numbers landed, as the service reads it, with its manifest beside it ...
NDOP_SUBMISSIONS = f"{OUTBOX.path}/ndop_submission_*.dat"
NDOP_MANIFESTS = f"{OUTBOX.path}/ndop_submission_*.json"
# ... and the service's reply, the numbers that may be used, dropped into landing.
NDOP_REPLY_GLOB = "ndop_reply*.dat"
NDOP_REPLIES = f"{LANDING.path}/opt_outs/{NDOP_REPLY_GLOB}"
# Records of opted-out people found by link (source, record_token) ...
LINKAGE_OPTED_OUT_RECORDS = f"{RESTRICTED.path}/linkage_opted_out_records.parquet"
# ... and those remove_linked_opt_outs has taken out of pseudonymised/.
LINKAGE_OPTED_OUT_APPLIED = f"{RESTRICTED.path}/linkage_opted_out_applied.parquet"
RECORD_PERSON = f"{LINKED.path}/record_person.parquet"
PERSON_IDS = f"{LINKED.path}/person_ids.parquet"  # stable person ids across runs
LINKAGE_MODEL = f"{LINKED.path}/model.json"  # the trained Splink model the run used
LINKAGE_SUMMARY = f"{LINKED.path}/summary.json"
LINKAGE_CHARTS = f"{LINKED.path}/charts"
LINKAGE_EVALUATION = f"{LINKED.path}/evaluation.json"  # against the generator's truth
# The staged files, each beside its published one until publish renames them.
CANDIDATE = f".{PUBLISHED.path}.candidate"
COMMISSIONING_CANDIDATE = f".{Path(COMMISSIONING.path).name}.candidate"
# Both publications, the analysts' first; publish renames each, and the privacy report
# measures each, as one.
PUBLICATIONS: dict[str, Zone] = {"analytics": PUBLISHED, "commissioning": COMMISSIONING}

# What one run writes, whose checksums its run record lists (the ledger and run records
# excepted: they accumulate every run's rows, so no single run made them).
RUN_OUTPUTS: tuple[str, ...] = (
    f"{QUARANTINE.path}/*/*.parquet",
    f"{PSEUDONYMISED.path}/*/*.parquet",
    RECORD_PERSON,
    PERSON_IDS,
    LINKAGE_MODEL,
    LINKAGE_SUMMARY,
    f"{LINKAGE_CHARTS}/*",
    WAREHOUSE.path,
    PUBLISHED.path,
    COMMISSIONING.path,
    f"{DBT_DOCS.path}/*",
)

# Every pseudonymised table of each person source, record grain first; all carry
# record_token. The person sources are the ones that are linked.
PSEUDONYMISED_TABLES: dict[str, tuple[str, ...]] = {
    "gp": ("patients", "events"),
    "hospital": ("patients", "apc_episodes", "ae_attendances"),
    "social_care": ("clients", "events"),
}
PERSON_SOURCES: tuple[str, ...] = tuple(PSEUDONYMISED_TABLES)
# Record-grain table of each person source: one row per source record (what linkage links).
RECORD_TABLES: dict[str, str] = {s: names[0] for s, names in PSEUDONYMISED_TABLES.items()}
# Landing tables whose loaded rows must all arrive, one for one, in pseudonymised/
# (hospital/patients is derived from the episodes and attendances, not delivered).
LANDED_PSEUDONYMISED: dict[str, tuple[str, str]] = {
    f"{s}/{n}": (s, n)
    for s, names in PSEUDONYMISED_TABLES.items()
    for n in names
    if f"{s}/{n}" in TABLES
}
# What dbt's sources read, and the stage that writes each.
WAREHOUSE_INPUTS: dict[str, str] = {
    **{
        f"{PSEUDONYMISED.path}/{s}/{n}.parquet": PSEUDONYMISED.writer
        for s, names in PSEUDONYMISED_TABLES.items()
        for n in names
    },
    # Named by its package: the link task and its linked opt-outs are one stage to rerun.
    RECORD_PERSON: "linkage",
}


def zone(name: str) -> Zone:
    """The zone called ``name``, or a clear error listing the zones there are."""
    for z in ZONES:
        if z.name == name:
            return z
    raise KeyError(f"no zone {name!r} in the catalogue; zones: {', '.join(z.name for z in ZONES)}")


def landing_files(data_dir: Path, table: Table) -> list[Path]:
    """Every delivery file of a table, in name order (the order duplicates are resolved in)."""
    folder = Path(data_dir) / table.folder
    return sorted(p for p in folder.glob(table.file_glob) if p.is_file())


def relative(data_dir: Path, path: Path) -> str:
    """A path as recorded in the ledger and quarantine: relative to the data dir, '/'-separated."""
    try:
        return Path(path).resolve().relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def validated_path(data_dir: Path, table: Table) -> Path:
    return VALIDATED.under(data_dir) / table.source / f"{table.name}.parquet"


def cleared_path(data_dir: Path, table: Table) -> Path:
    return CLEARED.under(data_dir) / table.source / f"{table.name}.parquet"


def quarantine_path(data_dir: Path, table: Table) -> Path:
    return QUARANTINE.under(data_dir) / table.source / f"{table.name}.parquet"


def pseudonymised_path(data_dir: Path, source: str, name: str) -> Path:
    return PSEUDONYMISED.under(data_dir) / source / f"{name}.parquet"


def ndop_submission_path(data_dir: Path, stamp: str) -> Path:
    """The submission file of the national data opt-out round trip written at ``stamp``."""
    return Path(data_dir) / NDOP_SUBMISSIONS.replace("*", stamp)


def ndop_manifest_path(data_dir: Path, stamp: str) -> Path:
    return Path(data_dir) / NDOP_MANIFESTS.replace("*", stamp)


# Ingest's per-delivery cache (ingest/cache.py): each landing file's checked rows, kept
# inside the validated zone because they are as identifiable as the file itself.
INGEST_CACHE = f"{VALIDATED.path}/_cache"


def ingest_cache_dir(data_dir: Path, table: Table) -> Path:
    return Path(data_dir) / INGEST_CACHE / table.source / table.name
