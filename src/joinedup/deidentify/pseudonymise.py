"""The ``pseudonymise`` stage: turn opted-out-cleared landing data into de-identified tables.

Output, ``DATA/pseudonymised/<source>/<table>.parquet``:

* record grain (one row per source record), the tables linkage reads:
  ``gp/patients``, ``hospital/patients``, ``social_care/clients``. Each has the
  same leading columns (``source``, ``org_code``, ``record_token``), the linkage
  encodings of :data:`encodings.ENCODING_SCHEMA`, then analytic attributes that
  identify nobody: ``birth_month`` (YYYY-MM, never the day), ``lsoa_code``,
  ``imd_decile``, ``residence_la_code`` (from the postcode lookup), and per
  source its own attributes (GP registration dates).
* event grain: ``gp/events``, ``hospital/apc_episodes``,
  ``hospital/ae_attendances``, ``social_care/events``: ``record_token``, the
  organisation code, tokenised local event ids and the event attributes and
  dates. No encodings: linkage works on records, analysts join events to people
  through ``record_token``.

The date-of-birth and postcode encodings are sealed (XORed with a per-record
keyed mask, :meth:`Encoder.seal`), so that without the key no two records'
values are equal and the ``birth_month`` and ``lsoa_code`` beside them cannot
decode them; linkage unseals them with the key. Every file carries the key
fingerprint in its Parquet metadata (``joinedup.key_fingerprint``), so later
stages refuse outputs made under another key.

The demo key (``DEMO_KEY``) is public: with it every token could be reversed.
It is refused unless the data is the generator's (:func:`check_demo_key`).

Names, NHS numbers, full dates of birth, full postcodes and local patient ids
never reach this zone. Every output is sorted on its content so that the same
input gives byte-identical files.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import polars as pl

from joinedup.atomic import atomic_path
from joinedup.catalogue import (
    OPTED_OUT_RECORDS,
    RESTRICTED_OPTED_OUT_ENCODINGS,
    cleared_path,
    pseudonymised_path,
    validated_path,
)
from joinedup.contracts import (
    AE_ATTENDANCES,
    APC_EPISODES,
    GP_EVENTS,
    GP_PATIENTS,
    POSTCODES,
    SOCIAL_CARE_CLIENTS,
    SOCIAL_CARE_EVENTS,
    Table,
)
from joinedup.deidentify.encodings import (
    ENCODING_SCHEMA,
    KEY_FINGERPRINT_METADATA,
    LINKAGE_ENCODINGS,
    Encoder,
    encode_demographics,
)
from joinedup.ingest.errors import IngestError
from joinedup.ingest.records import hospital_records, one_row_records
from joinedup.settings import DEMO_KEY, MissingKeyError, Settings

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 16

# Leading columns of every record-grain table, then ENCODING_SCHEMA, then these.
RECORD_HEAD: dict[str, pl.DataType] = {
    "source": pl.String(),
    "org_code": pl.String(),
    "record_token": pl.String(),
}
RECORD_ATTRIBUTES: dict[str, pl.DataType] = {
    "birth_month": pl.String(),
    "lsoa_code": pl.String(),
    "imd_decile": pl.Int64(),
    "residence_la_code": pl.String(),
}
RECORD_SCHEMA = RECORD_HEAD | ENCODING_SCHEMA | RECORD_ATTRIBUTES
GP_EXTRA: dict[str, pl.DataType] = {
    "registration_date": pl.Date(),
    "deregistration_date": pl.Date(),
}


def resolve_key(key: bytes | None) -> bytes:
    """The key given, else the one from settings; a clear :class:`MissingKeyError` otherwise."""
    if key is None:
        return Settings().key()
    if len(key) < MIN_KEY_BYTES:
        raise MissingKeyError(
            "the pseudonymisation key is missing or shorter than 16 bytes: set "
            "JOINEDUP_PSEUDONYMISATION_KEY or JOINEDUP_PSEUDONYMISATION_KEY_FILE."
        )
    return key


# The generator's reserved ranges (joinedup.synth.reference): NHS numbers beginning 99,
# never issued to patients, and postcode areas beginning J, which no UK postcode has.
SYNTHETIC_NHS_PREFIX = "99"
SYNTHETIC_POSTCODE_PREFIX = "J"


class DemoKeyError(MissingKeyError):
    """The public demo key was given for data that is not the generator's."""


