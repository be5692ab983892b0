"""The report and the pack as plain, self-contained HTML pages.

No script, no external stylesheet, font or image: the files open from disk on an
offline machine and can be attached to a DPIA as they are. Every value is escaped,
including the ones that come from the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 2rem auto; max-width: 72rem; padding: 0 1.5rem; color: #1d2433; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #d7dce5; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: 13.5px; }
th, td { border: 1px solid #d7dce5; padding: .25rem .55rem; text-align: left;
         vertical-align: top; }
th { background: #f1f4f8; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #5b6478; }
.status { display: inline-block; padding: .15rem .6rem; border-radius: .3rem;
          font-weight: 600; }
.ok { background: #dff3e4; color: #17612e; }
.warn { background: #fff1d6; color: #7a4b00; }
.fail { background: #fbe0e0; color: #8a1c1c; }
.info { background: #e6eefb; color: #1f4b8f; }
.bar { display: inline-block; height: .8rem; background: #5b7fc7; vertical-align: middle; }
.note { background: #f7f8fb; border-left: 4px solid #9aa6bd; padding: .5rem .9rem; }
code { background: #f1f4f8; padding: 0 .2rem; }
"""


def _e(value: Any) -> str:
    if value is None:
        return "&mdash;"
    if isinstance(value, float):
        return escape(f"{value:,.4g}")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return escape(f"{value:,}")
    return escape(str(value))


def share_text(share: float) -> str:
    """A share as a percentage that never reads 0% or 100% unless it is."""
    text = f"{share:.1%}"
    if text == "100.0%" and share < 1:
        return ">99.9%"
    if text == "0.0%" and share > 0:
        return "<0.1%"
    return text


def _pct(share: float | None) -> str:
    return "&mdash;" if share is None else escape(share_text(share))


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int] = frozenset()
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            # Cells given as ("html", text) are already escaped pieces built here.
            text = cell[1] if isinstance(cell, tuple) and cell[0] == "html" else _e(cell)
            cls = ' class="n"' if i in numeric else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _status(status: str) -> str:
    return f'<span class="status {escape(status)}">{escape(status.upper())}</span>'


def _findings(found: Sequence[Mapping[str, str]]) -> str:
    if not found:
        return "<p>No finding: every measure is within its setting.</p>"
    rows = [(("html", _status(f["severity"])), f["what"], f["do"]) for f in found]
    return _table(["", "finding", "what to do"], rows)


def _scenarios(scenarios: Sequence[Mapping[str, Any]], min_k: int) -> str:
    rows = []
    for s in scenarios:
        if not s.get("measured"):
            rows.append((s["title"], s.get("reason", ""), None, None, None, None, None, None))
            continue
        rows.append(
            (
                s["title"],
                s.get("knows", ""),
                s["persons"],
                s["classes"],
                s["min_k"],
                ("html", _pct(s["unique_share"])),
                s["persons_below_min_k"],
                s["records_below_min_k"],
            )
        )
    return _table(
        [
            "what is known",
            "for example",
            "people",
            "classes",
            "min k",
            "unique",
            f"people k < {min_k}",
            f"rows k < {min_k}",
        ],
        rows,
        numeric={2, 3, 4, 5, 6, 7},
    )


def _distribution(s: Mapping[str, Any]) -> str:
    persons = max(s["persons"], 1)
    rows = []
    for bucket in s["k_distribution"]:
        width = round(300 * bucket["persons"] / persons)
        bar = f'<span class="bar" style="width:{width}px"></span>'
        rows.append(
            (
                bucket["k"],
                bucket["persons"],
                ("html", _pct(bucket["persons"] / persons)),
                ("html", bar),
            )
        )
    return _table(["k", "people", "share", ""], rows, numeric={1, 2})


def _examples(s: Mapping[str, Any]) -> str:
    if not s.get("examples"):
        return ""
    columns = list(s["examples"][0]["values"])
    rows = [[e["values"].get(c) for c in columns] + [e["k"]] for e in s["examples"]]
    return (
        "<p>Examples of combinations below the threshold (published values only; never "
        "who they are):</p>" + _table([*columns, "k"], rows, numeric={len(columns)})
    )


def _what_if(what_if: Sequence[Mapping[str, Any]], min_k: int) -> str:
    if not what_if:
        return "<p>Every coarsening option is already on.</p>"
    rows = []
    for w in what_if:
        for s in w["scenarios"]:
            rows.append(
                (
                    w["coarsening"],
                    s["title"],
                    s["min_k"],
                    ("html", _pct(s["unique_share"])),
                    s["persons_below_min_k"],
                )
            )
    return _table(
        ["if set", "what is known", "min k", "unique", f"people k < {min_k}"],
        rows,
        numeric={2, 3, 4},
    )


