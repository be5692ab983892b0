"""The data protection pack: what the pipeline holds, where, for how long and for whom.

Generated from the code and the last run, never written by hand, so it cannot drift
from what the pipeline does:

* the data inventory per zone: every landing column (``joinedup.contracts``) with what
  pseudonymisation does to it, found from the columns the run actually wrote (kept
  under its name, tokenised into keyed encodings, coarsened, or dropped); the
  pseudonymised, linked and published columns, the last with their dbt descriptions
  and whether a coarsening option withheld them;
* the opt-out and linkage figures of the run, each passed through the disclosure rule;
* what is kept in the identifiable zones (landing, quarantine, restricted) and how old;
* who can read each zone: the owner-only zones of ``joinedup.privacy.permissions`` and the
  file modes on disk.

It supports a DPIA; it is not one. What only people can decide (the lawful basis, the
retention periods, who is given the accounts) is listed as open questions.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from joinedup.catalogue import (
    CLEARED,
    LINKAGE_EVALUATION,
    LINKAGE_SUMMARY,
    OPTED_OUT,
    PRIVATE_ZONES,
    PSEUDONYMISED,
    RECORD_PERSON,
    RECORD_TABLES,
    VALIDATED,
)
from joinedup.contracts import DEMOGRAPHIC_TABLES, TABLES, Table
from joinedup.deidentify.pseudonymise import RECORD_ATTRIBUTES
from joinedup.ingest.ledger import read_ledger
from joinedup.privacy.coarsening import Coarsening, withheld_by
from joinedup.privacy.kanon import PERSON_TABLE, QUASI_IDENTIFIERS, SCENARIOS
from joinedup.privacy.rules import publish_count

KEPT, TOKENISED, COARSENED, DROPPED = "kept", "tokenised", "coarsened", "dropped"
PUBLISHED = "published"

# What pseudonymisation derives from an identifier instead of keeping it: the date of
# birth becomes a month-year, the postcode the area attributes of the postcode lookup.
COARSENED_AT_PSEUDONYMISATION: dict[str, tuple[str, ...]] = {
    "date_of_birth": ("birth_month",),
    "postcode": ("lsoa_code", "imd_decile", "residence_la_code"),
}
# The postcode lookup's own columns, under the names pseudonymise gives them.
LOOKUP_RENAMES: dict[str, str] = {"la_code": "residence_la_code"}
assert {c for cs in COARSENED_AT_PSEUDONYMISATION.values() for c in cs} <= set(RECORD_ATTRIBUTES), (
    "COARSENED_AT_PSEUDONYMISATION names a column pseudonymise does not write"
)

MART_PREFIXES = ("dim_", "fct_", "mart_")

# Zones that are not owner-only, with who they are for (the owner-only ones are the
# pipeline account's: joinedup.privacy.permissions.PRIVATE_ZONES).
SHARED_ZONES: tuple[tuple[str, str, str], ...] = (
    ("landing", "extracts as received (identifiable)", "whoever delivers them; the pipeline"),
    ("ledger.csv", "row counts per file and run", "data engineers"),
    ("warehouse.duckdb", "dbt staging, intermediate and marts (record tokens)", "data engineers"),
    ("quality", "Great Expectations results and Data Docs", "data engineers"),
    ("docs", "dbt documentation", "everyone"),
    ("runs", "one summary per run", "data engineers, IG lead"),
    ("privacy", "this pack and the re-identification risk report", "IG lead, data engineers"),
)

# How long the code keeps each zone's contents (it deletes nothing on a schedule).
RETENTION_BY_CODE: tuple[tuple[str, str], ...] = (
    ("landing", "never changed or deleted by the pipeline: kept until someone removes them"),
    (VALIDATED.path, "rewritten whole every run: the current deliveries only"),
    (CLEARED.path, "rewritten whole every run: the current deliveries only"),
    (OPTED_OUT.path, "rewritten whole every run: the current deliveries only"),
    ("quarantine", "rewritten per table on every ingest: the current deliveries' rejects"),
    ("restricted", "rewritten every run"),
    ("pseudonymised", "rewritten every run"),
    ("linked", "rewritten every run; person ids carried over from the previous run"),
    ("ledger.csv", "one set of rows per run, kept for every run"),
    ("runs", "one file per run, kept for every run"),
)

OPEN_QUESTIONS: tuple[str, ...] = (
    "The lawful basis and the common-law duty of confidentiality basis for each source.",
    "How long landing extracts and quarantine files are kept, and who deletes them: the "
    "pipeline deletes neither.",
    "Who is given the pipeline account (the owner-only zones), who is in the analysts' "
    "group (JOINEDUP_ANALYSTS_GROUP) that reads analytics.duckdb, and how that access is "
    "reviewed.",
    "Whether the person-level marts' re-identification risk (privacy report) is "
    "acceptable for analysts under their agreements, or coarsening must be switched on.",
    "Where the pseudonymisation key is held, who can read it and how it is rotated.",
    "Whether the small-number rule and its differencing findings (privacy report) meet "
    "the publication policy for commissioners.",
)


def _mode(path: Path) -> str | None:
    try:
        return stat.filemode(path.stat().st_mode)
    except OSError:
        return None


def _record_table(table: Table) -> str | None:
    """The record-grain pseudonymised table a landing table's demographics feed, if any."""
    if table in DEMOGRAPHIC_TABLES.get(table.source, ()):
        return f"{table.source}/{RECORD_TABLES[table.source]}"
    return None