def check_demo_key(key: bytes, frames: list[tuple[str, pl.DataFrame]]) -> None:
    """Refuse the public demo key unless every identifier is in the generator's ranges.

    ``frames`` are (name, rows) with ``nhs_number`` and ``postcode`` columns. With the
    demo key anyone can recompute every token, so it may only ever touch synthetic
    data: every NHS number present must begin 99 and every postcode J (after trimming,
    any case). One real identifier is enough to refuse the whole run.
    """
    if key != DEMO_KEY.encode():
        return
    for name, rows in frames:
        outside = rows.select(
            nhs=(
                pl.col("nhs_number").str.strip_chars().str.len_chars().gt(0)
                & ~pl.col("nhs_number").str.strip_chars().str.starts_with(SYNTHETIC_NHS_PREFIX)
            ).sum(),
            postcode=(
                pl.col("postcode").str.strip_chars().str.len_chars().gt(0)
                & ~pl.col("postcode")
                .str.strip_chars()
                .str.to_uppercase()
                .str.starts_with(SYNTHETIC_POSTCODE_PREFIX)
            ).sum(),
        ).row(0, named=True)
        if outside["nhs"] or outside["postcode"]:
            raise DemoKeyError(
                f"the demo pseudonymisation key is public and only for the generator's "
                f"synthetic data, but {name} has {outside['nhs']} NHS number(s) outside "
                f"the synthetic range ({SYNTHETIC_NHS_PREFIX}...) and {outside['postcode']} "
                f"postcode(s) outside it ({SYNTHETIC_POSTCODE_PREFIX}...). Set "
                "JOINEDUP_PSEUDONYMISATION_KEY_FILE to a file holding a secret key "
                "(chmod 600) and unset JOINEDUP_PSEUDONYMISATION_KEY."
            )


def _read_cleared(data_dir: Path, table: Table, columns: list[str] | None = None) -> pl.DataFrame:
    """A table with opt-outs removed; refuse stale or missing input rather than bypass opt-outs."""
    path = cleared_path(data_dir, table)
    validated = validated_path(data_dir, table)
    if not path.exists():
        raise IngestError(
            f"{table.qualified_name}: no opt-out-cleared data ({path}); run remove_opt_outs for "
            "this run before pseudonymise."
        )
    if validated.exists() and validated.stat().st_mtime_ns > path.stat().st_mtime_ns:
        raise IngestError(
            f"{table.qualified_name}: validated data is newer than its opt-out-cleared copy; "
            "run remove_opt_outs again before pseudonymise."
        )
    return pl.read_parquet(path, columns=columns)


def postcode_lookup(data_dir: Path) -> pl.DataFrame:
    path = validated_path(data_dir, POSTCODES)
    schema = {"postcode": pl.String(), **RECORD_ATTRIBUTES}
    schema.pop("birth_month")
    if not path.exists():
        log.warning("no validated postcode lookup: lsoa_code and imd_decile will be null")
        return pl.DataFrame(schema=schema)
    return (
        pl.read_parquet(path)
        .select("postcode", "lsoa_code", "imd_decile", pl.col("la_code").alias("residence_la_code"))
        .cast(schema)
    )


def _record_grain(
    demographics: pl.DataFrame,
    encoder: Encoder,
    lookup: pl.DataFrame,
    tokens: pl.DataFrame,
    key: bytes,
) -> pl.DataFrame:
    check_demo_key(key, [(f"the {demographics['source'].first()} records", demographics)])
    record_tokens = demographics.select("org_code", "local_id").join(
        tokens, on=["org_code", "local_id"], how="left", maintain_order="left"
    )["record_token"]
    encoded = encode_demographics(demographics, encoder, record_tokens)
    area = demographics.select("postcode").join(
        lookup, on="postcode", how="left", maintain_order="left"
    )
    return encoder.seal(
        pl.concat([encoded, area.drop("postcode")], how="horizontal")
        .select(list(RECORD_SCHEMA))
        .cast(RECORD_SCHEMA)
    )


