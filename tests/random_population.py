"""A random population's true counts, for the disclosure-control tests.

Both the privacy report's differencing check and secondary suppression are tested on
marts built from this: the same breakdowns (grouping sets) the dbt marts publish, over
people with one to four events each, so small and zero cells occur as they do for real.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date

import duckdb
import polars as pl


def true_counts(con: duckdb.DuckDBPyConnection, seed: int, people: int, las: Sequence[str]) -> None:
    """Create ``true_counts``: events and distinct people by breakdown, before any control.

    ``las`` are the local authority codes people live in; a null one stands for "not known".
    """
    rng = random.Random(seed)
    rows = []
    for person in range(people):
        sex = rng.choice(["Male", "Female", "Female", "Indeterminate", None])
        la = rng.choice([*las, None])
        for _ in range(rng.randint(1, 4)):
            rows.append((person, date(2025, rng.randint(1, 6), 1), sex, la))
    frame = pl.DataFrame(rows, schema=["person_id", "month", "sex", "la"], orient="row")
    con.register("generated", frame.to_arrow())
    con.execute(
        """
        create table true_counts as
        select
            coalesce(nullif(concat_ws('+',
                case when grouping(month) = 0 then 'month' end,
                case when grouping(la) = 0 then 'la_code' end,
                case when grouping(sex) = 0 then 'sex' end), ''), 'total') as breakdown,
            month as activity_month, la as la_code, sex,
            count(*) as events, count(distinct person_id) as people
        from generated
        group by grouping sets ((), (month), (month, la), (month, sex), (la, sex),
                                (month, la, sex))
        """
    )
    con.unregister("generated")
