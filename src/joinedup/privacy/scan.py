"""Find identifiers from the landing zone in files that are meant to be de-identified.

Reusable as a run gate: :func:`scan` reports every name, NHS number, date of
birth, full postcode and local patient id that occurs in the landing extracts
and also occurs in an output (parquet, DuckDB, CSV, JSON, HTML or any text
file), with the file and column it was found in; :func:`assert_clean` raises
:class:`PrivacyLeakError` with counts only (never the values).

How matching works, all as DuckDB set joins over *distinct* cell values:

* every cell is cut into candidate tokens by kind: words (names), 10-digit
  numbers also written ``943 476 5919`` (NHS numbers), dates written
  ``YYYY-MM-DD``, ``DD/MM/YYYY`` or ``YYYYMMDD`` (normalised to ISO), postcodes
  with or without their space, and alphanumeric ids. Tokens must stand alone
  (word boundaries), so a hex token or a Bloom filter string never yields a
  "name" from its letters or a "date" from its digits;
* the identifiers are the same tokens cut from the landing files' identifier
  columns. A token that also occurs in a landing *non*-identifier column is
  ambiguous and dropped (a date of birth equal to some admission date, a
  surname equal to a word of a service type), as are names shorter than three
  letters, a short list of common English words that are also names, and
  local ids that are not a mix of letters and digits of length six or more.
  So the scan is quiet on event dates and codes but catches identifiers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import shutil
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl

from joinedup.catalogue import PERSON_SOURCES
from joinedup.contracts import TABLES, Kind, Table
from joinedup.ingest.layouts import Layout
from joinedup.ingest.read import delivered_files
from joinedup.settings import Settings
from joinedup.sql import literal

log = logging.getLogger(__name__)

KINDS = ("name", "nhs_number", "date_of_birth", "postcode", "local_id")
TEXT_COLUMN = "(text)"
HTML_COLUMN = "(html)"  # an HTML file's lines: every kind but names
DATA_COLUMN = "(data)"  # the values of the JSON an HTML page's scripts embed
HTML_SUFFIXES = {".html", ".htm"}
TABULAR = {".parquet", ".csv", ".duckdb", ".db"}
TEXT_SUFFIXES = {".json", ".html", ".htm", ".txt", ".md", ".jsonl", ".ndjson", ".xml", ".svg"}

# Words that are names but also ordinary English (or dashboard vocabulary). At a million
# people, typos turn names into words (WRIGHT -> WEIGHT), so chart labels collide too.
_COMMON = """
    all and any april are art bill black bond brown can case cook day dean dawn england
    faith field fields frank free gay general grace green guy hall hill holly hope house
    iris ivy joy june king lane law level long major mark mart marts match may new north not park
    patience people rich rose ruby sage sandy scott short south stone summer the total
    victor ward weight wells west white will wood young
"""
# The prose Splink writes into its charts' data, not their labels, so lower case and all
# (splink/internals: comparison_level._bayes_factor_description, waterfall_chart, the
# m/u chart's prior): "... is 2,832,573 times more likely to be a match". At a million
# people one is called EMILY MORE.
_SPLINK_PROSE = """
    adjustment amongst certain comparison drawn equivalent final frequency impossible less
    likely makes more prior probability random records score starting term that then this
    times two
