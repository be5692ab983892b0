"""docs/contracts.md, generated from the definitions the pipeline runs on.

The contract of every landing file (columns, kinds, codes, keys), the row rules that
follow from it, and every output (the zones of the data directory, the ledger, the
published marts) are rendered here from :mod:`joinedup.contracts`,
:mod:`joinedup.catalogue`, :mod:`joinedup.ingest.ledger` and the dbt models' YAML, so
the page cannot say one thing while the code does another. The rules that are not data
(what a quarantined row is, opt-outs, re-deliveries, whole-file rejections) are prose
constants below, with every number they quote taken from the code.

Regenerate after changing a contract, a zone, the ledger or a mart::

    uv run python -m joinedup.contract_docs --write    # rewrites docs/contracts.md
    uv run python -m joinedup.contract_docs            # prints it
    uv run python -m joinedup.contract_docs --check    # exit 1 if the file is stale

``tests/test_docs.py`` fails when docs/contracts.md and :func:`render` disagree.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable
from datetime import date

import yaml

from joinedup import catalogue, contracts
from joinedup.catalogue import PSEUDONYMISED_TABLES, REPO_ROOT, SEEDS_DIR, ZONES
from joinedup.contracts import TABLES, Column, Kind, Table
from joinedup.deidentify import ndop
from joinedup.deidentify.pseudonymise import GP_EXTRA, RECORD_SCHEMA
from joinedup.ingest.ledger import CONTRACT_SCHEMA, DELIVERY_SCHEMA
from joinedup.ingest.read import MAX_FIELD_BYTES
from joinedup.ingest.redelivery import PERIOD_COLUMNS
from joinedup.ingest.sniff import MAX_HEADER_BYTES
from joinedup.ingest.validate import EARLIEST_BIRTH, status_column
from joinedup.ingest.validate import _rule as ingest_rule  # the rule ingest applies, not a copy
from joinedup.synth.generate import TRUTH_COLUMNS
from joinedup.truth import TRUTH_FILE
from joinedup.warehouse.publish import MART_PREFIXES

DOC_PATH = REPO_ROOT / "docs" / "contracts.md"
MARTS_DIR = REPO_ROOT / "models" / "marts"
COMMAND = "uv run python -m joinedup.contract_docs --write"

# How each kind of column is read. Every Kind must have a line (render() refuses otherwise).
KIND_NOTES: dict[Kind, str] = {
    Kind.TEXT: "free text: trimmed, inner runs of whitespace made one space; any value is kept",
    Kind.CODE: "one of a closed code set, matched without regard to case and written in the "
    "set's own spelling (`2a` is `2A`)",
    Kind.NHS_NUMBER: "10 digits with a valid modulus-11 check digit; spaces and hyphens "
    "(`943 476 5919`) are dropped first",
    Kind.POSTCODE: "a UK postcode, written upper case with one space before the inward code",
    Kind.DATE: "`YYYY-MM-DD`, a real calendar date",
    Kind.DATETIME: "ISO 8601 (`2025-04-01T14:05`, seconds, fraction and offset optional); "
    "an offset is applied and the value kept as UTC",
    Kind.INT: "a whole number, optionally signed",
}

# Reasons any row of any table can get, whatever its columns.
GENERAL_REASONS: tuple[tuple[str, str], ...] = (
    (
        "`invalid_utf8`",
        "a contract column of the row holds bytes that are not UTF-8 (the file is decoded "
        "lossily; many such rows mean the file is in another character set)",
    ),
    (
        "`too_many_fields`, `too_few_fields`",
        "the row has more or fewer fields than the header, so its values cannot be trusted "
        "to sit under the right columns",
    ),
    (
        "`field_too_long:<column>`",
        f"a value over {MAX_FIELD_BYTES:,} bytes; the quarantine keeps its first "
        f"{MAX_FIELD_BYTES:,} characters",
    ),
    ("`duplicate_key`", "a usable row whose key an earlier row (file name, then line) holds"),
    (
        "`superseded_by:<file>:<line>`",
        "a layout that resubmits (CLD): a later submission's row of the same identity "
        "replaces this one; not an error, it says which row replaced which",
    ),
    (
        "`unknown_code:<delivered column>`",
        "a national layout's (or mapping's) coded column holds a value outside its code set "
        "(or a local code the mapping does not map); the column is named as the file names it",
    ),
)

# What arrives in landing/ and what ingest does with it (sniff.py, csv_shape.py, read.py).
WHOLE_FILE_CASES: tuple[tuple[str, str], ...] = (
    ("UTF-8 byte-order mark, CRLF line ends", "accepted"),
    (
        'a quoted value with commas, doubled quotes (`""`) or line breaks',
        "one value; the contract then decides",
    ),
    (
        f"a row with more or fewer fields than the header, a value over {MAX_FIELD_BYTES:,} "
        "bytes, non-UTF-8 bytes in a row",
        "that row quarantined ([above](#quarantine-reasons)); the rest of the file loads",
    ),
    (
        "a missing contract column, or a column named twice",
        "rejected (`MissingColumnsError`, `MalformedHeaderError`)",
    ),
    (
        "0 bytes, or a blank first line",
        "rejected (`EmptyFileError`): a delivery with no rows still has a header",
    ),
    (
        "gzip, ZIP/xlsx, xls, PDF, UTF-16/32 named `.csv`",
        "rejected (`NotCsvTextError`), saying what it is and how to export or unpack it; "
        "nothing is unpacked, so no file can expand without limit",
    ),
    (
        "a NUL byte anywhere (binary, or a transfer cut off)",
        "rejected (`NotCsvTextError`), with the line and byte",
    ),
    (
        f"a header over {MAX_HEADER_BYTES // 1024} KiB, not UTF-8, or split by bare CRs",
        "rejected (`NotCsvTextError`)",
    ),
    (
        "a quote inside an unquoted value, or one that never closes",
        "rejected (`MalformedCsvError`), with the line: the row boundaries are unknowable",
    ),
    (
        "a symbolic link, or a real path outside `DATA/landing`",
        "rejected (`UnsafeFileError`): a run reads nothing outside the data directory",
    ),
    (
        "a name with control or invisible characters (newline, RTL override) or a backslash",
        "rejected (`UnsafeFileError`); the name is shown escaped",
    ),
)

# Re-deliveries (redelivery.py): what becomes of a file, given the files before it.
REDELIVERY_CASES: tuple[tuple[str, str], ...] = (
    (
        "the same bytes again, under any name, in the same or a later run",
        "not read: `status = duplicate`, `duplicate_of` names the earlier file, all four "
        "counts 0 (a header-only file is never a duplicate: two empty months are two "
        "deliveries)",
    ),
    (
        "a later file for a month already delivered, covering at least the same organisations",
        "the earlier file is not read: `status = replaced`, `replaced_by`; the new file's "
        "`replaces` names it",
    ),
    (
        "a file overwritten in place with new content",
        "loaded as it is now; `replaces` names itself (the old checksum is in the earlier "
        "run's ledger rows)",
    ),
    (
        "a later file for the month covering only some of the earlier file's organisations",
        "both loaded, with a warning: a supplement cannot be told from a partial correction, "
        "and replacing would drop the other organisations' rows; duplicate keys keep the "
        "earlier rows",
    ),
    (
        "a file with no month (a snapshot such as `patients.csv`, or dates across months)",
        "only ever de-duplicated",
    ),
)

# The files a stage writes inside its zone, by their catalogue path.
ZONE_FILES: dict[str, str] = {
    catalogue.NDOP_SUBMISSIONS: "what `joinedup opt-outs submission` writes for the national "
    "data opt-out service: every valid NHS number landed, one per line followed by a comma, "
    "LF line endings ([opt-outs](#opt-outs))",
    catalogue.NDOP_MANIFESTS: "beside each submission: how many numbers, its SHA-256, when it "
    "was written, and every delivery file it covers with its SHA-256",
    catalogue.OPTED_OUT_RECORDS: "demographics of every removed record, kept only to make "
    "their linkage encodings",
    catalogue.OPTED_OUT_REASONS: "each removed record and why (national opt-out, type 1 "
    "objection, or another record with an objector's NHS number)",
    catalogue.RESTRICTED_OPTED_OUT_ENCODINGS: "keyed linkage encodings of opted-out records, "
    "with the reason: what `link` scores records without an NHS number against",
    catalogue.LINKAGE_OPTED_OUT_RECORDS: "`(source, record_token)` of records linkage matched "
    "to an opted-out person",
    catalogue.LINKAGE_OPTED_OUT_APPLIED: "those of them `remove_linked_opt_outs` took out of "
    "`pseudonymised/`",
    catalogue.RECORD_PERSON: "`source, record_token, person_id` for every surviving source "
    "record; `person_id` is stable across runs under one key",
    catalogue.PERSON_IDS: "every person id ever issued, so none is given to someone else",
    catalogue.LINKAGE_MODEL: "the trained Splink model the run used (reusable with "
    "`--linkage-model`)",
    catalogue.LINKAGE_SUMMARY: "the run's linkage figures (records, persons, cluster sizes, "
    "timings)",
    catalogue.LINKAGE_CHARTS: "Splink's review charts (match weights, m/u, waterfalls, "
    "cluster studio); they embed a sample's keyed encodings",
    catalogue.LINKAGE_EVALUATION: "precision and recall against the synthetic truth, from "
    "`joinedup evaluate`",
    catalogue.CANDIDATE: "beside `analytics.duckdb`: the next one, from `stage_analytics` until "
    "`publish` renames it (0400; removed when the privacy report fails)",
    catalogue.COMMISSIONING_CANDIDATE: "beside `commissioning.duckdb`, in `commissioning/`: "
    "the next one, staged, measured and published with the analytics candidate",
}

# Short-lived files beside the zones (those the catalogue lists as zones are left out).
TRANSIENT: dict[str, str] = {
    ".warehouse-build": "the warehouse while dbt builds it, moved into place only when every "
    "model and test passed",
    ".ledger.lock": "the lock that serialises ledger writers",
    ".<name>.tmp-<pid>": "every file is written under a hidden temporary name and renamed into "
    "place, so a killed run leaves no half-written file under its final name",
}

LEDGER_NOTES: dict[str, str] = {
    "run_id": "the run the row belongs to; re-running a run id replaces its rows",
    "source": "the landing source (`gp`, `hospital`, ...)",
    "table": "the table within it",
    "file": "the delivered file, relative to the data directory",
    "rows_received": "data rows read from the file (blank lines are not rows)",
    "rows_loaded": "rows that passed the contract and reached the next stage",
    "rows_quarantined": "rows written to `quarantine/` with a reason",
    "rows_opted_out": "loaded rows removed because their person opted out (by NHS number, "
    "or found by linkage)",
    "sha256": "SHA-256 of the file's bytes",
    "size_bytes": "its size",
    "file_rows": "data rows in the file, read or not",
    "period": "the month it delivers (`YYYY-MM`), when one is known",
    "status": "`loaded`, `duplicate` (same bytes as an earlier file) or `replaced` (by a "
    "later delivery of its month)",
    "duplicate_of": "the earlier file with the same bytes",
    "replaced_by": "the later file that replaced it",
    "replaces": "the files this one replaced (`; `-joined); itself when corrected in place",
    "first_seen_run": "the run that first saw this file with this content",
    "first_seen_at": "when (UTC, to the microsecond): the delivery order",
}

HEADER = f"""\
# Data contracts