def record_token_map(
    encoder: Encoder, source: str, tables: list[tuple[Table, pl.DataFrame]]
) -> pl.DataFrame:
    """(org_code, local_id, record_token) for every record in any table of one source.

    Computed once per source, so a record's token is not recomputed for each of
    its tables (a million GP records also appear in five million GP events).
    """
    keys = pl.concat(
        [rows.select(pl.col(t.record[0]).alias("org_code"), pl.col(t.record[1]).alias("local_id"))
         for t, rows in tables]
    ).unique()  # fmt: skip
    messages = keys.select(
        pl.concat_str(pl.lit(f"{source}|"), "org_code", pl.lit("|"), "local_id")
    ).to_series()
    return keys.with_columns(record_token=encoder.record_tokens(messages))


def _record_token(tokens: pl.DataFrame, table: Table, rows: pl.DataFrame) -> pl.Series:
    org, local = table.record
    keys = rows.select(pl.col(org).alias("org_code"), pl.col(local).alias("local_id"))
    joined = keys.join(tokens, on=["org_code", "local_id"], how="left", maintain_order="left")
    return joined["record_token"]


def _event_token(encoder: Encoder, rows: pl.DataFrame, org: str, kind: str, col: str) -> pl.Series:
    messages = rows.select(
        pl.concat_str(pl.lit("hospital|"), pl.col(org), pl.lit(f"|{kind}|"), pl.col(col))
    ).to_series()
    return encoder.event_tokens(messages)


_LOCAL_IDS = frozenset({"event_reference"})


def _events(
    encoder: Encoder, tokens: pl.DataFrame, table: Table, rows: pl.DataFrame
) -> pl.DataFrame:
    org = table.record[0]
    token = _record_token(tokens, table, rows)
    if table is APC_EPISODES:
        out = rows.select(
            pl.col(org),
            spell_token=_event_token(encoder, rows, org, "spell", "spell_id"),
            episode_number=pl.col("episode_number"),
            **{c: pl.col(c) for c in (
                "admission_date", "discharge_date", "admission_method", "admission_source",
                "discharge_destination", "primary_diagnosis", "primary_procedure",
            )},
        )  # fmt: skip
    elif table is AE_ATTENDANCES:
        out = rows.select(
            pl.col(org),
            attendance_token=_event_token(encoder, rows, org, "attendance", "attendance_id"),
            arrival_datetime=pl.col("arrival_datetime"),
            departure_datetime=pl.col("departure_datetime"),
            disposal=pl.col("disposal"),
        )
    elif table is GP_EVENTS:
        out = rows.select(pl.col(org), pl.col("event_date"), pl.col("snomed_code"))
    elif table is SOCIAL_CARE_EVENTS:
        out = rows.select(
            pl.col(org),
            *[pl.col(c) for c in (
                "event_type", "service_type", "route_of_access", "event_start_date",
                "event_end_date",
            )],
        )  # fmt: skip
    else:
        raise ValueError(f"{table.qualified_name} is not an event table")
    # The national layouts' extra columns are codes and dates that identify nobody; blank
    # when the delivery was in the generic layout. The council's event reference is a local
    # id nothing downstream reads (CLD event identity is settled at landing), so it stays.
    carried = [c.name for c in table.columns if c.optional and c.name not in _LOCAL_IDS]
    out = out.with_columns(rows.select(carried)).insert_column(0, token)
    # Input is in a deterministic (file, line) order, so a stable sort on the record and
    # the event's date is enough for byte-identical output, and much cheaper than all columns.
    when = {
        GP_EVENTS.qualified_name: "event_date",
        APC_EPISODES.qualified_name: "admission_date",
        AE_ATTENDANCES.qualified_name: "arrival_datetime",
        SOCIAL_CARE_EVENTS.qualified_name: "event_start_date",
    }[table.qualified_name]
    return out.sort(["record_token", when], nulls_last=True, maintain_order=True)


def write_keyed(frame: pl.DataFrame, target: Path, encoder: Encoder) -> Path:
    """Write ``frame`` (as atomic.write_parquet does) naming the key fingerprint in its metadata."""
    with atomic_path(target) as tmp:
        frame.rechunk().write_parquet(
            tmp,
            compression="zstd",
            statistics=False,
            metadata={KEY_FINGERPRINT_METADATA: encoder.fingerprint},
        )
    return target


