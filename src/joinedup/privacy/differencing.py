"""Disclosure checks on the commissioners' aggregate marts: the rule, and recovery by subtraction.

Every aggregate mart is published at several breakdowns (``total``, ``month``,
``month+la_code`` ...; see ``macros/commissioner_breakdowns.sql``) and every count
passes through ``suppress_small_numbers``: 1 to threshold-1 withheld, the rest rounded.
Two questions:

1. Does the rule hold on what was published? No count from 1 to threshold-1, a
   withheld count is null with its flag set, every shown count a multiple of the
   rounding base.
2. Can a withheld cell be recovered by differencing? A cell of a finer breakdown
   (``month+sex``: March, Indeterminate) is one part of a cell of a coarser one
   (``month``: March): the parts add up to the whole. With every other part and the
   whole published, the withheld one is the whole minus the rest. Rounding blurs
   this, so each published count is read as the interval of true values it can come
   from (10 means 8 to 12 when rounding to 5), a withheld count as 1 to threshold-1, a
   0 as exactly 0, and the sums are propagated between the parts and their wholes
   until nothing narrows further (interval constraint propagation, in DuckDB SQL). A
   withheld cell whose interval ends narrower than 1 to threshold-1 is *recoverable*:
   the published figures say more about it than the rule allows; *exactly recovered*
   when one value is left. Margins between columns are used too (``transitions`` to
   each next event add up to ``from_event_transitions``).

The propagation is sound (it never claims more than the published figures imply) but
not complete: a full linear-programming audit could narrow some cells further.

What each column of a mart is (count, dimension, which counts are of distinct people,
which are margins of another) comes from the marts' dbt meta
(:mod:`joinedup.warehouse.marts`): the published file carries it in ``_joinedup_marts``.
A table no metadata describes is read by its column names, as a file made by hand is:
``breakdown`` and ``<count>_suppressed`` flags, :data:`DISTINCT_COUNTS` and
:data:`COLUMN_MARGINS` assumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb

from joinedup.sql import literal, quote
from joinedup.warehouse import marts as mart_metadata
from joinedup.warehouse.marts import MartSpec

# For a table no metadata describes (a count's meta says ``additive: false``): counts of
# distinct people. One person falls in several cells (two months, say), so cells do not
# add up to their margin and subtraction tells nothing about them.
DISTINCT_COUNTS = frozenset({"people"})

# For a table no metadata describes (a count's meta says ``sum_of:`` and ``over:``):
# (margin column, part column, the dimension the parts are summed over): in one row's
# cell and from-event type, from_event_transitions is the sum of transitions over the
# next event types. Such a margin column repeats on every row of its cell, and a row
# exists only where its part is not 0, so it is used in this margin alone, never summed
# across breakdowns.
COLUMN_MARGINS: tuple[tuple[str, str, str], ...] = (
    ("from_event_transitions", "transitions", "to_event_type"),
)

FLAG = "_suppressed"
# True on the rows of a mart that went through secondary suppression
# (joinedup.privacy.secondary_suppression): some withheld counts there are not small, and
# nothing says which, so a withheld count is read as 1 to unbounded, not 1 to
# threshold-1. It is still recoverable when the margins pin it inside 1 to threshold-1.
SECONDARY = "secondary_suppression"
EXAMPLES = 10
MAX_ROUNDS = 100
_UNBOUNDED = 1 << 40
_FLOATING = ("DOUBLE", "FLOAT", "REAL", "DECIMAL")


def breakdown_dimensions(label: str) -> frozenset[str]:
    """``'month+la_code'`` -> ``{'activity_month', 'la_code'}``; ``'total'`` -> none."""
    if label == "total":
        return frozenset()
    return frozenset("activity_month" if p == "month" else p for p in label.split("+"))


@dataclass(frozen=True)
class AggregateMart:
    name: str
    counts: tuple[str, ...]
    dimensions: tuple[str, ...]
    secondary: bool = False
    schema: str = "main"
    # Counts of distinct people, which cells do not add up to.
    distinct: frozenset[str] = DISTINCT_COUNTS
    # (margin count, part count, the dimension the parts are summed over).
    margins: tuple[tuple[str, str, str], ...] = COLUMN_MARGINS
    # (statistic, the count it describes): a statistic is shown only where its count is
    # at least statistic_min_group, which bounds a shown count (macros/suppress_small_numbers).
    statistics: tuple[tuple[str, str], ...] = ()
    statistic_min_group: int | None = None
    # The mart's metadata, when dbt describes it (joinedup.warehouse.marts).
    spec: MartSpec | None = field(default=None, compare=False)

    @classmethod
    def from_spec(cls, spec: MartSpec, *, schema: str = "main", name: str | None = None):
        """The mart its metadata describes, in ``schema`` (as table ``name``, if not its own)."""
        return cls(
            name=name or spec.name,
            counts=spec.counts,
            dimensions=tuple(c for c in spec.identity if c != spec.breakdown),
            secondary=spec.secondary,
            schema=schema,
            distinct=frozenset(spec.distinct_counts),
            margins=spec.margins,
            statistics=tuple(spec.statistic_of.items()),
            statistic_min_group=spec.statistic_min_group,
            spec=spec,
        )

    @property
    def relation(self) -> str:
        return f"{quote(self.schema)}.{quote(self.name)}"

    @property
    def additive(self) -> tuple[str, ...]:
        return tuple(c for c in self.counts if c not in self.distinct)


def aggregate_marts(con: duckdb.DuckDBPyConnection, schema: str = "main") -> list[AggregateMart]:
    """The disclosure-controlled marts of ``schema``.

    Those the database describes (``main._joinedup_marts``, written by stage_analytics from
    the marts' dbt meta) as their metadata says; any other table with a ``breakdown``
    column and suppression flags by its column names.
    """
    described = mart_metadata.read_table(con) if schema == "main" else {}
    rows = con.execute(
        """
        select table_name, column_name, data_type
        from duckdb_columns()
        where schema_name = ? and database_name = current_database()
        order by table_name, column_index
        """,
        [schema],
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        tables.setdefault(table, []).append((column, dtype))
    marts = []
    for table, columns in sorted(tables.items()):
        names = [c for c, _t in columns]
        if table in described:
            spec = described[table]
            if tuple(names) != spec.column_names:
                raise ValueError(
                    f"{schema}.{table} has columns {names}, but {mart_metadata.TABLE} describes "
                    f"{list(spec.column_names)}: the file and its description disagree."
                )
            marts.append(AggregateMart.from_spec(spec, schema=schema))
            continue
        counts = tuple(c for c in names if f"{c}{FLAG}" in names)
        if "breakdown" not in names or not counts:
            continue
        flags = {f"{c}{FLAG}" for c in counts}
        dims = tuple(
            c
            for c, dtype in columns
            if c not in ("breakdown", SECONDARY)
            and c not in counts
            and c not in flags
            and not dtype.startswith(_FLOATING)
        )
        marts.append(AggregateMart(table, counts, dims, SECONDARY in names, schema))
    return marts


def check_rule(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, *, threshold: int, rounding_base: int
) -> dict[str, int]:
    """Rows breaking the suppression rule, per kind of breach (all 0 when the rule holds)."""
    t, b = int(threshold), int(rounding_base)
    parts = []
    for c in mart.counts:
        v, f = quote(c), quote(c + FLAG)
        parts.append(
            f"""
            select
                count(*) filter (where {v} between 1 and {t - 1}) as small_count_shown,
                count(*) filter (where {f} and {v} is not null) as withheld_but_shown,
                count(*) filter (where {f} is null) as flag_missing,
                count(*) filter (where {v} is null and not {f}) as not_withheld_but_missing,
                count(*) filter (where {v} % {b} <> 0) as not_rounded
            from {mart.relation}
            """
        )
    totals = con.execute(
        "select sum(small_count_shown), sum(withheld_but_shown), sum(flag_missing), "
        "sum(not_withheld_but_missing), sum(not_rounded) from (" + " union all ".join(parts) + ")"
    ).fetchone()
    keys = (
        "small_count_shown",
        "withheld_but_shown",
        "flag_missing",
        "not_withheld_but_missing",
        "not_rounded",
    )
    return {k: int(v or 0) for k, v in zip(keys, totals, strict=True)}


def _labels(con: duckdb.DuckDBPyConnection, mart: AggregateMart) -> dict[str, frozenset[str]]:
    labels = [
        r[0]
        for r in con.execute(
            f"select distinct breakdown from {mart.relation} where breakdown is not null"
        ).fetchall()
    ]
    out = {}
    for label in sorted(labels):
        dims = breakdown_dimensions(label)
        unknown = dims - set(mart.dimensions)
        if unknown:
            raise ValueError(
                f"{mart.name}: breakdown {label!r} names {', '.join(sorted(unknown))}, which "
                "is not a dimension column of the mart; the breakdown labels and the columns "
                "must agree (macros/commissioner_breakdowns.sql)."
            )
        out[label] = dims
    return out


def _match(left: str, right: str, dims: Sequence[str]) -> str:
    # A null in a dimension of the breakdown is the "not known" cell, so nulls must match.
    return " and ".join(f"{left}.{quote(d)} is not distinct from {right}.{quote(d)}" for d in dims)


def _build_constraints(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, labels: dict[str, frozenset[str]]
) -> int:
    con.execute(
        "create or replace temp table _d_members "
        "(group_id varchar, row_id bigint, col varchar, role varchar)"
    )
    additive = mart.additive
    margins = {margin for margin, _part, _over in mart.margins}
    summed = [c for c in additive if c not in margins]
    label_dims = set().union(*labels.values()) if labels else set()
    always = [d for d in mart.dimensions if d not in label_dims]
    columns = ", ".join(f"({literal(c)})" for c in summed)
    pair = 0
    for parent, parent_dims in labels.items():
        for child, child_dims in labels.items():
            if not summed or not parent_dims < child_dims:
                continue
            pair += 1
            key = [*always, *sorted(parent_dims)]
            on = _match("p", "c", key) or "true"
            con.execute(
                f"""
                insert into _d_members
                with pairs as (
                    select p.row_id as parent_row, c.row_id as child_row
                    from _d_rows as p
                    inner join _d_rows as c
                        on p.breakdown = {literal(parent)} and c.breakdown = {literal(child)}
                        and {on}
                ),
                cols(col) as (values {columns})
                select 'b{pair}:' || parent_row || ':' || col, parent_row, col, 'parent'
                from (select distinct parent_row from pairs) cross join cols
                union all
                select 'b{pair}:' || parent_row || ':' || col, child_row, col, 'child'
                from pairs cross join cols
                """
            )
    for n, (margin, part, over) in enumerate(mart.margins, start=1):
        if not {margin, part} <= set(additive) or over not in mart.dimensions:
            continue
        key = ["breakdown", *[d for d in mart.dimensions if d != over]]
        con.execute(
            f"""
            insert into _d_members
            select 'm{n}:' || r.row_id, r.row_id, {literal(margin)}, 'parent' from _d_rows as r
            union all
            select 'm{n}:' || r.row_id, s.row_id, {literal(part)}, 'child'
            from _d_rows as r
            inner join _d_rows as s on {_match("r", "s", key)}
            """
        )
    return con.execute("select count(distinct group_id) from _d_members").fetchone()[0]


def _intervals(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, threshold: int, rounding_base: int
) -> None:
    """Each (row, count) as the interval of true values its published form allows."""
    t, b = int(threshold), int(rounding_base)
    below, above = b // 2, (b + 1) // 2 - 1  # round half away from zero, as the macro does
    selects = []
    for c in mart.additive:
        v, f = quote(c), quote(c + FLAG)
        withheld_hi = (
            f"case when coalesce({quote(SECONDARY)}, false) then {_UNBOUNDED} else {t - 1} end"
            if mart.secondary
            else str(t - 1)
        )
        lo = f"greatest({t}, {v} - {below})"
        hi = f"{v} + {above}"
        stats = [quote(st) for st, of in mart.statistics if of == c]
        if stats and mart.statistic_min_group is not None:
            # A statistic beside a shown count says whether the count reached the minimum
            # group: a reader narrows the count with it, so the audit does too.
            g = int(mart.statistic_min_group)
            shown = " and ".join(f"{st} is not null" for st in stats)
            lo = f"case when {shown} then greatest({lo}, {g}) else {lo} end"
            hi = f"case when {shown} then {hi} else least({hi}, {g - 1}) end"
        selects.append(
            f"""
            select row_id, {literal(c)} as col, coalesce({f}, false) as suppressed,
                case when {f} then 1 when {v} = 0 then 0
                     when {v} is null then 0 else {lo} end as lo,
                case when {f} then {withheld_hi} when {v} is null then {_UNBOUNDED}
                     else {hi} end as hi
            from _d_rows
            """
        )
    con.execute("create or replace temp table _d_iv as " + " union all ".join(selects))


# Every margin's members with their current intervals (``m``) and the margin's sums
# (``sums``): shared by the propagation here and by secondary suppression's choice of cells.
MARGIN_SUMS = """
    m as (
        select g.group_id, g.role, g.row_id, g.col, iv.lo, iv.hi, iv.suppressed
        from _d_members as g
        inner join _d_iv as iv on g.row_id = iv.row_id and g.col = iv.col
    ),
    sums as (
        select
            group_id,
            sum(lo) filter (where role = 'child') as c_lo,
            sum(hi) filter (where role = 'child') as c_hi,
            max(lo) filter (where role = 'parent') as p_lo,
            max(hi) filter (where role = 'parent') as p_hi
        from m
        group by group_id
    )
"""


def _propagate(con: duckdb.DuckDBPyConnection) -> int:
    """Narrow every interval by its sums until a fixed point; returns the rounds taken."""
    for round_number in range(1, MAX_ROUNDS + 1):
        con.execute(
            f"""
            create or replace temp table _d_new as
            with {MARGIN_SUMS},
            bounds as (
                select
                    m.row_id, m.col,
                    case when m.role = 'parent' then greatest(m.lo, s.c_lo)
                         else greatest(m.lo, s.p_lo - (s.c_hi - m.hi)) end as lo,
                    case when m.role = 'parent' then least(m.hi, s.c_hi)
                         else least(m.hi, s.p_hi - (s.c_lo - m.lo)) end as hi
                from m
                inner join sums as s on m.group_id = s.group_id
                where s.p_lo is not null and s.c_lo is not null
            )
            select row_id, col, max(lo) as lo, min(hi) as hi from bounds group by row_id, col
            """
        )
        # Parts that cannot add up to their whole: the count is not additive over this
        # margin (or the mart breaks the rule); stop rather than narrow on a false premise.
        if con.execute("select count(*) from _d_new where lo > hi").fetchone()[0]:
            con.execute(
                "update _d_iv set lo = n.lo, hi = n.hi from _d_new as n "
                "where n.row_id = _d_iv.row_id and n.col = _d_iv.col and n.lo > n.hi"
            )
            return round_number
        changed = con.execute(
            """
            select count(*) from _d_new as n
            inner join _d_iv as iv on n.row_id = iv.row_id and n.col = iv.col
            where n.lo > iv.lo or n.hi < iv.hi
            """
        ).fetchone()[0]
        if not changed:
            return round_number
        con.execute(
            """
            update _d_iv set lo = greatest(_d_iv.lo, n.lo), hi = least(_d_iv.hi, n.hi)
            from _d_new as n
            where n.row_id = _d_iv.row_id and n.col = _d_iv.col
            """
        )
    return MAX_ROUNDS


def _prepare(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, threshold: int, rounding_base: int
) -> tuple[dict[str, frozenset[str]], int]:
    """_d_rows, _d_members and _d_iv of one mart, before propagation."""
    labels = _labels(con, mart)
    order = ", ".join([*(quote(c) for c in ("breakdown", *mart.dimensions)), "rowid"])
    con.execute(
        # Numbered in the order of the cells (breakdown, then dimensions), not the order
        # the rows happen to be stored in: secondary suppression breaks ties by row_id, and
        # a parallel build stores the rows in an order that varies from build to build.
        f"create or replace temp table _d_rows as "
        f"select row_number() over (order by {order}) as row_id, * from {mart.relation}"
    )
    groups = _build_constraints(con, mart, labels)
    _intervals(con, mart, threshold, rounding_base)
    return labels, groups


def _audit(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, threshold: int, rounding_base: int
) -> tuple[dict[str, frozenset[str]], int, int]:
    """Leave every (row, count) of the mart in temp table _d_iv with its narrowed interval."""
    labels, groups = _prepare(con, mart, threshold, rounding_base)
    rounds = _propagate(con) if groups else 0
    return labels, groups, rounds


# --- every mart together -----------------------------------------------------------------

# Row ids of mart i (from 0) in the joint audit are (i + 1) * OFFSET + its own row_id.
OFFSET = 1 << 40


@dataclass(frozen=True)
class TwinLink:
    """Cells of two marts known to hold the same true value: ``marts[mart].column`` equals
    ``marts[other].other_column`` in every cell (breakdown and dimensions) listed in the
    temp table ``cells``."""

    mart: int
    column: str
    other: int
    other_column: str
    cells: str


def twin_links(
    con: duckdb.DuckDBPyConnection,
    marts: Sequence[AggregateMart],
    unsuppressed: Sequence[str],
) -> list[TwinLink]:
    """The links between the marts' twin counts (``same_as`` in their meta).

    ``unsuppressed[i]`` is the relation holding mart i's true counts (its model's input,
    one row per published row). Two twin cells are linked where their true values are
    equal: that holds in every cell where the two definitions coincide (the demo's
    adult discharges in fully followed-up months), and linking a cell whose values are
    equal by chance only withholds more. Each pair is linked once.
    """
    index = {m.spec.name if m.spec is not None else m.name: i for i, m in enumerate(marts)}
    links: list[TwinLink] = []
    seen: set[frozenset[tuple[str, str]]] = set()
    for i, mart in enumerate(marts):
        if mart.spec is None:
            continue
        for count, other, column in mart.spec.twins:
            pair = frozenset({(mart.spec.name, count), (other, column)})
            if pair in seen:
                continue
            seen.add(pair)
            if other not in index:
                raise ValueError(
                    f"{mart.spec.where or mart.spec.name}: column {count} is the same as "
                    f"{other}.{column}, but {other} is not among the marts audited together "
                    f"({', '.join(index)}); audit every commissioner mart at once."
                )
            j = index[other]
            keys = ["breakdown", *mart.dimensions]
            cells = f"_d_twins_{len(links)}"
            con.execute(
                f"create or replace temp table {cells} as "
                f"select {', '.join(f'a.{quote(k)}' for k in keys)} "
                f"from {unsuppressed[i]} as a inner join {unsuppressed[j]} as b "
                f"on {_match('a', 'b', keys)} and a.{quote(count)} = b.{quote(column)}"
            )
            links.append(TwinLink(i, count, j, column, cells))
    return links


def _audit_together(
    con: duckdb.DuckDBPyConnection,
    marts: Sequence[AggregateMart],
    links: Sequence[TwinLink],
    threshold: int,
    rounding_base: int,
) -> int:
    """The audit of every mart at once, their twin cells tied equal.

    Leaves _d_members and _d_iv over every mart (row ids offset by mart, see OFFSET), and
    each mart's numbered rows in _d_rows_<i>; returns the propagation's rounds.
    """
    for i, mart in enumerate(marts):
        _prepare(con, mart, threshold, rounding_base)
        off = (i + 1) * OFFSET
        verb = "create or replace temp table {} as" if i == 0 else "insert into {}"
        con.execute(
            verb.format("_dj_members")
            + f" select '{i}/' || group_id as group_id, row_id + {off} as row_id, col, role "
            "from _d_members"
        )
        con.execute(
            verb.format("_dj_iv")
            + f" select row_id + {off} as row_id, col, suppressed, lo, hi from _d_iv"
        )
        con.execute(f"create or replace temp table _d_rows_{i} as select * from _d_rows")
    for k, link in enumerate(links):
        keys = ["breakdown", *marts[link.mart].dimensions]
        a, b = (link.mart + 1) * OFFSET, (link.other + 1) * OFFSET
        # One parent and one child: the margin's sum says the two cells are equal.
        con.execute(
            f"""
            insert into _dj_members
            with linked as (
                select ra.row_id as a_row, rb.row_id as b_row
                from _d_rows_{link.mart} as ra
                inner join {link.cells} as l on {_match("ra", "l", keys)}
                inner join _d_rows_{link.other} as rb on {_match("ra", "rb", keys)}
            )
            select 't{k}:' || a_row, a_row + {a}, {literal(link.column)}, 'parent' from linked
            union all
            select 't{k}:' || a_row, b_row + {b}, {literal(link.other_column)}, 'child'
            from linked
            """
        )
    con.execute("create or replace temp table _d_members as select * from _dj_members")
    con.execute("create or replace temp table _d_iv as select * from _dj_iv")
    con.execute("drop table _dj_members")
    con.execute("drop table _dj_iv")
    return _propagate(con)


def _drop_together(con: duckdb.DuckDBPyConnection, marts: Sequence[AggregateMart]) -> None:
    _drop(con)
    for i in range(len(marts)):
        con.execute(f"drop table if exists _d_rows_{i}")


@contextmanager
def audited_together(
    con: duckdb.DuckDBPyConnection,
    marts: Sequence[AggregateMart],
    links: Sequence[TwinLink],
    *,
    threshold: int,
    rounding_base: int,
) -> Iterator[None]:
    """:func:`audited` over every mart at once: temp tables _d_members and _d_iv span all
    of them (mart i's row ids offset by (i + 1) * OFFSET), _d_rows_<i> holds mart i's rows."""
    try:
        _audit_together(con, marts, links, threshold, rounding_base)
        yield
    finally:
        _drop_together(con, marts)


def check_together(
    con: duckdb.DuckDBPyConnection,
    marts: Sequence[AggregateMart],
    links: Sequence[TwinLink],
    *,
    threshold: int,
    rounding_base: int,
) -> dict[str, Any]:
    """The differencing audit of every mart together: withheld cells recovered per mart.

    With ``links`` (:func:`twin_links`) a withheld cell whose twin in another mart is
    published is bounded by it. The gate is ``exactly_recovered_cells`` 0.
    """
    t = int(threshold)
    with audited_together(con, marts, links, threshold=threshold, rounding_base=rounding_base):
        per_mart = []
        for i, mart in enumerate(marts):
            off = (i + 1) * OFFSET
            suppressed, recoverable, exact, inconsistent = _cell_counts(
                con, t, f"row_id between {off} and {off + OFFSET - 1}"
            )
            per_mart.append(
                {
                    "mart": mart.spec.name if mart.spec is not None else mart.name,
                    "suppressed_cells": suppressed,
                    "recoverable_cells": recoverable,
                    "exactly_recovered_cells": exact,
                    "inconsistent_cells": inconsistent,
                }
            )
        twin_cells = con.execute(
            "select count(distinct group_id) from _d_members where group_id like 't%'"
        ).fetchone()[0]
    return {
        "marts": per_mart,
        "twin_links": [
            {
                "mart": per_mart[link.mart]["mart"],
                "column": link.column,
                "other_mart": per_mart[link.other]["mart"],
                "other_column": link.other_column,
            }
            for link in links
        ],
        "twin_cells": twin_cells,
        "exactly_recovered_cells": sum(m["exactly_recovered_cells"] for m in per_mart),
        "inconsistent_cells": sum(m["inconsistent_cells"] for m in per_mart),
    }


def _cell_counts(
    con: duckdb.DuckDBPyConnection, threshold: int, where: str = "true"
) -> tuple[int, int, int, int]:
    """(withheld, recoverable, recovered exactly, inconsistent) cells of the audit's intervals."""
    [row] = con.execute(
        f"""
        select
            count(*) filter (where suppressed),
            count(*) filter (where suppressed and {recoverable_sql(threshold)}),
            count(*) filter (where suppressed and lo = hi),
            count(*) filter (where lo > hi)
        from _d_iv where {where}
        """
    ).fetchall()
    return row


def recoverable_sql(threshold: int, prefix: str = "") -> str:
    """A withheld cell's interval, narrowed inside 1 to threshold-1: it says more than the rule.

    Under secondary suppression a withheld cell starts at 1 to unbounded; it is
    recoverable once its margins put it below the threshold and narrower than 1 to
    threshold-1 (any withheld cell pinned to one value is recoverable too).
    """
    t, lo, hi = int(threshold), f"{prefix}lo", f"{prefix}hi"
    small = f"{hi} <= {t - 1} and ({lo} > 1 or {hi} < {t - 1})"
    return f"{lo} <= {hi} and (({small}) or ({lo} = {hi} and {hi} > {t - 1}))"


def _drop(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("_d_rows", "_d_members", "_d_iv", "_d_new"):
        con.execute(f"drop table if exists {name}")


@contextmanager
def audited(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, *, threshold: int, rounding_base: int
) -> Iterator[dict[str, frozenset[str]]]:
    """Run the audit of one mart and keep its working tables while the block runs.

    For a caller that acts on the result (secondary suppression): temp tables
    ``_d_rows`` (the mart with a ``row_id``), ``_d_members`` (``group_id``, ``row_id``,
    ``col``, ``role`` 'parent' or 'child': each margin, the parts adding up to a whole)
    and ``_d_iv`` (``row_id``, ``col``, ``suppressed``, ``lo``, ``hi``: each count's
    narrowed interval). Yields the breakdown labels and their dimensions.
    """
    try:
        labels, _groups, _rounds = _audit(con, mart, threshold, rounding_base)
        yield labels
    finally:
        _drop(con)


def suppressed_intervals(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, *, threshold: int, rounding_base: int
) -> list[dict[str, Any]]:
    """Every withheld cell with the interval its true value must lie in, given the margins.

    For audits that hold the true counts (tests, the warehouse's unsuppressed aggregates):
    each true value must lie inside its interval. Never for publication: an interval of
    one value is the withheld count itself.
    """
    try:
        _audit(con, mart, threshold, rounding_base)
        dims = "".join(f", r.{quote(d)}" for d in mart.dimensions)
        rows = con.execute(
            f"""
            select r.breakdown{dims}, iv.col, iv.lo, iv.hi
            from _d_iv as iv
            inner join _d_rows as r on iv.row_id = r.row_id
            where iv.suppressed
            order by iv.row_id, iv.col
            """
        ).fetchall()
    finally:
        _drop(con)
    names = ["breakdown", *mart.dimensions, "count", "low", "high"]
    return [dict(zip(names, row, strict=True)) for row in rows]


def check_mart(
    con: duckdb.DuckDBPyConnection,
    mart: AggregateMart,
    *,
    threshold: int,
    rounding_base: int,
    examples: int = EXAMPLES,
) -> dict[str, Any]:
    """The differencing audit of one aggregate mart."""
    try:
        labels, groups, rounds = _audit(con, mart, threshold, rounding_base)
        t = int(threshold)
        suppressed, recoverable, exact, inconsistent = _cell_counts(con, t)
        by_column = {
            col: {"suppressed": s, "recoverable": r}
            for col, s, r in con.execute(
                f"""
                select col, count(*) filter (where suppressed),
                    count(*) filter (where suppressed and {recoverable_sql(t)})
                from _d_iv group by col order by col
                """
            ).fetchall()
        }
        found = _recovered_examples(con, mart, t, examples)
    finally:
        _drop(con)
    return {
        "mart": mart.name,
        "counts": list(mart.counts),
        "counts_checked": list(mart.additive),
        "counts_not_additive": [c for c in mart.counts if c not in mart.additive],
        "dimensions": list(mart.dimensions),
        "breakdowns": sorted(labels),
        "margins": groups,
        "rounds": rounds,
        "suppressed_cells": suppressed,
        "secondary_suppression": mart.secondary,
        "recoverable_cells": recoverable,
        "exactly_recovered_cells": exact,
        "inconsistent_cells": inconsistent,
        "by_column": by_column,
        "examples": found,
    }


def _recovered_examples(
    con: duckdb.DuckDBPyConnection, mart: AggregateMart, threshold: int, limit: int
) -> list[dict[str, Any]]:
    """Recoverable cells: where they are and how narrowly, never the value they narrow to."""
    dims = ", ".join(f"r.{quote(d)}" for d in mart.dimensions)
    rows = con.execute(
        f"""
        select r.breakdown, {dims}, iv.col, iv.lo, iv.hi
        from _d_iv as iv
        inner join _d_rows as r on iv.row_id = r.row_id
        where iv.suppressed and {recoverable_sql(threshold, "iv.")}
        order by iv.hi - iv.lo, r.breakdown, iv.col, iv.row_id
        limit {int(limit)}
        """
    ).fetchall()
    out = []
    for row in rows:
        breakdown, *values, col, lo, hi = row
        in_breakdown = breakdown_dimensions(breakdown)
        cell = {
            d: "not known" if v is None else str(v)
            for d, v in zip(mart.dimensions, values, strict=True)
            if v is not None or d in in_breakdown
        }
        out.append(
            {
                "breakdown": breakdown,
                "cell": cell,
                "count": col,
                "possible_values": hi - lo + 1,
                "exact": lo == hi,
            }
        )
    return out


def check_all(
    con: duckdb.DuckDBPyConnection, *, threshold: int, rounding_base: int
) -> list[dict[str, Any]]:
    results = []
    for mart in aggregate_marts(con):
        result = check_mart(con, mart, threshold=threshold, rounding_base=rounding_base)
        result["rule"] = check_rule(con, mart, threshold=threshold, rounding_base=rounding_base)
        results.append(result)
    return results