What goes into joinedup and what comes out, fixed so that suppliers' extracts (or the
synthetic generator) and every downstream tool can rely on them. `DATA` is the data
directory (`--data-dir`, default `./data`).

This page is generated from the code the pipeline runs: the landing contracts in
`src/joinedup/contracts.py`, the zones in `src/joinedup/catalogue.py`, the ledger in
`src/joinedup/ingest/ledger.py` and the marts' YAML in `models/marts/`, with the rules
written out in `src/joinedup/contract_docs.py`. Do not edit it by hand: change the code
and run

    {COMMAND}

`tests/test_docs.py` fails until the two agree. Change a contract only on purpose, and
then everywhere at once: the generator, the stages, the suites and the tests follow it
([CONTRIBUTING.md](../CONTRIBUTING.md#add-a-source-feed) says how).

Contents: [landing files](#landing-files) · [kinds](#kinds-of-column) ·
[code sets](#code-sets) · [row rules](#row-rules) · [quarantine reasons](#quarantine-reasons)
· [files rejected whole](#files-rejected-whole) · [opt-outs](#opt-outs) ·
[re-deliveries](#re-deliveries) · [tokens](#tokens) · [outputs](#outputs)
"""

LANDING_INTRO = """\
## Landing files

CSV, UTF-8, a header row, comma-separated; one or more files per table named
`<table>*.csv` in its source's folder under `DATA/landing/` (several monthly deliveries
may sit side by side; every run reads all of them). A header-only file is a valid, empty
delivery. Header names are matched after trimming, lower-casing and dropping a UTF-8
byte-order mark, so spreadsheet exports work; columns may come in any order; extra
columns are ignored with a warning in the task log. A file missing a contract column is
rejected whole (`MissingColumnsError`), because every row of it would be wrong in the
same way.

A person's **source record** is one patient at one organisation: the pair of columns
named under *source record* below, with the source. Linkage joins source records into
persons; opt-outs remove whole source records.
"""

KINDS_INTRO = """\
## Kinds of column

How each column's text is read before the row rules apply. A blank value (empty or only
whitespace) is null.
"""

CODES_INTRO = """\
## Code sets

Codes as in the NHS data dictionary where one exists. The meanings shown come from the
dbt seeds that the warehouse uses to interpret them (`seeds/reference/`).
"""

ROW_RULES = f"""\
## Row rules

Two kinds of defect are treated differently on purpose:

* **A row that cannot be used at all is quarantined** with a reason: a blank required
  value (no local id, an event with no date), a value of a typed column that does not
  parse (a garbled `discharge_date` must not silently read as "still in hospital"), a
  code outside its set where the code decides meaning, a duplicate key, bytes that are
  not UTF-8, more or fewer fields than the header, a value over {MAX_FIELD_BYTES:,} bytes.
  The rest of its file still loads.
* **A row whose identifier is defective is kept**: an invalid NHS number, a malformed
  postcode, an impossible date of birth (before {EARLIEST_BIRTH.isoformat()} or after the
  day of the run) or an unknown sex code is set to null and `<column>_status` says
  `blank`, `invalid` or `valid`, because linkage can still place the person on the other
  identifiers. The landing quality gate warns when the share of valid values falls.

Duplicate keys are resolved after the other checks, among usable rows only, keeping the
first in file-name then line order: a broken row cannot claim a key, and adding a later
file never changes which row of an earlier one was loaded. Keys compare normalised values
(`2a` and `2A` are one code).
"""

QUARANTINE_INTRO = """\
## Quarantine reasons

`DATA/quarantine/<source>/<table>.parquet` holds every rejected row **as the supplier
sent it**: `file`, `line` (the physical line where the row starts, header = line 1,
counting newlines inside quoted values), `reason`, then the table's contract columns in
contract order, all as text. It is as identifiable as `landing/` and is rewritten whole
each time its table is ingested, so it always describes the deliveries present now.

A row can have several reasons, joined with `"; "`, each `kind:column`. These apply to
every table:

{general}

and these follow from the columns' definitions (the runbook's
[quarantine table](runbook.md#quarantine-reasons) says what to do about each):
"""

REJECTED_WHOLE = """\
## Files rejected whole

A file that cannot be read as a delivery at all stops the run at its source's ingest,
before any output of that source changes, with one message naming the file and what to
do (ask for a re-delivery, or move the file out of `landing/` and run again). It gets no
ledger row: its "rows" would mean nothing, and a delivery that quietly dropped out would
not be noticed. Outputs are named after tables, never after delivered files, so no
output path comes from a delivered name. Tests: `tests/test_hostile_files.py`.

"""

OPT_OUTS = f"""\
## Opt-outs

Removed by the `opt_outs` stage before anything else reads the rows, per source record,
with all its rows in every table (episodes, attendances, events):

* every record carrying a valid NHS number on the national data opt-out list
  (`landing/opt_outs/`). The list is mandatory unless the service's reply (below) is
  there: without either the stage refuses to run, and an empty list fails the landing
  gate, because with either every opted-out person would get through;
* every record carrying a valid NHS number that was sent to NHS England's Check for
  National Data Opt-outs service and is missing from its reply (reason
  `{ndop.NOT_RETURNED}`; the round trip below);
* every GP record whose latest type 1 code is an objection: SNOMED
  `{contracts.SNOMED_TYPE1_OBJECTION}` (dissent from secondary use of GP patient
  identifiable data) after any withdrawal `{contracts.SNOMED_TYPE1_WITHDRAWN}`. The codes
  of every GP record with the same valid NHS number are pooled (a person who objected at
  one practice and withdrew at another has withdrawn); on the same date the objection
  wins, the choice that cannot publish someone who objected;
* every record, in any source, carrying the NHS number of such a GP record.

Quarantined rows count too, conservatively: a quarantined demographic row still ties its
record to an NHS number, and a quarantined objection with an unusable date still counts
(as dated after everything), so a defect in one row never lets an opted-out person through.

A record of an opted-out person that carries no valid NHS number can only be found by
linkage: `link` scores such records against the keyed encodings of opted-out records
(`restricted/`) and `remove_linked_opt_outs` takes the matches, with every row of theirs,
out of `pseudonymised/`. The ledger counts both kinds of removal in `rows_opted_out`.

### The round trip with the national data opt-out service

The service is sent the NHS numbers a data service holds and returns those that may be
used; opted-out people's numbers are missing from the reply. `joinedup opt-outs
submission` writes `{catalogue.NDOP_SUBMISSIONS}` (owner-only): the distinct valid NHS
numbers of every landed file that carries them, quarantined rows included, one per line
followed by a comma, LF line endings. Its manifest (`.json` beside it) lists each
delivery file with its SHA-256. The service's reply, in the same format, is dropped as
`{catalogue.NDOP_REPLIES}`; the `opt_outs` stage then removes every record whose
number was submitted but not returned. It refuses, naming the file (and line) and what
to do: a reply holding a number the latest submission did not (it answers another
submission), a reply older than the latest submission, a landed file added or changed
since that submission, more than one reply, a reply with no submission, a line that is
not a valid NHS number, and the service's one-line answer to a submission it could not
check ("The file contains one or more invalid NHS Numbers."). Records with no valid NHS
number cannot be checked by the service: they are not submitted, and linkage removes
those that match a removed record, as for the list. The monthly steps:
[runbook](runbook.md#checking-the-national-data-opt-out-with-the-service); the formats
and their sources: [privacy](privacy.md#checking-the-national-data-opt-out-with-the-service).
"""

REDELIVERIES_INTRO = """\
## Re-deliveries

Every run takes landing as a whole (a file validated before, unchanged, comes from the
ingest cache instead of being read again), and what is loaded is decided among the files
present, in *delivery order*: when each file, as it is now, first arrived
(`first_seen_at` in the ledger), then its name.

{cases}

A file's month is in its name (`events_2025-04.csv`, `events_202504.csv`,
`events_2025_04_v2.csv`); a name with a full date (`_2025-04-30`) is a daily delivery and
has none. Otherwise the month is the data's own, when every activity date in the file
falls in one month:
"""

REDELIVERIES_OUTRO = """
So deliver a month as one file per table and organisation set: a second file for the
same month is a correction. A skipped file is not read, so the balance rule holds as it
is. Tests: `tests/test_redelivery.py`.
"""

TOKENS = """\
## Tokens

The pseudonymisation key comes from `JOINEDUP_PSEUDONYMISATION_KEY`, or a file named by
`JOINEDUP_PSEUDONYMISATION_KEY_FILE` (at least 16 characters; an empty variable counts as
unset). Setting both is an error, so a key left in the environment can never silently
replace the file a deployment mounted. Without one a run stops with an error saying how
to set it: `joinedup run` before it starts, Airflow at the first task that needs it.
`make run` (and `make airflow`) use the public demo key only when neither is set. The
key is never written to any output or log.

The demo key is public, so with it anyone could recompute every token (every valid NHS
number can be tried). `pseudonymise` refuses it, with an error, unless every NHS number
in the records and opt-outs it reads begins `99` and every postcode begins `J`: the
generator's reserved ranges (`src/joinedup/synth/reference.py`), which no issued NHS number
and no UK postcode area uses. One identifier outside them refuses the run.

The key itself keys nothing. Every token kind has its own sub-key, derived once per run
as HMAC-SHA256(key, `"joinedup/<kind>/v1"`) (`src/joinedup/deidentify/encodings.py`), so a
token of one kind is never comparable with a token of another and learning one sub-key
reveals neither the key nor the others:

{kinds}

`record_token` = lowercase hex HMAC-SHA256(record sub-key, `"<source>|<org_code>|<local_id>"`),
for example `"gp|A81001|P000123"`: it joins a record's rows across tables and outputs.

**Key fingerprint.** The first 16 hex digits of SHA-256 of the `fingerprint` sub-key name
the key without revealing it. Every file `pseudonymise` writes carries it in its Parquet
metadata (`{metadata}`), `linked/summary.json` and the run record
(`provenance.key_fingerprint`) name it, and `link` refuses pseudonymised tables, or a
trained model whose run record names another fingerprint, made under a different key.

**Sealed encodings.** Linkage compares a date of birth with the other record's
day/month-swapped date and year-day and month-day parts, and postcode sectors and
districts. Stored as plain keyed tokens beside the record's `birth_month` and
`lsoa_code`, their equalities across records would decode: where A's swap token equals
B's date token, A's day of birth is B's birth month. So these columns are stored sealed:
each value is XORed with a 32-byte mask of its own, cut from SHAKE-256 of the `seal`
sub-key followed by the record's `record_token`:

{sealed}

A sealed value is still 64 hex digits, but no two stored values are equal (whether or not
the dates or postcodes are), so without the key there is no equality to read
(`tests/test_encoding_attack.py` runs the attacks). `link`, which holds the key, unseals
them into owner-only copies under `DATA/{inputs}/` and deletes those when it ends. NHS
number and name tokens are not sealed: nothing stored beside them is a part of them.
"""


def _tokens() -> str:
    from joinedup.deidentify.encodings import KEY_FINGERPRINT_METADATA, SEALED_COLUMNS, TOKEN_KINDS
    from joinedup.linkage.inputs import LINKAGE_INPUTS

    return TOKENS.format(
        kinds=_table(("kind", "keys"), [(f"`{k}`", v) for k, v in TOKEN_KINDS.items()]),
        metadata=KEY_FINGERPRINT_METADATA,
        sealed=", ".join(f"`{c}`" for c in SEALED_COLUMNS),
        inputs=LINKAGE_INPUTS,
    )


OUTPUTS_INTRO = """\
## Outputs

### Zones of the data directory

Each zone is written by one task; where a later task must change it, *later changed by*
names the task and why. The order the tasks run in is the DAG's
(`dags/joinedup_link_and_build.py`). Owner-only zones are folders 0700 with files 0600
whatever the umask (`src/joinedup/privacy/permissions.py`): they hold identifiable or
record-level data.
"""

FILES_INTRO = """\
### Files inside the zones
"""

LEDGER_INTRO = """\
### The ledger

`DATA/ledger.csv`: one row per run and input file. For every row
`rows_received = rows_loaded + rows_quarantined + rows_opted_out`; `finalise` fails the
run otherwise, and also checks each person table's loaded rows against the rows in its
`pseudonymised/` file. The contract's columns come first, in this order; the delivery
columns after them record what each file was and what became of it. A duplicate or
replaced file is recorded but not read, so its four counts are 0. Text cells starting
with `=`, `+`, `-`, `@`, a tab or CR are written with a leading `'` so a spreadsheet shows
rather than runs them (`joinedup.atomic.read_csv` reverses it).

| column | type | part | what |
|---|---|---|---|
"""

PSEUDONYMISED_INTRO = """\
### Pseudonymised tables

`DATA/pseudonymised/<source>/<table>.parquet`: no name, NHS number, date of birth, full
postcode or local patient id. The record-grain table of each source (first below) has one
row per source record with these columns, which linkage reads; event tables carry
`record_token`, the organisation code, tokenised event ids (`spell_token`,
`attendance_token`) and the event's attributes and dates. The `pseudonymised.*` quality
suites fix each table's exact column set, so a new column is reviewed before it passes.
"""

MARTS_INTRO = f"""\
### Published marts

Two files, each for its audience, in the data directory or in `JOINEDUP_PUBLISHED_DIR`
when that is set, each with a one-row `_joinedup_run` table naming the run that wrote it:

* `analytics.duckdb`, for analysts: the dbt marts whose names start with `dim_` or
  `fct_` (person level, coarsened: month of death, not the date), copied into schema
  `main` with their descriptions; 0440 with the group `JOINEDUP_ANALYSTS_GROUP`, else
  0400, never readable by others.
* `commissioning/commissioning.duckdb`, for everyone: the marts starting `mart_`
  (disclosure-controlled aggregates) and their description `_joinedup_marts`; 0444. The
  dashboard's only input; no person-level table.

Nothing else: no staging or intermediate model, no token. `publish` refuses a mart (a
`marts` table named {", ".join(f"`{p}`" for p in MART_PREFIXES)}) with an identifier-like
column name or a value shaped like a keyed token, and a `mart_` table with a
`person_id`. Definitions, caveats and example SQL are in the
[analyst guide](analyst-guide.md).
"""

TRUTH = """\
### Synthetic truth (generator only)

`DATA/{file}`: {columns}. One row per source record the generator wrote, with the true
person and whether that person opted out (national or type 1). The pipeline never reads
it; only `joinedup evaluate`, the benchmarks and the tests do.
"""


def _cell(text: str) -> str:
    """One table cell: one line, pipes escaped, an ASCII arrow in words (it reads as an order)."""
    return " ".join(str(text).split()).replace("|", "\\|").replace(" -> ", " to ")


def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code_sets() -> dict[frozenset[str], str]:
    """Every code set of contracts.py by value, named as the module names it."""
    return {
        value: name
        for name, value in vars(contracts).items()
        if name.isupper() and isinstance(value, frozenset)
    }


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _defect_reason(col: Column) -> str | None:
    """The reason kind a non-blank defective value of ``col`` gets at ingest (None: any is kept)."""
    return ingest_rule(col, date.today()).kind


def _on_defect(col: Column) -> str:
    parts = []
    status = f"`{status_column(col.name)}`"
    if col.required:
        parts.append(f"blank: quarantined, `missing:{col.name}`")
    elif col.nullable_if_defective:
        parts.append(f"blank: null, {status} `blank`")
    reason = _defect_reason(col)
    if reason is not None:
        invalid = "invalid"
        if col.kind is Kind.DATE and col.nullable_if_defective:
            invalid = f"invalid or outside {EARLIEST_BIRTH.isoformat()} to the run day"
        if col.nullable_if_defective:
            parts.append(f"{invalid}: null, {status} `invalid`")
        else:
            parts.append(f"{invalid}: quarantined, `{reason}:{col.name}`")
    return "; ".join(parts) or "kept as sent"


def _notes(col: Column, names: dict[frozenset[str], str]) -> str:
    notes = [col.description] if col.description else []
    if col.codes is not None:
        name = names.get(col.codes)
        if name is None:
            raise ValueError(f"{col.name}: its code set is not a named constant of contracts.py")
        notes.append(f"codes: [`{name}`](#{_slug(name)})")
    return _cell("; ".join(notes))


def _table_section(table: Table, names: dict[frozenset[str], str]) -> str:
    lines = [f"### `{table.qualified_name}`", ""]
    lines.append(f"{table.description} Delivered as `{table.folder}/{table.file_glob}`.")
    lines.append("")
    key = ", ".join(f"`{k}`" for k in table.key) or "none"
    lines.append(f"* key (a second row with it is quarantined): {key}")
    if table.record:
        org, local = table.record
        lines.append(f"* source record: (`{table.source}`, `{org}`, `{local}`)")
    if table.qualified_name in PERIOD_COLUMNS:
        period = PERIOD_COLUMNS[table.qualified_name]
        lines.append(f"* activity date (the month a file delivers): `{period}`")
    lines += [
        "",
        "| column | kind | required | identifier | a blank or defective value | notes |",
        "|---|---|---|---|---|---|",
    ]
    for c in table.columns:
        optional = "no (national layouts only)" if c.optional else ""
        lines.append(
            f"| `{c.name}` | {c.kind.value} | {'yes' if c.required else optional} | "
            f"{'yes' if c.identifier else ''} | {_cell(_on_defect(c))} | {_notes(c, names)} |"
        )
    return "\n".join(lines) + "\n"


def _landing() -> str:
    names = _code_sets()
    lines = [
        LANDING_INTRO,
        "| file | one row per | key | source record |",
        "|---|---|---|---|",
    ]
    for t in TABLES.values():
        record = f"`{t.record[0]}`, `{t.record[1]}`" if t.record else ""
        lines.append(
            f"| [`{t.folder}/{t.file_glob}`](#{_slug(t.qualified_name)}) | "
            f"{_cell(t.description)} | {', '.join(f'`{k}`' for k in t.key)} | {record} |"
        )
    lines.append("")
    lines += [_table_section(t, names) for t in TABLES.values()]
    lines.append(
        "A column marked *identifier* is a raw personal identifier: it never leaves the "
        "landing zone (`landing/`, `quarantine/`). The privacy gate looks for its values in "
        "every output, and the data protection pack lists what pseudonymisation does to it.\n"
    )
    return "\n".join(lines)


LAYOUTS_INTRO = """## Layouts

The landing tables above are joinedup's internal schema, and also its *generic* layout: a
file named after a table (`apc_episodes*.csv`) carries that table's columns. The national
datasets an ICB receives are read through *layouts* shipped in `src/joinedup/layouts/`,
one YAML file each; a supplier's local variant of one is a *mapping* (a YAML file in the
folder `JOINEDUP_MAPPINGS_DIR` names, kept in version control). Ingest reads a layout's
file, matching headers case-insensitively, turns each row into the landing table's
columns (file and line kept) and then applies the landing contract above, so quarantine,
the ledger and re-deliveries work the same for every layout. The runbook's "Adding a
feed or a local variant" says how to write one.

Keys of a layout: `layout` and `revision` (its name and version), `title`,
`specification`, `source`, `files` (name pattern in `landing/<source>/`), `revises`
(below), `columns` (each with `kind`: text, date, time or snomed; `required`; `optional`,
absent from the header allowed; `codes`, a closed set; `format`, a date format),
`numbered` (positions such as `diag_4_01` ... `diag_4_20`), `identifies_person`,
`supersede` and `tables` (per landing table, where each landing column comes from: a
column, `null`, `{join: <numbered>, from: N}`, `{datetime: [date, time]}`,
`{column: c, map: {...}}` or `{first_of: [...]}`).

Keys of a mapping: `mapping`, `revision`, `extends` (a shipped layout), `files` (its own
pattern; a file it matches is read with it, not with the layout it extends),
`description`, `rename` (local column name: the layout's), `formats` (layout date column:
its format here, e.g. `%d/%m/%Y`) and `codes` (layout column: local code to national
code). A mapping is checked when loaded: an unknown layout, column or key, or a date
format that does not read back a full date, stops the run naming the file and the key.

How a layout revises earlier deliveries (`revises`):

"""


REVISION_RULES: tuple[tuple[str, str], ...] = (
    ("`month`", "replaces an earlier file of the same month and organisations (as generic files)"),
    (
        "`year_to_date`",
        "replaces every earlier file whose months (by activity date) it covers, for no fewer "
        "organisations: the SUS/HES financial-year-to-date refresh; the ledger's `period` is "
        "the range",
    ),
    (
        "`latest_submission`",
        "row by row: among rows of the same identity (`supersede`), the latest submission's "
        "wins; the others are quarantined as `superseded_by:<file>:<line>`",
    ),
)


def _layout_spec(spec: object) -> str:
    if spec is None:
        return "blank (not delivered)"
    if isinstance(spec, str):
        return f"`{spec}`"
    assert isinstance(spec, dict)
    if "join" in spec:
        return f"`{spec['join']}_NN` from position {spec.get('from', 1)}, `; `-joined"
    if "datetime" in spec:
        day, time = spec["datetime"]
        return f"`{day}` and `{time}`"
    if "first_of" in spec:
        return "the first of: " + "; then ".join(_layout_spec(s) for s in spec["first_of"])
    if "map" in spec:
        pairs = ", ".join(f"{k} → {v}" for k, v in spec["map"].items())
        return f"`{spec['column']}` mapped ({pairs}); any other value blank"
    return _cell(str(spec))


def _layouts() -> str:
    from joinedup.ingest.layouts import shipped_layouts

    lines = [LAYOUTS_INTRO, _table(("rule", "what a later file does"), REVISION_RULES), ""]
    for layout in shipped_layouts().values():
        lines += [
            f"### Layout `{layout.name}` (revision {layout.revision})",
            "",
            f"{layout.title}: `landing/{layout.source}/{layout.files}`. {layout.description}",
            "",
            f"* specification: {layout.specification}",
            f"* revises: `{layout.revises}`",
            "* identifies a person: " + ", ".join(f"`{c}`" for c in layout.identifies_person),
        ]
        for qualified, rule in layout.supersede.items():
            identity = ", ".join(f"`{c}`" for c in rule.identity)
            latest = f"latest `{rule.submitted}`" if rule.submitted else "the latest delivery"
            lines.append(f"* supersede `{qualified}`: identity {identity}; {latest} wins")
        lines += ["", "| column | kind | in the header | code set | description |"]
        lines.append("|---|---|---|---|---|")
        for c in layout.columns:
            codes = "; ".join(f"`{k}` {v}".strip() for k, v in (c.codes or {}).items())
            header = "required" if c.required else "may be absent" if c.optional else "yes"
            fmt = f" ({c.date_format})" if c.kind == "date" else ""
            lines.append(
                f"| `{c.name}` | {c.kind}{fmt} | {header} | {_cell(codes)} | "
                f"{_cell(c.description)} |"
            )
        for qualified, columns in layout.tables.items():
            lines += ["", f"Into `{qualified}`:", "", "| landing column | from |", "|---|---|"]
            lines += [f"| `{k}` | {_cell(_layout_spec(v))} |" for k, v in columns.items()]
        lines.append("")
    return "\n".join(lines)


def _kinds() -> str:
    missing = [k for k in Kind if k not in KIND_NOTES]
    if missing:
        raise ValueError(f"contract_docs.KIND_NOTES has no line for {missing}")
    lines = [KINDS_INTRO, "| kind | read as |", "|---|---|"]
    lines += [f"| `{k.value}` | {KIND_NOTES[k]} |" for k in Kind]
    return "\n".join(lines) + "\n"


def _code_sort(code: str) -> tuple[int, str]:
    return (0 if code[:1].isdigit() else 1, code)


def _seed_meanings(column: str, codes: frozenset[str]) -> tuple[str, dict[str, str]] | None:
    """(seed file, code -> meaning) from the reference seed of ``column``'s codes, if any.

    A seed qualifies when its first column is named after the contract column (or
    ``<column>_code``) and it holds most of the contract's codes: a seed of the same name
    may list codes of something else (``event_type`` of care events).
    """
    for path in sorted((SEEDS_DIR / "reference").glob("*.csv")):
        with path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
        if not rows or len(rows[0]) < 2 or rows[0][0] not in (column, f"{column}_code"):
            continue
        meaning = 2 if rows[0][1] == column and len(rows[0]) > 2 else 1
        meanings = {r[0]: r[meaning] for r in rows[1:]}
        if 2 * len(codes & meanings.keys()) >= len(codes):
            return path.relative_to(REPO_ROOT).as_posix(), meanings
    return None


def _codes() -> str:
    names = _code_sets()
    used: dict[str, list[str]] = {}
    for t in TABLES.values():
        for c in t.columns:
            if c.codes is not None:
                used.setdefault(names[c.codes], []).append(f"`{t.qualified_name}.{c.name}`")
    lines = [CODES_INTRO]
    for name, columns in used.items():
        codes = next(v for v, n in names.items() if n == name)
        column = columns[0].strip("`").split(".")[-1]
        lines += [f"### `{name}`", "", f"Used by {', '.join(dict.fromkeys(columns))}.", ""]
        # Named subsets that partition the set (elective, emergency, other methods).
        parts = [(n, v) for v, n in names.items() if v < codes and v and n not in used]
        grouped = {c: n for n, v in parts for c in v}
        if len(grouped) != len(codes) or sum(len(v) for _n, v in parts) != len(codes):
            grouped = {}
        seed = _seed_meanings(column, codes)
        ordered = sorted(codes, key=_code_sort)
        if not seed and not grouped:
            lines += [", ".join(f"`{code}`" for code in ordered), ""]
            continue
        meanings = seed[1] if seed else {}
        lines += [
            "| code | meaning |" + (" group |" if grouped else ""),
            "|---|---|" + ("---|" if grouped else ""),
        ]
        for code in ordered:
            row = f"| `{code}` | {_cell(meanings.get(code, ''))} |"
            lines.append(row + (f" `{grouped[code]}` |" if grouped else ""))
        if seed:
            lines += ["", f"Meanings from `{seed[0]}`."]
        lines.append("")
    lines.append(
        f"GP type 1 objection: `gp/events.snomed_code` `{contracts.SNOMED_TYPE1_OBJECTION}` "
        f"(dissent from secondary use of GP patient identifiable data); "
        f"`{contracts.SNOMED_TYPE1_WITHDRAWN}` withdraws it; see [opt-outs](#opt-outs).\n"
    )
    return "\n".join(lines)


def _column_reasons() -> str:
    reasons: dict[str, list[str]] = {}
    for t in TABLES.values():
        for c in t.columns:
            where = f"`{t.qualified_name}`"
            if c.required:
                reasons.setdefault(f"missing:{c.name}", []).append(where)
            kind = _defect_reason(c)
            if kind is not None and not c.nullable_if_defective:
                reasons.setdefault(f"{kind}:{c.name}", []).append(where)
    lines = ["| reason | tables |", "|---|---|"]
    for reason in sorted(reasons, key=lambda r: (r.split(":")[0], r)):
        lines.append(f"| `{reason}` | {', '.join(reasons[reason])} |")
    return "\n".join(lines) + "\n"


def _redeliveries() -> str:
    cases = _table(("delivery", "what happens"), REDELIVERY_CASES)
    lines = [REDELIVERIES_INTRO.format(cases=cases), "| table | activity date |", "|---|---|"]
    lines += [f"| `{t}` | `{c}` |" for t, c in PERIOD_COLUMNS.items()]
    return "\n".join(lines) + "\n" + REDELIVERIES_OUTRO


def _zones() -> str:
    zone_paths = {z.path for z in ZONES}
    lines = [
        OUTPUTS_INTRO,
        "| path under `DATA` | zone | written by | later changed by | holds | owner-only |",
        "|---|---|---|---|---|---|",
    ]
    for z in ZONES:
        later = "; ".join(f"`{stage}`: {why}" for stage, why in z.amended_by)
        lines.append(
            f"| `{z.path}` | {z.name} | {_cell(z.writer)} | {_cell(later)} | {_cell(z.holds)} | "
            f"{'yes' if z.private else ''} |"
        )
    transient = [f"`{p}` ({what})" for p, what in TRANSIENT.items() if p not in zone_paths]
    lines += ["", "Transient, beside these: " + "; ".join(transient) + ".", ""]
    return "\n".join(lines)


def _files() -> str:
    lines = [FILES_INTRO, "| path under `DATA` | what |", "|---|---|"]
    lines += [f"| `{path}` | {_cell(what)} |" for path, what in ZONE_FILES.items()]
    return "\n".join(lines) + "\n"


def _ledger() -> str:
    missing = [c for c in (*CONTRACT_SCHEMA, *DELIVERY_SCHEMA) if c not in LEDGER_NOTES]
    if missing:
        raise ValueError(f"contract_docs.LEDGER_NOTES has no line for {missing}")
    lines = [LEDGER_INTRO.rstrip("\n")]
    for part, schema in (("contract", CONTRACT_SCHEMA), ("delivery", DELIVERY_SCHEMA)):
        for name, dtype in schema.items():
            kind = "integer" if dtype.is_integer() else "text"
            lines.append(f"| `{name}` | {kind} | {part} | {_cell(LEDGER_NOTES[name])} |")
    return "\n".join(lines) + "\n"


def _pseudonymised() -> str:
    lines = [PSEUDONYMISED_INTRO, "| source | tables |", "|---|---|"]
    for source, names in PSEUDONYMISED_TABLES.items():
        lines.append(f"| `{source}` | {', '.join(f'`{n}`' for n in names)} |")
    built = [
        f"`{s}/{n}`"
        for s, names in PSEUDONYMISED_TABLES.items()
        for n in names
        if f"{s}/{n}" not in TABLES
    ]
    lines += [
        "",
        "Record-grain columns: " + ", ".join(f"`{c}`" for c in RECORD_SCHEMA) + "; "
        "`gp/patients` adds "
        + ", ".join(f"`{c}`" for c in GP_EXTRA)
        + ". "
        + ", ".join(built)
        + " is not delivered: it is built from the source's landing "
        "tables, one row per source record, the most recent valid value of each field.",
        "",
    ]
    return "\n".join(lines)


def _marts() -> list[dict]:
    marts = []
    for path in sorted(MARTS_DIR.rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models") or []:
            if model["name"].startswith(MART_PREFIXES):
                marts.append(model)
    return sorted(marts, key=lambda m: (m["name"].startswith("mart_"), m["name"]))


def _grain(description: str) -> str:
    found = re.search(r"\*\*Grain:\s*(.*?)\.?\*\*", description or "", re.S)
    return " ".join(found.group(1).split()) if found else ""


def _published() -> str:
    lines = [MARTS_INTRO, "| mart | for | grain | columns |", "|---|---|---|---|"]
    for m in _marts():
        tags = (m.get("config") or {}).get("tags") or []
        audience = (
            "commissioners: aggregates, disclosure-controlled"
            if "commissioner_facing" in tags
            else "analysts: person level"
        )
        columns = ", ".join(f"`{c['name']}`" for c in m.get("columns") or [])
        lines.append(
            f"| `{m['name']}` | {audience} | {_cell(_grain(m.get('description', '')))} | "
            f"{columns} |"
        )
    return "\n".join(lines) + "\n"


def render() -> str:
    """docs/contracts.md as it must be for the code as it is."""
    parts = [
        HEADER,
        _landing(),
        _layouts(),
        _kinds(),
        _codes(),
        ROW_RULES,
        QUARANTINE_INTRO.format(general=_table(("reason", "when"), GENERAL_REASONS))
        + "\n"
        + _column_reasons(),
        REJECTED_WHOLE + "\n" + _table(("what arrives", "what happens"), WHOLE_FILE_CASES),
        OPT_OUTS,
        _redeliveries(),
        _tokens(),
        _zones(),
        _files(),
        _ledger(),
        _pseudonymised(),
        "### Linked\n\n`DATA/"
        + catalogue.RECORD_PERSON
        + "`: `source`, `record_token`, `person_id` for every source record that survived "
        "the opt-outs; the other files of `linked/` are listed above.\n",
        _published(),
        TRUTH.format(file=TRUTH_FILE, columns=", ".join(f"`{c}`" for c in TRUTH_COLUMNS)),
    ]
    text = "\n".join(p.rstrip("\n") + "\n" for p in parts)
    return re.sub(r"\n{3,}", "\n\n", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render docs/contracts.md from the code.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"rewrite {DOC_PATH.name}")
    group.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC_PATH.write_text(text)
        print(f"wrote {DOC_PATH.relative_to(REPO_ROOT)}", file=sys.stderr)
    elif args.check:
        current = DOC_PATH.read_text() if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH.relative_to(REPO_ROOT)} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
