"""The commissioner marts' metadata: one description, in the dbt models' meta, for every reader.

The repository's dbt project is parsed for real (``dbt parse``, cached by the content of
its files). What each consumer makes of a mart comes from that one description: the
dashboard's marts, the differencing audit's and secondary suppression's view of them
(through the published file's ``_joinedup_marts``, as stage_analytics writes it), and the
columns the quality gate's suites check. A column's meta changed in the manifest changes
what all of them read.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import duckdb
import pytest

from joinedup.privacy import differencing
from joinedup.warehouse import marts

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dashboard package

from dashboard import data as dashboard_data

FLOWS = "model.joinedup.mart_pathway_flows"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return marts.parse_manifest()


def _published(path: Path, manifest: dict) -> duckdb.DuckDBPyConnection:
    """A file as stage_analytics leaves it: empty marts with their columns, and their
    description from ``manifest``."""
    specs = marts.from_manifest(manifest)
    con = duckdb.connect(str(path))
    for spec in specs.values():
        columns = ", ".join(f'"{c}" varchar' for c in spec.column_names)
        con.execute(f'create table "{spec.name}" ({columns})')
    marts.write_table(con, specs.values())
    return con


def _readers(con: duckdb.DuckDBPyConnection) -> dict:
    """What each consumer reads of mart_pathway_flows from a published file."""
    described = marts.read_table(con)
    (audit,) = [m for m in differencing.aggregate_marts(con) if m.name == "mart_pathway_flows"]
    spec = described["mart_pathway_flows"]
    return {
        "dashboard": dashboard_data.dashboard_marts(described)["flows"],
        "audit": audit,
        # What the marts gate's suites check (src/joinedup/quality/marts.py).
        "gate": {
            "counts": list(spec.counts),
            "rates": list(spec.rates),
            "statistics": list(spec.statistics),
            "dimensions": list(spec.identity),
        },
    }


def test_the_project_describes_the_three_commissioner_marts(manifest: dict) -> None:
    found = marts.from_manifest(manifest)
    assert {m: s.dashboard for m, s in found.items()} == {
        "mart_acsc_admissions": None,
        "mart_bcf_metrics": None,
        "mart_discharge_to_social_care": "social_care",
        "mart_pathway_flows": "flows",
        "mart_readmissions": "readmissions",
        "mart_still_at_home_91_days": None,
        "mart_readmissions_30_day": None,
        "mart_ascof": None,
    }
    flows = found["mart_pathway_flows"]
    assert flows.distinct_counts == ("people",)
    assert flows.margins == (("from_event_transitions", "transitions", "to_event_type"),)
    assert flows.keys == ("from_event_type", "to_event_type")
    # What secondary suppression withholds with each count.
    assert flows.related == {
        "transitions": ("people", "pct_of_from_event", "median_days_between"),
        "from_event_transitions": ("pct_of_from_event",),
    }
    assert found["mart_discharge_to_social_care"].related == {
        "discharges": ("discharges_to_social_care", "social_care_rate_pct"),
        "discharges_to_social_care": (
            "discharges_to_social_care_within_7_days",
            "social_care_rate_pct",
            "within_7_days_pct",
            "median_days_to_social_care",
        ),
        "discharges_to_social_care_within_7_days": ("within_7_days_pct",),
    }
    assert {(s.suppression_threshold, s.rounding_base) for s in found.values()} == {(8, 5)}


def test_a_changed_column_meta_changes_what_every_consumer_reads(
    manifest: dict, tmp_path: Path
) -> None:
    changed = copy.deepcopy(manifest)
    column = changed["nodes"][FLOWS]["columns"]["pct_of_from_event"]
    # pct_of_from_event described as a statistic of transitions instead of a rate.
    column["config"]["meta"] = column["meta"] = {"role": "statistic", "of": "transitions"}

    with _published(tmp_path / "before.duckdb", manifest) as con:
        before = _readers(con)
    with _published(tmp_path / "after.duckdb", changed) as con:
        after = _readers(con)

    assert before["dashboard"].rates == {
        "pct_of_from_event": ("transitions", "from_event_transitions")
    }
    assert "pct_of_from_event" not in before["dashboard"].statistics
    assert after["dashboard"].rates == {}
    assert "pct_of_from_event" in after["dashboard"].statistics

    assert before["audit"].spec.related["from_event_transitions"] == ("pct_of_from_event",)
    assert "from_event_transitions" not in after["audit"].spec.related
    assert "pct_of_from_event" in after["audit"].spec.related["transitions"]

    assert before["gate"]["rates"] == ["pct_of_from_event"]
    assert after["gate"]["rates"] == []
    assert after["gate"]["statistics"] == ["pct_of_from_event", "median_days_between"]
    assert before["gate"]["counts"] == after["gate"]["counts"]


def test_a_count_of_distinct_people_is_additive_nowhere(manifest: dict, tmp_path: Path) -> None:
    with _published(tmp_path / "published.duckdb", manifest) as con:
        read = _readers(con)
    assert "people" not in read["dashboard"].counts
    assert read["dashboard"].statistics[:2] == ("people", "people_suppressed")
    assert read["audit"].counts == ("transitions", "people", "from_event_transitions")
    assert read["audit"].additive == ("transitions", "from_event_transitions")


def test_the_published_description_reads_back_as_written(manifest: dict, tmp_path: Path) -> None:
    with _published(tmp_path / "published.duckdb", manifest) as con:
        assert marts.read_table(con) == marts.from_manifest(manifest)
        rows = con.execute(
            f"select role, disclosure from {marts.TABLE} "
            "where mart = 'mart_readmissions' and column_name = 'emergency_readmissions'"
        ).fetchall()
    assert rows == [
        (
            "count",
            "withheld (null, flag set) from 1 to threshold-1, else rounded; withheld with "
            "index_discharges",
        )
    ]


@pytest.mark.parametrize(
    ("column", "meta", "message"),
    [
        ("transitions", {}, r"column transitions: meta.role is None"),
        ("transitions", {"role": "count", "of": "people"}, r"do not apply to role count"),
        ("pct_of_from_event", {"role": "rate", "numerator": "transitions"}, r"rate pct_of_from"),
        ("people_suppressed", {"role": "flag", "of": "transitions"}, r"flag people_suppressed"),
        ("people", {"role": "count", "withheld_with": ["nobody"]}, r"withheld_with names nobody"),
    ],
)
def test_a_mart_described_wrongly_is_refused_naming_the_column(
    manifest: dict, column: str, meta: dict, message: str
) -> None:
    changed = copy.deepcopy(manifest)
    entry = changed["nodes"][FLOWS]["columns"][column]
    entry["config"]["meta"] = entry["meta"] = meta
    with pytest.raises(marts.MartMetadataError, match=message) as raised:
        marts.from_manifest(changed)
    assert "mart_pathway_flows.yml" in str(raised.value)


def test_a_described_model_that_skips_secondary_suppression_is_refused(manifest: dict) -> None:
    changed = copy.deepcopy(manifest)
    changed["nodes"][FLOWS]["config"]["materialized"] = "table"
    with pytest.raises(marts.MartMetadataError, match="not materialized disclosure_controlled"):
        marts.from_manifest(changed)


SOCIAL_CARE = "model.joinedup.mart_discharge_to_social_care"
READMISSIONS = "model.joinedup.mart_readmissions"


def test_the_shared_discharge_count_is_declared_in_both_marts(manifest: dict) -> None:
    described = marts.from_manifest(manifest)
    assert described["mart_discharge_to_social_care"].twins == (
        ("discharges", "mart_readmissions", "index_discharges"),
    )
    assert described["mart_readmissions"].twins == (
        ("index_discharges", "mart_discharge_to_social_care", "discharges"),
    )
    assert described["mart_pathway_flows"].twins == ()
    # The published description carries it, so the file says which counts are shared.
    column = described["mart_readmissions"].column("index_discharges")
    assert column.meta["same_as"] == [
        {"mart": "mart_discharge_to_social_care", "column": "discharges"}
    ]
    assert "mart_discharge_to_social_care.discharges" in column.disclosure
    # And every mart says the minimum group its statistics are published from.
    assert {m.statistic_min_group for m in described.values()} == {10}


@pytest.mark.parametrize(
    ("same_as", "message"),
    [
        ("mart_readmissions", r"must be a non-empty list"),
        ([{"mart": "mart_readmissions"}], r"must have exactly mart: and column:"),
        ([{"mart": "mart_nowhere", "column": "x"}], r"there is no commissioner mart mart_nowhere"),
        ([{"mart": "mart_readmissions", "column": "readmission_rate_pct"}], r"has no count"),
        (
            [{"mart": "mart_readmissions", "column": "emergency_readmissions"}],
            r"does not declare it back",
        ),
        (
            [{"mart": "mart_pathway_flows", "column": "transitions"}],
            r"twin cells need the same breakdown",
        ),
        (
            [{"mart": "mart_discharge_to_social_care", "column": "discharges_to_social_care"}],
            r"names its own mart",
        ),
    ],
)
def test_a_wrong_same_as_is_refused_naming_the_file_and_column(
    manifest: dict, same_as: object, message: str
) -> None:
    changed = copy.deepcopy(manifest)
    entry = changed["nodes"][SOCIAL_CARE]["columns"]["discharges"]
    entry["config"]["meta"] = entry["meta"] = {"role": "count", "same_as": same_as}
    with pytest.raises(marts.MartMetadataError, match=message) as raised:
        marts.from_manifest(changed)
    assert "mart_discharge_to_social_care.yml: column discharges" in str(raised.value)