def _parquet_columns(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """``source/table`` -> (column, type) of every pseudonymised file the run wrote."""
    out: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(PSEUDONYMISED.under(data_dir).glob("*/*.parquet")):
        schema = pl.read_parquet_schema(path)
        out[f"{path.parent.name}/{path.stem}"] = [(c, str(t)) for c, t in schema.items()]
    return out


def _targets(table: Table, written: Mapping[str, list[tuple[str, str]]]) -> list[str]:
    names = []
    own = f"{table.source}/{table.name}"
    if own in written:
        names.append(own)
    record = _record_table(table)
    if record and record in written and record not in names:
        names.append(record)
    if table.source == "reference":
        # The postcode lookup feeds the area attributes of every record-grain table.
        names = [f"{s}/{t}" for s, t in RECORD_TABLES.items() if f"{s}/{t}" in written]
    return names


def _fate(table: Table, column: str, written: Mapping[str, list[tuple[str, str]]]) -> dict:
    """What pseudonymisation does to one landing column, from the columns it wrote."""
    targets = _targets(table, written)
    found: dict[str, list[str]] = {}
    if table.source == "reference":
        return _lookup_fate(column, targets, written)
    for target in targets:
        cols = [c for c, _t in written[target]]
        hits: list[tuple[str, str]] = []
        if table.record and column == table.record[1] and "record_token" in cols:
            hits.append((TOKENISED, "record_token"))
        if table.record and column == table.record[0] and column not in cols:
            hits += [(KEPT, "org_code")] if "org_code" in cols else []
        if column in cols:
            hits.append((KEPT, column))
        hits += [
            (TOKENISED, c)
            for c in cols
            if c.startswith(column + "_") and c.endswith(("_token", "_bloom"))
        ]
        if column.endswith("_id") and f"{column[:-3]}_token" in cols:
            hits.append((TOKENISED, f"{column[:-3]}_token"))
        hits += [(COARSENED, c) for c in COARSENED_AT_PSEUDONYMISATION.get(column, ()) if c in cols]
        for kind, c in hits:
            found.setdefault(kind, [])
            entry = f"{PSEUDONYMISED.path}/{target}.{c}"
            if entry not in found[kind]:
                found[kind].append(entry)
    if table.source == "opt_outs":
        return {
            "treatment": [DROPPED],
            "becomes": [],
            "note": "used to remove opted-out people; never leaves landing/",
        }
    if not found:
        return {"treatment": [DROPPED], "becomes": []}
    order = [KEPT, TOKENISED, COARSENED]
    return {
        "treatment": [k for k in order if k in found],
        "becomes": [c for k in order for c in found.get(k, [])],
    }


def _lookup_fate(
    column: str, targets: list[str], written: Mapping[str, list[tuple[str, str]]]
) -> dict:
    """The postcode lookup's columns: its values are attached to records by postcode."""
    name = LOOKUP_RENAMES.get(column, column)
    becomes = [
        f"{PSEUDONYMISED.path}/{t}.{name}" for t in targets if name in {c for c, _ in written[t]}
    ]
    if becomes:
        return {"treatment": [KEPT], "becomes": becomes}
    return {"treatment": [DROPPED], "becomes": [], "note": "the lookup key; never copied"}


def landing_inventory(data_dir: Path) -> list[dict[str, Any]]:
    """Every landing column of the contracts with what pseudonymisation does to it."""
    written = _parquet_columns(data_dir)
    rows = []
    for name, table in TABLES.items():
        for column in table.columns:
            fate = _fate(table, column.name, written)
            rows.append(
                {
                    "table": name,
                    "column": column.name,
                    "identifier": column.identifier,
                    "description": column.description,
                    **fate,
                }
            )
    return rows


def pseudonymised_inventory(data_dir: Path) -> list[dict[str, Any]]:
    """Every column the run wrote to pseudonymised/, with the landing columns it comes from."""
    landing = landing_inventory(data_dir)
    origin: dict[str, list[str]] = {}
    for row in landing:
        for target in row["becomes"]:
            origin.setdefault(target, []).append(f"{row['table']}.{row['column']}")
    rows = []
    for table, columns in _parquet_columns(data_dir).items():
        for column, dtype in columns:
            key = f"{PSEUDONYMISED.path}/{table}.{column}"
            rows.append(
                {
                    "table": table,
                    "column": column,
                    "type": dtype,
                    "from": sorted(set(origin.get(key, []))),
                    "note": "" if key in origin else _added_note(column),
                }
            )
    return rows


def _added_note(column: str) -> str:
    if column.endswith("_status"):
        return "added: whether the landing value was valid, missing or defective"
    if column == "source":
        return "added: which source the record is from"
    return "added by the pipeline"


def linked_inventory(data_dir: Path) -> list[dict[str, Any]]:
    path = Path(data_dir) / RECORD_PERSON
    if not path.exists():
        return []
    notes = {
        "source": "the record's source",
        "record_token": "the record's keyed token (as in pseudonymised/)",
        "person_id": "pseudonym given by linkage, stable across runs; analysts join on it",
    }
    return [
        {
            "table": RECORD_PERSON.removesuffix(".parquet"),
            "column": c,
            "type": str(t),
            "note": notes.get(c, ""),
        }
        for c, t in pl.read_parquet_schema(path).items()
    ]


def analytics_inventory(
    con: duckdb.DuckDBPyConnection, threshold: int, base: int
) -> list[dict[str, Any]]:
    """Every published column with its description and what protects it."""
    rows = con.execute(
        """
        select table_name, column_name, data_type, coalesce(comment, '')
        from duckdb_columns()
        where schema_name = 'main' and database_name = current_database()
        order by table_name, column_index
        """
    ).fetchall()
    columns_of: dict[str, set[str]] = {}
    for table, column, _t, _c in rows:
        columns_of.setdefault(table, set()).add(column)
    out = []
    for table, column, dtype, comment in rows:
        if not table.startswith(MART_PREFIXES):
            continue
        aggregate = "breakdown" in columns_of[table]
        notes = []
        treatment = PUBLISHED
        option = withheld_by(table, column)
        if column == "person_id":
            treatment = "pseudonym"
        elif aggregate and f"{column}_suppressed" in columns_of[table]:
            treatment = "suppressed"
            notes.append(f"1-{threshold - 1} withheld, others rounded to {base}")
        elif option is not None and _all_null(con, table, column):
            treatment = COARSENED
            notes.append(f"withheld: {option[0]}={option[1]}")
        if option is not None and treatment != COARSENED:
            notes.append(f"withheld when {option[0]}={option[1]}")
        if not aggregate and column in QUASI_IDENTIFIERS and table == PERSON_TABLE:
            notes.append("quasi-identifier")
        notes += [
            f"quasi-identifier with the demographics ({s.title})"
            for s in SCENARIOS
            if column in s.columns and (s.table or PERSON_TABLE) == table
        ]
        out.append(
            {
                "table": table,
                "level": "aggregate" if aggregate else "person",
                "column": column,
                "type": dtype,
                "treatment": treatment,
                "note": "; ".join(notes),
                "description": comment,
            }
        )
    return out


def _all_null(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    quoted = '"' + column.replace('"', '""') + '"'
    tab = '"' + table.replace('"', '""') + '"'
    return con.execute(f"select count({quoted}) = 0 from {tab}").fetchone()[0]


def _published(n: Any, threshold: int, base: int) -> dict[str, Any]:
    return publish_count(int(n) if n is not None else None, threshold, base)


def opt_out_figures(
    data_dir: Path,
    run_id: str | None,
    stages: Mapping[str, Any],
    threshold: int,
    base: int,
) -> dict[str, Any]:
    """Rows removed for opt-out, per table and reason, after the disclosure rule."""
    ledger = read_ledger(data_dir)
    if run_id is not None:
        ledger = ledger.filter(pl.col("run_id") == run_id)
    per_table = (
        ledger.group_by("source", "table")
        .agg(pl.col("rows_received").sum(), pl.col("rows_opted_out").sum())
        .sort("source", "table")
    )
    out: dict[str, Any] = {
        "rows_opted_out_by_table": [
            {
                "table": f"{r['source']}/{r['table']}",
                "rows_received": _published(r["rows_received"], threshold, base),
                "rows_opted_out": _published(r["rows_opted_out"], threshold, base),
            }
            for r in per_table.iter_rows(named=True)
        ]
    }
    linked = stages.get("linked_opt_outs") or {}
    by_reason = linked.get("rows_opted_out_by_reason")
    if by_reason:
        out["rows_opted_out_by_reason"] = {
            reason: _published(n, threshold, base) for reason, n in sorted(by_reason.items())
        }
    removed = stages.get("opt_outs") or {}
    for key in ("national_opt_out_numbers", "type1_objecting_records", "type1_withdrawn"):
        if key in removed:
            out[key] = _published(removed[key], threshold, base)
    if removed.get("records_removed_by_reason"):
        out["records_removed_by_reason"] = {
            reason: _published(n, threshold, base)
            for reason, n in sorted(removed["records_removed_by_reason"].items())
        }
    return out


def linkage_figures(data_dir: Path, threshold: int, base: int) -> dict[str, Any]:
    path = Path(data_dir) / LINKAGE_SUMMARY
    if not path.exists():
        return {}
    s = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, Any] = {
        "run_id": s.get("run_id"),
        "records": _published(s.get("records"), threshold, base),
        "persons": _published(s.get("persons"), threshold, base),
        "records_linked_across_sources_share": s.get("records_linked_across_sources_share"),
        "records_by_source": {
            k: _published(v, threshold, base) for k, v in (s.get("records_in") or {}).items()
        },
        "records_removed_for_opt_out": {
            k: _published(v, threshold, base)
            for k, v in (s.get("records_removed_for_opt_out") or {}).items()
        },
        "persons_by_records_linked": {
            k: _published(v, threshold, base)
            for k, v in (s.get("cluster_size_distribution") or {}).items()
        },
        "thresholds": s.get("thresholds", {}),
        "trained_this_run": s.get("trained_this_run"),
    }
    evaluation = Path(data_dir) / LINKAGE_EVALUATION
    if evaluation.exists():
        e = json.loads(evaluation.read_text(encoding="utf-8"))
        out["evaluation_against_synthetic_truth"] = {
            k: e[k] for k in ("precision", "recall", "f1") if k in e
        }
    return out


def retention(data_dir: Path) -> list[dict[str, Any]]:
    """What each identifiable or record-level zone holds now and how the code keeps it."""
    rows = []
    for rel, rule in RETENTION_BY_CODE:
        path = Path(data_dir) / rel
        if rel == "landing":
            # The deliveries only: the pipeline's own folders in landing/ start with _.
            files = [p for p in path.glob("*/*") if not p.parent.name.startswith("_")]
        elif path.is_file():
            files = [path]
        else:
            files = list(path.rglob("*")) if path.exists() else []
        rows.append({"zone": rel, "kept": rule, **_contents_of([f for f in files if f.is_file()])})
    return rows


def _contents_of(files: list[Path]) -> dict[str, Any]:
    if not files:
        return {"files": 0, "bytes": 0, "oldest": None, "newest": None}
    times = [p.stat().st_mtime for p in files]
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "oldest": datetime.fromtimestamp(min(times), UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "newest": datetime.fromtimestamp(max(times), UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def access(data_dir: Path, publications: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Who each zone is for, and the mode it has on disk now.

    ``publications`` are the privacy report's: {publication: its file, mode as published,
    readers}; a candidate's mode on disk is its staged 0400, so the mode it is published
    with is given beside it.
    """
    rows = [
        {
            "zone": zone,
            "holds": "",
            "readers": "the pipeline's account only (data engineers)",
            "enforced": "owner-only: folders 0700, files 0600 (joinedup.privacy.permissions)",
            "mode": _mode(Path(data_dir) / zone),
        }
        for zone in PRIVATE_ZONES
    ]
    for name, pub in publications.items():
        path = Path(pub.get("published_as") or pub["database"])
        rows.append(
            {
                "zone": str(path),
                "publication": name,
                "holds": pub["holds"],
                "readers": pub["readers"],
                "enforced": f"file mode {pub['mode']}"
                + (f", group {pub['group']}" if pub.get("group") else ""),
                "mode": _mode(path),
                "published_mode": stat.filemode(stat.S_IFREG | int(pub["mode"], 8)),
            }
        )
    for zone, holds, readers in SHARED_ZONES:
        rows.append(
            {
                "zone": zone,
                "holds": holds,
                "readers": readers,
                "enforced": "not enforced",
                "mode": _mode(Path(data_dir) / zone),
            }
        )
    return rows


def key_status() -> dict[str, Any]:
    """Where the pseudonymisation key comes from; never the key itself."""
    from joinedup.settings import DEMO_KEY, MissingKeyError, Settings

    settings = Settings()
    try:
        key = settings.key()
    except MissingKeyError:
        return {"configured": False, "source": None, "demo_key": False}
    source = (
        "JOINEDUP_PSEUDONYMISATION_KEY"
        if settings.pseudonymisation_key is not None
        else "JOINEDUP_PSEUDONYMISATION_KEY_FILE"
    )
    return {"configured": True, "source": source, "demo_key": key == DEMO_KEY.encode()}


def build_pack(
    data_dir: Path,
    analytics: Path,
    *,
    run_id: str | None,
    stages: Mapping[str, Any],
    settings: Mapping[str, Any],
    coarsening: Coarsening,
    threshold: int,
    base: int,
    publications: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The pack for the two publications the privacy report measured (``publications``:
    each file measured, where it is published, its mode and readers).

    ``analytics`` is the analysts' file measured. Every published column is listed with
    its publication.
    """
    data_dir = Path(data_dir)
    published = []
    for name, pub in publications.items():
        path = analytics if name == "analytics" else Path(pub["database"])
        with duckdb.connect(str(path), read_only=True) as con:
            published += [
                {"publication": name, **row} for row in analytics_inventory(con, threshold, base)
            ]
    landing = landing_inventory(data_dir)
    # A raw identifier kept under its own name past landing would be a breach of the design.
    leaks = [
        f"{r['table']}.{r['column']}" for r in landing if r["identifier"] and KEPT in r["treatment"]
    ]
    return {
        "title": "joinedup data protection pack",
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "run_id": run_id,
        "data_dir": str(data_dir),
        "note": (
            "Generated from the code and the last run to support a DPIA; it is not a DPIA. "
            "Figures are passed through the same small-number rule as the commissioner marts."
        ),
        "settings": {**settings, "coarsening": coarsening.describe()},
        "key": key_status(),
        "identifiers_kept_past_landing": leaks,
        "inventory": {
            "landing": landing,
            "pseudonymised": pseudonymised_inventory(data_dir),
            "linked": linked_inventory(data_dir),
            "published": published,
        },
        "opt_outs": opt_out_figures(data_dir, run_id, stages, threshold, base),
        "linkage": linkage_figures(data_dir, threshold, base),
        "retention": retention(data_dir),
        "publications": {
            name: {k: pub[k] for k in ("holds", "mode", "group", "readers", "sha256")}
            | {"file": pub.get("published_as") or pub["database"]}
            for name, pub in publications.items()
        },
        "access": access(data_dir, publications),
        "open_questions": list(OPEN_QUESTIONS),
    }
