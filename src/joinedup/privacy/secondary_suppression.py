"""Secondary (complementary) suppression of the commissioners' aggregate marts.

Primary suppression (``macros/suppress_small_numbers.sql``) withholds every count from
1 to threshold-1. The marts are published at overlapping breakdowns, so a withheld cell
can still be the whole minus its published parts: the differencing audit
(:mod:`joinedup.privacy.differencing`) finds such cells. This step withholds, in
every margin that lets a withheld cell be pinned down, the smallest published part of
that margin as well, then audits again, until no withheld cell is recovered exactly.
Narrowed cells remain (a withheld whole with k non-empty parts is at least k whatever
is withheld): asking for none (``criterion='narrowed'``) does not converge on the demo.

It runs inside ``dbt build``, so a hand-run build gives the marts as published: the
commissioner marts' materialization (``macros/materializations/disclosure_controlled.sql``)
builds the primary-suppressed table, calls :func:`suppress_in_dbt` on it in Python on
the model's own connection, then gives it the mart's name, and the marts' data tests run
on the result. Python, because it is a loop (audit, withhold, audit again) to a fixed
point, which Jinja SQL cannot express, and it reuses the auditor's own margins and
interval propagation rather than a second copy of them. What goes with each count when
it is withheld comes from the mart's column meta (:attr:`MartSpec.related`): the rates
and statistics computed from it and the counts marked ``withheld_with`` it.

A cell withheld here takes exactly the primary rule's form (count null,
``<count>_suppressed`` true, its rates and statistics nulled), so nothing tells a
reader which withheld cells are small; the mart's ``secondary_suppression`` column is
set true on every row to say that the rule was applied, and the audit then reads a
withheld count as anything from 1 up rather than 1 to threshold-1. The counts in its
row that would bound it from below (the people behind the transitions, say), which
the audit does not model, are withheld with it.

Across marts: some cells are the same quantity in two marts (adult discharges in the
social-care mart and index discharges in the readmissions mart, in months with the full
follow-up), so a cell withheld in one could be read off the other. Each mart's count
declares its twin (``same_as`` in its meta), and a last dbt node after the marts
(``models/marts/commissioning/disclosure_across_marts.sql``, materialization
``disclosure_across_marts``) runs the same audit and withholding over every commissioner
mart together, twin cells tied equal where their true values are
(:func:`suppress_across_marts_in_dbt`), to the same fixed point: no withheld cell of any
mart recovered exactly from all that is published.

Why the cells must look alike: a cell only exists when its count is at least 1, so
with withheld counts known to be at most threshold-1, a small withheld whole with many
(withheld) parts pins them all. On the 10,000-person demo some 800 cells are recovered
that way from no published figure at all, which no amount of withholding could stop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import duckdb

from joinedup.privacy.differencing import (
    FLAG,
    MARGIN_SUMS,
    OFFSET,
    SECONDARY,
    AggregateMart,
    TwinLink,
    aggregate_marts,
    audited,
    audited_together,
    recoverable_sql,
    twin_links,
)
from joinedup.sql import literal, quote
from joinedup.warehouse.marts import check_twins, from_node

log = logging.getLogger(__name__)

MAX_ROUNDS = 40
_UNBOUNDED = 1 << 40

Criterion = Literal["exact", "narrowed"]


class SecondarySuppressionError(RuntimeError):
    """The marts cannot be made safe against differencing by withholding more cells."""


def _columns(con: duckdb.DuckDBPyConnection, mart: AggregateMart) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from duckdb_columns() "
        "where schema_name = ? and table_name = ? and database_name = current_database() "
        "order by column_index",
        [mart.schema, mart.name],
    ).fetchall()


def _related(
    con: duckdb.DuckDBPyConnection,
    mart: AggregateMart,
    related: Mapping[str, Mapping[str, tuple[str, ...]]],
) -> Mapping[str, tuple[str, ...]]:
    """What goes with each count of this mart, checked against its columns.

    From the mart's metadata when dbt describes it; for a table no metadata describes,
    from ``related`` ({mart: {count: (what goes with it, ...)}}).
    """
    if not mart.secondary:
        raise SecondarySuppressionError(
            f"{mart.schema}.{mart.name} has no {SECONDARY} column: build it with "
            "macros/suppress_small_numbers.sql, which adds it."
        )
    columns = [c for c, _t in _columns(con, mart)]
    if mart.spec is not None:
        if tuple(columns) != mart.spec.column_names:
            raise SecondarySuppressionError(
                f"{mart.schema}.{mart.name} has columns {columns}, but its YAML "
                f"({mart.spec.where}) describes {list(mart.spec.column_names)}: describe every "
                "column of the mart, in the order the model selects them."
            )
        return mart.spec.related
    mine = related.get(mart.name, {})
    known = set(mart.dimensions) | {"breakdown", SECONDARY}
    known |= {f"{c}{suffix}" for c in mart.counts for suffix in ("", FLAG)}
    covered = {r for values in mine.values() for r in values}
    unknown = [c for c in columns if c not in known and c not in covered]
    if unknown:
        raise SecondarySuppressionError(
            f"{mart.schema}.{mart.name}: column(s) {', '.join(unknown)} are neither a count, "
            "a dimension nor tied to a count, so a withheld count would not take them with "
            "it. For a dbt mart give each column its meta role (numerator/denominator for a "
            "rate, of: for a statistic; joinedup.warehouse.marts); for a table dbt does not "
            "describe, pass related={mart: {count: (column, ...)}} (RELATED: what goes with "
            "each count)."
        )
    return mine


def _closure(
    count: str, related: Mapping[str, tuple[str, ...]], counts: Sequence[str]
) -> list[str]:
    """``count`` and the counts withheld with it, in order, each once."""
    out: list[str] = []
    todo = [count]
    while todo:
        c = todo.pop(0)
        if c in out:
            continue
        out.append(c)
        todo += [r for r in related.get(c, ()) if r in counts]
    return out


def _condition(criterion: Criterion, threshold: int) -> str:
    if criterion == "exact":
        return "lo = hi"
    return recoverable_sql(threshold)


def _choose(
    con: duckdb.DuckDBPyConnection, threshold: int, criterion: Criterion, *, wide: bool = False
) -> tuple[int, int]:
    """Fill temp table _ss_chosen with the cells to withhold; returns (recoverable, chosen).

    A margin is to blame for a recoverable cell when, given what is known of its other
    members, it bounds the cell more narrowly than 1 to threshold-1 on either side (not
    only the margins that set the final bound: at the fixed point a chain of margins can
    hold one another there, and the one with a published member must be broken). In each such
    margin the smallest published part is chosen, the whole only when no part is left
    (many withheld parts, each at least 1, of a small published whole). ``wide`` blames
    every margin holding a recoverable cell: for a cell held by a cycle of margins none
    of which narrows it alone.
    """
    t = int(threshold)
    recoverable = con.execute(
        f"select count(*) from _d_iv where suppressed and lo <= hi and {_condition(criterion, t)}"
    ).fetchone()[0]
    con.execute(
        f"""
        create or replace temp table _ss_chosen as
        with target as (
            select row_id, col, lo, hi from _d_iv
            where suppressed and lo <= hi and {_condition(criterion, t)}
        ),
        {MARGIN_SUMS},
        bounds as (
            select
                m.group_id,
                case when m.role = 'parent' then s.c_lo
                     else s.p_lo - (s.c_hi - m.hi) end as b_lo,
                case when m.role = 'parent' then s.c_hi
                     else s.p_hi - (s.c_lo - m.lo) end as b_hi
            from target as x
            inner join m on m.row_id = x.row_id and m.col = x.col
            inner join sums as s on s.group_id = m.group_id
            where s.p_lo is not null and s.c_lo is not null
        ),
        blamed as (
            select distinct group_id from bounds
            where {"true" if wide else f"b_lo > 1 or b_hi < {t - 1}"}
        ),
        candidates as (
            select m.row_id, m.col, row_number() over (
                partition by m.group_id order by m.role = 'parent', m.lo, m.row_id, m.col
            ) as rank
            from blamed as b
            inner join m on m.group_id = b.group_id
            where not m.suppressed and m.lo >= {t} and m.hi < {_UNBOUNDED}
        )
        select distinct row_id, col from candidates where rank = 1
        """
    )
    chosen = con.execute("select count(*) from _ss_chosen").fetchone()[0]
    return recoverable, chosen


def _withhold(
    con: duckdb.DuckDBPyConnection,
    mart: AggregateMart,
    related: Mapping[str, tuple[str, ...]],
) -> None:
    """Withhold the chosen cells (and what goes with them) in the mart itself."""
    keys = ["breakdown", *mart.dimensions]
    cols = ", ".join(f"r.{quote(k)}" for k in keys)
    con.execute(
        f"create or replace temp table _ss_cells as select {cols}, c.col "
        "from _ss_chosen as c inner join _d_rows as r on r.row_id = c.row_id"
    )
    roots = [r[0] for r in con.execute("select distinct col from _ss_cells").fetchall()]
    for root in roots:
        # A margin column repeats on every row of its cell (one per part): withhold it on all.
        over = {o for m, _p, o in mart.margins if m == root}
        on = " and ".join(
            f"m.{quote(k)} is not distinct from s.{quote(k)}" for k in keys if k not in over
        )
        for count in _closure(root, related, mart.counts):
            derived = [d for d in related.get(count, ()) if d not in mart.counts]
            sets = [
                f"{quote(count)} = null",
                f"{quote(count + FLAG)} = true",
                *(f"{quote(d)} = null" for d in derived),
            ]
            # A 0 stays 0 and a count already withheld keeps its flags.
            con.execute(
                f"update {mart.relation} as m set {', '.join(sets)} from _ss_cells as s "
                f"where s.col = {literal(root)} and {on} and m.{quote(count)} > 0"
            )


def suppress_mart(
    con: duckdb.DuckDBPyConnection,
    mart: AggregateMart,
    *,
    threshold: int,
    rounding_base: int,
    criterion: Criterion = "exact",
    max_rounds: int = MAX_ROUNDS,
    related: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
) -> dict[str, Any]:
    """Withhold cells of one mart until no withheld cell is recoverable by ``criterion``.

    ``criterion`` 'exact': none left with one possible value; 'narrowed': none whose
    possible values are fewer than 1 to threshold-1. What goes with a withheld count
    comes from the mart's metadata, or for a table dbt does not describe from ``related``.
    """
    mine = _related(con, mart, related or {})
    withheld_before = _withheld_cells(con, mart)
    con.execute(f"update {mart.relation} set {quote(SECONDARY)} = true")
    first = None
    rounds = 0  # rounds that withheld cells; one audit more confirms the last of them
    while True:
        with audited(con, mart, threshold=threshold, rounding_base=rounding_base):
            found = _choose(con, threshold, criterion)
            if found[0] and not found[1]:
                found = _choose(con, threshold, criterion, wide=True)
            recoverable, chosen = found
            first = recoverable if first is None else first
            log.debug("%s after %d rounds: %d recoverable, %d chosen", mart.name, rounds, *found)
            if not recoverable:
                break
            if not chosen:
                raise SecondarySuppressionError(
                    f"{mart.schema}.{mart.name}: {recoverable:,} withheld cell(s) stay "
                    f"recoverable by differencing ({criterion}) and no published cell is "
                    "left to withhold beside them; publish fewer overlapping breakdowns "
                    "(macros/commissioner_breakdowns.sql)."
                )
            if rounds == max_rounds:
                raise SecondarySuppressionError(
                    f"{mart.schema}.{mart.name}: {recoverable:,} withheld cell(s) are still "
                    f"recoverable by differencing ({criterion}) after {max_rounds} rounds of "
                    "secondary suppression; publish fewer overlapping breakdowns "
                    "(macros/commissioner_breakdowns.sql) or raise MAX_ROUNDS."
                )
            rounds += 1
            _withhold(con, mart, mine)
            con.execute("drop table if exists _ss_cells")
            con.execute("drop table if exists _ss_chosen")
    con.execute("drop table if exists _ss_chosen")
    return {
        "mart": mart.spec.name if mart.spec is not None else mart.name,
        "rounds": rounds,
        "recoverable_before": first or 0,
        "withheld_before": withheld_before,
        "secondary_cells": _withheld_cells(con, mart) - withheld_before,
    }


def suppress_together(
    con: duckdb.DuckDBPyConnection,
    marts: Sequence[AggregateMart],
    unsuppressed: Sequence[str],
    *,
    threshold: int,
    rounding_base: int,
    max_rounds: int = MAX_ROUNDS,
) -> dict[str, Any]:
    """Withhold cells of every mart, audited together, until none is recovered exactly.

    ``unsuppressed[i]`` holds mart i's true counts, from which twin cells
    (:func:`joinedup.privacy.differencing.twin_links`) are linked. Each mart must have
    been through :func:`suppress_mart` (its ``secondary_suppression`` set): this pass adds
    what the margins between marts need.
    """
    related = [_related(con, mart, {}) for mart in marts]
    before = [_withheld_cells(con, mart) for mart in marts]
    links: list[TwinLink] = twin_links(con, marts, unsuppressed)
    first = None
    rounds = 0
    try:
        while True:
            with audited_together(
                con, marts, links, threshold=threshold, rounding_base=rounding_base
            ):
                found = _choose(con, threshold, "exact")
                if found[0] and not found[1]:
                    found = _choose(con, threshold, "exact", wide=True)
                recoverable, chosen = found
                first = recoverable if first is None else first
                log.debug(
                    "marts together after %d rounds: %d recoverable, %d chosen", rounds, *found
                )
                if not recoverable:
                    break
                if not chosen or rounds == max_rounds:
                    raise SecondarySuppressionError(
                        f"{recoverable:,} withheld cell(s) stay recoverable exactly from the "
                        f"commissioner marts together after {rounds} rounds of secondary "
                        "suppression across marts; publish fewer overlapping breakdowns "
                        "(macros/commissioner_breakdowns.sql) or fewer shared counts (same_as)."
                    )
                rounds += 1
                con.execute(
                    "create or replace temp table _ss_chosen_all as select * from _ss_chosen"
                )
                for i, mart in enumerate(marts):
                    off = (i + 1) * OFFSET
                    con.execute(
                        f"create or replace temp table _d_rows as select * from _d_rows_{i}"
                    )
                    con.execute(
                        "create or replace temp table _ss_chosen as select row_id - "
                        f"{off} as row_id, col from _ss_chosen_all "
                        f"where row_id between {off} and {off + OFFSET - 1}"
                    )
                    _withhold(con, mart, related[i])
                    con.execute("drop table if exists _ss_cells")
    finally:
        for name in ("_ss_chosen", "_ss_chosen_all", "_d_rows"):
            con.execute(f"drop table if exists {name}")
        for link in links:
            con.execute(f"drop table if exists {link.cells}")
    return {
        "rounds": rounds,
        "recoverable_before": first or 0,
        "twin_links": [
            f"{marts[k.mart].spec.name if marts[k.mart].spec else marts[k.mart].name}.{k.column}"
            f" = {marts[k.other].spec.name if marts[k.other].spec else marts[k.other].name}"
            f".{k.other_column}"
            for k in links
        ],
        "marts": [
            {
                "mart": mart.spec.name if mart.spec is not None else mart.name,
                "secondary_cells": _withheld_cells(con, mart) - before[i],
            }
            for i, mart in enumerate(marts)
        ],
    }


def suppress_across_marts_in_dbt(
    session: Any, marts: Sequence[Mapping[str, Any]], *, summary_table: str
) -> dict[str, Any]:
    """Secondary suppression of every commissioner mart together while dbt builds them.

    Called by ``macros/materializations/disclosure_across_marts.sql`` on the build's
    connection after every mart is built, with one entry per mart: its ``node`` (as
    :func:`suppress_in_dbt` gets it), the ``schema`` and ``table`` it was published as and
    the ``unsuppressed`` relation its model reads (its true counts, for the twin links).
    Leaves its summary, as JSON, in temp table ``summary_table``.
    """
    started = time.perf_counter()
    specs = {m["node"]["name"]: from_node(m["node"]) for m in marts}
    check_twins(specs)
    rules = {(s.suppression_threshold, s.rounding_base) for s in specs.values()}
    if len(rules) != 1 or None in next(iter(rules)):
        raise SecondarySuppressionError(
            "the commissioner marts must share one disclosure rule (meta suppression_threshold "
            f"and rounding_base, from the vars), got {sorted(map(str, rules))}"
        )
    threshold, base = next(iter(rules))
    aggregate = [
        AggregateMart.from_spec(specs[m["node"]["name"]], schema=m["schema"], name=m["table"])
        for m in marts
    ]
    summary = suppress_together(
        session,
        aggregate,
        [m["unsuppressed"] for m in marts],
        threshold=threshold,
        rounding_base=base,
    )
    summary["secondary_cells"] = sum(m["secondary_cells"] for m in summary["marts"])
    return _report(session, summary, "across marts", started, summary_table)


def _report(
    session: duckdb.DuckDBPyConnection,
    summary: dict[str, Any],
    what: str,
    started: float,
    summary_table: str,
) -> dict[str, Any]:
    """Time and log a pass, and leave its summary where the materialization reads it."""
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info(
        "secondary suppression %s: %d more cells withheld in %d rounds",
        what,
        summary["secondary_cells"],
        summary["rounds"],
    )
    session.execute(
        f"create or replace temp table {quote(summary_table)} as select ? as summary",
        [json.dumps(summary)],
    )
    return summary


def _withheld_cells(con: duckdb.DuckDBPyConnection, mart: AggregateMart) -> int:
    total = " + ".join(f"count(*) filter (where {quote(c + FLAG)})" for c in mart.counts)
    return int(con.execute(f"select {total or 0} from {mart.relation}").fetchone()[0])


def apply_secondary_suppression(
    con: duckdb.DuckDBPyConnection,
    *,
    threshold: int,
    rounding_base: int,
    schema: str = "marts",
    criterion: Criterion = "exact",
    related: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
) -> dict[str, Any]:
    """Secondary suppression of every aggregate mart in ``schema``; a summary per mart.

    For tables outside dbt (tests, a file made by hand): the dbt build applies it to each
    commissioner mart as it builds it (:func:`suppress_in_dbt`).
    """
    started = time.perf_counter()
    marts = [
        suppress_mart(
            con,
            mart,
            threshold=threshold,
            rounding_base=rounding_base,
            criterion=criterion,
            related=related,
        )
        for mart in aggregate_marts(con, schema)
    ]
    seconds = round(time.perf_counter() - started, 2)
    log.info(
        "secondary suppression in %.1fs: %s",
        seconds,
        ", ".join(f"{m['mart']} +{m['secondary_cells']:,} cells" for m in marts) or "no marts",
    )
    return {"criterion": criterion, "seconds": seconds, "marts": marts}


def suppress_in_dbt(
    session: Any, node: Mapping[str, Any], *, schema: str, table: str, summary_table: str
) -> dict[str, Any]:
    """Secondary suppression of one commissioner mart while dbt builds it.

    Called by ``macros/materializations/disclosure_controlled.sql`` with the model's
    connection, its node (columns and meta) and the table holding its primary-suppressed
    rows (``schema.table``, not yet under the mart's name). The threshold and rounding
    base are the mart's meta (the vars). Leaves its summary, as JSON, in temp table
    ``summary_table`` for the materialization to report.
    """
    started = time.perf_counter()
    spec = from_node(node)
    if spec.suppression_threshold is None or spec.rounding_base is None:
        raise SecondarySuppressionError(
            f"{spec.where}: {spec.name} has no meta suppression_threshold and rounding_base "
            "(dbt_project.yml sets them on models/marts/commissioning from the vars)."
        )
    mart = AggregateMart.from_spec(spec, schema=schema, name=table)
    summary = suppress_mart(
        session,
        mart,
        threshold=spec.suppression_threshold,
        rounding_base=spec.rounding_base,
    )
    return _report(session, summary, f"of {spec.name}", started, summary_table)