def _write(
    frame: pl.DataFrame, data_dir: Path, source: str, name: str, summary: dict, encoder: Encoder
) -> None:
    started = time.perf_counter()
    write_keyed(frame, pseudonymised_path(data_dir, source, name), encoder)
    summary[f"{source}/{name}"] = frame.height
    log.info(
        "pseudonymised %s/%s: %d rows written in %.2fs",
        source,
        name,
        frame.height,
        time.perf_counter() - started,
    )


def pseudonymise(data_dir: Path, key: bytes | None, run_id: str) -> dict:
    """Write every pseudonymised table and the restricted opted-out encodings.

    ``key`` is the pseudonymisation secret (``Settings().key()`` when None); it is
    never logged or written. Reads only ``landing/_cleared`` (opt-outs removed),
    never the validated tables, so this stage cannot bypass opt-outs.
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    key = resolve_key(key)
    encoder = Encoder(key)
    lookup = postcode_lookup(data_dir)
    rows: dict[str, int] = {}

    gp = _read_cleared(data_dir, GP_PATIENTS)
    gp_events = _read_cleared(data_dir, GP_EVENTS)
    tokens = record_token_map(encoder, "gp", [(GP_PATIENTS, gp), (GP_EVENTS, gp_events)])
    gp_records = _record_grain(one_row_records(GP_PATIENTS, gp), encoder, lookup, tokens, key)
    gp_records = pl.concat(
        [gp_records, gp.select(list(GP_EXTRA)).cast(GP_EXTRA)], how="horizontal"
    ).sort(["org_code", "record_token"])
    _write(gp_records, data_dir, "gp", "patients", rows, encoder)
    _write(_events(encoder, tokens, GP_EVENTS, gp_events), data_dir, "gp", "events", rows, encoder)
    del gp, gp_events, gp_records

    apc = _read_cleared(data_dir, APC_EPISODES)
    ae = _read_cleared(data_dir, AE_ATTENDANCES)
    tokens = record_token_map(encoder, "hospital", [(APC_EPISODES, apc), (AE_ATTENDANCES, ae)])
    hospital = _record_grain(hospital_records(apc, ae), encoder, lookup, tokens, key)
    _write(
        hospital.sort(["org_code", "record_token"]), data_dir, "hospital", "patients", rows, encoder
    )
    for table, frame in ((APC_EPISODES, apc), (AE_ATTENDANCES, ae)):
        _write(
            _events(encoder, tokens, table, frame), data_dir, "hospital", table.name, rows, encoder
        )
    del apc, ae, hospital

    clients = _read_cleared(data_dir, SOCIAL_CARE_CLIENTS)
    sc_events = _read_cleared(data_dir, SOCIAL_CARE_EVENTS)
    tokens = record_token_map(
        encoder, "social_care", [(SOCIAL_CARE_CLIENTS, clients), (SOCIAL_CARE_EVENTS, sc_events)]
    )
    sc_records = _record_grain(
        one_row_records(SOCIAL_CARE_CLIENTS, clients), encoder, lookup, tokens, key
    )
    _write(
        sc_records.sort(["org_code", "record_token"]),
        data_dir,
        "social_care",
        "clients",
        rows,
        encoder,
    )
    sc = _events(encoder, tokens, SOCIAL_CARE_EVENTS, sc_events)
    _write(sc, data_dir, "social_care", "events", rows, encoder)

    opted_out_path = data_dir / OPTED_OUT_RECORDS
    if not opted_out_path.exists():
        raise IngestError("no opted-out records file; run remove_opt_outs before pseudonymise.")
    opted_out = pl.read_parquet(opted_out_path)
    check_demo_key(key, [(OPTED_OUT_RECORDS, opted_out)])
    # What linkage compares and no more (data minimisation): no reason, organisation,
    # birth month or value statuses of the people who opted out.
    encoded = encode_demographics(opted_out, encoder)
    restricted = encoder.seal(
        encoded.select("source", "record_token", *LINKAGE_ENCODINGS).sort(
            ["source", "record_token"]
        )
    )
    write_keyed(restricted, data_dir / RESTRICTED_OPTED_OUT_ENCODINGS, encoder)
    log.info("restricted opted-out encodings: %d records", restricted.height)
    return {
        "run_id": run_id,
        "key_fingerprint": encoder.fingerprint,
        "rows": rows,
        "restricted_opted_out_records": restricted.height,
        "seconds": round(time.perf_counter() - started, 2),
    }
