"""The national data opt-out round trip with NHS England's Check for National Data Opt-outs service.

The service works the other way round from an opt-out list: the data service SENDS it
the NHS numbers it holds (through MESH) and it RETURNS those that MAY be used; the
numbers of people with a national data opt-out are simply missing from the reply.
What the files look like (docs/privacy.md, "Checking the national data opt-out with
the service", gives the sources):

* the submission is a ``.dat`` text file, one NHS number per line, each followed by a
  comma, lines ending in LF (not CRLF);
* the reply has the same format and holds only the numbers that may be used;
* a submission with any number the service cannot read is not checked at all: the
  reply is then one line, "The file contains one or more invalid NHS Numbers."

So joinedup submits only modulus-11 valid numbers, and refuses that one-line reply
rather than reading it as "nobody may be used".

:func:`write_submission` (``joinedup opt-outs submission``) writes the distinct valid
NHS numbers of every landed delivery that carries them, read from the landing files as
ingest reads them (national layouts and local mappings included, quarantined rows
included), to the owner-only ``outbox/`` with a manifest: count, checksum, when, and
each delivery file with its checksum. :func:`withheld_numbers`, called by the
``opt_outs`` stage when a reply is in ``landing/opt_outs/``, returns the numbers
submitted but not returned; their records are removed as opted out. A reply that
cannot belong to the latest submission, or a submission that no longer covers the
landed data, stops the stage with what to do.

Records with no valid NHS number cannot be checked by the service: they are neither
submitted nor removed here. They keep today's protection: linkage matches them to the
records removed here (``restricted/``), whatever the reason of the removal.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from joinedup.atomic import write_json, write_text
from joinedup.catalogue import (
    NDOP_MANIFESTS,
    NDOP_REPLIES,
    NDOP_REPLY_GLOB,
    OUTBOX,
    PERSON_SOURCES,
    ndop_manifest_path,
    ndop_submission_path,
    relative,
)
from joinedup.contracts import DEMOGRAPHIC_TABLES, NATIONAL_DATA_OPT_OUT, Table
from joinedup.ingest.errors import IngestError
from joinedup.ingest.read import check_headers, delivered_files, read_table
from joinedup.ingest.validate import normalise_nhs_number
from joinedup.nhs_number import is_valid_expr
from joinedup.provenance import sha256_file

log = logging.getLogger(__name__)

# The reason a record removed by the reply is given, beside today's national_data_opt_out.
NOT_RETURNED = "national_data_opt_out_not_returned"
# The service's whole reply to a submission holding a number it cannot read.
SERVICE_REFUSAL = "invalid nhs number"
FORMAT = "one NHS number per line followed by a comma, LF line endings"


class NdopRoundTripError(IngestError):
    """A submission or reply of the national data opt-out round trip that cannot be used."""


def _demographic_tables() -> list[Table]:
    return [t for source in PERSON_SOURCES for t in DEMOGRAPHIC_TABLES[source]]


def landed_deliveries(data_dir: Path) -> list[dict[str, str]]:
    """Every landing file that carries NHS numbers, with its table and SHA-256, in name order."""
    out = []
    for table in _demographic_tables():
        for path, _layout in delivered_files(data_dir, table):
            out.append(
                {
                    "table": table.qualified_name,
                    "file": relative(data_dir, path),
                    "sha256": sha256_file(path),
                }
            )
    return out


def landed_numbers(data_dir: Path) -> tuple[pl.Series, dict[str, dict[str, int]]]:
    """Distinct valid NHS numbers of every row landed (sorted), and row counts per table.

    Every row is read, quarantined ones included (ingest would quarantine them but
    opt_outs still matches them by number), and every file, duplicates and replaced
    months included: an unneeded number submitted costs nothing, a missing one stops
    the stage.
    """
    frames = []
    counts: dict[str, dict[str, int]] = {}
    for table in _demographic_tables():
        raw = read_table(data_dir, table, check_headers(data_dir, table))
        numbers = raw.select(
            normalise_nhs_number(pl.col("nhs_number").str.strip_chars()).alias("nhs_number")
        )["nhs_number"]
        counts[table.qualified_name] = {
            "rows": raw.height,
            "rows_without_valid_nhs_number": numbers.null_count(),
        }
        frames.append(numbers.drop_nulls())
    numbers = pl.concat(frames) if frames else pl.Series("nhs_number", [], dtype=pl.String)
    return numbers.unique().sort(), counts


def write_submission(data_dir: Path, now: datetime | None = None) -> dict:
    """Write ``outbox/ndop_submission_<stamp>.dat`` and its manifest; return the manifest."""
    data_dir = Path(data_dir)
    now = now or datetime.now(UTC)
    numbers, counts = landed_numbers(data_dir)
    if numbers.is_empty():
        raise NdopRoundTripError(
            f"no valid NHS number in any landed delivery under {data_dir}: there is nothing to "
            "check with the national data opt-out service. Land the GP, hospital and social "
            "care extracts first."
        )
    deliveries = landed_deliveries(data_dir)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    path = ndop_submission_path(data_dir, stamp)
    write_text("".join(f"{n},\n" for n in numbers), path)
    manifest = {
        "submission": relative(data_dir, path),
        "format": FORMAT,
        "numbers": numbers.len(),
        "sha256": sha256_file(path),
        "written_at": now.isoformat(timespec="microseconds"),
        "rows_read": sum(c["rows"] for c in counts.values()),
        "rows_without_valid_nhs_number": sum(
            c["rows_without_valid_nhs_number"] for c in counts.values()
        ),
        "by_table": counts,
        "deliveries": deliveries,
        "reply_expected_as": f"{Path(NDOP_REPLIES).parent.as_posix()}/ndop_reply_{stamp}.dat",
    }
    write_json(manifest, ndop_manifest_path(data_dir, stamp))
    log.info("national data opt-out submission %s: %d NHS numbers", path.name, numbers.len())
    return manifest


def latest_submission(data_dir: Path) -> dict | None:
    """The manifest of the submission written last, or None if there is none."""
    manifests = sorted(Path(data_dir).glob(NDOP_MANIFESTS))
    if not manifests:
        return None
    read = []
    for path in manifests:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            read.append(((manifest["written_at"], manifest["submission"]), manifest))
        except (ValueError, KeyError, TypeError):
            raise NdopRoundTripError(
                f"{relative(data_dir, path)}: not a submission manifest joinedup wrote (not "
                "JSON, or no written_at and submission): move it out of "
                f"{OUTBOX.path}/ and write a new submission with `joinedup opt-outs submission`."
            ) from None
    return max(read, key=lambda item: item[0])[1]


def read_numbers_file(path: Path, name: str) -> pl.DataFrame:
    """``line, nhs_number`` of a submission or reply file; refuse anything else, with its line."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NdopRoundTripError(
            f"{name}: byte {exc.start} is not UTF-8 text: a reply of the national data opt-out "
            f"service is plain text ({FORMAT}). Download the reply from MESH again."
        ) from None
    lines = pl.DataFrame({"text": text.split("\n")}).with_row_index("line", offset=1)
    value = pl.col("text").str.strip_chars().str.strip_chars_end(",").str.strip_chars()
    lines = lines.with_columns(value.alias("nhs_number")).filter(pl.col("nhs_number") != "")
    refused = lines.filter(pl.col("text").str.to_lowercase().str.contains(SERVICE_REFUSAL))
    if not refused.is_empty():
        raise NdopRoundTripError(
            f"{name} line {refused['line'][0]}: the service did not check the submission: it "
            "says the submission holds one or more invalid NHS numbers. joinedup submits only "
            "valid numbers, so the file sent was not the one `joinedup opt-outs submission` "
            "wrote (or was changed): send that file unchanged, or write a new one."
        )
    bad = lines.filter(~is_valid_expr(pl.col("nhs_number")).fill_null(False))
    if not bad.is_empty():
        raise NdopRoundTripError(
            f"{name} line {bad['line'][0]} (and {bad.height - 1} more line(s)): not a valid "
            f"NHS number ({FORMAT}). Is this the service's reply, downloaded whole? "
            "Download it from MESH again."
        )
    return lines.select("line", "nhs_number")