def _aggregates(agg: Mapping[str, Any]) -> str:
    t, b = agg["threshold"], agg["rounding_base"]
    parts = [
        f"<p>Rule: counts from 1 to {t - 1} withheld, the others rounded to the nearest "
        f"{b}. Published counts are read as the true values they can come from (a shown 10 "
        f"is {10 - b // 2} to {10 + (b + 1) // 2 - 1}), a withheld one as 1 to {t - 1}, and "
        "every margin (a cell of a coarser breakdown is the sum of the finer cells inside "
        "it) narrows them until nothing changes. A withheld cell left narrower than 1 to "
        f"{t - 1} is recoverable.</p>"
    ]
    rows = []
    for m in agg["marts"]:
        breaches = sum(m["rule"].values())
        rows.append(
            (
                m["mart"],
                ("html", _status("ok") if not breaches else _status("fail")),
                m["suppressed_cells"],
                m["margins"],
                m["recoverable_cells"],
                m["exactly_recovered_cells"],
                ", ".join(m["counts_not_additive"]) or None,
            )
        )
    parts.append(
        _table(
            [
                "mart",
                "rule holds",
                "suppressed cells",
                "margins checked",
                "recoverable",
                "exactly",
                "not additive (skipped)",
            ],
            rows,
            numeric={2, 3, 4, 5},
        )
    )
    for m in agg["marts"]:
        if not m["examples"]:
            continue
        rows = [
            (
                e["breakdown"],
                ", ".join(f"{k}={v}" for k, v in e["cell"].items()),
                e["count"],
                "exactly" if e["exact"] else f"{e['possible_values']} possible values",
            )
            for e in m["examples"]
        ]
        parts.append(
            f"<h3>{escape(m['mart'])}: recoverable cells (first {len(rows)})</h3>"
            "<p>Where a withheld count can be narrowed; the value itself is not shown.</p>"
            + _table(["breakdown", "cell", "count", "narrowed to"], rows)
        )
    return "".join(parts)


def render_report(report: Mapping[str, Any]) -> str:
    person = report["person_level"]
    min_k = person["min_k"]
    settings = report["settings"]
    body = [
        f"<h1>{escape(report['title'])}</h1>",
        f'<p class="meta">run {_e(report["run_id"])} &middot; {_e(report["generated_at"])}'
        + (
            " &middot; measured the candidates, published only if this report does not fail"
            if any(p.get("published_as") for p in report["publications"].values())
            else ""
        )
        + "</p>",
        "<h2>Publications</h2>",
        "<p>Two files, each for its audience, measured each as published: the person-level "
        "figures below are of the analysts' file, the aggregate ones of the commissioners'.</p>",
        _table(
            ["publication", "file", "holds", "mode", "readers", "SHA-256"],
            [
                (
                    name,
                    p.get("published_as") or p["database"],
                    p["holds"],
                    p["mode"],
                    p["readers"],
                    p["sha256"][:16] + "...",
                )
                for name, p in report["publications"].items()
            ],
        ),
        f"<p>Status: {_status(report['status'])}</p>",
        '<p class="note">Pseudonymised is not anonymous. The analysts\' marts carry no '
        "name, NHS number, full date of birth or postcode, but a few published facts about "
        "a person (month of birth, sex, area, practice, the day of an admission) can single "
        "them out. This report measures how many people that is, in what was published, "
        "and whether the commissioners' suppressed counts can be worked out from the "
        "figures around them.</p>",
        "<h2>Findings</h2>",
        _findings(report["findings"]),
        "<h2>Person-level marts: equivalence classes</h2>",
        f"<p>People who share every published quasi-identifier form a class; k is its size. "
        f"Threshold: k &ge; {_e(min_k)}. Coarsening in effect: "
        f"{_e(person['coarsening'])}. k is counted within the published population: a "
        "small population (the 10,000-person demo) leaves most people unique, and that is "
        "the truth about it.</p>",
        _scenarios(person["scenarios"], min_k),
    ]
    for s in person["scenarios"]:
        if not s.get("measured"):
            continue
        body.append(f"<h3>{escape(s['title'])}: k distribution</h3>")
        body.append(
            "<p>Quasi-identifiers: "
            + ", ".join(f"<code>{escape(c)}</code>" for c in s["quasi_identifiers"])
            + "</p>"
        )
        body.append(_distribution(s))
        if s.get("drivers"):
            rows = [(c, ("html", _pct(v))) for c, v in s["drivers"].items()]
            body.append(
                "<p>Share of people unique were one column not published (the lower, the "
                "more that column singles people out):</p>"
                + _table(["column left out", "unique"], rows, numeric={1})
            )
        body.append(_examples(s))
    body += [
        "<h2>Coarsening: the same data re-measured</h2>",
        "<p>What the figures would be with the stricter options "
        "(<code>JOINEDUP_COARSEN_BIRTH=age_band</code>: age band instead of month-year of "
        "birth and exact ages; <code>JOINEDUP_COARSEN_AREA=la</code>: local authority and "
        "IMD quintile instead of LSOA and IMD decile). Dated-event scenarios are "
        "re-measured for the strictest set only.</p>",
        _what_if(person["what_if"], min_k),
        "<h2>Aggregate marts: suppression and differencing</h2>",
        _aggregates(report["aggregates"]),
        "<h2>Settings</h2>",
        _table(["setting", "value"], [(f"JOINEDUP_{k.upper()}", v) for k, v in settings.items()]),
        '<p class="meta">Generated by <code>joinedup privacy-report</code>; figures are '
        "counts only and no person_id is read out of the database.</p>",
    ]
    return _page(report["title"], "".join(body))