"""
COMMON_WORDS = frozenset(_COMMON.split()) | frozenset(_SPLINK_PROSE.split())

# Regexes (RE2). Values are pre-normalised: accents stripped, '_' -> ' ', digit T digit -> ' '.
_PATTERNS: dict[str, tuple[str, str]] = {
    # kind: (pattern, SQL turning the match `t` into the comparable token)
    # Names of three letters or more and local ids of six characters or more: the only
    # lengths `identifiers` keeps, so shorter words and numbers are never cut out.
    "name": (r"\b[A-Za-z]{3,}\b", "lower(t)"),
    "nhs_number": (r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b", "regexp_replace(t, '[ -]', '', 'g')"),
    "iso_date": (r"\b\d{4}-\d{2}-\d{2}\b", "t"),
    "uk_date": (
        r"\b\d{2}/\d{2}/\d{4}\b",
        "substr(t, 7, 4) || '-' || substr(t, 4, 2) || '-' || substr(t, 1, 2)",
    ),
    "compact_date": (
        r"\b\d{8}\b",
        "substr(t, 1, 4) || '-' || substr(t, 5, 2) || '-' || substr(t, 7, 2)",
    ),
    "postcode": (r"\b[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}\b", "upper(replace(t, ' ', ''))"),
    "local_id": (r"\b[A-Za-z0-9]{6,}\b", "upper(t)"),
}
# A whole value that is a keyed token, a person id, a surrogate key (lower-case hex) or a
# Bloom filter has no word boundary
# inside it, so its only candidate token is itself, which is no landing identifier:
# skipped before the (costly) tokenising. At a million people they are most of the cells.
_OPAQUE = r"[0-9a-f]{16,}|[01]{64,}"
_KIND_OF = dict.fromkeys(("iso_date", "uk_date", "compact_date"), "date_of_birth")


SPILL_DIR = "_privacy_scan_spill"


# A column whose every date is the first of a month holds months (event_month), not
# dates of birth, even where a first-of-month birthday coincides.
_FINDINGS = """
    WITH month_columns AS (
        SELECT file, col FROM candidates WHERE kind = 'date_of_birth'
        GROUP BY file, col HAVING bool_and(token LIKE '%-01')
    )
    SELECT DISTINCT c.file, c.col AS column, c.kind, c.token AS value
    FROM candidates c JOIN identifiers i USING (kind, token)
    WHERE NOT (c.kind = 'date_of_birth'
               AND (c.file, c.col) IN (SELECT (file, col) FROM month_columns))