def reply_file(data_dir: Path) -> Path | None:
    folder = Path(data_dir) / NATIONAL_DATA_OPT_OUT.folder
    replies = sorted(p for p in folder.glob(NDOP_REPLY_GLOB) if p.is_file())
    if len(replies) > 1:
        names = ", ".join(relative(data_dir, p) for p in replies)
        raise NdopRoundTripError(
            f"more than one national data opt-out reply in landing ({names}): only the reply to "
            "the latest submission can be applied. Move the others out of landing/."
        )
    return replies[0] if replies else None


def _check_submission(data_dir: Path, reply: str, manifest: dict | None) -> Path:
    if manifest is None:
        raise NdopRoundTripError(
            f"{reply}: a national data opt-out reply, but no submission in {OUTBOX.path}/ to "
            "hold it against: write one with `joinedup opt-outs submission`, send it, and drop "
            "its reply in place of this one."
        )
    path = Path(data_dir) / manifest["submission"]
    if not path.is_file() or sha256_file(path) != manifest["sha256"]:
        raise NdopRoundTripError(
            f"{manifest['submission']}: missing or changed since it was written (its manifest "
            "holds its SHA-256): write a new submission with `joinedup opt-outs submission`."
        )
    return path


def _check_reply_is_newer(reply_path: Path, reply: str, manifest: dict) -> None:
    written = datetime.fromisoformat(manifest["written_at"]).timestamp()
    if reply_path.stat().st_mtime < written:
        raise NdopRoundTripError(
            f"{reply}: older than the latest submission {manifest['submission']} (written "
            f"{manifest['written_at']}), so it answers an earlier one. Drop the service's reply "
            "to the latest submission in its place."
        )


