"""The national layouts (HES APC, ECDS, CLD) and local mappings, on hand-written files.

The files under ``tests/fixtures/layouts/national/`` were written by hand from the
published specifications (not by the generator), a few rows each: two monthly HES APC
deliveries where the second refreshes the financial year to date, one ECDS month, and
two quarterly CLD submissions where the second resends an open service, closes another
and adds a review. ``variant/`` holds a trust's own episode extract (renamed columns,
dd/mm/yyyy dates, M/F sex codes) and the mapping file that describes it.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from joinedup.catalogue import quarantine_path, validated_path
from joinedup.contracts import AE_ATTENDANCES, APC_EPISODES, SOCIAL_CARE_CLIENTS, SOCIAL_CARE_EVENTS
from joinedup.ingest import ingest_source
from joinedup.ingest.errors import LayoutFileError, MalformedHeaderError
from joinedup.ingest.layouts import MAPPINGS_ENV, LayoutError, load_mappings, shipped_layouts
from joinedup.ingest.ledger import read_ledger

FIXTURES = Path(__file__).parent / "fixtures" / "layouts"
TODAY = date(2026, 1, 1)
RUN = "layouts-run"


def _land(data_dir: Path, *names: str, folder: str = "national") -> Path:
    for name in names:
        source = "social_care" if name.startswith("cld") else "hospital"
        target = data_dir / "landing" / source
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / folder / name, target / name)
    return data_dir


def _loaded(data_dir: Path, table) -> pl.DataFrame:
    return pl.read_parquet(validated_path(data_dir, table))


def _quarantined(data_dir: Path, table) -> pl.DataFrame:
    return pl.read_parquet(quarantine_path(data_dir, table))


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = _land(
        tmp_path_factory.mktemp("hospital"),
        "hes_apc_2025-05.csv",
        "hes_apc_2025-06.csv",
        "ecds_2025-06.csv",
    )
    ingest_source(data, "hospital", RUN, today=TODAY)
    return data


@pytest.fixture(scope="module")
def social_care(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = _land(tmp_path_factory.mktemp("cld"), "cld_2025q1.csv", "cld_2025q2.csv")
    ingest_source(data, "social_care", RUN, today=TODAY)
    return data


def test_every_shipped_layout_loads_and_feeds_real_landing_tables() -> None:
    layouts = shipped_layouts()
    assert set(layouts) == {"hes_apc", "ecds", "cld"}
    assert list(layouts["cld"].tables) == ["social_care/clients", "social_care/events"]
    # HES numbered positions: 20 diagnoses and 24 procedures, only the first required.
    names = layouts["hes_apc"].column_names
    assert "diag_4_20" in names and "opertn_4_24" in names
    assert not layouts["hes_apc"].column("diag_4_01").optional
    assert layouts["hes_apc"].column("diag_4_02").optional


def test_a_year_to_date_refresh_replaces_the_months_it_covers(hospital: Path) -> None:
    ledger = read_ledger(hospital).filter(pl.col("table") == "apc_episodes")
    by_file = {r["file"]: r for r in ledger.iter_rows(named=True)}
    may, june = (
        by_file["landing/hospital/hes_apc_2025-05.csv"],
        by_file["landing/hospital/hes_apc_2025-06.csv"],
    )
    assert may["status"] == "replaced" and may["replaced_by"] == june["file"]
    assert may["rows_received"] == 0
    assert june["period"] == "2025-04..2025-06" and june["replaces"] == may["file"]
    assert (june["rows_received"], june["rows_loaded"], june["rows_quarantined"]) == (4, 4, 0)


def test_hes_episodes_ingest_to_the_landing_episodes_with_every_position(hospital: Path) -> None:
    episodes = _loaded(hospital, APC_EPISODES).sort("spell_id", "episode_number")
    assert episodes.select("spell_id", "episode_number").rows() == [
        ("S000001", 1),
        ("S000001", 2),
        ("S000002", 1),
        ("S000003", 1),
    ]
    last = episodes.row(1, named=True)
    assert last["provider_code"] == "RXA" and last["hospital_patient_id"] == "P0001"
    assert last["admission_date"] == date(2025, 4, 3)
    assert last["discharge_date"] == date(2025, 4, 10)
    assert last["discharge_destination"] == "19" and last["admission_method"] == "21"
    assert last["primary_diagnosis"] == "J441"
    assert last["secondary_diagnoses"] == "I10X; E119"
    assert last["primary_procedure"] == "E851"
    assert last["discharge_ready_date"] == date(2025, 4, 9)
    assert last["given_name"] is None and last["family_name"] is None  # HES has no names
    # The refresh closed the spell the May delivery had open.
    closed = episodes.row(2, named=True)
    assert closed["discharge_date"] == date(2025, 5, 20)
    assert closed["secondary_procedures"] == "Y751"
    assert episodes.row(3, named=True)["discharge_destination"] == "65"


def test_ecds_attendances_get_their_disposal_from_status_then_destination(hospital: Path) -> None:
    attendances = _loaded(hospital, AE_ATTENDANCES).sort("attendance_id")
    assert attendances.select("attendance_id", "disposal").rows() == [
        ("EC000001", "admitted"),  # treatment completed, discharged to a ward
        ("EC000002", "discharged"),  # to home
        ("EC000003", "left"),  # left before treatment completed, no destination
        ("EC000004", "died"),  # died in the department
    ]
    first = attendances.row(0, named=True)
    assert str(first["arrival_datetime"]) == "2025-06-02 08:15:00"
    assert str(attendances.row(1, named=True)["departure_datetime"]) == "2025-06-06 01:05:30"
    assert first["discharge_destination_snomed"] == "306706006"
    assert first["department_type"] == "01" and first["diagnosis_snomed"] == "195967001"


def test_a_cld_resubmission_supersedes_and_closes_earlier_events(social_care: Path) -> None:
    events = _loaded(social_care, SOCIAL_CARE_EVENTS).sort("la_person_id", "event_start_date")
    assert events.select(
        "la_person_id", "event_type", "service_type", "event_start_date", "event_end_date"
    ).rows() == [
        ("LA-0001", "request", None, date(2025, 6, 10), date(2025, 6, 10)),
        ("LA-0001", "assessment", None, date(2025, 6, 12), date(2025, 6, 20)),
        ("LA-0001", "service", "Residential care", date(2025, 6, 21), None),
        ("LA-0001", "assessment", None, date(2025, 9, 15), date(2025, 9, 15)),
        ("LA-0002", "service", "Reablement", date(2025, 5, 2), date(2025, 6, 13)),
    ]
    service = events.row(2, named=True)
    # The Q2 version (its event reference changed: identity does not rely on it).
    assert service["event_reference"] == "S-31b" and service["source_file"].endswith("q2.csv")
    assert service["cld_service_type"] == "Long Term Support: Residential Care"
    assert service["delivery_mechanism"] == "CASSR Managed Personal Budget"
    assert events.row(0, named=True)["route_of_access"] == "Discharge from hospital"
    assert events.row(4, named=True)["event_outcome"] == "Service ended as planned"

    superseded = _quarantined(social_care, SOCIAL_CARE_EVENTS)
    assert superseded.select("file", "line", "reason").rows() == [
        (
            "landing/social_care/cld_2025q1.csv",
            4,
            "superseded_by:landing/social_care/cld_2025q2.csv:2",
        ),
        (
            "landing/social_care/cld_2025q1.csv",
            5,
            "superseded_by:landing/social_care/cld_2025q2.csv:3",
        ),
    ]


def test_cld_clients_take_the_latest_submission_and_the_ledger_balances(social_care: Path) -> None:
    clients = _loaded(social_care, SOCIAL_CARE_CLIENTS).sort("la_person_id")
    assert clients.select("la_person_id", "sex", "postcode").rows() == [
        ("LA-0001", "1", "TS1 2AB"),  # the review in Q2 gives the latest address
        ("LA-0002", "2", "TS6 6FF"),
    ]
    assert clients.row(1, named=True)["nhs_number_status"] == "blank"
    ledger = read_ledger(social_care).sort("table", "file")
    assert ledger.select(
        "table", "file", "rows_received", "rows_loaded", "rows_quarantined"
    ).rows() == [
        ("clients", "landing/social_care/cld_2025q1.csv", 4, 0, 4),
        ("clients", "landing/social_care/cld_2025q2.csv", 3, 2, 1),
        ("events", "landing/social_care/cld_2025q1.csv", 4, 2, 2),
        ("events", "landing/social_care/cld_2025q2.csv", 3, 3, 0),
    ]


def _without_provenance(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("source_file", "source_line").sort("spell_id", "episode_number")


def test_a_mapped_local_variant_ingests_to_the_same_episodes(
    hospital: Path, variant: Path, tmp_path: Path
) -> None:
    data = tmp_path
    ingest_source(data, "hospital", RUN, today=TODAY)
    national = _loaded(hospital, APC_EPISODES)
    assert _without_provenance(_loaded(data, APC_EPISODES)).equals(_without_provenance(national))


@pytest.fixture
def variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The trust's own extract, landed, with its mapping configured: the file's path."""
    monkeypatch.setenv(MAPPINGS_ENV, str(FIXTURES / "variant" / "mappings"))
    _land(tmp_path, "rxa_episodes_2025-06.csv", folder="variant")
    return tmp_path / "landing" / "hospital" / "rxa_episodes_2025-06.csv"