"""


class PrivacyLeakError(RuntimeError):
    """Identifiers from the landing zone were found in files meant to be de-identified."""


def _candidates_sql(cells: str, by_kind: bool = False) -> str:
    """SQL: (file, col, kind, token) for each candidate token in ``cells(file, col, value)``.

    ``by_kind``: cells also carry ``id_kind``, the one kind of identifier their column
    holds (or NULL): such a cell is cut only into tokens of its own kind, which is all the
    landing identifiers need and a seventh of the regex work on a million people's names.
    The output then carries ``id_kind`` too.
    """
    kind_col = ", id_kind" if by_kind else ""
    parts = []
    for name, (pattern, to_token) in _PATTERNS.items():
        kind = _KIND_OF.get(name, name)
        # In free text (HTML charts carry minified JavaScript) an all-lower-case word is
        # code or prose, not a recorded name: names are written capitalised or in capitals.
        where = (
            f" WHERE col <> '{HTML_COLUMN}' AND NOT (col = '{TEXT_COLUMN}' AND t = lower(t))"
            if name == "name"
            else ""
        )
        own_kind = f" WHERE id_kind IS NULL OR id_kind = '{kind}'" if by_kind else ""
        # A name is a whole word: `date_of_birth` or `max_value` is a column or a setting
        # of the code, never a person's Date or Max, so names are cut from the value as
        # written; the other kinds from it with '_' read as a space (`run_2025-01-01`).
        source = "w" if name == "name" else "v"
        parts.append(
            f"SELECT file, col, '{kind}' AS kind, {to_token} AS token{kind_col} FROM ("
            f"SELECT file, col{kind_col}, unnest(regexp_extract_all({source}, '{pattern}')) AS t "
            f"FROM prepared{own_kind})" + where
        )
    # Cells come distinct per column. Each normalising step is guarded by a cheap test
    # (ASCII has no accents; no 'T', no ISO datetime; short text is no token) because at
    # a million people the landing zone alone is six million distinct cells.
    ascii_ = "CASE WHEN strlen(value) = length(value) THEN value ELSE strip_accents(value) END"
    spaced = "replace(w, '_', ' ')"
    return (
        f"WITH prepared AS (SELECT file, col{kind_col}, w, CASE WHEN contains(u, 'T') "
        "THEN regexp_replace(u, '(\\d)T(\\d)', '\\1 \\2', 'g') ELSE u END AS v "
        f"FROM (SELECT file, col{kind_col}, w, {spaced} AS u FROM "
        f"(SELECT file, col{kind_col}, {ascii_} AS w FROM {cells} "
        "WHERE value IS NOT NULL AND NOT (length(value) >= 16 AND regexp_full_match(value, "
        f"'{_OPAQUE}'))))) " + " UNION ALL ".join(parts)
    )


def _person_tables() -> list[Table]:
    return [t for t in TABLES.values() if t.source in (*PERSON_SOURCES, "opt_outs")]


def _identifier_kind(table: Table, column: str) -> str | None:
    """Which kind of identifier a landing column holds, or None for non-identifying columns."""
    if table.record is not None and column == table.record[1]:
        return "local_id"
    col = table.column(column)
    if not col.identifier:
        return None
    return {
        Kind.NHS_NUMBER: "nhs_number",
        Kind.DATE: "date_of_birth",
        Kind.POSTCODE: "postcode",
    }.get(col.kind, "name")


def _raw(path: Path) -> pl.DataFrame:
    raw = pl.read_csv(
        path,
        infer_schema=False,
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        raise_if_empty=False,
    )
    return raw.rename({c: c.replace("\ufeff", "").strip().lower() for c in raw.columns})


def _layout_kinds(layout: Layout) -> dict[str, str | None]:
    """Each delivered column of a layout (its local name) and the identifier kind it holds.

    A column a landing identifier is read from as it is holds that kind; every other
    column (codes, dates, the parts a landing column is built from) identifies nobody,
    and its values make equal identifier tokens ambiguous, as a generic file's do.
    """
    kinds: dict[str, str | None] = {}
    for qualified, spec in layout.tables.items():
        table = TABLES[qualified]
        for landing, source in spec.items():
            if isinstance(source, str):
                kind = _identifier_kind(table, landing)
                if kind is not None or source not in kinds:
                    kinds[source] = kind
    return {layout.local_name(c): kinds.get(c) for c in layout.column_names}


def _cells(file: str, raw: pl.DataFrame, kinds: dict[str, str | None]) -> list[pl.DataFrame]:
    return [
        raw.select(
            pl.lit(file).alias("file"),
            pl.lit(column).alias("col"),
            pl.col(column).alias("value"),
            pl.lit(kind, dtype=pl.String).alias("id_kind"),
        ).unique()
        for column, kind in kinds.items()
        if column in raw.columns
    ]


def _landing_cells(landing_dir: Path) -> pl.DataFrame:
    """(file, col, value, id_kind) for every landing cell of person tables and the opt-out list.

    Files in a national layout or a local mapping (joinedup.ingest.layouts) are read by
    their layout: a HES APC, ECDS or CLD file's identifiers are found as a generic file's.
    """
    frames: list[pl.DataFrame] = []
    seen: set[Path] = set()
    for table in _person_tables():
        for path, layout in delivered_files(Path(landing_dir).parent, table):
            if path in seen:  # a CLD file feeds clients and events
                continue
            seen.add(path)
            if layout is None:
                kinds = {c: _identifier_kind(table, c) for c in table.column_names}
            else:
                kinds = _layout_kinds(layout)
            frames += _cells(f"{table.source}/{path.name}", _raw(path), kinds)
    schema = {"file": pl.String, "col": pl.String, "value": pl.String, "id_kind": pl.String}
    return pl.concat([pl.DataFrame(schema=schema), *frames])


def identifiers(con: duckdb.DuckDBPyConnection, landing_dir: Path) -> int:
    """Build table ``identifiers(kind, token)`` from the landing zone; returns its size."""
    con.register("landing_cells", _landing_cells(landing_dir))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE landing_tokens AS "
        + _candidates_sql("landing_cells", by_kind=True)
    )
    con.register("common_words", pl.DataFrame({"token": sorted(COMMON_WORDS)}))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE identifiers AS
        SELECT DISTINCT kind, token FROM landing_tokens
        WHERE id_kind = kind
          AND (kind <> 'name' OR (length(token) >= 3
               AND token NOT IN (SELECT token FROM common_words)))
          AND (kind <> 'local_id' OR (length(token) >= 6
               AND regexp_matches(token, '[A-Z]') AND regexp_matches(token, '[0-9]')))
          -- A date of birth today or later is a keying error that ingest nulls, not anyone's
          -- birthday, and it would match every run's own timestamp.
          AND (kind <> 'date_of_birth' OR token < strftime(current_date, '%Y-%m-%d'))
        EXCEPT
        SELECT DISTINCT kind, token FROM landing_tokens WHERE id_kind IS NULL
        """
    )
    return con.sql("SELECT count(*) FROM identifiers").fetchall()[0][0]