def _check_covers_landing(data_dir: Path, manifest: dict) -> None:
    submitted = {(d["file"], d["sha256"]) for d in manifest["deliveries"]}
    newer = [
        d["file"] for d in landed_deliveries(data_dir) if (d["file"], d["sha256"]) not in submitted
    ]
    if newer:
        raise NdopRoundTripError(
            f"{newer[0]} (and {len(newer) - 1} more file(s)) landed or changed after the latest "
            f"national data opt-out submission {manifest['submission']}: the reply cannot say "
            "whether their people may be used. Write a new submission with `joinedup opt-outs "
            "submission`, send it, and replace the reply with the service's answer to it."
        )


def withheld_numbers(data_dir: Path, held: pl.Series) -> tuple[pl.Series, dict] | None:
    """NHS numbers submitted but not returned by the service; None without a reply in landing.

    ``held``: every valid number the records carry (validated and quarantined rows). The
    reply must answer the latest submission (no number it never held, newer than it), the
    submission must still cover the landed files, and every held number must have been
    submitted; otherwise :class:`NdopRoundTripError` says what to do.
    """
    data_dir = Path(data_dir)
    reply_path = reply_file(data_dir)
    if reply_path is None:
        return None
    reply = relative(data_dir, reply_path)
    manifest = latest_submission(data_dir)
    submission_path = _check_submission(data_dir, reply, manifest)
    _check_reply_is_newer(reply_path, reply, manifest)
    _check_covers_landing(data_dir, manifest)
    submitted = read_numbers_file(submission_path, manifest["submission"])["nhs_number"]
    returned = read_numbers_file(reply_path, reply)
    foreign = returned.filter(~pl.col("nhs_number").is_in(submitted.implode()))
    if not foreign.is_empty():
        raise NdopRoundTripError(
            f"{reply} line {foreign['line'][0]} (and {foreign.height - 1} more line(s)): an NHS "
            f"number the latest submission {manifest['submission']} did not hold, so the reply "
            "answers another submission. Drop the service's reply to the latest submission in "
            "its place, or write and send a new submission."
        )
    unchecked = held.filter(~held.is_in(submitted.implode()))
    if not unchecked.is_empty():
        raise NdopRoundTripError(
            f"{unchecked.len()} NHS number(s) of this run's records are not in the latest "
            f"submission {manifest['submission']}: the validated data is not what was submitted. "
            "Run ingest again; if it persists, write and send a new submission."
        )
    withheld = submitted.filter(~submitted.is_in(returned["nhs_number"].implode()))
    if returned.is_empty():
        log.warning("%s returns no NHS number: every submitted person is removed", reply)
    summary = {
        "reply": reply,
        "submission": manifest["submission"],
        "submitted": submitted.len(),
        "returned": returned["nhs_number"].n_unique(),
        "not_returned": withheld.len(),
    }
    log.info(
        "national data opt-out reply %s: %d of %d not returned",
        reply,
        withheld.len(),
        submitted.len(),
    )
    return withheld, summary