def _figure(published: Mapping[str, Any] | None, threshold: int) -> str:
    if not published:
        return "&mdash;"
    if published.get("suppressed"):
        return escape(f"suppressed (<{threshold})")
    return _e(published.get("value"))


def render_pack(pack: Mapping[str, Any]) -> str:
    settings = pack["settings"]
    t = settings.get("suppression_threshold", 8)
    key = pack["key"]
    key_text = (
        "not configured in this environment"
        if not key["configured"]
        else f"from {key['source']}"
        + (" (the DEMO key: synthetic data only)" if key["demo_key"] else "")
    )
    inv = pack["inventory"]
    body = [
        f"<h1>{escape(pack['title'])}</h1>",
        f'<p class="meta">run {_e(pack["run_id"])} &middot; {_e(pack["generated_at"])} '
        f"&middot; {_e(pack['data_dir'])}</p>",
        f'<p class="note">{escape(pack["note"])}</p>',
        f"<p>Re-identification risk report status: {_status(pack.get('report_status', 'ok'))} "
        "(see report.html beside this file). Pseudonymisation key: "
        f"{escape(key_text)}; the key itself is never written anywhere.</p>",
        "<h2>1. Data inventory</h2>",
        "<h3>Landing (identifiable, as received) &rarr; pseudonymised</h3>",
        "<p>Every column of every extract contract, and what pseudonymisation does to it: "
        "<b>kept</b> under its name, <b>tokenised</b> into keyed HMAC tokens or keyed Bloom "
        "filters (linkage compares these without seeing a value), <b>coarsened</b> (date "
        "of birth to month-year, postcode to LSOA, IMD decile and LA) or <b>dropped</b>.</p>",
    ]
    if pack["identifiers_kept_past_landing"]:
        body.append(
            f"<p>{_status('fail')} raw identifiers kept past landing: "
            + escape(", ".join(pack["identifiers_kept_past_landing"]))
            + "</p>"
        )
    else:
        body.append(f"<p>{_status('ok')} no raw identifier is kept past landing.</p>")
    body.append(
        _table(
            ["table", "column", "identifier", "treatment", "becomes", "description"],
            [
                (
                    r["table"],
                    r["column"],
                    r["identifier"],
                    ", ".join(r["treatment"]),
                    (
                        "html",
                        "<br>".join(escape(b) for b in r["becomes"]) or escape(r.get("note", "")),
                    ),
                    r["description"],
                )
                for r in inv["landing"]
            ],
        )
    )
    body += [
        "<h3>Pseudonymised zone</h3>",
        _table(
            ["table", "column", "type", "from landing", "note"],
            [
                (r["table"], r["column"], r["type"], ", ".join(r["from"]), r["note"])
                for r in inv["pseudonymised"]
            ],
        ),
        "<h3>Linked zone</h3>",
        _table(
            ["table", "column", "type", "note"],
            [(r["table"], r["column"], r["type"], r["note"]) for r in inv["linked"]],
        ),
        "<h3>Published (analytics.duckdb and commissioning.duckdb)</h3>",
        "<p>Person-level marts are published to analysts alone (analytics.duckdb); "
        "aggregate marts to commissioners and the dashboard (commissioning.duckdb). "
        "<b>coarsened</b>: withheld (null) by a coarsening option in this run.</p>",
        _table(
            ["publication", "file", "readers", "mode when published"],
            [
                (name, p["file"], p["readers"], p["mode"])
                for name, p in pack["publications"].items()
            ],
        ),
        _table(
            ["publication", "table", "level", "column", "treatment", "note", "description"],
            [
                (
                    r["publication"],
                    r["table"],
                    r["level"],
                    r["column"],
                    r["treatment"],
                    r["note"],
                    r["description"],
                )
                for r in inv["published"]
            ],
        ),
        "<h2>2. Opt-outs (suppressed)</h2>",
        _opt_outs(pack["opt_outs"], t),
        "<h2>3. Linkage</h2>",
        _linkage(pack["linkage"], t),
        "<h2>4. Retention</h2>",
        "<p>The pipeline deletes nothing on a schedule. What each zone holds now:</p>",
        _table(
            ["zone", "kept", "files", "bytes", "oldest", "newest"],
            [
                (r["zone"], r["kept"], r["files"], r["bytes"], r["oldest"], r["newest"])
                for r in pack["retention"]
            ],
            numeric={2, 3},
        ),
        "<h2>5. Who can read what</h2>",
        _table(
            ["zone", "holds", "readers", "enforced by", "mode now", "mode when published"],
            [
                (
                    r["zone"],
                    r["holds"],
                    r["readers"],
                    r["enforced"],
                    r["mode"],
                    r.get("published_mode", ""),
                )
                for r in pack["access"]
            ],
        ),
        "<h2>6. Settings that protect the data</h2>",
        _table(["setting", "value"], [(k, v) for k, v in settings.items()]),
        "<h2>7. For the DPIA to decide</h2>",
        "<ul>" + "".join(f"<li>{escape(q)}</li>" for q in pack["open_questions"]) + "</ul>",
    ]
    return _page(pack["title"], "".join(body))