def test_an_unmapped_local_code_is_quarantined_with_file_line_and_column(
    variant: Path, tmp_path: Path
) -> None:
    data, path = tmp_path, variant
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",F,", ",X,")
    path.write_text("\n".join(lines) + "\n")
    ingest_source(data, "hospital", RUN, today=TODAY)
    bad = _quarantined(data, APC_EPISODES)
    assert bad.select("file", "line", "reason").rows() == [
        ("landing/hospital/rxa_episodes_2025-06.csv", 4, "unknown_code:gender")
    ]


def test_a_missing_column_names_the_file_and_the_mapping_to_edit(
    variant: Path, tmp_path: Path
) -> None:
    data, path = tmp_path, variant
    path.write_text(path.read_text().replace("episode_order", "episode_seq", 1))
    with pytest.raises(LayoutFileError) as caught:
        ingest_source(data, "hospital", RUN, today=TODAY)
    message = str(caught.value)
    assert "landing/hospital/rxa_episodes_2025-06.csv" in message
    assert "missing column(s) episode_order" in message
    assert "hes_apc_rxa_local.yaml" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mapping: x\nrevision: 1\nextends: hes_ae\nfiles: x*.csv\n", "not a shipped layout"),
        (
            "mapping: x\nrevision: 1\nextends: hes_apc\nfiles: x*.csv\nrename: {a: nope}\n",
            "rename.a: 'nope' is not a column of hes_apc",
        ),
        (
            "mapping: x\nrevision: 1\nextends: hes_apc\nfiles: x*.csv\nformats: {sex: '%d'}\n",
            "formats.sex: sex is not a date column",
        ),
        (
            "mapping: x\nrevision: 1\nextends: hes_apc\nfiles: x*.csv\nformats: {dob: '%d/%m'}\n",
            "does not read back a full date",
        ),
        ("mapping: x\nrevision: 1\nextends: hes_apc\n", "missing key 'files'"),
        ("mapping: x\nrevision: [1\n", "is not valid YAML at line 3, column 1"),
    ],
)
def test_a_bad_mapping_file_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "local.yaml").write_text(text)
    with pytest.raises(LayoutError) as caught:
        load_mappings(tmp_path)
    assert str(tmp_path / "local.yaml") in str(caught.value)
    assert expected in str(caught.value)


def test_a_file_two_layouts_claim_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "greedy.yaml").write_text(
        "mapping: greedy\nrevision: 1\nextends: ecds\nfiles: hes_apc*.csv\n"
    )
    monkeypatch.setenv(MAPPINGS_ENV, str(mappings))
    data = _land(tmp_path / "data", "hes_apc_2025-06.csv")
    # The ECDS mapping feeds ae_attendances, hes_apc apc_episodes: one file cannot be both.
    with pytest.raises(MalformedHeaderError, match=r"hes_apc_2025-06\.csv"):
        ingest_source(data, "hospital", RUN, today=TODAY)