def _library_dirs() -> list[Path]:
    """Folders of files that libraries ship and outputs copy as they are: Great
    Expectations' Data Docs site (its logos and images), Splink's chart scripts, and the
    Data Docs assets vendored in :mod:`joinedup.quality.offline_docs`."""
    from joinedup.quality.offline_docs import ASSETS

    dirs = [ASSETS]
    for package, sub in (("great_expectations", "render/view/static"), ("splink", "internals")):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            dirs.append(Path(spec.origin).parent / sub)
    return [d for d in dirs if d.is_dir()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _library_copies(files: list[Path]) -> set[Path]:
    """The files that are byte for byte a file a library ships (by size, then SHA-256).

    Identity, not name or place: a page a library renders with data in it differs from
    every file it ships, so it is scanned; only the library's own text is not.
    """
    sizes: dict[int, list[Path]] = {}
    for d in _library_dirs():
        for p in d.rglob("*"):
            if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES:
                sizes.setdefault(p.stat().st_size, []).append(p)
    hashes: dict[int, set[str]] = {}
    out = set()
    for f in files:
        size = f.stat().st_size
        if size not in sizes:
            continue
        if size not in hashes:
            hashes[size] = {_sha256(p) for p in sizes[size]}
        if _sha256(f) in hashes[size]:
            out.add(f)
    return out


def _files(targets: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for target in targets:
        target = Path(target)
        if target.is_dir():
            out.extend(
                p
                for p in sorted(target.rglob("*"))
                if p.is_file() and p.suffix.lower() in TABULAR | TEXT_SUFFIXES
            )
        elif target.is_file():
            out.append(target)
    library = _library_copies([p for p in out if p.suffix.lower() in TEXT_SUFFIXES])
    return [p for p in out if p not in library]


# Types that cannot hold a name, NHS number, date of birth, postcode or local id (at
# most five digits, no letters), and types whose text is a date (the time is no identifier).
_CANNOT_HOLD = {"BOOLEAN", "TINYINT", "SMALLINT", "UTINYINT", "USMALLINT"}
_DATES = {"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}


def _distinct_cells(
    file: str, relation: str, columns: list[tuple[str, str]], prefix: str = ""
) -> str:
    """SQL: (file, col, value) with each column's *distinct* values as text.

    Distinct in the column's own type first, then cast: a million-row table has a few
    thousand distinct dates or codes, and casting and tokenising them is what costs.
    Opaque text (tokens, keys, Bloom filters) is dropped before the distinct, so a
    column of millions of unique keys builds no hash table.
    """
    selects = []
    for column, type_ in columns:
        if type_ in _CANNOT_HOLD:
            continue
        ident = '"' + column.replace('"', '""') + '"'
        value = f"CAST({ident} AS DATE)" if type_ in _DATES else ident
        where = f"{ident} IS NOT NULL"
        if type_ == "VARCHAR":
            where += f" AND NOT regexp_full_match({ident}, '{_OPAQUE}')"
        selects.append(
            f"SELECT {literal(file)} AS file, {literal(prefix + column)} AS col, "
            f"CAST(v AS VARCHAR) AS value FROM "
            f"(SELECT DISTINCT {value} AS v FROM {relation} WHERE {where})"
        )
    return " UNION ALL ".join(selects)


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def _table_cells_sql(con: duckdb.DuckDBPyConnection, path: Path, n: int) -> list[str] | None:
    """SQL selecting (file, col, value) cells of one tabular file (one per DuckDB table);
    None for a CSV that does not parse, to be scanned as text."""
    suffix, label = path.suffix.lower(), path.as_posix()
    p = literal(label)
    if suffix == ".parquet":
        rel = f"read_parquet({p})"
        return [_distinct_cells(label, rel, _columns(con, rel))]
    if suffix == ".csv":
        rel = f"read_csv({p}, all_varchar = true, header = true)"
        try:
            return [_distinct_cells(label, rel, _columns(con, rel))]
        except duckdb.Error:
            log.warning("%s: not readable as CSV, scanned as text", label)
            return None
    alias = f"scan_db_{n}"
    con.execute(f"ATTACH {p} AS {alias} (READ_ONLY)")
    tables = con.sql(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?",
        params=[alias],
    ).fetchall()
    out = []
    for schema, table in tables:
        rel = f'{alias}."{schema}"."{table}"'
        out.append(_distinct_cells(label, rel, _columns(con, rel), prefix=f"{schema}.{table}."))
    return out


class _Page(HTMLParser):
    """An HTML page cut by its structure: the text a reader sees, and its scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in is None and data.strip():
            self.text.append(data)


# Where a JSON literal can start in a script: after `=`, `(`, `,` or `:` (an assignment,
# a call's argument), or a script that is all JSON; an object with a quoted key or an
# array of them. Code's own object literals have bare keys, so they never parse.
_JSON_START = re.compile(r'(?:^|[=(,:])\s*([\[{])(?=\s*["{\[])')


def _json_literals(script: str) -> Iterator[object]:
    decoder = json.JSONDecoder()
    end = 0
    for match in _JSON_START.finditer(script):
        start = match.start(1)
        if start < end:
            continue  # inside a literal already read
        try:
            value, end = decoder.raw_decode(script, start)
        except ValueError:
            continue
        # Code's arrays of strings (`["boolean", "integer", "date"]`, a list of a
        # library's operators) parse too; the data a page embeds is records or a spec.
        if isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(v, dict) for v in value)
        ):
            yield value


def _is_vega_spec(value: object) -> bool:
    return isinstance(value, dict) and "vega" in str(value.get("$schema", ""))


def _vega_data(spec: object) -> Iterator[object]:
    """What a Vega(-Lite) spec plots: its datasets and inline data values, wherever in
    the spec (layers, facets). Titles, field names and axis labels are the chart's own."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "datasets":
                yield value
            elif key == "data" and isinstance(value, dict) and "values" in value:
                yield value["values"]
            else:
                yield from _vega_data(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from _vega_data(item)


def _scalars(value: object) -> Iterator[str]:
    """Every string and integer in a JSON value (a key is a field name, not data)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, int) and not isinstance(value, bool):
        yield str(value)


def html_cells(path: Path) -> pl.DataFrame:
    """(file, col, value) for one HTML page, by its structure.

    ``(text)``: the page's visible text (table cells, headings, paragraphs);
    ``(data)``: the values of the JSON a script embeds (a chart's records; of a Vega
    spec, only what it plots). What is left is interface: the chart library's code and
    strings, a spec's titles and labels, which are the software's text, not a person's
    ("Invalid Date", a "Max" whisker label). Every other kind than names is looked for
    in the page's raw lines too (:data:`HTML_COLUMN`).
    """
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    page.close()
    data: list[str] = []
    for script in page.scripts:
        for value in _json_literals(script):
            parts = _vega_data(value) if _is_vega_spec(value) else [value]
            for part in parts:
                data.extend(_scalars(part))
    label = path.as_posix()
    return pl.DataFrame(
        {
            "file": [label] * (len(page.text) + len(data)),
            "col": [TEXT_COLUMN] * len(page.text) + [DATA_COLUMN] * len(data),
            "value": page.text + data,
        },
        schema={"file": pl.String, "col": pl.String, "value": pl.String},
    ).unique()


def _text_cells_sql(con: duckdb.DuckDBPyConnection, paths: list[Path], first: int) -> list[str]:
    """SQL selecting (file, col, value) lines of text files, all files in one read:
    Data Docs and charts are hundreds of small pages, and a query each would cost more
    than reading them."""
    html = [p for p in paths if p.suffix.lower() in HTML_SUFFIXES]
    other = [p for p in paths if p.suffix.lower() not in HTML_SUFFIXES]
    selects = []
    if html:
        files = "read_text([" + ", ".join(literal(p.as_posix()) for p in html) + "])"
        view = f"html_cells_{first}"
        con.register(view, pl.concat([html_cells(p) for p in html]))
        selects += [
            f"SELECT filename AS file, '{HTML_COLUMN}' AS col, "
            f"unnest(string_split(content, chr(10))) AS value FROM {files}",
            f"SELECT file, col, value FROM {view}",
        ]
    if other:
        files = "read_text([" + ", ".join(literal(p.as_posix()) for p in other) + "])"
        selects.append(
            f"SELECT filename AS file, '{TEXT_COLUMN}' AS col, "
            f"unnest(string_split(content, chr(10))) AS value FROM {files}"
        )
    return selects


def _cells_sql(con: duckdb.DuckDBPyConnection, files: list[Path], first: int = 0) -> list[str]:
    """SQL selects of (file, col, value): one per table of a tabular file, then the text."""
    selects: list[str] = []
    texts: list[Path] = []
    for n, path in enumerate(files, start=first):
        tables = _table_cells_sql(con, path, n) if path.suffix.lower() in TABULAR else None
        if tables is None:
            texts.append(path)
        else:
            selects.extend(s for s in tables if s)
    return selects + _text_cells_sql(con, texts, first)


def _drop_vocabulary(con: duckdb.DuckDBPyConnection, vocabulary: Iterable[Path]) -> None:
    """The project's own files (suites, seeds) reach outputs from the code, not from a
    person, in two ways, each of which is not counted (table ``vocabulary_values``):

    * a whole value the project wrote (a seed's label copied into a reference table,
      "... (ST-Max) ..."): the cell is the project's text, whatever words it holds;
    * a token other than a name (a gate's date bound) wherever it also occurs in the
      landing data: ambiguous, like a value in a non-identifier column. Not a name: a
      person called Max or Date is no less identified where they are named because the
      word occurs in a suite (``max_value``) or a code list.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE vocabulary_values (value VARCHAR)")
    selects = _cells_sql(con, _files(vocabulary), first=10_000)
    if not selects:
        return
    con.execute("CREATE OR REPLACE TEMP VIEW vocabulary_cells AS " + " UNION ALL ".join(selects))
    con.execute("INSERT INTO vocabulary_values SELECT DISTINCT value FROM vocabulary_cells")
    con.execute(
        "DELETE FROM identifiers WHERE kind <> 'name' AND (kind, token) IN "
        f"(SELECT (kind, token) FROM ({_candidates_sql('vocabulary_cells')}))"
    )


def scan(
    landing_dir: Path, targets: Iterable[Path], vocabulary: Iterable[Path] = ()
) -> pl.DataFrame:
    """Every landing identifier found in ``targets`` (files or directories, searched recursively).

    Returns columns ``file``, ``column``, ``kind``, ``value`` (the identifier found),
    sorted. The result itself is identifiable: show counts, not values, in logs.
    ``vocabulary``: the project's own files (e.g. the expectation suites, seeds): their
    values, and their tokens other than names, are not counted as identifiers (see
    :func:`_drop_vocabulary`). Files a library ships (Great Expectations' site images,
    the vendored Data Docs assets) are not scanned: their text is no person's.
    """
    # Spilled pages hold landing identifiers, so they spill inside landing/ (owner-only),
    # never to a temporary folder of the working directory; memory is capped as elsewhere.
    spill = Path(landing_dir) / SPILL_DIR
    con = duckdb.connect(
        config={
            "memory_limit": Settings().duckdb_memory_limit,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
    )
    try:
        n_identifiers = identifiers(con, landing_dir)
        _drop_vocabulary(con, vocabulary)
        files = _files(targets)
        selects = _cells_sql(con, files)
        empty = pl.DataFrame(schema={k: pl.String for k in ("file", "column", "kind", "value")})
        if not selects:
            return empty
        # One table or file at a time: memory is bounded by the largest, not the sum.
        found = []
        for select in selects:
            con.execute(
                "CREATE OR REPLACE TEMP VIEW output_cells AS SELECT * FROM "
                f"({select}) ANTI JOIN vocabulary_values USING (value)"
            )
            con.execute(
                "CREATE OR REPLACE TEMP TABLE candidates AS " + _candidates_sql("output_cells")
            )
            found.append(pl.from_arrow(con.sql(_FINDINGS).arrow().read_all()))
        findings = pl.concat(found).unique().sort(pl.all())
        log.info(
            "privacy scan: %d files, %d landing identifiers, %d findings",
            len(files),
            n_identifiers,
            findings.height,
        )
        return findings.cast(pl.String) if findings.height else empty
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def summarise(findings: pl.DataFrame) -> list[dict]:
    """Counts of distinct identifiers found per file, column and kind (no values)."""
    summary = (
        findings.group_by(["file", "column", "kind"])
        .agg(pl.col("value").n_unique().alias("identifiers"))
        .sort(["file", "column", "kind"])
    )
    return summary.to_dicts()


def assert_clean(
    landing_dir: Path, targets: Iterable[Path], vocabulary: Iterable[Path] = ()
) -> None:
    """Raise :class:`PrivacyLeakError` (with counts, not values) if any target holds identifiers."""
    findings = scan(landing_dir, targets, vocabulary)
    if findings.height:
        lines = [
            f"{s['file']} [{s['column']}]: {s['identifiers']} {s['kind']} value(s)"
            for s in summarise(findings)
        ]
        raise PrivacyLeakError(
            "identifiers from the landing zone found in de-identified outputs:\n  "
            + "\n  ".join(lines)
            + "\nDo not publish these files; find the stage that wrote them and fix it."
        )