def _opt_outs(o: Mapping[str, Any], t: int) -> str:
    parts = [
        _table(
            ["extract", "rows received", "rows removed for opt-out"],
            [
                (
                    r["table"],
                    ("html", _figure(r["rows_received"], t)),
                    ("html", _figure(r["rows_opted_out"], t)),
                )
                for r in o.get("rows_opted_out_by_table", [])
            ],
            numeric={1, 2},
        )
    ]
    for key, title in (
        ("rows_opted_out_by_reason", "rows removed, by reason"),
        ("records_removed_by_reason", "source records removed at the opt-out stage, by reason"),
    ):
        if o.get(key):
            parts.append(f"<h3>{escape(title)}</h3>")
            parts.append(
                _table(
                    ["reason", "count"],
                    [(r, ("html", _figure(v, t))) for r, v in o[key].items()],
                    numeric={1},
                )
            )
    others = [
        (label, ("html", _figure(o[key], t)))
        for key, label in (
            ("national_opt_out_numbers", "NHS numbers on the national opt-out list"),
            ("type1_objecting_records", "GP records with a type 1 objection"),
            ("type1_withdrawn", "type 1 objections withdrawn"),
        )
        if key in o
    ]
    if others:
        parts.append(_table(["", "count"], others, numeric={1}))
    return "".join(parts)


def _linkage(link: Mapping[str, Any], t: int) -> str:
    if not link:
        return "<p>No linkage summary (linked/summary.json) in this data directory.</p>"
    rows = [
        ("records linked", ("html", _figure(link["records"], t))),
        ("persons formed", ("html", _figure(link["persons"], t))),
        (
            "records linked across sources",
            ("html", _pct(link.get("records_linked_across_sources_share"))),
        ),
    ]
    rows += [
        (f"records from {s}", ("html", _figure(v, t))) for s, v in link["records_by_source"].items()
    ]
    rows += [
        (f"records without NHS number removed as opted out ({s})", ("html", _figure(v, t)))
        for s, v in link["records_removed_for_opt_out"].items()
    ]
    rows += [
        (f"persons formed from {n} record(s)", ("html", _figure(v, t)))
        for n, v in link["persons_by_records_linked"].items()
    ]
    rows += [(f"threshold {k}", v) for k, v in link.get("thresholds", {}).items()]
    for k, v in (link.get("evaluation_against_synthetic_truth") or {}).items():
        rows.append((f"{k} against the synthetic truth", v))
    return _table(["", ""], rows, numeric={1})
